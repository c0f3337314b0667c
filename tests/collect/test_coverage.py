"""Coverage from the data itself (expected cadence per stream) as well as from recorded
incidents: an hour holding 6 minutes of data is ~0.1 covered, whatever was recorded."""

from __future__ import annotations

import pytest

from algo_trade.collect.coverage import coverage
from algo_trade.collect.events import EventLog
from algo_trade.exchanges.base import Event
from algo_trade.store.lake import LakeStore
from tests.conftest import SEC, make_books, make_trades

H0 = 1_704_067_200 * SEC  # 2024-01-01 00:00 UTC
SYM = "BTC-USDT-PERP"


def _rows(store, home) -> dict:
    out = coverage(store, home, "sim", SYM, "2024-01-01", "2024-01-01 02:00")
    return {(r["hour"], r["stream"]): r for r in out}


def test_six_minutes_of_data_in_an_hour_is_a_tenth_covered(tmp_path):
    store = LakeStore(tmp_path)
    # Hour 0: a 1 s book and a trade every 2 s for minutes 10-16 only; nothing recorded
    # why (a crash before this change recorded nothing either). Hour 1: complete.
    store.write("book", make_books(360, start_ns=H0 + 600 * SEC))
    store.write("trade", make_trades(180, start_ns=H0 + 600 * SEC, step_ns=2 * SEC))
    store.write("book", make_books(3600, start_ns=H0 + 3600 * SEC, seed=1))
    store.write("trade", make_trades(1800, start_ns=H0 + 3600 * SEC, step_ns=2 * SEC, id0=10**6))
    rows = _rows(store, tmp_path)
    book0, trade0 = rows[(H0, "book")], rows[(H0, "trade")]
    assert book0["event_coverage"] == 1.0 and book0["gap_s"] == 0  # no incident recorded
    assert book0["data_coverage"] == pytest.approx(360 / 3600) == book0["coverage"]
    assert trade0["data_coverage"] == pytest.approx(6 / 60) == trade0["coverage"]
    h1 = H0 + 3600 * SEC
    assert rows[(h1, "book")]["coverage"] == 1.0 and rows[(h1, "trade")]["coverage"] == 1.0


def test_incidents_and_data_each_lower_coverage_the_smaller_wins(tmp_path):
    store = LakeStore(tmp_path)
    store.write("book", make_books(3600, start_ns=H0))  # a full hour of rows...
    EventLog(tmp_path).append(  # ...but 15 minutes recorded as a collector downtime
        [Event("sim", SYM, "book", H0 + 900 * SEC, H0 + 1800 * SEC, "collector down")]
    )
    store.write("trade", make_trades(1, start_ns=H0 + 3600 * SEC))  # hour 1: one trade
    rows = _rows(store, tmp_path)
    b = rows[(H0, "book")]
    assert b["data_coverage"] == 1.0 and b["event_coverage"] == pytest.approx(0.75)
    assert b["coverage"] == pytest.approx(0.75) and b["gaps"] == "collector down"
    t = rows[(H0 + 3600 * SEC, "trade")]
    assert t["data_coverage"] == pytest.approx(1 / 60, abs=1e-6) and t["event_coverage"] == 1.0
    # A window cut mid-hour expects only the slots inside it.
    half = coverage(store, tmp_path, "sim", SYM, "2024-01-01 00:30", "2024-01-01 01:00")
    (hb,) = [r for r in half if r["stream"] == "book"]
    assert hb["data_coverage"] == 1.0 and hb["event_coverage"] == 1.0
