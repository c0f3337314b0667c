"""Events engine: hand-computed cases for every rule (queue models, own FIFO, partial fills,
order types, latency races, fees, funding, liquidation), the equity identity at every
event, no look-ahead, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from algo_trade.engine import events as ev
from algo_trade.engine import orders as O
from algo_trade.errors import ConfigError
from tests.engine import events_script  # noqa: F401  (registers test_script)
from tests.engine.events_script import CANCEL, SUBMIT, script

MS = 1_000_000
BOOK0 = [
    (0, 1, 99.9, 2.0),
    (0, 1, 99.8, 1.0),
    (0, -1, 100.0, 1.0),
    (0, -1, 100.1, 1.0),
    (0, -1, 100.2, 5.0),
]
END = [(1000, 1, 90.0, 1.0)]  # a far level that keeps the clock running to 1 s
GTC_LIMIT = O.LIMIT * 10 + O.GTC
POST = O.LIMIT * 10 + O.POST_ONLY
IOC_LIMIT = O.LIMIT * 10 + O.IOC
FOK_LIMIT = O.LIMIT * 10 + O.FOK
MKT = O.MARKET * 10 + O.IOC
BASE = {"tick_size": 0.1, "fee_maker_bps": 0.0, "fee_taker_bps": 0.0, "record_every_ms": 0.0,
        "maintenance_margin": 0.0}  # fmt: skip


def _cols(rows, feed_ms=0.0):
    a = np.array(rows, dtype=float).reshape(-1, 4)
    ts = (a[:, 0] * MS).astype(np.int64)
    return {"ts": ts, "ts_local": ts + int(feed_ms * MS), "side": a[:, 1].astype(np.int8),
            "price": a[:, 2], "qty": a[:, 3]}  # fmt: skip


def run(depth=(), trades=(), rows=(), funding=None, feed_ms=0.0, **kw):
    cfg = {**BASE, **kw}
    src = ev.from_arrays(depth=_cols(list(BOOK0) + list(depth) + END, feed_ms),
                         trade=_cols(trades, feed_ms) if trades else None, funding=funding)  # fmt: skip
    return ev.run(src, "test_script", {"every_ms": 1.0}, user=script(list(rows)), **cfg)


def fills(res):
    f = res.fills
    f = f[f["kind"].isin(["maker", "taker"])]
    return [
        (k, round(q, 10), round(p, 10))
        for k, q, p in zip(f["kind"], f["qty"], f["px"], strict=True)
    ]


def order(res, i):
    return res.orders_array[i]


# ----------------------------------------------------------------------------- queue
def test_risk_averse_queue_advances_by_trades_and_fills_partially_across_trades():
    res = run(trades=[(10, -1, 99.9, 1.5), (20, -1, 99.9, 1.0), (30, -1, 99.9, 1.0)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)])  # fmt: skip
    # 2.0 ahead: the first trade leaves 0.5 ahead, the second fills 0.5, the third the rest
    assert fills(res) == [("maker", 0.5, 99.9), ("maker", 0.5, 99.9)]
    assert res.fills.index[0].value == 20 * MS and res.fills.index[1].value == 30 * MS
    assert order(res, 0)["status"] == O.FILLED


def test_risk_averse_level_decrease_caps_the_queue():
    res = run(depth=[(10, 1, 99.9, 1.2)], trades=[(20, -1, 99.9, 1.5)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)])  # fmt: skip
    assert fills(res) == [("maker", 0.3, 99.9)]  # 1.2 ahead after the decrease


def test_risk_averse_ignores_a_decrease_behind_us():
    # the level grows to 5 (3 behind us), then shrinks to 4: risk-averse keeps 2 ahead
    res = run(depth=[(5, 1, 99.9, 5.0), (10, 1, 99.9, 4.0)], trades=[(20, -1, 99.9, 2.5)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)])  # fmt: skip
    assert fills(res) == [("maker", 0.5, 99.9)]


@pytest.mark.parametrize("model", ["power", "log"])
def test_probabilistic_queue_models(model):
    res = run(depth=[(5, 1, 99.9, 5.0), (10, 1, 99.9, 4.0)], trades=[(20, -1, 99.9, 2.0)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)], queue_model=model, queue_power=2.0)  # fmt: skip
    front, back, chg = 2.0, 3.0, 1.0
    f = (lambda x: x**2) if model == "power" else (lambda x: math.log1p(x))
    p = f(back) / (f(back) + f(front))
    est = front - (1 - p) * chg + min(back - p * chg, 0.0)
    ((kind, qty, px),) = fills(res)
    assert kind == "maker" and px == 99.9
    assert qty == pytest.approx(2.0 - est, abs=1e-9)
    assert qty == pytest.approx(
        4 / 13 if model == "power" else math.log(3) / (math.log(4) + math.log(3))
    )


def test_probabilistic_model_does_not_count_a_trade_twice():
    # a trade of 0.5 moves the queue; the level's decrease that follows it (5 -> 4.5) is
    # that trade, not a cancel: the queue stays at 1.5
    res = run(depth=[(5, 1, 99.9, 5.0), (8, 1, 99.9, 4.5)],
              trades=[(7, -1, 99.9, 0.5), (20, -1, 99.9, 2.0)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)], queue_model="power")  # fmt: skip
    assert fills(res) == [("maker", 0.5, 99.9)]


def test_own_orders_at_one_price_share_one_fifo():
    res = run(trades=[(10, -1, 99.9, 2.8)],
              rows=[(1, SUBMIT, 1, 99.9, 0.5, GTC_LIMIT), (2, SUBMIT, 1, 99.9, 0.5, GTC_LIMIT)])  # fmt: skip
    # 2.0 market ahead, then our first order (0.5), then our second gets the last 0.3
    f = res.fills
    assert list(f["oid"]) == [1, 2]
    assert fills(res) == [("maker", 0.5, 99.9), ("maker", 0.3, 99.9)]


def test_partial_fills_off_fill_whole_orders():
    res = run(trades=[(10, -1, 99.9, 2.1)], rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)],
              partial_fills=False)  # fmt: skip
    assert fills(res) == [("maker", 1.0, 99.9)]


def test_a_trade_through_the_price_and_a_crossing_book_fill_whole():
    res = run(depth=[(20, -1, 99.8, 3.0)], trades=[(10, -1, 99.8, 0.1)],
              rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT), (1, SUBMIT, 1, 99.8, 1.0, GTC_LIMIT)])  # fmt: skip
    # the 99.8 trade went through our 99.9 bid; at 20 ms an ask at 99.8 crosses our 99.8 bid
    assert fills(res) == [("maker", 1.0, 99.9), ("maker", 1.0, 99.8)]


# ----------------------------------------------------------------------------- order types
def test_post_only_is_rejected_if_it_would_cross():
    res = run(rows=[(1, SUBMIT, 1, 100.0, 1.0, POST), (1, SUBMIT, 1, 99.9, 1.0, POST)])
    assert order(res, 0)["status"] == O.REJECTED and order(res, 0)["reason"] == O.R_POST_ONLY
    assert order(res, 1)["status"] == O.OPEN
    assert fills(res) == []


def test_ioc_fills_what_it_can_and_expires_the_rest():
    res = run(rows=[(1, SUBMIT, 1, 100.1, 3.0, IOC_LIMIT)])
    assert fills(res) == [("taker", 1.0, 100.0), ("taker", 1.0, 100.1)]
    o = order(res, 0)
    assert o["status"] == O.EXPIRED and o["lfilled"] == 2.0


def test_fok_fills_all_or_nothing():
    res = run(rows=[(1, SUBMIT, 1, 100.1, 3.0, FOK_LIMIT)])
    assert fills(res) == [] and order(res, 0)["status"] == O.EXPIRED
    res = run(rows=[(1, SUBMIT, 1, 100.1, 2.0, FOK_LIMIT)])
    assert fills(res) == [("taker", 1.0, 100.0), ("taker", 1.0, 100.1)]
    assert order(res, 0)["status"] == O.FILLED


def test_market_order_walks_the_book_and_takes_the_liquidity():
    res = run(rows=[(1, SUBMIT, 1, 0.0, 3.0, MKT), (2, SUBMIT, 1, 0.0, 4.0, MKT)])
    # the first walks 100.0, 100.1, 100.2; the second finds 4 left at 100.2
    assert fills(res) == [("taker", 1.0, 100.0), ("taker", 1.0, 100.1), ("taker", 1.0, 100.2),
                          ("taker", 4.0, 100.2)]  # fmt: skip


def test_crossing_gtc_takes_then_rests():
    res = run(trades=[(10, -1, 100.0, 0.5)], rows=[(1, SUBMIT, 1, 100.0, 1.5, GTC_LIMIT)])
    # takes 1.0 at 100.0, rests 0.5 at 100.0 with nothing ahead; a sell trade there fills it
    assert fills(res) == [("taker", 1.0, 100.0), ("maker", 0.5, 100.0)]


def test_reduce_only():
    res = run(rows=[(1, SUBMIT, -1, 0.0, 1.0, MKT, 1), (5, SUBMIT, 1, 0.0, 0.5, MKT),
                    (10, SUBMIT, -1, 0.0, 1.0, MKT, 1)])  # fmt: skip
    assert order(res, 0)["status"] == O.REJECTED and order(res, 0)["reason"] == O.R_REDUCE_ONLY
    # flat after: the reduce-only sell got 0.5 of its 1.0
    assert fills(res) == [("taker", 0.5, 100.0), ("taker", -0.5, 99.9)]
    assert res.stats["position"] == 0.0


# ----------------------------------------------------------------------------- latency
@pytest.mark.parametrize("cancel_ms, filled", [(10, False), (18, True)])
def test_cancel_racing_a_fill(cancel_ms, filled):
    # order sent at 1 ms reaches the exchange at 6 ms; a trade at 20 ms fills it; a cancel
    # sent at 10 ms arrives at 15 ms (in time), one sent at 18 ms arrives at 23 ms (late)
    res = run(trades=[(20, -1, 99.9, 3.0)], rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT), (cancel_ms, CANCEL, 0)],
              entry_latency_ms=5.0, response_latency_ms=5.0)  # fmt: skip
    o = order(res, 0)
    if filled:
        assert fills(res) == [("maker", 1.0, 99.9)] and o["status"] == O.FILLED
        assert res.user_array[2] == 1.0  # the strategy saw the position
    else:
        assert fills(res) == [] and o["status"] == O.CANCELED


def test_feed_latency_delays_what_the_strategy_sees():
    # the strategy sees the book 50 ms late: an order sent at 1 ms of local time is sent
    # before the book is known... and it still matches on the exchange's book
    res = run(rows=[(60, SUBMIT, 1, 0.0, 1.0, MKT)], feed_ms=50.0)
    assert fills(res) == [("taker", 1.0, 100.0)]
    assert res.fills.index[0].value == 60 * MS


def test_recorded_latency_series_and_rejection(tmp_path):
    f = tmp_path / "lat.csv"
    f.write_text("ts,entry_ms,response_ms\n0,1,1\n5000000,3,1\n10000000,-1,1\n20000000,2,2\n")
    res = run(rows=[(2, SUBMIT, 1, 0.0, 1.0, MKT), (12, SUBMIT, 1, 0.0, 1.0, MKT),
                    (30, SUBMIT, 1, 0.0, 1.0, MKT)], latency_file=str(f))  # fmt: skip
    # 2 ms: entry 1 + (3 - 1) * 2/5 = 1.8 ms -> reaches the exchange at 3.8 ms
    assert res.fills.index[0].value == int(3.8 * MS)
    assert order(res, 1)["reason"] == O.R_LATENCY  # next to a negative value
    assert order(res, 2)["reason"] == O.R_LATENCY  # after the series ends
    assert res.stats["rejected"] == 2


def test_latency_file_with_a_gap_is_refused(tmp_path):
    f = tmp_path / "lat.csv"
    f.write_text("ts,entry_ms,response_ms\n0,1,1\n120000000000,1,1\n")
    with pytest.raises(ConfigError, match="gap of 120 s"):
        run(latency_file=str(f))


# ----------------------------------------------------------------------------- money
def test_maker_rebate():
    res = run(trades=[(10, -1, 99.9, 2.5)], rows=[(1, SUBMIT, 1, 99.9, 0.5, GTC_LIMIT)],
              fee_maker_bps=-1.0)  # fmt: skip
    fee = -0.5 * 99.9 * 1e-4
    assert res.fills["fee"].iloc[0] == pytest.approx(fee)
    assert res.stats["fees"] == pytest.approx(fee)
    assert res.fills["cash"].iloc[0] == pytest.approx(10_000 - 49.95 - fee)


def test_funding_on_a_position_built_by_maker_fills():
    funding = {"ts": np.array([50 * MS, 60 * MS]), "rate": np.array([0.001, 0.0002]),
               "mark_px": np.array([100.0, 101.0]), "settled": np.array([True, False])}  # fmt: skip
    res = run(trades=[(10, -1, 99.9, 3.0)], rows=[(1, SUBMIT, 1, 99.9, 1.0, GTC_LIMIT)],
              funding=funding, fee_maker_bps=2.0)  # fmt: skip
    f = res.fills
    pay = f[f["kind"] == "funding"]
    assert len(pay) == 1  # the predicted row only moves the mark
    assert pay["fee"].iloc[0] == pytest.approx(1.0 * 100.0 * 0.001)
    fee = 99.9 * 2e-4
    assert res.stats["funding_pnl"] == pytest.approx(-0.1)
    assert pay["cash"].iloc[0] == pytest.approx(10_000 - 99.9 - fee - 0.1)


def test_liquidation_cancels_resting_orders():
    depth = [(0, -1, 100.0, 10.0), (50, -1, 94.0, 1.0), (51, 1, 93.0, 1.0)]
    res = run(depth=depth, rows=[(1, SUBMIT, 1, 0.0, 9.0, MKT), (5, SUBMIT, -1, 101.0, 1.0, POST)],
              init_cash=100.0, leverage=10.0, maintenance_margin=0.05, liquidation_fee_bps=20.0)  # fmt: skip
    p_liq = 800.0 / (9 * 0.95)
    liq = res.fills[res.fills["kind"] == "liquidation"]
    assert len(liq) == 1
    assert liq["qty"].iloc[0] == -9.0 and liq["px"].iloc[0] == pytest.approx(p_liq)
    assert liq["fee"].iloc[0] == pytest.approx(9 * p_liq * 20e-4)
    assert liq.index[0].value == 51 * MS  # the mid reached 93.5 there
    o = order(res, 1)
    assert o["status"] == O.CANCELED and o["reason"] == O.R_LIQUIDATED
    assert res.stats["liquidations"] == 1 and res.stats["position"] == 0.0
    assert res.fills["cash"].iloc[-1] == pytest.approx(-800 + 9 * p_liq - 9 * p_liq * 20e-4)


def test_margin_rejects_orders_beyond_leverage():
    res = run(rows=[(1, SUBMIT, 1, 0.0, 101.0, MKT)], init_cash=10_000.0, leverage=1.0,
              depth=[(0, -1, 100.2, 500.0)])  # fmt: skip
    assert order(res, 0)["reason"] == O.R_MARGIN and fills(res) == []


# ----------------------------------------------------------------------------- properties
def _random_source(seed, n=3000, t_end_ms=3000.0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(1, t_end_ms, n))
    mid = 100.0 + np.cumsum(rng.choice([-0.1, 0.0, 0.1], n))
    side = rng.choice([1, -1], n)
    lvl = rng.integers(0, 5, n)
    px = np.round(np.where(side == 1, mid - 0.05 - 0.1 * lvl, mid + 0.05 + 0.1 * lvl), 1)
    qty = np.round(rng.uniform(0, 3, n), 3)
    is_trade = rng.random(n) < 0.3
    tpx = np.round(np.where(side == 1, mid + 0.05, mid - 0.05), 1)
    depth = [
        (a, s, p, q) for a, s, p, q, tr in zip(t, side, px, qty, is_trade, strict=True) if not tr
    ]
    trades = [
        (a, s, p, max(q, 0.001))
        for a, s, p, q, tr in zip(t, side, tpx, qty, is_trade, strict=True)
        if tr
    ]
    book = [(0, 1, 99.9 - 0.1 * k, 2.0) for k in range(5)] + [
        (0, -1, 100.0 + 0.1 * k, 2.0) for k in range(5)
    ]
    return book + depth, trades


def _grid(depth, trades, **kw):
    src = ev.from_arrays(depth=_cols(depth, 2.0), trade=_cols(trades, 2.0))
    cfg = {**BASE, "fee_maker_bps": -0.5, "fee_taker_bps": 4.0, "entry_latency_ms": 3.0,
           "response_latency_ms": 3.0, "queue_model": "power", **kw}  # fmt: skip
    return ev.run(src, "grid_mm", {"levels": 2, "step_ticks": 1, "half_spread_ticks": 0, "qty": 0.2,
                                   "max_position": 1.0, "every_ms": 20.0}, **cfg)  # fmt: skip


def test_equity_identity_at_every_event():
    depth, trades = _random_source(1)
    res = _grid(depth, trades, price_window=0.5)
    r = res.records_array
    assert len(r) == len(depth) + len(trades)  # one record per exchange event
    assert res.stats["fills"] > 50
    held = r["pos"] != 0
    np.testing.assert_allclose(
        r["equity"], r["cash"] + np.where(held, r["pos"] * r["mid"], 0.0), rtol=0, atol=1e-9
    )
    ident = (
        10_000
        + r["realized"]
        + np.where(held, r["pos"] * (r["mid"] - r["avg"]), 0.0)
        - r["fees"]
        - r["funding"]
    )
    np.testing.assert_allclose(r["equity"], ident, rtol=0, atol=1e-7)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(0, 10_000), cut=hs.floats(200.0, 2500.0), seed2=hs.integers(0, 10_000))
def test_no_look_ahead(seed, cut, seed2):
    depth, trades = _random_source(seed)
    d2, t2 = _random_source(seed2)
    # events after `cut` replaced by other ones
    depth_b = [r for r in depth if r[0] <= cut] + [r for r in d2 if r[0] > cut]
    trades_b = [r for r in trades if r[0] <= cut] + [r for r in t2 if r[0] > cut]
    a = _grid(depth, trades)
    b = _grid(depth_b, trades_b)
    ta, tb = a.ledger_array, b.ledger_array
    ka, kb = ta[ta["ts"] <= cut * MS], tb[tb["ts"] <= cut * MS]
    assert len(ka) == len(kb)
    for name in ("ts", "qty", "px", "fee", "pos", "cash"):
        np.testing.assert_array_equal(ka[name], kb[name])
    ra, rb = a.records_array, b.records_array
    np.testing.assert_array_equal(
        ra[ra["ts"] <= cut * MS]["equity"], rb[rb["ts"] <= cut * MS]["equity"]
    )


# ----------------------------------------------------------------------------- bad input
def test_off_tick_price_stops_the_run_with_one_line():
    with pytest.raises(ConfigError, match=r"99.95 is not a multiple of the tick size 0.1") as exc:
        run(rows=[(1, SUBMIT, 1, 99.95, 1.0, GTC_LIMIT)])
    assert "\n" not in str(exc.value)


def test_unknown_order_type_stops_the_run():
    with pytest.raises(ConfigError, match="unknown order type"):
        run(rows=[(1, SUBMIT, 1, 99.9, 1.0, 37)])


def test_a_strategy_raising_inside_numba_is_one_line():
    with pytest.raises(ConfigError, match="raised ValueError: scripted failure") as exc:
        run(rows=[(3, 9)])
    assert "\n" not in str(exc.value)


def test_unknown_setting_and_queue_model():
    with pytest.raises(ConfigError, match="queue_model must be one of"):
        run(queue_model="optimistic")
    with pytest.raises(ConfigError, match="unknown setting 'fee'"):
        run(fee=1)
