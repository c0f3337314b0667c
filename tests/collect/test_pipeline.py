"""The collector end to end: real replay servers on 127.0.0.1 serving the real captures,
the real pipeline, a real lake; each test checks what was stored, row for row."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from rich.console import Console

from algo_trade.collect.coverage import coverage, gaps
from algo_trade.collect.events import read_events
from algo_trade.collect.pipeline import Collector
from algo_trade.collect.status import status_table
from algo_trade.errors import StoreError
from algo_trade.exchanges import binance
from algo_trade.store.lake import LakeStore
from algo_trade.testing.replay import Faults, load_capture
from tests.collect.harness import (
    BYBIT,
    HL,
    binance_frames,
    binance_server,
    bybit_server,
    config,
    drive,
    hl_server,
    scan_all,
    sent_frames,
)
from tests.collect.refs import (
    binance_reference_books,
    bybit_reference_books,
    hyperliquid_reference_books,
)

SYM = "BTC-USDT-PERP"
IV = 250_000_000  # book rows every 250 ms: more sampled times per second of replay
BIN_KEYS = {"btcusdt@depth", "btcusdt@trade", "btcusdt@markPrice"}


def _book_rows(table) -> dict[int, np.ndarray]:
    cols = [c for c in table.column_names if c.startswith(("bid_", "ask_"))]
    arr = np.column_stack([table.column(c).to_numpy() for c in cols])
    return dict(zip(table.column("ts").to_pylist(), arr, strict=True))


def assert_books_match(table, ref: dict, min_rows: int) -> None:
    """Every stored book row equals the independent replay at its time; none is extra."""
    got = _book_rows(table)
    assert len(got) >= min_rows, (len(got), min_rows)
    assert set(got) <= set(ref), sorted(set(got) - set(ref))[:5]
    for g, row in got.items():
        assert np.array_equal(row, np.asarray(ref[g], dtype=float), equal_nan=True), g


def binance_trades_expected(frames: list[str]) -> dict:
    """Trade columns straight from the JSON of the frames (no parser involved)."""
    ds = [json.loads(r)["data"] for r in frames]
    return {
        "ts": [d["T"] * 1_000_000 for d in ds],
        "side": [-1 if d["m"] else 1 for d in ds],
        "price": [float(d["p"]) for d in ds],
        "qty": [float(d["q"]) for d in ds],
        "trade_id": [str(d["t"]) for d in ds],
    }


def assert_trades_equal(table, expected: dict) -> None:
    got = table.sort_by("trade_id").to_pydict()
    order = np.argsort(np.array(expected["trade_id"]), kind="stable")
    for col, vals in expected.items():
        assert got[col] == [vals[i] for i in order], col
    assert len(set(got["trade_id"])) == len(got["trade_id"])  # no duplicates


class FaultyStore:
    """The real lake behind a switch: down (every write fails), slow, or losing the ack
    of one write that did land (the crash-between-write-and-delete case)."""

    def __init__(self, inner: LakeStore) -> None:
        self.inner = inner
        self.down = False
        self.delay_s = 0.0
        self.lose_next_ack = False
        self.failed = 0

    def write(self, kind, table):  # noqa: ANN001, ANN201
        if self.down:
            self.failed += 1
            raise StoreError("store unavailable (fault injection)")
        if self.delay_s:
            time.sleep(self.delay_s)
        res = self.inner.write(kind, table)
        if self.lose_next_ack:
            self.lose_next_ack = False
            raise StoreError("connection lost after the write (fault injection)")
        return res

    def __getattr__(self, name):  # noqa: ANN001, ANN204
        return getattr(self.inner, name)


def indexes(server, key: str) -> list[int]:
    """Positions (fault-injection indexes) of one subscription's frames on a server."""
    return [i for i, (_, k, _) in enumerate(server.frames) if k == key]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


