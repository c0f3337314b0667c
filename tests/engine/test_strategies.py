"""Strategies: each built-in against a slow pandas/Python reference, no look-ahead
(hypothesis), the indicator cache, user strategies and the registry's checks."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import algo_trade
from algo_trade import strategies
from algo_trade.errors import ConfigError, DataError
from algo_trade.strategies import Inputs
from algo_trade.strategies import indicators as ind
from tests.engine.test_backtest import ftx_bars, random_bars

T0 = 1_704_067_200_000_000_000


def market_columns(rng: np.random.Generator, n: int, depth: int = 5) -> dict[str, np.ndarray]:
    """Every column a strategy can read, random but well-formed."""
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    cols = {
        "ts": T0 + np.arange(n, dtype=np.int64) * 60_000_000_000,
        "open": np.r_[100.0, close[:-1]],
        "close": close,
        "high": close * 1.01,
        "low": close * 0.99,
        "volume": rng.uniform(1, 5, n),
        "bid_sz": rng.uniform(0.1, 5, (n, depth)),
        "ask_sz": rng.uniform(0.1, 5, (n, depth)),
        "funding_rate": rng.normal(0, 2e-4, n),
        "liq_sell_notional": np.where(rng.random(n) < 0.2, rng.uniform(0, 5e5, n), 0.0),
        "liq_buy_notional": np.where(rng.random(n) < 0.2, rng.uniform(0, 5e5, n), 0.0),
    }
    cols["bid_px"] = cols["close"][:, None] - np.arange(1, depth + 1)[None, :] * 0.01
    cols["ask_px"] = cols["close"][:, None] + np.arange(1, depth + 1)[None, :] * 0.01
    return cols


SMALL_PARAMS = {
    "sma_cross": {"fast": 3, "slow": 12, "short": True},
    "ema_cross": {"fast": 3, "slow": 12, "short": True},
    "rsi_reversion": {"window": 6, "short": True},
    "bollinger_breakout": {"window": 8, "k": 1.0, "short": True},
    "book_imbalance": {"levels": 3, "threshold": 0.1},
    "funding_carry": {"threshold_bps": 1.0},
    "liquidation_cascade": {"window": 5, "threshold": 4e5, "hold": 4},
}


def test_every_builtin_has_a_small_case():
    """Every built-in strategy is in SMALL_PARAMS, so the no-look-ahead test below covers it
    (a new built-in without a case fails here), and every case names a registered strategy."""
    builtins = {
        name
        for name, s in strategies.registry().items()
        if getattr(s.fn, "__module__", "").startswith("algo_trade.")
    }
    assert builtins - set(SMALL_PARAMS) == set(), "add a small case to SMALL_PARAMS"
    assert set(SMALL_PARAMS) - builtins == set(), "SMALL_PARAMS names a strategy not registered"


# ----------------------------------------------------------------------------- no look-ahead
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(sorted(SMALL_PARAMS)),
    cut=st.integers(0, 79),
)
def test_no_lookahead_in_any_strategy(seed, name, cut):
    """Changing every input after event t changes no target at or before t."""
    rng = np.random.default_rng(seed)
    n = 80
    cols = market_columns(rng, n)
    other = market_columns(np.random.default_rng(seed + 1), n)
    changed = {k: (v.copy() if k == "ts" else np.concatenate([v[: cut + 1], other[k][cut + 1 :]]))
               for k, v in cols.items()}  # fmt: skip
    s = strategies.get(name)
    p = s.resolve(SMALL_PARAMS[name])
    a = s.fn(Inputs(cols), **p)
    b = s.fn(Inputs(changed), **p)
    np.testing.assert_array_equal(a[: cut + 1], b[: cut + 1])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    cut=st.integers(60, 198),
    fill_at=st.sampled_from(["next", "close"]),
)
def test_no_lookahead_in_the_engine(seed, cut, fill_at):
    """Fills and equity up to event t do not depend on prices after t."""
    rng = np.random.default_rng(seed)
    df = random_bars(rng, 200)
    changed = df.copy()
    changed.iloc[cut + 1 :] = (
        random_bars(np.random.default_rng(seed + 7), 200).iloc[cut + 1 :].to_numpy()
    )
    params = {"fast": 4, "slow": 15, "short": True}
    a = algo_trade.backtest(
        df, "sma_cross", params, fill_at=fill_at, leverage=5, maintenance_margin=0.05
    )
    b = algo_trade.backtest(
        changed, "sma_cross", params, fill_at=fill_at, leverage=5, maintenance_margin=0.05
    )
    upto = df.index[cut]
    pd.testing.assert_frame_equal(a.fills.loc[:upto], b.fills.loc[:upto])
    pd.testing.assert_series_equal(a.equity["equity"].loc[:upto], b.equity["equity"].loc[:upto])


# ----------------------------------------------------------------------------- references
def _cross_ref(fast: pd.Series, slow: pd.Series, short: bool) -> np.ndarray:
    out = np.where(fast > slow, 1.0, np.where(fast < slow, -1.0 if short else 0.0, 0.0))
    return out


def test_sma_and_ema_cross_match_pandas():
    df = ftx_bars(3_000)
    close = df["close"]
    for name, fast, slow in (("sma_cross", close.rolling(7).mean(), close.rolling(40).mean()),
                             ("ema_cross", close.ewm(span=7, adjust=False).mean(),
                              close.ewm(span=40, adjust=False).mean())):  # fmt: skip
        if name == "ema_cross":  # warm-up: NaN for the first span-1 bars
            fast.iloc[:6] = np.nan
            slow.iloc[:39] = np.nan
        for short in (False, True):
            s = strategies.get(name)
            got = s.fn(
                Inputs({"ts": df.index.asi8, "close": close.to_numpy()}),
                **s.resolve({"fast": 7, "slow": 40, "short": short}),
            )
            want = _cross_ref(fast, slow, short)
            close_call = np.isclose(fast, slow, rtol=1e-12)  # float order of summation may differ
            assert (got[~close_call] == want[~close_call]).all(), name


def test_rsi_reversion_matches_a_python_loop():
    df = ftx_bars(2_000)
    c = df["close"].to_numpy()
    w, lower, upper, exit_ = 10, 30.0, 70.0, 50.0
    # Wilder's RSI: simple average of the first w moves, then (prev * (w - 1) + x) / w
    d = np.diff(c)
    gains, losses = np.clip(d, 0, None), np.clip(-d, 0, None)
    rsi = np.full(len(c), np.nan)
    up, dn = gains[:w].mean(), losses[:w].mean()
    rsi[w] = 100 - 100 / (1 + up / dn) if dn else 100.0
    for i in range(w + 1, len(c)):
        up = (up * (w - 1) + gains[i - 1]) / w
        dn = (dn * (w - 1) + losses[i - 1]) / w
        rsi[i] = 100 - 100 / (1 + up / dn) if dn else 100.0
    want, pos = np.zeros(len(c)), 0.0
    for i, r in enumerate(rsi):
        if np.isnan(r):
            pos = 0.0
        else:
            if (pos > 0 and r >= exit_) or (pos < 0 and r <= exit_):
                pos = 0.0
            if pos == 0:
                pos = 1.0 if r < lower else (-1.0 if r > upper else 0.0)
        want[i] = pos
    s = strategies.get("rsi_reversion")
    got = s.fn(Inputs({"ts": df.index.asi8, "close": c}), **s.resolve({"window": w, "short": True}))
    np.testing.assert_array_equal(got, want)
    assert (got == 1).any() and (got == -1).any()


def test_bollinger_breakout_matches_pandas():
    df = ftx_bars(3_000)
    close = df["close"]
    data = Inputs({"ts": df.index.asi8, "close": close.to_numpy()})
    # the indicators agree with pandas to rounding ...
    np.testing.assert_allclose(data.sma("close", 20), close.rolling(20).mean(), rtol=1e-10)
    np.testing.assert_allclose(
        data.std("close", 20), close.rolling(20).std(ddof=0), rtol=1e-6, atol=1e-9
    )
    # ... and the signal follows the documented rule on them (flat stretches of real prices
    # make exact ties, so the rule is replayed on the same arrays)
    mid, sd = data.sma("close", 20), data.std("close", 20)
    up, lo = mid + 2 * sd, mid - 2 * sd
    want, pos = np.zeros(len(close)), 0.0
    for i, x in enumerate(close):
        if np.isnan(mid[i]):
            pos = 0.0
        else:
            if (pos > 0 and x <= mid[i]) or (pos < 0 and x >= mid[i]):
                pos = 0.0
            if pos == 0:
                pos = 1.0 if x > up[i] else (-1.0 if x < lo[i] else 0.0)
        want[i] = pos
    s = strategies.get("bollinger_breakout")
    got = s.fn(data, **s.resolve({"short": True}))
    np.testing.assert_array_equal(got, want)
    assert (got == 1).any() and (got == -1).any()


def test_book_imbalance_matches_a_python_loop():
    rng = np.random.default_rng(3)
    cols = market_columns(rng, 500, depth=5)
    s = strategies.get("book_imbalance")
    got = s.fn(Inputs(cols), **s.resolve({"levels": 3, "threshold": 0.2}))
    b = cols["bid_sz"][:, :3].sum(axis=1)
    a = cols["ask_sz"][:, :3].sum(axis=1)
    imb = (b - a) / (b + a)
    want, pos = np.zeros(500), 0.0
    for i, x in enumerate(imb):
        if (pos > 0 and x <= 0) or (pos < 0 and x >= 0):
            pos = 0.0
        if pos == 0:
            pos = 1.0 if x > 0.2 else (-1.0 if x < -0.2 else 0.0)
        want[i] = pos
    np.testing.assert_array_equal(got, want)


def test_funding_carry_and_liquidation_cascade_by_hand():
    cols = {
        "ts": np.arange(6),
        "funding_rate": np.array([np.nan, 2e-4, 0.5e-4, -3e-4, 1e-4, 1.01e-4]),
    }
    s = strategies.get("funding_carry")
    got = s.fn(Inputs(cols), **s.resolve({"threshold_bps": 1.0}))
    np.testing.assert_array_equal(got, [0, -1, 0, 1, 0, -1])  # short when longs pay more than 1 bp
    cols = {"ts": np.arange(8), "liq_sell_notional": np.array([0, 3e5, 3e5, 0, 0, 0, 0, 0.0]),
            "liq_buy_notional": np.zeros(8)}  # fmt: skip
    s = strategies.get("liquidation_cascade")
    got = s.fn(Inputs(cols), **s.resolve({"window": 2, "threshold": 5e5, "hold": 3}))
    # forced selling of 6e5 over bars 1-2 passes 5e5 at bar 2: long (fade) for 3 bars
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 1, 0, 0, 0])
    got = s.fn(Inputs(cols), **s.resolve({"window": 2, "threshold": 5e5, "hold": 3, "fade": False}))
    np.testing.assert_array_equal(got, [0, 0, -1, -1, -1, 0, 0, 0])


# ----------------------------------------------------------------------------- cache
def test_indicators_are_computed_once_per_distinct_input():
    df = ftx_bars(1_000)
    data = Inputs({"ts": df.index.asi8, "close": df["close"].to_numpy()})
    a = data.sma("close", 10)
    b = data.sma("close", 10)
    assert a is b and data.computed == 1
    data.sma("close", 20)
    data.ema("close", 10)
    assert data.computed == 3
    with pytest.raises(ValueError):
        a[0] = 1.0  # cached arrays are read-only


# ----------------------------------------------------------------------------- user strategies
def test_register_a_user_strategy_and_run_it():
    @strategies.register(
        "test_close_above_sma", params={"window": strategies.Param(int, 20, 2, 500)}
    )
    def close_above_sma(data, window):
        return (data["close"] > data.sma("close", window)).astype(np.float64)

    df = ftx_bars(2_000)
    res = algo_trade.backtest(df, "test_close_above_sma", params={"window": 30}, fill_at="close")
    want = (df["close"] > df["close"].rolling(30).mean()).astype(float).to_numpy()
    np.testing.assert_array_equal(res.positions["target"].to_numpy(), want)
    with pytest.raises(ConfigError, match="out of range"):
        algo_trade.backtest(df, "test_close_above_sma", params={"window": 1})


def test_plain_function_and_module_colon_function(tmp_path, monkeypatch):
    (tmp_path / "my_signals.py").write_text(
        textwrap.dedent("""
        import numpy as np

        def momentum(data, lookback=5, scale=1.0):
            c = data["close"]
            out = np.zeros(len(c))
            out[lookback:] = np.sign(c[lookback:] - c[:-lookback]) * scale
            return out
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_signals", None)
    df = ftx_bars(1_000)
    by_name = algo_trade.backtest(
        df, "my_signals:momentum", params={"lookback": "10"}, fill_at="close"
    )
    import my_signals

    by_fn = algo_trade.backtest(df, my_signals.momentum, params={"lookback": 10}, fill_at="close")
    assert by_name.stats["final_equity"] == by_fn.stats["final_equity"]
    assert by_name.params == {"lookback": 10, "scale": 1.0}
    with pytest.raises(ConfigError, match="lookback"):
        algo_trade.backtest(df, "my_signals:momentum", params={"lookback": "ten"})
    with pytest.raises(ConfigError, match="cannot load strategy"):
        algo_trade.backtest(df, "my_signals:nope")


