"""Indicator cache: each distinct SMA computed once per sweep, bounded memory, correct values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algo_trade.sweep import indicators
from algo_trade.sweep.api import sweep
from algo_trade.sweep.indicators import IndicatorCache, ema_nb, sma_nb


def test_sma_and_ema_match_pandas_on_real_closes(ftx_bars):
    close = ftx_bars["close"].to_numpy(np.float64)
    for w in (1, 5, 50, 200):
        want = pd.Series(close).rolling(w).mean().to_numpy()
        np.testing.assert_allclose(sma_nb(close, w), want, rtol=1e-9, equal_nan=True)
    for span in (5, 50):
        want = pd.Series(close).ewm(span=span, adjust=False).mean().to_numpy().copy()
        want[: span - 1] = np.nan
        np.testing.assert_allclose(ema_nb(close, span), want, rtol=1e-9, equal_nan=True)


def test_running_sum_drift_stays_tiny_over_a_million_bars():
    rng = np.random.default_rng(0)
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, 1_000_000)))
    got = sma_nb(close, 200)
    exact = np.convolve(close, np.ones(200) / 200, mode="valid")
    np.testing.assert_allclose(got[199:], exact, rtol=1e-9)


def test_each_distinct_window_is_computed_once_per_sweep(short_bars, monkeypatch):
    """ema_cross reads its averages through `Inputs.ema`: in a sweep they come from the
    process's shared indicator cache, so each distinct span is computed once."""
    from algo_trade.strategies import indicators as ind

    fresh = IndicatorCache()
    monkeypatch.setattr(indicators, "_PROCESS_CACHE", fresh)
    calls: list[int] = []
    real = ind.ema_nb
    monkeypatch.setattr(ind, "ema_nb", lambda x, w: calls.append(w) or real(x, w))
    grid = {"fast": "5:50:5", "slow": "20:200:20"}
    res = sweep(short_bars, "ema_cross", grid=grid, where="fast < slow")
    assert len(res.results) == 90
    # 10 fast and 10 slow spans, 20 and 40 in both: 18 distinct EMAs for 90 combinations (the
    # best row's re-run for the report hits the cache too)
    distinct = set(range(5, 51, 5)) | set(range(20, 201, 20))
    assert len(distinct) == 18
    assert sorted(calls) == sorted(distinct)
    assert fresh.computed == len(distinct)
    # a second sweep on the same data computes nothing new
    sweep(short_bars, "ema_cross", grid=grid, where="fast < slow")
    assert sorted(calls) == sorted(distinct)
    assert fresh.hits > 0


def test_memory_bound_evicts_least_recently_used():
    x = np.arange(1000, dtype=np.float64)
    cache = IndicatorCache(max_bytes=3 * 8 * 1000)  # room for three arrays
    for w in (2, 3, 4):
        cache.get("d", "sma", "close", x, w)
    cache.get("d", "sma", "close", x, 2)  # touch 2: 3 is now the oldest
    cache.get("d", "sma", "close", x, 5)  # evicts 3
    assert cache.nbytes <= cache.max_bytes
    assert cache.computed == 4
    cache.get("d", "sma", "close", x, 2)
    assert cache.computed == 4  # still cached
    cache.get("d", "sma", "close", x, 3)
    assert cache.computed == 5  # was evicted, so recomputed
    a = cache.get("d", "sma", "close", x, 3)
    with pytest.raises(ValueError):
        a[0] = 1.0  # shared arrays are read-only


def test_different_data_does_not_share_entries():
    cache = IndicatorCache()
    a = cache.get("one", "sma", "close", np.arange(10.0), 2)
    b = cache.get("two", "sma", "close", np.arange(10.0) * 2, 2)
    assert cache.computed == 2
    np.testing.assert_allclose(b[1:], 2 * a[1:])