# ---------------------------------------------------------------------------- binance
def test_binance_end_to_end_books_trades_funding_liquidations(tmp_path):
    async def main():
        srv = binance_server(speed=5, liquidations=6)
        await srv.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path,
            {"binance": srv},
            streams=("book", "funding", "liquidation", "trade"),
            book_interval_ns=IV,
            record_raw=tmp_path / "raw",
            metrics_port=_free_port(),  # 0 is refused (a fixed port is what users give)
        )
        col = Collector(cfg, store)
        scraped = []

        def done() -> bool:
            if col.metrics is not None and not scraped and col.writer.written:
                port = col.metrics.server.server_address[1]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
                    scraped.append(r.read().decode())
            return srv.done(BIN_KEYS | {"btcusdt@forceOrder"})

        summary = await drive(col, done)
        await srv.stop()
        return srv, store, summary, scraped

    switch_before = sys.getswitchinterval()
    srv, store, summary, scraped = run(main())
    frames = binance_frames(6)
    # Books: every stored row equals snapshot + diffs replayed directly from the capture.
    ref = binance_reference_books(frames, 20, IV)
    assert_books_match(scan_all(store, "book", "binance", SYM), ref, min_rows=60)
    # Trades: row for row what the server sent.
    sent_trades = sent_frames(srv, "btcusdt@trade")
    assert len(sent_trades) == 581
    assert_trades_equal(
        scan_all(store, "trade", "binance", SYM), binance_trades_expected(sent_trades)
    )
    # Funding: one predicted row per markPrice frame, values straight from the JSON.
    marks = [json.loads(r)["data"] for r in sent_frames(srv, "btcusdt@markPrice")]
    f = scan_all(store, "funding", "binance", SYM).to_pydict()
    predicted = [i for i, s in enumerate(f["settled"]) if not s]
    assert [f["ts"][i] for i in predicted] == [m["E"] * 1_000_000 for m in marks]
    assert [f["rate"][i] for i in predicted] == [float(m["r"]) for m in marks]
    assert [f["mark_px"][i] for i in predicted] == [float(m["p"]) for m in marks]
    assert [f["index_px"][i] for i in predicted] == [float(m["i"]) for m in marks]
    # Liquidations: the documented-format forceOrder frames, side and price as sent.
    orders = [json.loads(r)["data"]["o"] for r in sent_frames(srv, "btcusdt@forceOrder")]
    liq = scan_all(store, "liquidation", "binance", SYM).sort_by("ts").to_pydict()
    assert len(orders) == 6
    assert liq["side"] == [1 if o["S"] == "BUY" else -1 for o in orders]
    assert liq["price"] == [float(o["ap"]) for o in orders]
    assert liq["qty"] == [float(o["z"]) for o in orders]
    assert summary["malformed"] == 0 and summary["resyncs"] == 0
    assert "dropped" not in summary  # nothing is ever dropped: backpressure instead
    assert summary["left_in_spool"] == 0 and summary["spooled_rows"] == 0
    assert summary["lag_p99_s"] is not None and summary["lag_p99_s"] < 60
    # Second lag: receipt -> fsynced in the spool, per batch before its store write, so
    # never later than receipt -> store for the same batches.
    assert 0 < summary["spool_lag_p50_s"] <= summary["lag_p50_s"]
    assert summary["spool_lag_p99_s"] <= summary["lag_p99_s"]
    assert summary["spool_lag_max_s"] <= summary["lag_max_s"]
    # The run's process settings (GIL switch interval, frozen GC generation) are undone.
    assert sys.getswitchinterval() == switch_before
    assert gc.get_freeze_count() == 0
    # Prometheus shows the same counters as the status.
    text = scraped[0]
    assert 'algo_trade_collect_messages_total{exchange="binance",stream="trade"}' in text
    assert "algo_trade_collect_spooled_rows" in text
    assert "dropped" not in text  # was a constant 0 that proved nothing
    assert 'algo_trade_collect_exchange_lag_seconds{exchange="binance"}' in text
    assert 'algo_trade_collect_lag_seconds{quantile="p99"}' in text
    assert 'algo_trade_collect_spool_lag_seconds{quantile="p99"}' in text
    assert "process_resident_memory_bytes" in text  # memory over long runs
    # The capture is from 2023: exchange time -> durable is years, and says so.
    lag = {r["stream"]: r["exchange_lag_s"] for r in summary["streams"]}
    assert lag["trade"] > 3 * 365 * 86400
    # Raw record: '<recv ns> <raw>' gzip lines, re-parsed to the same trades.
    raw_files = list((tmp_path / "raw" / "binance").glob("*.gz"))
    assert len(raw_files) == 1
    n = binance.Normalizer([SYM])
    for ts, raw in load_capture(raw_files[0]):
        assert ts > 1_600_000_000 * 10**9
        n.feed(ts, raw)
    assert n.counters.malformed == 0
    again = n.drain()["trade"]
    assert_trades_equal(again, binance_trades_expected(sent_trades))