def test_strategy_returning_the_wrong_shape_is_a_data_error():
    df = ftx_bars(100)
    with pytest.raises(DataError, match="expected \\(100,\\)"):
        algo_trade.backtest(df, lambda data: np.zeros(3))


def test_describe_lists_params_with_types_defaults_and_ranges():
    rows = {r["name"]: r for r in strategies.describe()}
    assert "fast: int in [1, 1000000] (default 10)" in rows["sma_cross"]["params"]
    assert rows["book_imbalance"]["needs"] == "book"


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.lists(st.floats(1.0, 1e5, allow_nan=False), min_size=1, max_size=300),
        st.lists(st.integers(1, 4).map(float), min_size=1, max_size=300),  # ties
    ),
    st.integers(1, 30),
    st.integers(1, 60),
    st.booleans(),
)
def test_fused_sma_cross_is_the_two_averages_bit_for_bit(xs, fast, extra, short):
    """sma_cross runs one fused pass; it must give what cross_signal_nb gives over the two
    cached averages, exactly (ties included: the sums are the same, in the same order)."""
    x = np.asarray(xs)
    slow = fast + extra
    want = ind.cross_signal_nb(ind.sma_nb(x, fast), ind.sma_nb(x, slow), short)
    got = ind.sma_cross_nb(x, fast, slow, short)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int8
