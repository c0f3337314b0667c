"""Binance trade backfill: the plan from aggregated trades, checked against hand-computed
cases, and the Normalizer's holes (found from trade-id jumps, answered in order)."""

from __future__ import annotations

import orjson

from algo_trade.exchanges import binance
from algo_trade.exchanges.binance_backfill import Hole, parse_id, plan


def _hole() -> Hole:
    # Held: trades 99 and 100 at T=1000 (0.1 + 0.2), trade 106 at T=2000 (0.3).
    return Hole(
        "BTC-USDT-PERP",
        100,
        1000,
        [(99, 99, "0.1"), (100, 100, "0.2")],
        106,
        2000,
        [(106, 106, "0.3")],
    )


def _agg(a, f, l_, q, T, p="100.5", m=False):  # noqa: ANN001, ANN202
    return {"a": a, "p": p, "q": q, "f": f, "l": l_, "T": T, "m": m}


def test_plan_fills_whole_and_straddling_aggregates_exactly():
    aggs = [
        _agg(7, 99, 101, "0.6", 1000),  # 99, 100 held (0.3): 101 gets 0.6 - 0.3
        _agg(8, 102, 102, "0.5", 1500, m=True),  # one trade: the stream's own row
        _agg(9, 103, 104, "1.0", 1600),  # two fills, sizes unpublished: one range row
        # id 105 is in no aggregate: not a market trade, never on the stream
        _agg(10, 106, 107, "0.7", 2000),  # 106 held; 107 is after the hole
    ]
    rows, gap = plan(_hole(), aggs)
    assert gap is None
    assert rows == [
        (1000, 1, "100.5", "0.3", "101"),
        (1500, -1, "100.5", "0.5", "102"),
        (1600, 1, "100.5", "1.0", "103-104"),
    ]


def test_plan_straddling_the_upper_end_subtracts_the_live_fills():
    h = _hole()
    h.hi_tail = [(106, 106, "0.25"), (107, 107, "0.05")]
    aggs = [_agg(7, 99, 100, "0.3", 1000), _agg(8, 101, 107, "1.30", 2000)]
    rows, gap = plan(h, aggs)
    # 101..105 missed: 1.30 - (0.25 + 0.05) = 1.00, exact in decimal
    assert gap is None and rows == [(2000, 1, "100.5", "1.00", "101-105")]


def test_plan_records_what_it_could_not_fill():
    # The pages stopped after aggregate 8: ids 103..105 were not served.
    rows, gap = plan(_hole(), [_agg(7, 99, 101, "0.6", 1000), _agg(8, 102, 102, "0.5", 1500)])
    assert [r[4] for r in rows] == ["101", "102"]
    assert gap == (1500, 2000, "trade ids 103-105 not served")
    # A skipped aggregate id is a hole in what was served, not a non-market trade.
    rows, gap = plan(_hole(), [_agg(7, 99, 101, "0.6", 1000), _agg(9, 103, 105, "1", 1600)])
    assert [r[4] for r in rows] == ["101"] and gap[0] == 1000
    # Held fills that do not add up (the aggregate's other fills unknown): a gap.
    rows, gap = plan(_hole(), [_agg(7, 98, 101, "0.6", 1000), _agg(8, 102, 105, "1", 1500)])
    assert [r[4] for r in rows] == ["102-105"] and "held fills of ids 98-101 unknown" in gap[2]


def test_parse_id():
    assert parse_id("123") == (123, 123) and parse_id("120-125") == (120, 125)


def _trade(t: int, T: int, q: str = "0.010") -> str:
    d = {
        "e": "trade",
        "E": T,
        "T": T,
        "s": "BTCUSDT",
        "t": t,
        "p": "61800.30",
        "q": q,
        "X": "MARKET",
        "m": True,
    }
    return orjson.dumps({"stream": "btcusdt@trade", "data": d}).decode()


