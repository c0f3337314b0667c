"""Bad input: one ConfigError/DataError naming the problem and the valid choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.errors import ConfigError, DataError
from tests.engine.test_backtest import ftx_bars


@pytest.fixture(scope="module")
def bars():
    return ftx_bars(500)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "nope"}, r"unknown strategy 'nope': choose one of .*sma_cross"),
        (
            {"params": {"fastt": 3}},
            r"unknown parameter 'fastt' for strategy 'sma_cross'; valid: fast: int",
        ),
        ({"params": {"fast": 2.5}}, r"parameter 'fast' of 'sma_cross' must be int, got 2.5"),
        ({"params": {"fast": "x"}}, r"must be int, got 'x'"),
        (
            {"params": {"fast": 0}},
            r"parameter 'fast' of 'sma_cross' is 0, out of range: int in \[1, 1000000\]",
        ),
        ({"params": {"short": "maybe"}}, r"'short' of 'sma_cross' must be bool"),
        ({"params": {"fast": 60, "slow": 50}}, r"fast \(60\) must be smaller than slow \(50\)"),
        ({"leverage": 0}, r"leverage must be > 0"),
        ({"leverage": -2}, r"leverage must be > 0"),
        ({"leverage": 250}, r"liquidated at once: use leverage < 200"),
        ({"fill_at": "open"}, r"fill_at must be one of next, close"),
        ({"fee_bps": 3}, r"unknown setting 'fee_bps': valid settings are init_cash, fee_taker_bps"),
        ({"fee_taker_bps": -1}, r"fee_taker_bps must be >= 0"),
        ({"fee_taker_bps": "a lot"}, r"setting fee_taker_bps must be a float"),
        ({"init_cash": 0}, r"init_cash must be positive"),
        ({"mode": "ticks"}, r"mode must be one of bars, book"),
        ({"mode": "book"}, r"mode 'book' needs order books"),
        ({"strategy": "book_imbalance"}, r"needs order books"),
        ({"strategy": "funding_carry"}, r"needs column 'funding_rate'"),
    ],
)
def test_bad_settings_and_params(bars, kwargs, match):
    kw = {"strategy": "sma_cross", **kwargs}
    strategy = kw.pop("strategy")
    params = kw.pop("params", None)
    with pytest.raises((ConfigError, DataError), match=match) as err:
        algo_trade.backtest(bars, strategy, params, **kw)
    assert "\n" not in str(err.value)


def test_no_data():
    empty = ftx_bars(10).iloc[:0]
    with pytest.raises(DataError, match="no data"):
        algo_trade.backtest(empty, "sma_cross")


def test_bars_without_close_or_index():
    with pytest.raises(DataError, match="no 'close' column"):
        algo_trade.backtest(pd.DataFrame({"open": [1.0]}), "sma_cross")
    with pytest.raises(DataError, match="need a DatetimeIndex"):
        algo_trade.backtest(pd.DataFrame({"open": [1.0], "close": [1.0]}), "sma_cross")
    with pytest.raises(DataError, match="data must be a DataFrame of bars or MarketData"):
        algo_trade.backtest([1, 2, 3], "sma_cross")


@pytest.mark.parametrize(("column", "value"), [("close", np.nan), ("close", -1.0), ("open", 0.0)])
def test_bad_prices_name_the_row(bars, column, value):
    df = bars.copy()
    df.iloc[100, df.columns.get_loc(column)] = value
    with pytest.raises(
        DataError, match=rf"bars column '{column}' has a missing or non-positive price at row 100"
    ):
        algo_trade.backtest(
            df, "sma_cross", params={"fast": 2, "slow": 3}, rebalance=True, fill_at="next"
        )


def test_unsorted_bars(bars):
    df = bars.iloc[[0, 1, 3, 2, 4]]
    with pytest.raises(DataError, match="must strictly increase; row 3"):
        algo_trade.backtest(df, "sma_cross")
