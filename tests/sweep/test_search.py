"""Searches beyond grids (random, Optuna TPE) and the deflated Sharpe ratio counting every trial."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

import algo_trade
from algo_trade.errors import ConfigError
from algo_trade.sweep.api import sweep


def test_dsr_counts_every_trial_hand_computed(short_bars):
    """Six trials: the DSR of the best row, worked out from the paper's formulas by hand."""
    grid = {"fast": [5, 10, 20], "slow": [60, 120]}
    res = sweep(short_bars, "sma_cross", grid, fill_at="close")
    assert len(res.results) == 6 and res.dsr["trials"] == 6
    n = len(short_bars)
    ts = short_bars["ts"].to_numpy()
    years = (ts[-1] - ts[0]) * n / (n - 1) / (365 * 86_400e9)
    ppy = n / years
    trial_sr = res.results["sharpe"].to_numpy() / math.sqrt(ppy)
    # the best row's per-bar returns, from backtest's equity
    eq = (
        algo_trade.backtest(short_bars, "sma_cross", params=res.best_params, fill_at="close")
        .equity["equity"]
        .to_numpy()
    )
    r = eq / np.r_[10_000.0, eq[:-1]] - 1
    sr = r.mean() / r.std(ddof=1)
    z = (r - r.mean()) / r.std()
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    nd, g, trials = NormalDist(), 0.5772156649015329, 6
    sr0 = math.sqrt(np.var(trial_sr, ddof=1)) * (
        (1 - g) * nd.inv_cdf(1 - 1 / trials) + g * nd.inv_cdf(1 - 1 / (trials * math.e))
    )
    dsr = nd.cdf(
        (sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    )
    assert res.dsr["sharpe_per_bar"] == pytest.approx(sr, rel=1e-9)
    assert res.dsr["expected_max_sharpe_per_bar"] == pytest.approx(sr0, rel=1e-9)
    assert res.dsr["dsr"] == pytest.approx(dsr, rel=1e-9, abs=1e-12)


def test_random_search_draws_distinct_trials_of_the_grid(short_bars):
    res = sweep(short_bars, "sma_cross", {"fast": "2:50", "slow": "20:200"}, where="fast < slow",
                search="random", trials=25, seed=4)  # fmt: skip
    assert len(res.results) == 25 and res.dsr["trials"] == 25
    assert not res.results.duplicated(["fast", "slow"]).any()
    assert (res.results["fast"] < res.results["slow"]).all()
    again = sweep(short_bars, "sma_cross", {"fast": "2:50", "slow": "20:200"}, where="fast < slow",
                  random=25, seed=4)  # fmt: skip  # the old spelling
    assert again.results.equals(res.results)


def test_optuna_search_within_bounds_counts_only_trials_run(short_bars):
    res = sweep(short_bars, "rsi_reversion", {"window": "5:40", "lower": "10:40:5", "exit": [50.0, 60.0]},
                where="lower < 35", search="optuna", trials=30, seed=1, workers=1)  # fmt: skip
    r = res.results
    assert len(r) == 30 and res.dsr["trials"] == 30 and res.search == "optuna"
    assert r["window"].between(5, 40).all() and (r["window"] % 1 == 0).all()
    assert set(r["lower"]) <= {10.0, 15.0, 20.0, 25.0, 30.0} and set(r["exit"]) <= {50.0, 60.0}
    assert res.extra["refused_proposals"] >= 0
    # each row is still the engine's backtest
    row = r.iloc[7]
    params = {p: row[p] for p in res.params}
    bt = algo_trade.backtest(short_bars, "rsi_reversion", params=params)
    assert bt.stats["sharpe"] == row["sharpe"] and bt.stats["orders"] == row["orders"]


def test_optuna_minimizes_a_lower_is_better_metric(short_bars):
    res = sweep(short_bars, "sma_cross", {"fast": "2:30", "slow": "40:200"}, metric="max_drawdown",
                search="optuna", trials=12, seed=2, workers=1)  # fmt: skip
    assert res.best["max_drawdown"] == res.results["max_drawdown"].min()


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"grid": {"fast": 10}, "search": "optuna", "trials": 5}, "optuna search needs bounds"),
        ({"grid": {"fast": "5:9"}, "search": "optuna"}, "needs a number of trials"),
        ({"grid": {"fast": "5:9"}, "search": "random"}, "needs a number of trials"),
        ({"grid": {"speed": "5:9"}, "search": "optuna", "trials": 3}, "unknown parameter 'speed'"),
        (
            {"grid": {"fast": "5:9"}, "where": "slow > 1", "search": "optuna", "trials": 3},
            "condition over",
        ),
        ({"grid": {"fast": "5:9"}, "where": "2 > 1"}, "names no parameter"),
        ({"grid": {"fast": "5:9"}, "where": "fast > 100"}, "removes every combination"),
        ({"grid": {"fast": "5:9"}, "where": "__import__('os').system('true')"}, "bad constraint"),
    ],
)
def test_bad_search_input(short_bars, kw, needle):
    grid = kw.pop("grid")
    with pytest.raises(ConfigError, match=needle):
        sweep(short_bars, "sma_cross", grid, **kw)
