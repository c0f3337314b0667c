"""The CLI: real commands, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from algo_trade.cli.main import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_generate_then_stats_json(tmp_path, capsys):
    home = str(tmp_path / "h")
    code, out, _ = run(
        [
            "generate",
            "--symbols",
            "BTC-USDT-PERP",
            "--days",
            "0.05",
            "--seed",
            "3",
            "--home",
            home,
            "--json",
        ],
        capsys,
    )
    assert code == 0
    written = json.loads(out)["written"]
    assert written["book"] == int(0.05 * 86_400)
    code, out, _ = run(["db", "stats", "--home", home, "--json"], capsys)
    assert code == 0
    rows = {(r["kind"], r["symbol"]): r for r in json.loads(out)}
    book = rows[("book", "BTC-USDT-PERP")]
    assert (
        book["rows"] == written["book"]
        and book["bytes"] > 0
        and book["first"].startswith("2024-01-01T00:00:00")
    )
    depth = rows[("depth", "BTC-USDT-PERP")]  # generate keeps depth events for its first hour
    assert depth["rows"] == written["depth"] and depth["bytes_per_row"] < 16
    code, out, _ = run(["db", "compact", "--home", home, "--json"], capsys)
    assert code == 0 and json.loads(out)["datasets"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--symbols", "btcusdt", "--days", "1"], "does not follow the rule"),
        (["generate", "--days", "-1"], "--days must be positive"),
        (["generate", "--book-interval", "fast"], "bad duration 'fast'"),
        (["generate", "--start", "yesterday"], "bad time 'yesterday'"),
        (["generate", "--no-such-option"], "No such option"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, out, err = run(
        argv + ["--home", str(tmp_path / "h")] if argv[0] == "generate" else argv, capsys
    )
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_unwritable_home_is_exit_2(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    code, _, err = run(["db", "stats", "--home", str(f)], capsys)
    assert code == 2 and "cannot create the data home" in err and len(err.strip().splitlines()) == 1


@pytest.mark.integration
def test_console_script_demo_runs(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "algo-trade")
    proc = subprocess.run(
        [exe, "demo", "--home", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        timeout=1500,  # a fresh clone compiles every kernel once
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["generated"]["book"] == 2 * 86_400
    kinds = {r["kind"] for r in summary["stats"]}
    assert kinds == {"book", "trade", "funding", "liquidation", "bar", "depth"}
    # depth events for the two book hours; books rebuilt from them equal the stored books
    dc = summary["depth_check"]
    assert dc["depth_rows"] > 2 * 3600 * 20 and dc["equal"] == dc["compared"] == 2 * 3600
    # the backtests ran on a day of 1m bars and two hours of 1 s books, and wrote their reports
    assert summary["backtest_bars"]["stats"]["events"] == 1440
    assert summary["backtest_book"]["stats"]["events"] == 2 * 3600
    # the market maker replayed every depth event and trade of the two hours with limit
    # orders: only maker fills (post-only quotes), a rebate (negative fees) on that volume
    mm = summary["market_making"]["stats"]
    assert mm["events"] > dc["depth_rows"] and mm["fills"] == mm["maker_fills"] > 0
    assert mm["taker_fills"] == 0 and mm["fees"] == pytest.approx(-0.5e-4 * mm["volume"])
    for part in ("backtest_bars", "backtest_book", "market_making", "sweep"):
        assert os.path.getsize(summary[part]["report"]) > 100_000  # plotly inlined
    # the sweep covered the grid fast=5:40:5 x slow=20:200:20 with fast < slow, best by sharpe
    sw = summary["sweep"]
    grid = [(f, s) for f in range(5, 41, 5) for s in range(20, 201, 20) if f < s]
    assert sw["combinations"] == len(grid)
    import pandas as pd

    results = pd.read_parquet(os.path.join(sw["path"], "results.parquet"))
    assert sorted(zip(results["fast"], results["slow"], strict=True)) == grid
    assert sw["best"]["sharpe"] == pytest.approx(results["sharpe"].max())


def test_help_has_examples(capsys):
    code, out, _ = run(["generate", "--help"], capsys)
    assert code == 0 and "Example:" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["generate", "--symbols", " , "], "--symbols is empty"),
        (["collect", "--exchange", "binance", "--symbols", ","], "--symbols is empty"),
        (["collect", "--exchange", "", "--symbols", "BTC-USDT-PERP"], "--exchange is empty"),
        (["collect", "--symbols", "btc"], "does not follow the rule"),
    ],
)
def test_comma_lists_are_checked_the_same_everywhere(tmp_path, capsys, argv, says):
    code, _, err = run([*argv, "--home", str(tmp_path)], capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
