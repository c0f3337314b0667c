"""`algo-trade backtest` and its report, on a simulated lake, checked against the Python API."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from algo_trade.cli.main import main
from algo_trade.report.backtest import thin

SYM = "BTC-USDT-PERP"


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from algo_trade.cli.generate import generate_into
    from algo_trade.store.lake import LakeStore

    h = tmp_path_factory.mktemp("bt") / "home"
    generate_into(LakeStore(h), [SYM], 0.4, 1_000_000_000, 10, 5, "2024-01-01", quiet=True)
    return h


def test_cli_matches_python_api_and_writes_files(home, tmp_path, capsys):
    import algo_trade

    report, trades, equity = tmp_path / "r.html", tmp_path / "t.csv", tmp_path / "e.parquet"
    argv = ["backtest", "--home", str(home), "--symbol", SYM, "--start", "2024-01-01",
            "--end", "2024-01-01T09:00", "--param", "fast=5", "--param", "slow=30",
            "--fee-taker-bps", "4", "--fill-at", "close", "--report", str(report),
            "--trades-out", str(trades), "--equity-out", str(equity), "--json"]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0
    got = json.loads(out)
    data = algo_trade.load(home, "sim", SYM, "2024-01-01", "2024-01-01T09:00")
    want = algo_trade.backtest(
        data, "sma_cross", {"fast": 5, "slow": 30}, fee_taker_bps=4, fill_at="close"
    )
    assert got["stats"]["final_equity"] == pytest.approx(want.stats["final_equity"], rel=1e-12)
    assert got["stats"]["orders"] == want.stats["orders"] > 0
    assert got["stats"]["events"] == 9 * 60  # 1m bars over 9 hours
    t = pd.read_csv(trades)
    assert len(t) == got["stats"]["trades"]
    assert t["pnl"].sum() == pytest.approx(want.trades["pnl"].sum())
    e = pd.read_parquet(equity)
    assert len(e) == 540 and e["equity"].iloc[-1] == pytest.approx(got["stats"]["final_equity"])
    page = report.read_text()
    assert page.startswith("<!doctype html>") and "plotly" in page.lower()
    assert not re.search(r"<script[^>]*\bsrc=", page)  # self-contained: plotly.js is inlined


def test_book_mode_matches_python_api_and_prints_a_table(home, capsys):
    import algo_trade

    argv = ["backtest", "--home", str(home), "--symbol", SYM, "--start", "2024-01-01T01:00",
            "--end", "2024-01-01T02:00", "--strategy", "book_imbalance", "--mode", "book",
            "--param", "levels=10", "--param", "threshold=0.5", "--latency-ms", "250"]  # fmt: skip
    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 0
    got = json.loads(out)
    data = algo_trade.load(
        home, "sim", SYM, "2024-01-01T01:00", "2024-01-01T02:00", kinds=("book", "funding")
    )
    want = algo_trade.backtest(
        data, "book_imbalance", {"levels": 10, "threshold": 0.5}, latency_ms=250
    )
    assert got["mode"] == "book" and got["stats"]["events"] == 3600  # 1 s snapshots over an hour
    assert got["stats"]["orders"] == want.stats["orders"] > 0
    assert got["stats"]["final_equity"] == pytest.approx(want.stats["final_equity"], rel=1e-12)
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert f"{want.stats['final_equity']:,.6g}" in out and "(book)" in out.replace("\n", " ")


def test_list_strategies(capsys):
    code, out, _ = run(["backtest", "--list", "--json"], capsys)
    assert code == 0
    names = {r["name"] for r in json.loads(out)}
    assert {"sma_cross", "book_imbalance", "funding_carry"} <= names


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--param", "fast=x"], "fast"),
        (["--param", "fast"], "NAME=VALUE"),
        (["--param", "bogus=1"], "unknown parameter 'bogus'"),
        (["--leverage", "0"], "leverage"),
        (["--mode", "ticks"], "--mode"),
        (["--fill-at", "open"], "fill_at"),
        (["--trades-out", "x.xlsx"], ".parquet or .csv"),
    ],
)
def test_bad_input_is_one_line_exit_2(home, capsys, extra, needle):
    code, out, err = run(["backtest", "--home", str(home), "--symbol", SYM, "--start", "2024-01-01",
                          "--end", "2024-01-01T02:00", *extra], capsys)  # fmt: skip
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_no_data_in_range_exit_2(home, capsys):
    code, _, err = run(["backtest", "--home", str(home), "--symbol", SYM, "--start", "2030-01-01",
                        "--end", "2030-01-02"], capsys)  # fmt: skip
    assert code == 2 and "no bar data" in err


def test_thin_keeps_extremes_and_ends():
    rng = np.random.default_rng(0)
    v = np.cumsum(rng.standard_normal(100_000))
    v[54_321] = 1e6  # a spike must survive thinning
    idx = pd.RangeIndex(len(v))
    x, y = thin(idx, v, max_points=3000)
    assert len(y) <= 3100 and y.max() == v.max() and y.min() == v.min()
    assert x[0] == 0 and x[-1] == len(v) - 1
    assert np.array_equal(y, v[np.asarray(x)])


def test_profile_and_memory_profile_print_stages(home, tmp_path, capsys):
    prof = tmp_path / "p.html"
    code, out, _ = run(["backtest", "--home", str(home), "--symbol", SYM, "--start", "2024-01-01",
                        "--end", "2024-01-01T03:00", "--profile", str(prof), "--profile-memory"], capsys)  # fmt: skip
    assert code == 0 and prof.stat().st_size > 1000
    for stage in ("load", "signals", "simulate", "metrics", "report"):
        assert f"│ {stage}" in out
    assert "peak traced Python memory" in out and "top allocation sites" in out
    assert (
        "pyinstrument" not in out.split("top allocation sites")[1]
    )  # the profiler's own memory is left out