def test_sequence_gap_forces_resync_and_books_stay_correct(tmp_path):
    frames = binance_frames()
    srv = binance_server(speed=5)
    diffs = indexes(srv, "btcusdt@depth")
    srv.faults.skip = {diffs[400], diffs[800]}

    async def main():
        await srv.start()
        store = LakeStore(tmp_path)
        col = Collector(config(tmp_path, {"binance": srv}, book_interval_ns=IV), store)
        summary = await drive(col, lambda: srv.done(BIN_KEYS))
        await srv.stop()
        return store, summary

    store, summary = run(main())
    assert summary["resyncs"] == 2
    assert_books_match(
        scan_all(store, "book", "binance", SYM), binance_reference_books(frames, 20, IV), 40
    )
    evs = [e for e in read_events(tmp_path, 0, 2**62, "binance", SYM) if e.reason == "sequence gap"]
    assert len(evs) == 2 and all(e.end_ns is not None and e.end_ns >= e.start_ns for e in evs)
    # The hole shows in the coverage report and in what a backtest can ask for.
    holes = gaps(tmp_path, "binance", SYM, "2023-04-04", "2023-04-06", stream="book").to_pydict()
    assert holes["reason"].count("sequence gap") == 2
    cov = [
        r
        for r in coverage(store, tmp_path, "binance", SYM, "2023-04-04 23:00", "2023-04-05")
        if r["stream"] == "book"
    ]
    # (the replay server answers the snapshot at once, so the hole is short in venue time)
    assert len(cov) == 1 and cov[0]["gaps"] == "sequence gap"
    assert 0.99 < cov[0]["event_coverage"] <= 1
    books = scan_all(store, "book", "binance", SYM)
    assert cov[0]["rows"] == books.num_rows
    # ...but the capture holds ~100 s of this hour: the data says so (250 ms grid).
    slots = len(set(books.column("ts").to_pylist()))
    assert cov[0]["data_coverage"] == pytest.approx(slots / 14_400, abs=1e-6)
    assert cov[0]["coverage"] == cov[0]["data_coverage"] < 0.05


def test_twenty_disconnects_lose_and_duplicate_nothing(tmp_path):
    async def main():
        srv = binance_server(speed=10, faults=Faults(drop_every=40, max_drops=20))
        await srv.start()
        store = LakeStore(tmp_path)
        col = Collector(config(tmp_path, {"binance": srv}, book_interval_ns=IV), store)
        summary = await drive(col, lambda: srv.done(BIN_KEYS) and srv.drops >= 20)
        await srv.stop()
        return srv, store, summary

    srv, store, summary = run(main())
    assert srv.drops == 20 and summary["reconnects"] == 20
    sent = sent_frames(srv, "btcusdt@trade")
    assert len(sent) == 581  # the server resumes where each connection stopped
    assert_trades_equal(scan_all(store, "trade", "binance", SYM), binance_trades_expected(sent))
    assert scan_all(store, "funding", "binance", SYM).num_rows == len(
        sent_frames(srv, "btcusdt@markPrice")
    )
    assert_books_match(
        scan_all(store, "book", "binance", SYM),
        binance_reference_books(binance_frames(), 20, IV),
        20,
    )
    disconnects = [
        e
        for e in read_events(tmp_path, 0, 2**62, "binance")
        if e.reason.startswith(("closed", "Connection"))
    ]
    rec = {r["stream"]: r["reconnects"] for r in summary["streams"]}
    assert len(disconnects) >= rec["book"] + rec["funding"] > 0
    # Trade disconnects are no gap: nothing was missed (checked above, row for row), and
    # what a backfill cannot fetch would be recorded as "trades not backfilled".
    assert rec["trade"] > 0 and not [e for e in disconnects if e.stream == "trade"]


