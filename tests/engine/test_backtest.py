"""backtest() end to end: against the slow reference, accounting identities, stats
definitions, real FTX bars, and bars-vs-book agreement."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import algo_trade
from tests.engine import reference
from tests.engine.test_kernels import bars_df, targets
from tests.realdata import realdata

DATA = Path(__file__).resolve().parent.parent / "data"


def ftx_bars(n: int | None = None) -> pd.DataFrame:
    """Real FTX BTC-PERP 1-minute bars (tests/data/README.md)."""
    with gzip.open(realdata("ftx_btc-perp_20211231-20220201_1m.csv.gz"), "rt") as fh:
        df = pd.read_csv(fh, nrows=n)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="ts")
    return df


def random_bars(rng: np.random.Generator, n: int) -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    wig = np.abs(rng.normal(0, 0.004, n))
    return bars_df(
        open_,
        close,
        high=np.maximum(open_, close) * (1 + wig),
        low=np.minimum(open_, close) * (1 - wig),
    )


# ----------------------------------------------------------------------------- vs reference
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    fill_at=st.sampled_from(["next", "close"]),
    fee=st.sampled_from([0.0, 2.0, 5.0, 30.0]),
    slip=st.sampled_from([0.0, 3.0]),
    leverage=st.sampled_from([1.0, 3.0, 15.0]),
    funding=st.booleans(),
)
def test_kernel_matches_slow_reference(seed, fill_at, fee, slip, leverage, funding):
    rng = np.random.default_rng(seed)
    n = 120
    df = random_bars(rng, n)
    tgt = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], n) * (rng.random(n) < 0.15)
    tgt = pd.Series(np.where(tgt == 0, np.nan, tgt)).ffill().fillna(0).to_numpy()
    rate = np.where(rng.random(n) < 0.1, rng.normal(0, 0.002, n), np.nan) if funding else None
    if funding:
        df["funding_rate"] = rate
    res = algo_trade.backtest(df, targets(tgt), fill_at=fill_at, fee_taker_bps=fee, slippage_bps=slip,
                              leverage=leverage, maintenance_margin=0.02, liquidation_fee_bps=10,
                              init_cash=10_000)  # fmt: skip
    ref = reference.bars(df["open"].to_numpy(), df["high"].to_numpy(), df["low"].to_numpy(),
                         df["close"].to_numpy(), tgt, fill_at=fill_at, fee_bps=fee, slippage_bps=slip,
                         leverage=leverage, mm=0.02, liq_fee_bps=10, init_cash=10_000, fund_rate=rate)  # fmt: skip
    np.testing.assert_allclose(res.equity["equity"], ref["equity"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.positions["qty"], ref["qty"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.equity["cash"], ref["cash"], rtol=1e-9, atol=1e-6)
    fills = res.fills
    assert len(fills) == len(ref["fills"])
    np.testing.assert_allclose(fills["price"], [f[2] for f in ref["fills"]], rtol=1e-12)
    np.testing.assert_allclose(fills["fee"], [f[3] for f in ref["fills"]], rtol=1e-9, atol=1e-9)
    assert list(fills["kind"]) == [f[4] for f in ref["fills"]]
    assert res.stats["liquidations"] == sum(f[4] == "liquidation" for f in ref["fills"])


# ----------------------------------------------------------------------------- identities
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), leverage=st.sampled_from([1.0, 5.0, 20.0]))
def test_accounting_identity_at_every_event(seed, leverage):
    rng = np.random.default_rng(seed)
    n = 200
    df = random_bars(rng, n)
    df["funding_rate"] = np.where(np.arange(n) % 30 == 29, rng.normal(0, 0.001, n), np.nan)
    tgt = np.repeat(rng.choice([-1.0, 0.0, 1.0, 0.3], n // 10), 10)
    res = algo_trade.backtest(df, targets(tgt), fill_at="next", fee_taker_bps=4, slippage_bps=1,
                              leverage=leverage, maintenance_margin=0.03, init_cash=5_000)  # fmt: skip
    eq, pos = res.equity, res.positions
    # equity = cash + position value at every event
    np.testing.assert_allclose(
        eq["equity"], eq["cash"] + pos["qty"] * pos["price"], rtol=1e-12, atol=1e-8
    )
    # equity = init + realized + unrealized - fees - funding paid
    np.testing.assert_allclose(
        eq["equity"],
        5_000 + pos["realized_pnl"] + pos["unrealized_pnl"] - pos["fees"] - pos["funding"],
        rtol=1e-9, atol=1e-6,
    )  # fmt: skip
    assert res.stats["fees"] == pytest.approx(res.fills["fee"].sum(), rel=1e-12)
    assert res.stats["funding_pnl"] == pytest.approx(
        -res.funding["payment"].sum(), rel=1e-12, abs=1e-12
    )


def test_trade_pnls_add_up_to_the_equity_change():
    rng = np.random.default_rng(5)
    df = random_bars(rng, 300)
    df["funding_rate"] = np.where(np.arange(300) % 50 == 0, 0.0005, np.nan)
    tgt = np.r_[np.repeat([1, 0, -1, 1, -1, 0], 50)].astype(float)  # ends flat
    res = algo_trade.backtest(df, targets(tgt), fill_at="close", fee_taker_bps=5)
    assert res.positions["qty"].iloc[-1] == 0.0
    assert res.trades["pnl"].sum() == pytest.approx(res.stats["final_equity"] - 10_000, rel=1e-9)
    assert res.trades["fees"].sum() == pytest.approx(res.stats["fees"], rel=1e-9)
    assert res.trades["funding"].sum() == pytest.approx(-res.stats["funding_pnl"], rel=1e-9)
    assert list(res.trades["side"]) == [1, -1, 1, -1]


def test_no_silent_rebalancing_unless_asked():
    rng = np.random.default_rng(2)
    df = random_bars(rng, 50)
    tgt = np.full(50, 0.5)  # half of equity: drifts as the price moves
    plain = algo_trade.backtest(df, targets(tgt), fill_at="close")
    assert plain.stats["orders"] == 1
    reb = algo_trade.backtest(df, targets(tgt), fill_at="close", rebalance=True, fee_taker_bps=0)
    assert reb.stats["orders"] == 50  # back to 50% of equity at every bar's close
    pos = reb.positions
    np.testing.assert_allclose(pos["qty"] * pos["price"], 0.5 * reb.equity["equity"], rtol=1e-9)


# ----------------------------------------------------------------------------- stats
def test_stats_definitions_by_pandas():
    df = ftx_bars(5_000)
    res = algo_trade.backtest(
        df, "sma_cross", params={"fast": 10, "slow": 50, "short": True}, fee_taker_bps=5
    )
    s, eq = res.stats, res.equity["equity"]
    rets = eq / eq.shift(1, fill_value=10_000.0) - 1
    n = len(eq)
    span = (df.index[-1] - df.index[0]).total_seconds() * n / (n - 1)
    per_year = n / (span / (365 * 86_400))
    assert s["sharpe"] == pytest.approx(
        rets.mean() / rets.std(ddof=1) * math.sqrt(per_year), rel=1e-9
    )
    down = math.sqrt((rets.clip(upper=0) ** 2).mean())
    assert s["sortino"] == pytest.approx(rets.mean() / down * math.sqrt(per_year), rel=1e-9)
    assert s["volatility"] == pytest.approx(rets.std(ddof=1) * math.sqrt(per_year), rel=1e-9)
    peak = np.maximum.accumulate(np.r_[10_000.0, eq.to_numpy()])[1:]
    assert s["max_drawdown"] == pytest.approx((1 - eq / peak).max(), rel=1e-12)
    assert s["max_drawdown"] == pytest.approx(res.equity["drawdown"].max(), rel=1e-12)
    years = span / (365 * 86_400)
    assert s["cagr"] == pytest.approx((eq.iloc[-1] / 10_000) ** (1 / years) - 1, rel=1e-9)
    assert s["total_return"] == pytest.approx(eq.iloc[-1] / 10_000 - 1, rel=1e-12)
    tr = res.trades
    assert s["trades"] == len(tr)
    assert s["win_rate"] == pytest.approx((tr["pnl"] > 0).mean())
    assert s["profit_factor"] == pytest.approx(
        tr.loc[tr.pnl > 0, "pnl"].sum() / -tr.loc[tr.pnl < 0, "pnl"].sum()
    )
    assert s["exposure"] == pytest.approx((res.positions["qty"] != 0).mean())
    assert s["turnover"] == pytest.approx(res.fills["notional"].sum() / 10_000)
    assert s["orders"] == len(res.fills)
    # longest drawdown: time from a peak to recovery (or the end)
    under = (eq < np.maximum.accumulate(eq.clip(lower=10_000))).to_numpy()
    assert s["max_drawdown_days"] > 0 and under.any()


def test_frames_are_indexed_by_utc_timestamps():
    df = ftx_bars(600)
    res = algo_trade.backtest(df, "sma_cross", params={"fast": 5, "slow": 20})
    for frame in (res.equity, res.positions, res.trades, res.fills, res.funding):
        assert isinstance(frame.index, pd.DatetimeIndex)
        assert str(frame.index.tz) == "UTC"
    assert (res.equity.index == df.index).all()
    assert set(res.stats.index) >= {"final_equity", "total_return", "sharpe", "sortino", "max_drawdown",
                                    "orders", "trades", "fees", "funding_pnl", "liquidations"}  # fmt: skip
    summary = res.summary()
    assert summary["stats"]["trades"] == len(res.trades) and summary["params"]["fast"] == 5


# ----------------------------------------------------------------------------- real data
def test_real_ftx_bars_match_a_hand_loop():
    """sma_cross on 45k real FTX bars, fill at close, 5 bp: same fills and equity as a plain loop."""
    df = ftx_bars()
    res = algo_trade.backtest(
        df, "sma_cross", params={"fast": 10, "slow": 50}, fee_taker_bps=5, fill_at="close"
    )
    c = df["close"].to_numpy()
    fast = pd.Series(c).rolling(10).mean().to_numpy()
    slow = pd.Series(c).rolling(50).mean().to_numpy()
    cash, qty, fills, fee = 10_000.0, 0.0, 0, 5e-4
    equity = np.empty(len(c))
    for i in range(len(c)):
        want = fast[i] > slow[i]
        if want and qty == 0:
            qty = cash / (c[i] * (1 + fee))
            cash -= qty * c[i] * (1 + fee)
            fills += 1
        elif not want and qty > 0:
            cash += qty * c[i] * (1 - fee)
            qty = 0.0
            fills += 1
        equity[i] = cash + qty * c[i]
    assert res.stats["orders"] == fills
    np.testing.assert_allclose(res.equity["equity"], equity, rtol=1e-9)


# ----------------------------------------------------------------------------- bars vs book
def test_bars_from_books_agree_with_book_mode_when_depth_is_infinite():
    rng = np.random.default_rng(11)
    n, depth = 400, 5
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    ts = 1_704_067_200_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    px = np.repeat(mid[:, None], depth, axis=1)  # zero spread: every level at the mid
    sz = np.full((n, depth), 1e12)  # depth no order can exhaust
    book = algo_trade.MarketData(ts, {"bid_px": px, "ask_px": px.copy(), "bid_sz": sz, "ask_sz": sz.copy(),
                                      "open": mid, "high": mid, "low": mid, "close": mid}, "book")  # fmt: skip
    bars = pd.DataFrame({"open": mid, "high": mid, "low": mid, "close": mid},
                        index=pd.to_datetime(ts, unit="ns", utc=True))  # fmt: skip
    params = {"fast": 5, "slow": 30, "short": True}
    r_book = algo_trade.backtest(book, "sma_cross", params=params, fee_taker_bps=5)
    r_bars = algo_trade.backtest(bars, "sma_cross", params=params, fee_taker_bps=5, fill_at="next")
    assert r_book.stats["orders"] == r_bars.stats["orders"] > 5
    np.testing.assert_allclose(r_book.fills["price"], r_bars.fills["price"], rtol=1e-12)
    np.testing.assert_allclose(r_book.equity["equity"], r_bars.equity["equity"], rtol=1e-9)
    assert r_book.stats["sharpe"] == pytest.approx(r_bars.stats["sharpe"], rel=1e-9)


def test_book_latency_delays_the_fill():
    n = 10
    ts = 1_704_067_200_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000  # 100 ms apart
    mid = 100.0 + np.arange(n)
    px = mid[:, None] * np.ones((1, 2))
    sz = np.full((n, 2), 1e9)
    md = algo_trade.MarketData(ts, {"bid_px": px, "ask_px": px.copy(), "bid_sz": sz, "ask_sz": sz.copy(),
                                    "close": mid}, "book")  # fmt: skip
    tgt = targets([1] + [1] * (n - 1))
    no_lat = algo_trade.backtest(md, tgt, fee_taker_bps=0)
    lat = algo_trade.backtest(md, tgt, fee_taker_bps=0, latency_ms=250)
    assert no_lat.fills.index[0] == pd.Timestamp(ts[1], tz="UTC")  # the next snapshot
    assert lat.fills.index[0] == pd.Timestamp(ts[3], tz="UTC")  # first at or after +250 ms
    assert lat.fills["price"].iloc[0] == 103.0


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_index_units_give_the_same_run(unit):
    """pandas 3 indexes default to microseconds: any unit gives the same numbers and times."""
    df = ftx_bars(3_000)
    other = df.copy()
    other.index = df.index.as_unit(unit)
    a = algo_trade.backtest(df.set_axis(df.index.as_unit("ns")), "sma_cross", fill_at="close")
    b = algo_trade.backtest(other, "sma_cross", fill_at="close")
    pd.testing.assert_series_equal(a.stats, b.stats)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.equity, b.equity)
    assert b.stats["max_drawdown_days"] > 0


# ----------------------------------------------------------------------------- real books
def tardis_books() -> algo_trade.MarketData:
    """Ten real Binance USDT-M BTCUSDT 25-level snapshots (Tardis sample; tests/data/README.md)."""
    df = pd.read_csv(realdata("tardis_binance-futures_book_snapshot_25_BTCUSDT.csv"))
    cols = {}
    for side, name in (("bids", "bid"), ("asks", "ask")):
        cols[f"{name}_px"] = np.ascontiguousarray(
            df[[f"{side}[{i}].price" for i in range(25)]].to_numpy(float)
        )
        cols[f"{name}_sz"] = np.ascontiguousarray(
            df[[f"{side}[{i}].amount" for i in range(25)]].to_numpy(float)
        )
    mid = (cols["bid_px"][:, 0] + cols["ask_px"][:, 0]) / 2
    cols.update(open=mid, high=mid, low=mid, close=mid)
    ts = df["timestamp"].to_numpy(np.int64) * 1_000  # µs -> ns
    return algo_trade.MarketData(ts, cols, "book", "binance", "BTC-USDT-PERP", ("book",))


@pytest.mark.parametrize(
    ("cash", "overflow"), [(100_000.0, "penalty"), (500_000.0, "penalty"), (500_000.0, "unfilled")]
)
def test_real_books_fills_walk_the_levels(cash, overflow):
    md = tardis_books()
    tgt = np.array([1, 1, 1, -1, -1, -1, 0, 0, 0, 0], dtype=float)
    res = algo_trade.backtest(md, targets(tgt), init_cash=cash, fee_taker_bps=4, book_overflow=overflow,
                              overflow_penalty_bps=10, maintenance_margin=0)  # fmt: skip
    fills = res.fills
    assert list(fills.index) == [pd.Timestamp(md.ts[i], tz="UTC") for i in (1, 4, 7)]
    qty, cash_now = 0.0, cash
    for (_, f), j, t in zip(fills.iterrows(), (1, 4, 7), (1.0, -1.0, 0.0), strict=True):
        bid, ask = md["bid_px"][j], md["ask_px"][j]
        mid = (bid[0] + ask[0]) / 2
        cost = 4e-4 + (ask[0] - bid[0]) / 2 / mid
        want = reference.size_notional(cash_now + qty * mid, qty * mid, t, cost) / mid - qty
        side = "ask" if want > 0 else "bid"
        levels = list(zip(md[f"{side}_px"][j], md[f"{side}_sz"][j], strict=True))
        depth = sum(s for _, s in levels)
        if abs(want) <= depth:
            got, vwap = reference.walk(levels, abs(want))
        elif overflow == "unfilled":
            got, vwap = reference.walk(levels, depth)
        else:  # the rest at the worst level moved 10 bp against us
            d, v = reference.walk(levels, depth)
            worst = levels[-1][0] * (1 + 1e-3 * np.sign(want))
            got, vwap = abs(want), (d * v + (abs(want) - d) * worst) / abs(want)
        assert f["qty"] == pytest.approx(got, rel=1e-9)
        assert f["price"] == pytest.approx(vwap, rel=1e-12)
        assert f["unfilled"] == pytest.approx(abs(want) - got, abs=1e-9)
        assert f["fee"] == pytest.approx(got * vwap * 4e-4, rel=1e-12)
        dq = np.sign(want) * got
        cash_now -= dq * vwap + got * vwap * 4e-4
        qty += dq
    assert res.equity["cash"].iloc[-1] == pytest.approx(cash_now, rel=1e-12)
    if cash == 500_000.0:
        assert fills["qty"].iloc[0] > md["ask_sz"][1].sum() or overflow == "unfilled"


def test_empty_book_side_records_a_missed_order():
    md = tardis_books()
    md.columns["ask_px"] = md["ask_px"].copy()
    md.columns["ask_px"][1] = np.nan  # nothing offered when the buy arrives
    res = algo_trade.backtest(md, targets([1.0] * 10), init_cash=10_000, maintenance_margin=0)
    miss = res.fills[res.fills["kind"] == "miss"]
    assert len(miss) == 1 and miss.index[0] == pd.Timestamp(md.ts[1], tz="UTC")
    assert miss["qty"].iloc[0] == 0 and miss["unfilled"].iloc[0] > 0 and miss["side"].iloc[0] == 1
    assert res.stats["orders"] == 0 and (res.positions["qty"] == 0).all()  # no silent retry


def test_stages_record_time_and_memory_per_stage():
    from algo_trade.profiling import Stages

    stages = Stages()
    res = algo_trade.backtest(ftx_bars(2_000), "sma_cross", stages=stages)
    assert [r.name for r in stages.records] == ["signals", "simulate", "metrics"]
    assert all(r.seconds >= 0 and r.peak_rss_mb > 0 for r in stages.records)
    assert set(res.timings) == {"signals", "simulate", "metrics"}


def test_report_html_is_written(tmp_path):
    res = algo_trade.backtest(ftx_bars(3_000), "sma_cross", params={"short": True}, fee_taker_bps=5)
    out = res.to_html(tmp_path / "r.html")
    text = out.read_text()
    assert out.stat().st_size > 10_000 and "sma_cross" in text
    assert "<script src=" not in text  # self-contained: plotly.js inlined, works offline