def test_normalizer_finds_holes_and_applies_answers():
    n = binance.Normalizer(["BTC-USDT-PERP"])
    for t, T in ((1, 10), (2, 10), (3, 11)):
        n.feed(0, _trade(t, T))
    n.feed(0, _trade(7, 20, "0.004"))  # 4..6 missed
    assert n.pending_backfills(0) == []  # trade 7's time may have more fills: wait
    n.feed(0, _trade(8, 20, "0.006"))
    n.feed(0, _trade(9, 21))
    (hole,) = n.pending_backfills(0)
    assert (hole.lo, hole.hi, hole.lo_T, hole.hi_T) == (3, 7, 11, 20)
    assert hole.hi_tail == [(7, 7, "0.004"), (8, 8, "0.006")]
    assert n.pending_backfills(0) == []  # asked once
    assert list(n.resume_state()["BTC-USDT-PERP"]["holes"][0].values())[:3] == [
        "BTC-USDT-PERP",
        3,
        11,
    ]
    answer = {
        "e": "aggTradesBackfill",
        "s": "BTCUSDT",
        "lo": 3,
        "hi": 7,
        "complete": True,
        "error": "",
        "aggs": [
            {"a": 50, "p": "61800.10", "q": "0.010", "f": 3, "l": 3, "T": 11, "m": True},
            {"a": 51, "p": "61800.20", "q": "0.030", "f": 4, "l": 5, "T": 15, "m": False},
            {"a": 52, "p": "61800.30", "q": "0.030", "f": 6, "l": 8, "T": 20, "m": True},
        ],
    }
    n.feed(0, orjson.dumps(answer))
    t = n.drain()["trade"].to_pydict()
    back = {
        tid: (ts, side, px, q)
        for tid, ts, side, px, q in zip(
            t["trade_id"], t["ts"], t["side"], t["price"], t["qty"], strict=True
        )
        if tid in ("4-5", "6")
    }
    assert back == {
        "4-5": (15_000_000, 1, 61800.2, 0.03),
        "6": (20_000_000, -1, 61800.3, 0.02),  # 0.030 - 0.004 - 0.006
    }
    assert n.backfilled == 2 and n.backfilled_ids == 3 and not n.holes["BTC-USDT-PERP"]
    assert n.drain_events() == []


def test_a_hole_never_answered_is_a_gap_at_stop_and_resumes_across_a_restart():
    n = binance.Normalizer(["BTC-USDT-PERP"])
    n.feed(0, _trade(1, 10))
    n.feed(0, _trade(5, 20))
    state = n.resume_state()
    again = binance.Normalizer(["BTC-USDT-PERP"])
    again.resume(orjson.loads(orjson.dumps(state)))  # through marks.json
    (hole,) = again.pending_backfills(0)
    assert (hole.lo, hole.hi) == (1, 5)
    # A restarted collector whose first trade jumps again: a second hole from the last.
    again.feed(0, _trade(9, 30))
    assert [(h.lo, h.hi) for h in again.holes["BTC-USDT-PERP"]] == [(1, 5), (5, 9)]
    evs = again.drain_events(close_open_at=1)
    assert [(e.stream, e.reason, e.start_ns, e.end_ns) for e in evs] == [
        ("trade", "trades not backfilled", 10_000_000, 20_000_000),
        ("trade", "trades not backfilled", 20_000_000, 30_000_000),
    ]


def test_resume_state_is_a_copy_the_consumer_cannot_change_later():
    """The spool thread writes the state after the consumer went on: it must be the
    state at the drain (a shared list made the marks claim trades not yet durable)."""
    n = binance.Normalizer(["BTC-USDT-PERP"])
    n.feed(0, _trade(1, 10))
    state = n.resume_state()
    n.feed(0, _trade(2, 10))
    n.feed(0, _trade(3, 11))
    assert state["BTC-USDT-PERP"]["last"] == [1, 10, [(1, 1, "0.010")]]


def test_rows_spooled_after_the_marks_move_the_resume_point():
    """A crash between a commit's segments and its marks: the spool holds trades the
    marks do not know; resuming from them, the backfill does not store them again."""
    n = binance.Normalizer(["BTC-USDT-PERP"])
    n.feed(0, _trade(1, 10))
    state = orjson.loads(orjson.dumps(n.resume_state()))  # the marks: up to trade 1
    n.feed(0, _trade(2, 10, "0.004"))
    n.feed(0, _trade(3, 12))
    spooled = n.drain()["trade"].slice(1)  # trades 2 and 3, durable in the spool
    again = binance.Normalizer(["BTC-USDT-PERP"])
    again.resume(state)
    again.resume_rows("trade", spooled)
    assert again.resume_state()["BTC-USDT-PERP"]["last"] == [3, 12, [(3, 3, "0.01")]]
    again.feed(0, _trade(4, 13))
    assert again.holes["BTC-USDT-PERP"] == []  # 2 and 3 are held: nothing missed