def test_malformed_messages_are_counted_skipped_and_the_stream_goes_on(tmp_path):
    srv = binance_server(speed=None)
    trade_idx = indexes(srv, "btcusdt@trade")
    bad = set(trade_idx[10:500:100])
    srv.faults.malformed = bad

    async def main():
        await srv.start()
        store = LakeStore(tmp_path)
        col = Collector(config(tmp_path, {"binance": srv}, streams=("trade",)), store)
        summary = await drive(col, lambda: srv.done({"btcusdt@trade"}))
        await srv.stop()
        return srv, store, summary

    srv, store, summary = run(main())
    assert summary["malformed"] == len(bad) == 5
    # The 5 trades whose frames were garbled are fetched back from aggTrades (an id
    # jump is a hole whatever caused it): every trade is stored, once, exactly.
    assert summary["backfilled_trades"] == 5 and summary["unfilled_trade_holes"] == 0
    every = [srv.frames[i][2] for i in trade_idx]
    assert_trades_equal(scan_all(store, "trade", "binance", SYM), binance_trades_expected(every))
    evs = [e for e in read_events(tmp_path, 0, 2**62, "binance") if e.reason == "malformed"]
    assert len(evs) == 5


def test_store_outage_then_everything_arrives_once(tmp_path):
    """The store is down while the whole replay arrives, then up; one write lands but
    its acknowledgement is lost (retried: the idempotent store keeps one copy)."""

    async def main():
        srv = binance_server(speed=None)
        await srv.start()
        store = FaultyStore(LakeStore(tmp_path))
        store.down = True
        col = Collector(config(tmp_path, {"binance": srv}, streams=("trade", "funding")), store)
        seen = {}

        def done() -> bool:
            w = col.writer
            if "down" not in seen and w.backlog_rows >= 581 + 25 and w.store_errors:
                seen["down"] = col.summary()
                seen["status"] = col.writer.store_down_since is not None
                store.lose_next_ack = True
                store.down = False
            return "down" in seen and col.writer.backlog_rows == 0 and not col.writer.backlog

        summary = await drive(col, done)
        await srv.stop()
        return srv, store, summary, seen

    srv, store, summary, seen = run(main())
    down = seen["down"]
    assert seen["status"] and down["rows_written"] == 0 and down["spooled_rows"] >= 581
    assert store.failed > 0 and summary["store_errors"] > store.failed
    sent = sent_frames(srv, "btcusdt@trade")
    assert_trades_equal(
        scan_all(store.inner, "trade", "binance", SYM), binance_trades_expected(sent)
    )
    assert summary["duplicates_skipped"] > 0  # the unacknowledged write, retried
    assert scan_all(store.inner, "funding", "binance", SYM).num_rows == 25
    assert not list((tmp_path / "spool").glob("*.arrow"))


def test_backpressure_shows_in_status_and_nothing_is_dropped(tmp_path):
    async def main():
        srv = binance_server(speed=None)
        await srv.start()
        store = FaultyStore(LakeStore(tmp_path))
        store.delay_s = 0.15
        cfg = config(
            tmp_path,
            {"binance": srv},
            streams=("trade",),
            queue_size=4,
            flush_rows=20,
            max_spool_rows=40,
        )
        col = Collector(cfg, store)
        states = set()
        shown = []

        def done() -> bool:
            for r in col.rows():
                states.add(r["backpressure"])
            if True in states and not shown:
                console = Console(record=True, width=200)
                console.print(status_table(col, {}))
                shown.append(console.export_text())
            # Under backpressure the sent frames wait in the socket: done when all are read.
            fed = col.venues[0].norm.counters.by_stream.get("trade", 0) if col.venues else 0
            return fed == 581 and col.writer.backlog_rows == 0

        summary = await drive(col, done, timeout_s=90)
        await srv.stop()
        return srv, store, summary, states, shown

    srv, store, summary, states, shown = run(main())
    assert True in states  # the status showed backpressure
    assert "backpressure" in shown[0] and "spooled rows" in shown[0]
    assert_trades_equal(
        scan_all(store.inner, "trade", "binance", SYM),
        binance_trades_expected(sent_frames(srv, "btcusdt@trade")),
    )


