"""Events mode swept: every row is `backtest(source, strategy, params, mode="events")`."""

from __future__ import annotations

import math

import pytest

import algo_trade
from algo_trade.data.events import from_store
from algo_trade.errors import ConfigError
from algo_trade.sweep.api import sweep

SYM = "ETH-USDT-PERP"
START, END = "2024-01-01", "2024-01-01T00:10"
FIXED = {"step_ticks": 1, "qty": 0.01, "max_position": 0.1, "every_ms": 200.0}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from algo_trade.simulator import generate
    from algo_trade.store.lake import LakeStore

    home = tmp_path_factory.mktemp("evs") / "home"
    generate(LakeStore(home, fsync=False), [SYM], 0.02, depth_hours=0.25, seed=3)
    return home


def test_grid_market_maker_sweep_equals_backtest(lake):
    source = lambda: from_store(lake, "sim", SYM, START, END)  # noqa: E731  (a fresh stream per trial)
    grid = {"levels": [1, 2], "half_spread_ticks": [1, 3], **{k: [v] for k, v in FIXED.items()}}
    kw = dict(fee_maker_bps=-0.5, entry_latency_ms=5, response_latency_ms=5)
    res = sweep(source, "grid_mm", grid, mode="events", metric="total_return", workers=2, **kw)
    assert len(res.results) == 4 and res.mode == "events"
    assert res.dsr["trials"] == 4
    for row in res.results.to_dict("records"):
        params = {p: row[p] for p in res.params}
        want = algo_trade.backtest(source(), "grid_mm", params, mode="events", **kw).stats
        for k, v in want.items():
            got = row[k]
            assert got == v or (math.isnan(got) and math.isnan(v)), (params, k, got, v)
    assert res.results["maker_fills"].sum() > 0
    assert "sharpe" in res.results.columns  # from the one stats layer, over the equity records


def test_events_sweep_needs_a_source_it_can_read_again(lake):
    with pytest.raises(ConfigError, match="reads its source once per trial"):
        sweep(
            from_store(lake, "sim", SYM, START, END), "grid_mm", {"levels": [1, 2]}, mode="events"
        )
