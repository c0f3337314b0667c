"""Events mode end to end: simulated depth + trades + funding in a lake, through
`backtest(mode="events")`, the CLI (`--mode events`) and the market-making report."""

from __future__ import annotations

import json

import numpy as np
import pytest

import algo_trade
from algo_trade.cli.main import main
from algo_trade.data.events import from_store
from algo_trade.errors import ConfigError, DataError
from algo_trade.report.market_making import analyze

SYM = "ETH-USDT-PERP"
START, END = "2024-01-01", "2024-01-01T00:20"
GRID = {"levels": 2, "step_ticks": 1, "half_spread_ticks": 1, "qty": 0.01, "max_position": 0.1,
        "every_ms": 200.0}  # fmt: skip


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from algo_trade.simulator import generate
    from algo_trade.store.lake import LakeStore

    home = tmp_path_factory.mktemp("ev") / "home"
    generate(LakeStore(home, fsync=False), [SYM], 0.02, depth_hours=0.25, seed=3)
    return home


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_grid_market_maker_on_simulated_depth(lake, tmp_path):
    src = from_store(lake, "sim", SYM, START, END)
    res = algo_trade.backtest(src, "grid_mm", GRID, mode="events", fee_maker_bps=-0.5,
                              entry_latency_ms=5, response_latency_ms=5, queue_model="log")  # fmt: skip
    s = res.stats
    assert s["maker_fills"] > 20 and s["taker_fills"] == 0
    assert s["fees"] < 0  # rebates
    assert s["out_of_window"] == 0
    # every fill: position and cash as the ledger says
    f = res.ledger_array
    fills = f[f["kind"] <= 1]
    assert np.cumsum(fills["qty"])[-1] == pytest.approx(s["position"], abs=1e-12)
    a = analyze(res)
    assert a["total_pnl"] == pytest.approx(
        a["spread_capture"] + a["inventory_pnl"] - a["fees"] - a["funding_paid"]
    )
    assert np.isfinite(a["spread_capture"]) and a["spread_capture"] != 0.0
    assert a["maker_fills"] == s["maker_fills"]
    for h in (1, 10, 60):
        assert np.isfinite(a[f"markout_{h}s_bps"])
    page = res.to_html(tmp_path / "mm.html").read_text()
    assert "spread_capture" in page and "markout_10s_bps" in page


def test_glft_market_maker_skews_against_inventory(lake):
    src = from_store(lake, "sim", SYM, START, END)
    res = algo_trade.backtest(src, "glft_mm", {"qty": 0.01, "max_position": 0.05, "gamma": 0.05},
                              mode="events", fee_maker_bps=0.0)  # fmt: skip
    assert res.stats["maker_fills"] > 5
    assert np.max(np.abs(res.records_array["pos"])) <= 0.05 + 0.01 + 1e-9


def test_target_strategy_runs_as_market_orders(lake):
    md = algo_trade.load(lake, "sim", SYM, START, END, kinds=("book", "funding"))
    src = from_store(lake, "sim", SYM, START, END)
    res = algo_trade.backtest(src, "book_imbalance", {"levels": 5, "threshold": 0.2}, mode="events",
                              targets_from=md, fee_taker_bps=4.0)  # fmt: skip
    assert res.stats["taker_fills"] > 0 and res.stats["maker_fills"] == 0
    assert res.strategy == "book_imbalance"
    with pytest.raises(ConfigError, match="targets_from"):
        algo_trade.backtest(
            from_store(lake, "sim", SYM, START, END), "book_imbalance", mode="events"
        )


def test_no_depth_is_one_clear_error(lake):
    with pytest.raises(DataError, match="no depth rows"):
        algo_trade.backtest(
            from_store(lake, "sim", SYM, "2024-01-05", "2024-01-06"), "grid_mm", mode="events"
        )


def test_cli_events_mode(lake, capsys, tmp_path):
    argv = ["backtest", "--home", str(lake), "--symbol", SYM, "--start", START, "--end", END,
            "--mode", "events", "--strategy", "grid_mm", "--fee-maker-bps", "-0.5",
            "--events-setting", "queue_model=power", "--events-setting", "response_latency_ms=3",
            "--report", str(tmp_path / "r.html"), "--json"]  # fmt: skip
    for k, v in GRID.items():
        argv += ["--param", f"{k}={v}"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    got = json.loads(out)
    want = algo_trade.backtest(from_store(lake, "sim", SYM, START, END), "grid_mm", GRID, mode="events",
                               fee_maker_bps=-0.5, queue_model="power", response_latency_ms=3)  # fmt: skip
    assert got["stats"]["final_equity"] == pytest.approx(want.stats["final_equity"], rel=1e-12)
    assert got["stats"]["fills"] == want.stats["fills"] > 0
    code, out, err = run(argv + ["--events-setting", "queue_model=optimistic"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "queue_model must be one of" in err