# ---------------------------------------------------------------------------- bybit, hyperliquid
def test_bybit_and_hyperliquid_concurrently(tmp_path):
    by_lines = load_capture(BYBIT)
    by = bybit_server(speed=4)
    by.faults.skip = {indexes(by, "orderbook.BTCUSDT")[100]}
    hl = hl_server(speed=4)

    async def main():
        await by.start()
        await hl.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path,
            {"bybit": by, "hyperliquid": hl},
            symbols=("BTC-USDT-PERP", "ETH-USDT-PERP"),
            streams=("book", "funding", "trade"),
            depth=10,
            book_interval_ns=IV,
            poll_s=0.5,
        )
        col = Collector(cfg, store)
        keys = {
            f"{t}.{s}"
            for t in ("orderbook", "publicTrade", "tickers")
            for s in ("BTCUSDT", "ETHUSDT")
        }
        summary = await drive(col, lambda: by.done(keys) and hl.done({"l2Book:BTC", "trades:BTC"}))
        await by.stop()
        await hl.stop()
        return by, hl, store, summary

    by, hl, store, summary = run(main())
    # Bybit: the skipped delta forced an unsubscribe/subscribe; the fresh snapshot rebuilt it.
    venues = {(r["exchange"], r["stream"]): r for r in summary["streams"]}
    assert venues[("bybit", "book")]["resyncs"] == 1
    for sym, vs, min_rows in (("BTC-USDT-PERP", "BTCUSDT", 60), ("ETH-USDT-PERP", "ETHUSDT", 80)):
        ref = bybit_reference_books(by_lines, vs, 10, IV)
        assert_books_match(scan_all(store, "book", "bybit", sym), ref, min_rows)
    trades = scan_all(store, "trade", "bybit", "BTC-USDT-PERP").to_pydict()
    sent = [t for r in sent_frames(by, "publicTrade.BTCUSDT") for t in json.loads(r)["data"]]
    assert sorted(trades["trade_id"]) == sorted(t["i"] for t in sent)
    f = scan_all(store, "funding", "bybit", "BTC-USDT-PERP").to_pydict()
    assert f["rate"][0] == 0.0001 and f["mark_px"][0] == 65117.44
    # Hyperliquid: full books, trades, funding polled from the info endpoint.
    hl_lines = load_capture(HL)
    assert_books_match(
        scan_all(store, "book", "hyperliquid", "BTC-USDC-PERP"),
        hyperliquid_reference_books(hl_lines, 10, IV),
        40,
    )
    n_trades = sum(len(json.loads(r)["data"]) for r in sent_frames(hl, "trades:BTC"))
    assert scan_all(store, "trade", "hyperliquid", "BTC-USDC-PERP").num_rows == n_trades > 0
    hf = scan_all(store, "funding", "hyperliquid", "ETH-USDC-PERP").to_pydict()
    assert len(hf["ts"]) >= 2 and set(hf["mark_px"]) == {
        float(json.loads(hl.rest["/info:metaAndAssetCtxs"])[1][1]["markPx"])
    }


def test_bybit_application_ping_is_answered(tmp_path, monkeypatch):
    from algo_trade.exchanges import bybit

    monkeypatch.setattr(bybit, "PING_INTERVAL_S", 0.1)
    pongs = []

    async def main():
        by = bybit_server(speed=1)
        await by.start()
        col = Collector(config(tmp_path, {"bybit": by}, streams=("trade",)), LakeStore(tmp_path))
        t0 = time.monotonic()
        await drive(col, lambda: time.monotonic() - t0 > 1.0, read_all=False)
        pongs.append(col.venues[0].norm.counters.by_stream.get("ignored", 0))
        await by.stop()

    run(main())
    assert pongs[0] >= 3  # subscribe reply + pongs to the pings


