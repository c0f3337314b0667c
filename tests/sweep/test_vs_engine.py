"""A sweep equals the same backtests run one by one with `algo_trade.backtest` (every stat,
every combination), and the sweep kernel agrees with hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.engine import metrics
from algo_trade.sweep.api import SweepResult, sweep


def _frame(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.set_index(pd.DatetimeIndex(bars["ts"].to_numpy(), tz="UTC"))[
        ["open", "high", "low", "close", "volume"]
    ]


def _assert_same(row: dict, stats: pd.Series, where: str) -> None:
    for k in metrics.registry():
        got, want = float(row[k]), float(stats[k])
        if math.isnan(want) or math.isinf(want):
            assert got == want or (math.isnan(got) and math.isnan(want)), (
                f"{where} {k}: {got} vs {want}"
            )
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{where} {k}: {got} vs {want}"


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"fill_at": "close", "fee_taker_bps": 2.0},
        {"slippage_bps": 3.0, "slippage_range": 0.1, "init_cash": 1_000.0},
        {"leverage": 80.0, "maintenance_margin": 0.005, "liquidation_fee_bps": 30.0},
    ],
    ids=["defaults", "close", "slippage", "liquidations"],
)
def test_every_combination_equals_backtest(ftx_bars, settings):
    bars = ftx_bars.iloc[:8000].reset_index(drop=True)
    grid = {"fast": [3, 10, 30], "slow": [20, 60, 240], "short": [False, True]}
    res = sweep(bars, "sma_cross", grid, where="fast < slow", **settings)
    assert len(res.results) == 16
    df = _frame(bars)
    liquidated = 0
    for row in res.results.to_dict("records"):
        params = {"fast": row["fast"], "slow": row["slow"], "short": row["short"]}
        bt = algo_trade.backtest(df, "sma_cross", params=params, **settings)
        _assert_same(row, bt.stats, f"{params} {settings}")
        liquidated += row["liquidations"]
    if settings.get("leverage", 1) > 1:
        assert liquidated > 0  # the margin path was exercised, not only the plain one


def test_ema_cross_equals_backtest(short_bars):
    res = sweep(short_bars, "ema_cross", {"fast": [5, 12], "slow": [26, 100]}, fill_at="close")
    df = _frame(short_bars)
    for row in res.results.to_dict("records"):
        bt = algo_trade.backtest(
            df, "ema_cross", params={"fast": row["fast"], "slow": row["slow"]}, fill_at="close"
        )
        _assert_same(row, bt.stats, "ema")


def test_algo_trade_sweep_runs_the_sweep_however_it_is_imported(short_bars):
    import importlib
    import inspect

    import algo_trade.sweep.walkforward as wf  # a submodule import after the package is loaded
    from algo_trade import sweep as imported

    importlib.import_module("algo_trade.report.sweep")
    grid = {"fast": "5:10:5", "slow": "20:40:20"}
    a = algo_trade.sweep(short_bars, "sma_cross", grid=grid)
    b = imported(short_bars, "sma_cross", grid=grid)
    c = sweep(short_bars, "sma_cross", grid=grid)
    pd.testing.assert_frame_equal(a.results, c.results)
    pd.testing.assert_frame_equal(b.results, c.results)
    assert wf.windows is algo_trade.sweep.walkforward.windows  # submodules stay reachable
    assert "where" in inspect.signature(algo_trade.sweep).parameters
    assert algo_trade.SweepResult is SweepResult and "sweep" in algo_trade.__all__
    res = a
    assert isinstance(res, SweepResult) and len(res.results) == 4
    assert set(metrics.registry()) <= set(res.results.columns) and {"fast", "slow", "short"} <= set(
        res.results.columns
    )
    best = res.best
    assert best["sharpe"] == res.results["sharpe"].max()
    fig = res.heatmap()
    assert fig.data[0].type == "heatmap"
    html = res.to_html()
    assert "<html" in html.lower() and "plotly" in html.lower()


def test_hand_worked_long_then_short():
    # five bars; fast/slow chosen so the target is flat, long from bar 1's close, short from
    # bar 3's close; fill at the next open; 10 bp fee, no slippage, init_cash 1000
    ts = np.arange(5, dtype=np.int64) * 60 * 10**9
    open_ = np.array([100.0, 100.0, 110.0, 120.0, 100.0])
    close = np.array([100.0, 110.0, 120.0, 100.0, 100.0])
    high = np.maximum(open_, close)
    low = np.minimum(open_, close)
    bars = pd.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close})

    def flat_long_short(data, scale: float = 1.0):
        return np.array([0.0, 1.0, 1.0, -1.0, -1.0]) * scale

    res = sweep(bars, flat_long_short, {"scale": [1.0]}, init_cash=1000.0, fee_taker_bps=10.0,
                maintenance_margin=0.0)  # fmt: skip
    got = res.results.iloc[0]
    years = 4 * 60 * 1.25 / (365 * 86_400)  # span (ts[-1]-ts[0]) * n/(n-1), in years
    eq = res.best_equity.to_numpy()
    rets = eq / np.r_[1000.0, eq[:-1]] - 1
    # bar 2 open 110: all-in long, notional + fee = 1000 -> notional 1000/1.001
    n1 = 1000 / 1.001
    qty = n1 / 110
    cash = 1000 - n1 - n1 * 0.001  # = 0
    eq2 = cash + qty * 120
    eq3 = cash + qty * 100
    # bar 4 open 100: to all-in short. Selling: n = -(eq - fee * n0) / (1 - (-1) * fee) ... the
    # engine's closed form with k = -1: n1 = k (eq - c n0) / (1 - k c) = -(eq3 - 0.001 q 100) / 1.001
    n_short = -(eq3 - 0.001 * qty * 100) / 1.001
    dq = n_short / 100 - qty
    cash4 = cash - dq * 100 - abs(dq) * 100 * 0.001
    eq4 = cash4 + (n_short / 100) * 100
    assert eq4 == pytest.approx(
        eq3 - abs(dq) * 100 * 0.001
    )  # a trade at the mark costs only its fee
    r = np.array([0.0, 0.0, eq2 / 1000 - 1, eq3 / eq2 - 1, eq4 / eq3 - 1])
    np.testing.assert_allclose(rets, r, rtol=1e-12)
    assert got["final_equity"] == pytest.approx(eq4, rel=1e-12)
    assert got["total_return"] == pytest.approx(eq4 / 1000 - 1, rel=1e-12)
    assert (
        got["orders"] == 2 and got["trades"] == 1
    )  # the long round trip closed; the short is open
    long_pnl = qty * (100 - 110) - n1 * 0.001 - qty * 100 * 0.001  # price move, open fee, close fee
    assert got["avg_trade"] == pytest.approx(long_pnl, rel=1e-9)
    assert (
        got["win_rate"] == 0.0
        and math.isnan(got["profit_factor"]) is False
        and got["profit_factor"] == 0.0
    )
    assert got["fees"] == pytest.approx(n1 * 0.001 + abs(dq) * 100 * 0.001, rel=1e-12)
    assert got["turnover"] == pytest.approx((n1 + abs(dq) * 100) / 1000, rel=1e-12)
    assert got["exposure"] == pytest.approx(3 / 5)
    assert got["max_drawdown"] == pytest.approx(1 - eq4 / eq2, rel=1e-12)
    assert got["max_drawdown_days"] == pytest.approx(
        2 / 1440
    )  # peak at bar 2, still below at bar 4
    mean, sd = r.mean(), r.std(ddof=1)
    ann = math.sqrt(5 / years)
    assert got["sharpe"] == pytest.approx(mean / sd * ann, rel=1e-9)
    assert got["sortino"] == pytest.approx(
        mean / math.sqrt((r[r < 0] ** 2).sum() / 5) * ann, rel=1e-9
    )
    assert got["funding_pnl"] == 0.0 and got["liquidations"] == 0


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("close", np.nan, "column 'close' has a missing or non-positive price at row 100"),
        ("low", 0.0, None),  # read only while long: refused or not, as backtest does
        ("ts", None, "timestamps must strictly increase; row 100"),
    ],
)
def test_bad_bars_are_refused_as_backtest_refuses_them(short_bars, column, value, needle):
    """The sweep reads bars through the engine, so it refuses exactly what backtest refuses,
    with the same message."""
    from algo_trade.errors import DataError

    bad = short_bars.copy()
    if column == "ts":
        bad.loc[100, "ts"] = bad.loc[99, "ts"]
    else:
        bad.loc[100, column] = value

    def outcome(run) -> str | None:
        try:
            run()
        except DataError as exc:
            return str(exc)
        return None

    got = outcome(lambda: sweep(bad, "sma_cross", {"fast": [1], "slow": [2]}))
    want = outcome(lambda: algo_trade.backtest(bad, "sma_cross", params={"fast": 1, "slow": 2}))
    assert got == want
    if needle is not None:
        assert needle in got


@pytest.fixture(scope="module")
def sim_home(tmp_path_factory):
    """Two simulated days (1-minute bars, funding settled every 8 h) in a lake."""
    from algo_trade.cli.generate import generate_into
    from algo_trade.store.lake import LakeStore

    home = tmp_path_factory.mktemp("sim")
    store = LakeStore(home)
    generate_into(store, ["BTC-USDT-PERP"], 2.0, 60 * 10**9, 1, 7, "2024-01-01", quiet=True)
    return home


def test_funding_is_booked_as_the_engine_books_it(sim_home):
    from algo_trade.data.cache import load_bars_cached
    from algo_trade.store.lake import LakeStore

    store = LakeStore(sim_home)
    args = ("sim", "BTC-USDT-PERP", "2024-01-01", "2024-01-03")
    cached = load_bars_cached(store, *args, sim_home)
    assert (
        "fund_settle_rate" in cached["market"]
        and np.isfinite(cached["market"]["fund_settle_rate"]).sum() >= 5
    )
    md = algo_trade.load(store, *args, kinds=("bar", "funding"))
    grid = {"fast": [5, 15], "slow": [30, 90], "short": [False, True]}
    from_cache = sweep(cached, "sma_cross", grid, leverage=3.0)
    from_md = sweep(md, "sma_cross", grid, leverage=3.0)
    pd.testing.assert_frame_equal(from_cache.results, from_md.results)
    assert (from_cache.results["funding_pnl"] != 0).all()
    for row in from_cache.results.to_dict("records"):
        params = {"fast": row["fast"], "slow": row["slow"], "short": row["short"]}
        bt = algo_trade.backtest(md, "sma_cross", params=params, leverage=3.0)
        _assert_same(row, bt.stats, f"{params} with funding")


def test_bars_with_funding_are_cached_once(sim_home):
    from algo_trade.data.cache import load_bars_cached
    from algo_trade.store.lake import LakeStore

    from .test_cache import CountingStore

    store = CountingStore(LakeStore(sim_home))
    args = ("sim", "BTC-USDT-PERP", "2024-01-01", "2024-01-02")
    a = load_bars_cached(store, *args, sim_home)
    reads = store.scans
    assert reads >= 2  # bars and funding
    b = load_bars_cached(store, *args, sim_home)
    assert store.scans == reads and a.path == b.path
    md = algo_trade.load(store.inner, *args, kinds=("bar", "funding"))
    np.testing.assert_array_equal(b["market"]["ts"], md.ts)
    np.testing.assert_array_equal(b["market"]["fund_settle_rate"], md.columns["fund_settle_rate"])
