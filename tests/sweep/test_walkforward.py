"""Walk-forward: windows never let test data into training; OOS results stitch correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algo_trade.errors import ConfigError, DataError
from algo_trade.sweep.api import sweep
from algo_trade.sweep.walkforward import parse_walk_forward, windows

MIN = 60 * 10**9
DAY = 1440 * MIN
GRID = {"fast": "5:30:5", "slow": "40:120:40"}


def test_parse_spec():
    assert parse_walk_forward("train=30d,test=7d") == {
        "train": 30 * DAY,
        "test": 7 * DAY,
        "step": 7 * DAY,
    }
    assert parse_walk_forward("train=1d, test=12h, step=1d")["step"] == DAY
    for bad in (
        "train=30d",
        "train=30d,test=7d,foo=1d",
        "30d,7d",
        "train=30d,test=7d,step=1d",
        "train=x,test=1d",
    ):
        with pytest.raises(ConfigError):
            parse_walk_forward(bad)


def test_windows_tile_and_never_overlap_test_into_training():
    ts = np.arange(10 * 1440, dtype=np.int64) * MIN  # ten days of minutes
    w = windows(ts, 0, len(ts), 3 * DAY, DAY, DAY)
    assert len(w) == 7  # test windows start on days 3..9
    for i, (a, b, c, d) in enumerate(w):
        assert (a, b, c, d) == (i * 1440, (i + 3) * 1440, (i + 3) * 1440, (i + 4) * 1440)
        assert ts[b - 1] < ts[c]  # the last training bar precedes the first test bar
    tests = [range(c, d) for _, _, c, d in w]
    assert all(t1.stop <= t2.start for t1, t2 in zip(tests, tests[1:], strict=False))
    # a longer step leaves gaps but never overlaps; a window that does not fit is dropped
    w2 = windows(ts, 0, len(ts), 3 * DAY, DAY, 2 * DAY)
    assert [c // 1440 for _, _, c, _ in w2] == [3, 5, 7, 9]
    # a gap in the data: windows are cut by time, not by bar count
    gappy = np.r_[ts[:2000], ts[3000:]]
    for a, b, c, _ in windows(gappy, 0, len(gappy), 3 * DAY, DAY, DAY):
        assert (
            gappy[c] - 3 * DAY <= gappy[a] and gappy[b - 1] < gappy[c]
        )  # training: the 3 days before


def test_walk_forward_picks_in_sample_and_reports_out_of_sample(short_bars):
    res = sweep(
        short_bars, "sma_cross", GRID, where="fast < slow", walk_forward="train=1d,test=12h"
    )
    wf = res.walk_forward
    ts = short_bars["ts"].to_numpy()
    w = windows(ts, 0, len(ts), DAY, DAY // 2, DAY // 2)
    assert len(wf.windows) == len(w) == 6
    oos_bars = 0
    for row, (a, b, c, d) in zip(wf.windows.to_dict("records"), w, strict=True):
        # the chosen parameters are the best of a sweep over the training bars alone
        ins = sweep(
            short_bars, "sma_cross", GRID, where="fast < slow", start=int(ts[a]), end=int(ts[b])
        )
        assert (row["fast"], row["slow"]) == (ins.best["fast"], ins.best["slow"])
        assert row["is_sharpe"] == pytest.approx(ins.best["sharpe"])
        # ... and the out-of-sample stats those of the same parameters over the test bars
        oos = sweep(short_bars, "sma_cross", {"fast": [row["fast"]], "slow": [row["slow"]]},
                    start=int(ts[c]), end=int(ts[d]) if d < len(ts) else None)  # fmt: skip
        assert row["oos_total_return"] == pytest.approx(
            oos.best["total_return"], rel=1e-9, abs=1e-12
        )
        assert row["oos_sharpe"] == pytest.approx(oos.best["sharpe"], rel=1e-9, abs=1e-12)
        oos_bars += d - c
    # the stitched equity compounds the windows' returns over exactly their bars
    assert len(wf.equity) == len(wf.ts) == oos_bars == wf.stats["bars"]
    assert np.all(np.diff(wf.ts) > 0)
    growth = np.prod([1 + r for r in wf.windows["oos_total_return"]])
    assert wf.equity[-1] == pytest.approx(growth, rel=1e-9)
    assert wf.stats["total_return"] == pytest.approx(growth - 1, rel=1e-9, abs=1e-12)


def test_changing_test_data_does_not_change_the_training_choice(short_bars):
    base = sweep(
        short_bars, "sma_cross", GRID, where="fast < slow", walk_forward="train=1d,test=12h"
    )
    first_test = short_bars["ts"].iloc[0] + DAY
    tampered = short_bars.copy()
    after = tampered["ts"] >= first_test
    rng = np.random.default_rng(1)
    for c in ("open", "high", "low", "close"):
        tampered.loc[after, c] = tampered.loc[after, c] * rng.uniform(0.9, 1.1, after.sum())
    res = sweep(tampered, "sma_cross", GRID, where="fast < slow", walk_forward="train=1d,test=12h")
    w0, t0 = base.walk_forward.windows.iloc[0], res.walk_forward.windows.iloc[0]
    assert (w0["fast"], w0["slow"], w0["is_sharpe"]) == (t0["fast"], t0["slow"], t0["is_sharpe"])
    assert w0["oos_total_return"] != t0["oos_total_return"]  # the test window did see the change


def test_too_short_for_one_window(short_bars):
    with pytest.raises(DataError, match="too short"):
        sweep(short_bars, "sma_cross", GRID, walk_forward="train=30d,test=7d")


def test_walk_forward_any_strategy_and_resumable(short_bars, tmp_path):
    """rsi_reversion walked forward with a home: each window's trials and choice are kept, so
    a run that lost its last window (as a kill would) recomputes that window only."""
    import shutil

    grid = {"window": [7, 14, 28], "lower": [20.0, 30.0]}
    kw = dict(walk_forward="train=1d,test=12h", home=tmp_path, sweep_id="wf1")
    first = sweep(short_bars, "rsi_reversion", grid, **kw)
    wins = first.walk_forward.windows
    assert len(wins) >= 3 and first.computed == 6 * len(wins)
    again = sweep(short_bars, "rsi_reversion", grid, **kw)
    assert again.computed == 0
    pd.testing.assert_frame_equal(again.walk_forward.windows, wins)
    shutil.rmtree(tmp_path / "sweeps" / "wf1" / f"window-{len(wins) - 1:03d}")
    third = sweep(short_bars, "rsi_reversion", grid, **kw)
    assert third.computed == 6
    pd.testing.assert_frame_equal(third.walk_forward.windows, wins)
    # a window's out-of-sample stats are the engine's backtest over the test events, flat at start
    w = wins.iloc[0]
    assert w["oos_trades"] >= 0 and np.isfinite(w["oos_sharpe"])
    assert third.walk_forward.stats["windows"] == len(wins)