def test_stalled_stream_is_reconnected_by_the_watchdog(tmp_path):
    srv = binance_server(speed=None)
    srv.faults.stall_at = indexes(srv, "btcusdt@trade")[300]
    srv.faults.stall_s = 3.0

    async def main():
        await srv.start()
        store = LakeStore(tmp_path)
        col = Collector(config(tmp_path, {"binance": srv}, streams=("trade",), stale_s=0.8), store)
        summary = await drive(col, lambda: srv.done({"btcusdt@trade"}))
        await srv.stop()
        return srv, store, summary

    srv, store, summary = run(main())
    assert summary["reconnects"] >= 1
    assert_trades_equal(
        scan_all(store, "trade", "binance", SYM),
        binance_trades_expected(sent_frames(srv, "btcusdt@trade")),
    )
    stalls = [e for e in read_events(tmp_path, 0, 2**62, "binance") if e.reason == "stall"]
    assert stalls and stalls[0].stream == "trade"


def test_raw_record_lines_are_gzip_text(tmp_path):
    from algo_trade.collect.rawlog import RawRecorder

    rec = RawRecorder(tmp_path, "binance")
    rec.write(1_700_000_000_000_000_000, '{"a":1}')
    rec.flush()
    rec.close()
    rec = RawRecorder(tmp_path, "binance")  # a restart appends a new gzip member
    rec.write(1_700_000_000_000_000_001, b'{"b":2}')
    rec.write(1_700_086_400_000_000_000, '{"c":3}')  # next UTC day: next file
    rec.close()
    day1 = gzip.open(tmp_path / "binance" / "2023-11-14.gz", "rt").read().splitlines()
    assert day1 == ['1700000000000000000 {"a":1}', '1700000000000000001 {"b":2}']
    assert (
        gzip.open(tmp_path / "binance" / "2023-11-15.gz", "rt").read()
        == '1700086400000000000 {"c":3}\n'
    )
    # A crash (no flush, no close): the file still reads to its end, holding what was
    # flushed; only the lines since the last flush are missing.
    rec = RawRecorder(tmp_path, "binance")
    rec.write(1_700_000_000_000_000_002, '{"d":4}')
    rec.flush()
    rec.write(1_700_000_000_000_000_003, '{"e":5}')
    del rec
    day1 = gzip.open(tmp_path / "binance" / "2023-11-14.gz", "rt").read().splitlines()
    assert day1[-1] == '1700000000000000002 {"d":4}' and len(day1) == 3


@pytest.mark.parametrize("kind", ["trade"])
def test_spool_segments_survive_and_replay_in_order(tmp_path, kind):
    """A spool left behind (a crash) is written first at the next start, then removed."""
    from algo_trade.collect.spool import Spool
    from algo_trade.exchanges import normalizer_for

    n = normalizer_for("binance", [SYM])
    for _, raw in binance_frames()[:800]:
        n.feed(1, raw)
    table = n.drain()[kind]
    sp = Spool(tmp_path / "spool")
    half = table.num_rows // 2
    sp.append(kind, table.slice(0, half))
    sp.append(kind, table.slice(half))
    (tmp_path / "spool" / f".tmp-000000000003-{kind}.arrow").write_bytes(
        b"torn"
    )  # crash mid-append
    sp.close()

    async def main():
        srv = binance_server(speed=None)
        await srv.start()
        store = LakeStore(tmp_path)
        col = Collector(config(tmp_path, {"binance": srv}, streams=("funding",)), store)
        summary = await drive(col, lambda: srv.done({"btcusdt@markPrice"}))
        await srv.stop()
        return store, summary

    store, summary = run(main())
    assert summary["replayed_from_spool"] == table.num_rows
    assert (
        scan_all(store, kind, "binance", SYM).sort_by("trade_id").equals(table.sort_by("trade_id"))
    )
    # Only the lock, the run journal and the durable marks stay (no segment, no temp file).
    left = {p.name for p in (tmp_path / "spool").iterdir()}
    assert left == {".lock", "runs.jsonl", "marks.json"}, left


