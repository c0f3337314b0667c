"""Every built-in strategy (and a module:function one) swept on small real data, in bars and
book mode: each row equals `algo_trade.backtest` with the same parameters, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.data.market import MarketData
from algo_trade.engine import metrics
from algo_trade.errors import DataError
from algo_trade.strategies import registry
from algo_trade.sweep.api import sweep


def user_strategy(data, window: int = 10, k: float = 1.0):
    """Long while the close is above its SMA by k basis points (a module:function strategy)."""
    sma = data.sma("close", window)
    return (data["close"] > sma * (1 + k * 1e-4)).astype(np.float64)


def _same(row: dict, stats: pd.Series, where: str) -> None:
    for k in metrics.registry():
        got, want = row[k], stats[k]
        assert (got == want) or (math.isnan(float(got)) and math.isnan(float(want))), (
            f"{where} {k}: {got!r} vs {want!r}"
        )


def _check(data, strategy, grid, **settings) -> int:
    res = sweep(data, strategy, grid, **settings)
    assert len(res.results) >= 2
    for row in res.results.to_dict("records"):
        params = {p: row[p] for p in res.params}
        bt = algo_trade.backtest(data, strategy, params=params, **settings)
        _same(row, bt.stats, f"{strategy} {params}")
    return int(res.results["orders"].sum())


@pytest.fixture(scope="module")
def bars_with_funding(ftx_bars) -> pd.DataFrame:
    """4,000 real FTX bars, with a funding rate settled every 8 hours (the input convention:
    funding_rate settled in the bar, NaN elsewhere, and its mark_px)."""
    df = ftx_bars.iloc[:4000].reset_index(drop=True).copy()
    rate = np.full(len(df), np.nan)
    rate[::480] = np.where(np.arange(len(rate[::480])) % 2 == 0, 3e-4, -2e-4)
    df["funding_rate"] = rate
    df["mark_px"] = df["open"]
    return df


GRIDS = {
    "sma_cross": ({"fast": [5, 20], "slow": [30, 90], "short": [False, True]}, {}),
    "ema_cross": ({"fast": [5, 12], "slow": [26, 60]}, {"fill_at": "close"}),
    "rsi_reversion": (
        {"window": [7, 14], "lower": [25.0, 35.0], "short": [True]},
        {"leverage": 2.0},
    ),
    "bollinger_breakout": ({"window": [10, 40], "k": [1.0, 2.0]}, {"slippage_bps": 1.0}),
    "funding_carry": ({"threshold_bps": [0.5, 2.5]}, {}),
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_bar_strategies_equal_backtest(bars_with_funding, name):
    grid, settings = GRIDS[name]
    assert _check(bars_with_funding, name, grid, **settings) > 0  # trades happened


def test_liquidation_cascade_equals_backtest(bars_with_funding):
    md = MarketData.from_bars(bars_with_funding)
    rng = np.random.default_rng(3)
    n = len(md)
    md.columns["liq_sell_notional"] = np.where(rng.random(n) < 0.02, rng.exponential(2e6, n), 0.0)
    md.columns["liq_buy_notional"] = np.where(rng.random(n) < 0.02, rng.exponential(2e6, n), 0.0)
    grid = {"window": [5, 20], "threshold": [1e6, 3e6], "fade": [True, False]}
    assert _check(md, "liquidation_cascade", grid) > 0


def test_module_function_strategy_equals_backtest(bars_with_funding):
    assert (
        _check(bars_with_funding, f"{__name__}:user_strategy", {"window": [5, 30], "k": [0.0, 5.0]})
        > 0
    )


@pytest.fixture(scope="module")
def books() -> MarketData:
    """3,000 book snapshots of 5 levels around a random walk, 100 ms apart."""
    rng = np.random.default_rng(7)
    n, levels = 3000, 5
    mid = 30_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    tick = np.arange(1, levels + 1) * 0.5
    bid_px = mid[:, None] - tick[None, :]
    ask_px = mid[:, None] + tick[None, :]
    bid_sz = rng.exponential(1.0, (n, levels))
    ask_sz = rng.exponential(1.0, (n, levels))
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000
    cols = {"bid_px": bid_px, "bid_sz": bid_sz, "ask_px": ask_px, "ask_sz": ask_sz, "close": mid}
    for c in ("open", "high", "low"):
        cols[c] = mid
    return MarketData(ts, cols, "book", "sim", "BTC-USDT-PERP", kinds=("book",))


def test_book_mode_equals_backtest(books):
    grid = {"levels": [1, 3, 5], "threshold": [0.2, 0.5]}
    assert _check(books, "book_imbalance", grid, latency_ms=150.0, fee_taker_bps=1.0) > 0


def test_bar_strategy_in_book_mode_equals_backtest(books):
    assert _check(books, "sma_cross", {"fast": [5, 10], "slow": [50, 200]}, mode="book") > 0


def test_every_builtin_is_covered():
    covered = set(GRIDS) | {"liquidation_cascade", "book_imbalance"}
    builtin = {
        n for n, s in registry().items() if s.fn.__module__ == "algo_trade.strategies.builtin"
    }
    assert len(builtin) >= 7 and builtin <= covered


# ----------------------------------------------------------------------------- input convention
def test_backtest_and_sweep_read_the_same_funding_columns(bars_with_funding):
    res = sweep(bars_with_funding, "sma_cross", {"fast": [5], "slow": [30, 90]})
    assert (res.results["funding_pnl"] != 0).all()  # the funding columns were read
    plain = sweep(bars_with_funding.drop(columns=["funding_rate", "mark_px"]), "sma_cross",
                  {"fast": [5], "slow": [30, 90]})  # fmt: skip
    assert (plain.results["funding_pnl"] == 0).all()


@pytest.mark.parametrize("column", ["fund_settle_rate", "fundingRate", "mark_price", "funding"])
def test_unknown_funding_like_columns_are_refused_by_both(bars_with_funding, column):
    df = bars_with_funding.rename(columns={"funding_rate": column})
    with pytest.raises(DataError, match=f"'{column}' looks like funding but is not read"):
        algo_trade.backtest(df, "sma_cross")
    with pytest.raises(DataError, match=f"'{column}' looks like funding but is not read"):
        sweep(df, "sma_cross", {"fast": [5], "slow": [30]})
