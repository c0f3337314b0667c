"""The collector into a real PostgreSQL server (started by the test suite): the same
guarantees as with the lake - every accepted record stored once, across disconnects and
a write whose acknowledgement was lost."""

from __future__ import annotations

import asyncio

import pytest

from algo_trade.collect.pipeline import Collector
from algo_trade.store.base import open_store
from algo_trade.testing.replay import Faults
from tests.collect.harness import (
    binance_frames,
    binance_server,
    config,
    drive,
    scan_all,
    sent_frames,
)
from tests.collect.refs import binance_reference_books
from tests.collect.test_pipeline import (
    FaultyStore,
    assert_books_match,
    assert_trades_equal,
    binance_trades_expected,
)

pytestmark = pytest.mark.integration
SYM = "BTC-USDT-PERP"
IV = 250_000_000


def test_collect_into_postgres_once_across_disconnects_and_a_lost_ack(tmp_path, pg_db):  # noqa: F811
    srv = binance_server(speed=8, faults=Faults(drop_every=150, max_drops=5))
    store = FaultyStore(open_store(pg_db))
    store.lose_next_ack = True  # the first write lands, its acknowledgement does not

    async def main():
        await srv.start()
        col = Collector(config(tmp_path, {"binance": srv}, book_interval_ns=IV), store)
        keys = {"btcusdt@depth", "btcusdt@trade", "btcusdt@markPrice"}
        summary = await drive(col, lambda: srv.done(keys) and srv.drops >= 5)
        await srv.stop()
        return summary

    try:
        summary = asyncio.run(main())
        assert srv.drops == 5 and summary["reconnects"] == 5
        assert summary["duplicates_skipped"] > 0 and summary["left_in_spool"] == 0
        sent = sent_frames(srv, "btcusdt@trade")
        assert len(sent) == 581
        assert_trades_equal(
            scan_all(store.inner, "trade", "binance", SYM), binance_trades_expected(sent)
        )
        funding = scan_all(store.inner, "funding", "binance", SYM)
        assert funding.num_rows == len(sent_frames(srv, "btcusdt@markPrice"))
        assert_books_match(
            scan_all(store.inner, "book", "binance", SYM),
            binance_reference_books(binance_frames(), 20, IV),
            20,
        )
    finally:
        store.inner.close()