def test_refused_connections_retry_with_backoff_then_collect_everything(tmp_path):
    srv = binance_server(speed=None, faults=Faults(refuse_s=1.5))

    async def main():
        await srv.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path, {"binance": srv}, streams=("trade",), backoff_min_s=0.05, backoff_max_s=5.0
        )
        col = Collector(cfg, store)
        summary = await drive(col, lambda: srv.done({"btcusdt@trade"}))
        await srv.stop()
        return store, summary

    store, summary = run(main())
    # 0.05 s doubling with jitter: at most ~7 attempts in 1.5 s, not a busy loop.
    assert 1 <= srv.refused <= 8, srv.refused
    assert_trades_equal(
        scan_all(store, "trade", "binance", SYM),
        binance_trades_expected(sent_frames(srv, "btcusdt@trade")),
    )


def test_silent_liquidation_stream_is_not_taken_for_a_stall(tmp_path):
    """Liquidations can be silent for minutes: only busy streams have the watchdog."""
    srv = binance_server(speed=None)  # no forceOrder frames at all

    async def main():
        await srv.start()
        cfg = config(tmp_path, {"binance": srv}, streams=("trade", "liquidation"), stale_s=0.4)
        col = Collector(cfg, LakeStore(tmp_path))
        t0 = time.monotonic()
        summary = await drive(col, lambda: time.monotonic() - t0 > 2.0, read_all=False)
        await srv.stop()
        return summary

    summary = run(main())
    rec = {r["stream"]: r["reconnects"] for r in summary["streams"]}
    assert rec["liquidation"] == 0 and rec["trade"] >= 1  # the trade stream went quiet: a stall


def test_spool_failure_stops_the_collector_with_a_clear_error(tmp_path, monkeypatch):
    """A full disk (simulated: no real one can be filled safely here) must not leave a
    collector running that stores nothing: it stops, says why, keeps what it spooled."""
    from algo_trade.collect import spool as spool_mod

    real_append = spool_mod.Spool.append_group
    calls = []

    def append(self, items):  # noqa: ANN001, ANN202
        calls.append(items)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real_append(self, items)

    monkeypatch.setattr(spool_mod.Spool, "append_group", append)
    srv = binance_server(speed=5)

    async def main():
        await srv.start()
        col = Collector(config(tmp_path, {"binance": srv}, streams=("trade",)), LakeStore(tmp_path))
        try:
            with pytest.raises(StoreError, match="No space left on device") as exc:
                await drive(col, lambda: False, timeout_s=30)
        finally:
            await srv.stop()
        return str(exc.value)

    msg = run(main())
    assert "spool" in msg and "\n" not in msg
    assert (
        scan_all(LakeStore(tmp_path), "trade", "binance", SYM).num_rows > 0
    )  # the first two flushes


def test_lake_warm_up_loads_the_write_path_and_writes_nothing(tmp_path):
    """The collector warms the store before data arrives (the first lake write used to
    load the compiled codec, ~1 s under load, the p99 lag tail). A fresh interpreter:
    nothing compiled or loaded before warm_up."""
    code = (
        "import os, sys\n"
        "from algo_trade.store import codec\n"
        "from algo_trade.store.lake import LakeStore\n"
        "assert not codec.encode_nb.signatures and not codec.decode_nb.signatures\n"
        "LakeStore(sys.argv[1]).warm_up()\n"
        "print(len(codec.encode_nb.signatures), len(codec.decode_nb.signatures))\n"
        "print(sorted(os.path.relpath(os.path.join(d, f), sys.argv[1])"
        " for d, _, fs in os.walk(sys.argv[1]) for f in fs))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "1 1"
    assert out[1] == "[]"
