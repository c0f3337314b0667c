"""The live collector: connections -> bounded queue -> Normalizer -> spool -> writer thread -> store.

Per exchange and stream one websocket task reads frames and puts ``(recv ns, frame)`` on
the exchange's bounded asyncio queue (``queue_size``); when the queue is full the task
waits, so TCP pushes back on the venue instead of memory growing. One consumer task per
exchange feeds the venue `Normalizer`, records raw frames, asks for REST snapshots
(Binance) or resubscriptions (Bybit), and flushes every ``flush_rows`` rows or
``flush_interval_s``: the drained tables are appended to the write-ahead `Spool`
(fsynced) and handed to the writer thread, which writes them to the store and deletes
the segment once the store has it. A store outage keeps segments in the spool (retried
with backoff); if the spool backlog passes ``max_spool_rows`` the consumers wait
(backpressure, shown in the status). Nothing is dropped.

Reconnects back off exponentially with jitter; a watchdog closes a connection that has
been silent for ``stale_s`` (a stall); every disconnect, stall and resync becomes a
data-quality event in ``<home>/events``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from algo_trade.collect.events import EventLog
from algo_trade.collect.rawlog import RawRecorder
from algo_trade.collect.spool import Spool
from algo_trade.errors import ConfigError, StoreError
from algo_trade.exchanges import EXCHANGES, binance, bybit, hyperliquid, normalizer_for
from algo_trade.exchanges.base import STREAMS

log = logging.getLogger("algo_trade.collect")

SPARSE_STREAMS = frozenset({"liquidation"})
MAX_INFLIGHT_FLUSHES = 8
SPARSE_HEARTBEAT_S = 30.0
# GIL switch interval while collecting (CPython's default is 5 ms). The event loop parses
# without pause; each time the writer or spool thread drops the GIL (an fsync, a Parquet
# encode, many small Arrow calls) it waited up to 5 ms to get it back, dozens of times a
# write: 6 ms of CPU took ~45 ms (p99 ~300 ms) and writes queued behind each other, the
# tail of the receipt-to-store lag. At 1 ms the same writes take ~25 ms, p99 ~100 ms.
SWITCH_INTERVAL_S = 0.001
# Memory the allocators hold free goes back to the OS this often. glibc raises its mmap
# threshold the first time a large buffer is freed, so later large buffers (Parquet and
# IPC writes, frame batches) come from its heaps, where freed holes stay resident: ~15 MB
# of RSS over the first minutes of a run. malloc_trim returns them (~1 ms a call).
TRIM_INTERVAL_S = 30.0


def _load_malloc_trim():  # noqa: ANN202 - a ctypes function or None
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Hand back to the OS what glibc malloc and Arrow's memory pool hold free."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


DEFAULT_URLS = {
    "binance": (binance.WS_URL, binance.REST_URL),
    "bybit": (bybit.WS_URL, bybit.REST_URL),
    "hyperliquid": (hyperliquid.WS_URL, hyperliquid.REST_URL),
}


@dataclass(frozen=True)
class CollectConfig:
    """Everything one collector run needs (the CLI builds it; env vars are read there)."""

    exchanges: tuple[str, ...]
    symbols: tuple[str, ...]
    streams: tuple[str, ...] = STREAMS
    home: Path = Path("algo-trade-data")
    depth: int = 20
    book_interval_ns: int = 1_000_000_000
    duration_s: float | None = None
    queue_size: int = 1000
    flush_rows: int = 5000
    flush_interval_s: float = 1.0
    urls: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_URLS))
    spool_dir: Path | None = None
    record_raw: Path | None = None
    metrics_port: int | None = None
    stale_s: float = 30.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    funding_poll_s: float = hyperliquid.FUNDING_POLL_S
    max_spool_rows: int = 20_000_000
    shutdown_timeout_s: float = 10.0
    fsync: bool = True
    trim_interval_s: float = TRIM_INTERVAL_S

    def validate(self) -> None:
        for ex in self.exchanges:
            if ex not in EXCHANGES:
                raise ConfigError(f"unknown exchange {ex!r}: choose from {', '.join(EXCHANGES)}")
        for st in self.streams:
            if st not in STREAMS:
                raise ConfigError(f"unknown stream {st!r}: choose from {', '.join(STREAMS)}")
        if "hyperliquid" in self.exchanges and "liquidation" in self.streams:
            raise ConfigError(hyperliquid.NO_LIQUIDATIONS)
        if self.queue_size < 1 or self.flush_rows < 1 or self.flush_interval_s <= 0:
            raise ConfigError("--queue-size, flush rows and flush interval must be positive")

    def streams_for(self, exchange: str) -> list[str]:
        return [s for s in self.streams if exchange != "hyperliquid" or s != "liquidation"]


# ---------------------------------------------------------------------------- writer
class Samples:
    """The newest `size` int64 samples in one pre-allocated array: 8 bytes a sample for
    the whole run (a deque of Python ints grew to ~36 bytes a sample, ~15 MB for the two
    lag windows once full, an hour or more into a run). One thread appends, others read."""

    def __init__(self, size: int) -> None:
        self._a = np.zeros(size, dtype=np.int64)
        self._n = 0

    def append(self, value: int) -> None:
        self._a[self._n % len(self._a)] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, len(self._a))

    def values(self) -> np.ndarray:
        """A copy of the samples held (oldest-first order is not kept)."""
        return self._a[: len(self)].copy()


LAG_SAMPLES = 200_000  # per lag figure: the newest batches (~1.5 h at full rate)


@dataclass
class _Item:
    path: Path
    kind: str
    exchange: str
    rows: int
    first_recv_ns: int
    table: pa.Table | None
    venue_ts_ns: int = 0  # newest exchange time in the batch (0: unknown)


class Writer(threading.Thread):
    """Writes spooled batches to the store in order, retrying until the store has them.

    Consecutive batches of one kind are written together (fewer, larger files), up to
    max_rows_per_write (at 500k one catch-up write could take seconds; 50k keeps each
    write short at the same throughput). Stats are plain attributes read by the status
    task (ints: no lock needed under the GIL).
    """

    KEEP_IN_MEMORY = 512  # batches held in RAM; older ones are re-read from the spool

    def __init__(self, store, spool: Spool, max_rows_per_write: int = 50_000) -> None:
        super().__init__(name="collect-writer", daemon=True)
        self.store = store
        self.spool = spool
        self.max_rows = max_rows_per_write
        self.backlog: collections.deque[_Item] = collections.deque()
        self.backlog_rows = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.written: dict[tuple[str, str], int] = {}
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.store_errors = 0
        self.store_down_since: float | None = None
        self.last_error = ""
        # ns from the oldest row's receipt to the store having it, one per spooled batch
        self.lags_ns = Samples(LAG_SAMPLES)
        # ns from the oldest row's receipt to its batch being fsynced in the spool
        self.spool_lags_ns = Samples(LAG_SAMPLES)
        # exchange -> ns from the exchange's event time to durable, newest batch
        self.venue_lag_ns: dict[str, int] = {}

    def put(self, item: _Item) -> None:
        with self.cond:
            if len(self.backlog) >= self.KEEP_IN_MEMORY:
                item.table = None
            self.backlog.append(item)
            self.backlog_rows += item.rows
            self.cond.notify()

    def load_spool(self) -> int:
        """Queue the segments a previous run left behind; returns their rows."""
        n = 0
        for path, kind in self.spool.pending():
            try:
                t = Spool.read(path)
            except (OSError, pa.ArrowInvalid) as exc:
                log.error("unreadable spool segment %s (%s); kept for inspection", path, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            ex = t.column("exchange").chunk(0).dictionary[0].as_py() if t.num_rows else "?"
            self.put(_Item(path, kind, ex, t.num_rows, time.time_ns(), t))
            n += t.num_rows
        return n

    def run(self) -> None:
        backoff = 0.2
        while True:
            with self.cond:
                while not self.backlog and not self.stopping:
                    self.cond.wait(0.5)
                if not self.backlog and self.stopping:
                    return
                # The oldest batch's kind, with every later batch of that kind: kinds
                # interleave in the backlog, and one store write per kind costs far less
                # than one per flush (each write is a file and an fsync).
                first = self.backlog[0]
                batch = []
                rows = 0
                for it in self.backlog:
                    if it.kind != first.kind:
                        continue
                    if batch and rows + it.rows > self.max_rows:
                        break
                    batch.append(it)
                    rows += it.rows
            try:
                tables = [it.table if it.table is not None else Spool.read(it.path) for it in batch]
                table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                res = self.store.write(first.kind, table)
            except Exception as exc:  # noqa: BLE001 - any store failure is retried, never fatal
                self.store_errors += 1
                if self.store_down_since is None:
                    self.store_down_since = time.monotonic()
                    log.warning("store write failed, keeping batches in the spool: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                if self.stopping and self._deadline_passed():
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self.store_down_since is not None:
                log.info("store is back after %.1f s", time.monotonic() - self.store_down_since)
            self.store_down_since = None
            backoff = 0.2
            now = time.time_ns()
            for it in batch:
                self.spool.ack(it.path)
                key = (it.exchange, it.kind)
                self.written[key] = self.written.get(key, 0) + it.rows
                self.lags_ns.append(now - it.first_recv_ns)
                if it.venue_ts_ns:
                    self.venue_lag_ns[it.exchange] = now - it.venue_ts_ns
            self.duplicates += res.duplicates
            for k, v in res.rejected.items():
                self.rejected[k] = self.rejected.get(k, 0) + v
                log.warning("store rejected %d %s rows: %s", v, first.kind, k)
            with self.cond:
                done = {id(it) for it in batch}
                self.backlog = collections.deque(it for it in self.backlog if id(it) not in done)
                self.backlog_rows -= rows
                self.cond.notify_all()

    _deadline = 0.0

    def _deadline_passed(self) -> bool:
        return time.monotonic() >= self._deadline

    def stop(self, timeout_s: float) -> int:
        """Finish what the store accepts within timeout_s; returns rows left in the spool."""
        self._deadline = time.monotonic() + timeout_s
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join(timeout_s + 1.0)
        return self.backlog_rows


# ---------------------------------------------------------------------------- per venue
class Venue:
    """One exchange: its connections, queue, Normalizer and counters."""

    def __init__(self, collector: Collector, exchange: str) -> None:
        cfg = collector.cfg
        self.c = collector
        self.exchange = exchange
        self.streams = cfg.streams_for(exchange)
        self.norm = normalizer_for(exchange, list(cfg.symbols), cfg.depth, cfg.book_interval_ns)
        self.queue: asyncio.Queue = asyncio.Queue(cfg.queue_size)
        self.ws_url, self.rest_url = cfg.urls[exchange]
        self.ws_url = self.ws_url.rstrip("/")
        self.rest_url = self.rest_url.rstrip("/")
        self.reconnects: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.connected: dict[str, bool] = dict.fromkeys(self.streams, False)
        self.last_msg: dict[str, float] = {}
        self.sockets: dict[str, object] = {}
        self.inflight: dict[str, float] = {}
        self.flush_due = False
        self.waiting_on_store = False
        self.stopping = False
        self.rec = RawRecorder(cfg.record_raw, exchange) if cfg.record_raw else None
        self.tasks: list[asyncio.Task] = []

    # -- connection specs: (stream, url, messages to send after connecting, ping message)
    def specs(self) -> list[tuple[str, str, list[bytes], bytes | None]]:
        syms = list(self.norm.symbols)
        out = []
        if self.exchange == "binance":
            for st in self.streams:
                out.append((st, self.ws_url + binance.ws_path(syms, [st]), [], None))
        elif self.exchange == "bybit":
            for st in self.streams:
                tops = bybit.topics(syms, [st])
                subs = [
                    orjson.dumps({"op": "subscribe", "args": tops[i : i + 10]})
                    for i in range(0, len(tops), 10)
                ]
                out.append((st, self.ws_url + bybit.WS_PATH, subs, bybit.PING))
        else:
            for st in self.streams:
                if st == "funding":
                    continue  # polled from the info endpoint
                subs = [
                    orjson.dumps({"method": "subscribe", "subscription": s})
                    for s in hyperliquid.subscriptions(syms, [st])
                ]
                out.append((st, self.ws_url + hyperliquid.WS_PATH, subs, b'{"method":"ping"}'))
        return out

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for st, url, subs, ping in self.specs():
            self.tasks.append(loop.create_task(self._connection(st, url, subs, ping)))
        if self.exchange == "hyperliquid" and "funding" in self.streams:
            self.tasks.append(loop.create_task(self._poll_funding()))
        self.consumer = loop.create_task(self._consume())
        self.consumer.add_done_callback(self.c._consumer_done)

    async def _connection(
        self, stream: str, url: str, subs: list[bytes], ping: bytes | None
    ) -> None:

        attempt = 0
        while not self.stopping:
            reason = ""
            was = False
            try:
                # aiohttp's websocket client: its frame reader is compiled, which matters
                # at tens of thousands of frames per second. Busy streams are watched by
                # the stale-stream watchdog, not by ping/pong: under backpressure a pong
                # waits behind unread frames and would be taken for a dead link. Sparse
                # streams (liquidations: silent for minutes) use protocol pings instead.
                heartbeat = SPARSE_HEARTBEAT_S if stream in SPARSE_STREAMS else None
                async with self.c.ws_http.ws_connect(
                    url, heartbeat=heartbeat, max_msg_size=0, compress=0, autoping=True
                ) as ws:
                    for s in subs:
                        await ws.send_str(s.decode())
                    self.connected[stream] = was = True
                    self.last_msg[stream] = time.monotonic()
                    attempt = 0
                    log.info("connected %s %s", self.exchange, stream)
                    reader = asyncio.get_running_loop().create_task(self._read(stream, ws))
                    pinger = (
                        asyncio.get_running_loop().create_task(self._ping(ws, ping))
                        if ping
                        else None
                    )
                    self.sockets[stream] = (ws, reader)
                    try:
                        await asyncio.wait({reader})
                    finally:
                        reader.cancel()
                        if pinger:
                            pinger.cancel()
                    if reader.cancelled():
                        reason = f"stalled: no message for {self.c.cfg.stale_s:.0f} s"
                    elif reader.exception() is not None:
                        exc = reader.exception()
                        reason = f"{type(exc).__name__}: {exc}"[:160]
                    else:
                        reason = f"closed by server ({ws.close_code})"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every network failure means: reconnect
                reason = f"{type(exc).__name__}: {exc}"[:160]
            finally:
                self.sockets.pop(stream, None)
                self.connected[stream] = False
            if self.stopping:
                return
            if was:
                self.reconnects[stream] += 1
                log.warning("disconnected %s %s: %s", self.exchange, stream, reason)
                await self.queue.put((-1, "disconnect", stream, reason))
            attempt += 1
            cap = min(
                self.c.cfg.backoff_max_s, self.c.cfg.backoff_min_s * 2 ** min(attempt - 1, 16)
            )
            await asyncio.sleep(cap * (0.5 + random.random() / 2))

    async def _read(self, stream: str, ws) -> None:  # noqa: ANN001 - aiohttp websocket
        """Frames -> (receive ns, raw) on the queue; a full queue makes this wait."""
        from aiohttp import WSMsgType

        q = self.queue
        last = self.last_msg
        text, binary, error = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.ERROR
        async for msg in ws:
            t = msg.type
            if t is text or t is binary:
                last[stream] = time.monotonic()
                item = (time.time_ns(), msg.data, None)
                try:
                    q.put_nowait(item)
                except asyncio.QueueFull:
                    await q.put(item)  # backpressure: TCP pushes back on the venue
            elif t is error:
                raise msg.data

    async def _ping(self, ws, msg: bytes) -> None:
        interval = bybit.PING_INTERVAL_S if self.exchange == "bybit" else 30.0
        while True:
            await asyncio.sleep(interval)
            await ws.send_str(msg.decode())

    async def _poll_funding(self) -> None:
        body = orjson.dumps({"type": "metaAndAssetCtxs"})
        while not self.stopping:
            try:
                async with self.c.http.post(
                    self.rest_url + hyperliquid.INFO_PATH,
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    data = await r.read()
                    if r.status == 200:
                        await self.queue.put((time.time_ns(), data, None))
                    else:
                        log.warning("hyperliquid info answered %s", r.status)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("hyperliquid funding poll failed: %s", exc)
            await asyncio.sleep(self.c.cfg.funding_poll_s)

    async def _snapshot(self, sym: str) -> None:
        url = self.rest_url + binance.depth_path(sym, 1000)
        try:
            async with self.c.http.get(url) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            # The body names no symbol: add it (as "s") so a raw recording stays attributable.
            vs = binance.to_venue(sym).encode()
            body = b'{"s":"' + vs + b'",' + body.lstrip()[1:]
            await self.queue.put((time.time_ns(), body, sym))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.warning("binance depth snapshot for %s failed: %s", sym, exc)
            self.inflight[sym] = time.monotonic() - 0.5  # retry after the 1 s spacing below

    def _after_batch(self) -> None:
        n = self.norm
        if self.exchange == "binance":
            now = time.monotonic()
            for sym in n.pending_snapshots():
                last = self.inflight.get(sym)
                if last is None or now - last > 1.0:
                    self.inflight[sym] = now
                    asyncio.get_running_loop().create_task(self._snapshot(sym))
        elif self.exchange == "bybit":
            syms = n.resubscribe()
            conn = self.sockets.get("book")
            ws = conn[0] if conn else None
            if syms and ws is not None:
                tops = bybit.topics(syms, ["book"])
                asyncio.get_running_loop().create_task(self._resubscribe(ws, tops))

    async def _resubscribe(self, ws, tops: list[str]) -> None:
        try:
            await ws.send_str(orjson.dumps({"op": "unsubscribe", "args": tops}).decode())
            await ws.send_str(orjson.dumps({"op": "subscribe", "args": tops}).decode())
        except Exception as exc:  # noqa: BLE001 - the reconnect subscribes again anyway
            log.warning("bybit resubscribe failed: %s", exc)

    async def _consume(self) -> None:
        q = self.queue
        n = self.norm
        rec = self.rec
        cfg = self.c.cfg
        while True:
            item = await q.get()
            items = [item]
            while len(items) < 2000:
                try:
                    items.append(q.get_nowait())
                except asyncio.QueueEmpty:
                    break
            stop = False
            for it in items:
                ts = it[0]
                if ts >= 0:
                    if rec is not None:
                        rec.write(ts, it[1])
                    n.feed(ts, it[1], it[2])
                    if it[2] is not None:
                        self.inflight.pop(it[2], None)
                elif it[1] == "disconnect":
                    n.on_disconnect(time.time_ns(), it[3], [it[2]])
                elif it[1] == "stop":
                    stop = True
            self._after_batch()
            if stop:
                await self.flush(final=True)
                return
            if self.flush_due or n.pending_rows() >= cfg.flush_rows:
                await self.flush()

    async def flush(self, final: bool = False) -> None:
        self.flush_due = False
        n = self.norm
        first = n.first_recv_ns or time.time_ns()
        venue_ts = n.max_venue_ts_ns
        tables = n.drain()
        events = n.drain_events(close_open_at=time.time_ns() if final else None)
        if self.rec is not None:
            await asyncio.to_thread(self.rec.flush)  # compression releases the GIL
        await self.c.sink(self, tables, events, first, venue_ts)


# ---------------------------------------------------------------------------- collector
class Collector:
    """Runs every venue until stopped (signal, duration or `stop()`)."""

    def __init__(self, cfg: CollectConfig, store) -> None:
        cfg.validate()
        self.cfg = cfg
        self.store = store
        self.spool = Spool(cfg.spool_dir or Path(cfg.home) / "spool", fsync=cfg.fsync)
        self.events = EventLog(Path(cfg.home))
        self.writer = Writer(store, self.spool)
        self.venues: list[Venue] = []
        self.started = time.monotonic()
        self.replayed_rows = 0
        self.left_in_spool = 0
        self._stop: asyncio.Event | None = None
        self.http = None
        self.ws_http = None
        self.failure: BaseException | None = None
        self._spool_exec = ThreadPoolExecutor(1, thread_name_prefix="collect-spool")
        self._inflight: collections.deque[asyncio.Future] = collections.deque()
        self.metrics = None
        self.memory_trims = 0

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def sink(
        self,
        venue: Venue,
        tables: dict[str, pa.Table],
        events: list,
        first_recv_ns: int,
        venue_ts_ns: int = 0,
    ) -> None:
        """Spool a flush (fsynced) and hand it to the writer, off the event loop.

        Appends run in order on one spool thread while the consumer goes on parsing;
        at most MAX_INFLIGHT_FLUSHES wait there (an fsync must not stall the sockets)."""
        if not tables and not events:
            return
        w = self.writer
        if w.backlog_rows > self.cfg.max_spool_rows:
            venue.waiting_on_store = True
            while w.backlog_rows > self.cfg.max_spool_rows and not self._stop.is_set():
                await asyncio.sleep(0.1)
            venue.waiting_on_store = False

        def spool_all() -> None:
            if events:
                self.events.append(events)
            for kind, t in tables.items():
                path = self.spool.append(kind, t)
                w.spool_lags_ns.append(time.time_ns() - first_recv_ns)
                w.put(_Item(path, kind, venue.exchange, t.num_rows, first_recv_ns, t, venue_ts_ns))

        inflight = self._inflight
        inflight.append(asyncio.get_running_loop().run_in_executor(self._spool_exec, spool_all))
        while inflight and inflight[0].done():
            inflight.popleft().result()  # a spool failure (disk full) is raised here
        while len(inflight) > MAX_INFLIGHT_FLUSHES:
            await inflight.popleft()

    async def drain_spooling(self) -> None:
        """Wait until every flush handed to the spool thread is on disk and queued."""
        while self._inflight:
            await self._inflight.popleft()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.flush_interval_s)
            for v in self.venues:
                v.flush_due = True
                if v.queue.empty():
                    try:
                        v.queue.put_nowait((-1, "tick", "", ""))
                    except asyncio.QueueFull:
                        pass

    async def _trim_memory(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.trim_interval_s)
            await asyncio.to_thread(release_free_memory)
            self.memory_trims += 1

    async def _watchdog(self) -> None:
        stale = self.cfg.stale_s
        while True:
            await asyncio.sleep(min(1.0, stale / 4))
            now = time.monotonic()
            for v in self.venues:
                for st, (_ws, reader) in list(v.sockets.items()):
                    if st in SPARSE_STREAMS:
                        continue  # silence is normal there; pings watch the link
                    if now - v.last_msg.get(st, now) > stale:
                        log.warning("%s %s silent for %.0f s: reconnecting", v.exchange, st, stale)
                        v.last_msg[st] = now
                        v.norm._events.append(_stall_event(v.exchange, st, time.time_ns(), stale))
                        reader.cancel()  # the connection loop sees a stall and reconnects

    async def run(self) -> dict:
        import aiohttp

        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass
        self.replayed_rows = self.writer.load_spool()
        if self.replayed_rows:
            log.info("replaying %d rows left in the spool by the last run", self.replayed_rows)
        # The store's one-time costs (the lake loads compiled kernels, ~0.5 s) are paid
        # before data arrives, not by the first batch: left to the first write they held
        # it (and the GIL) for 1.2 s, the p99 receipt-to-store lag of a 60-s run.
        warm_up = getattr(self.store, "warm_up", None)
        if warm_up is not None:
            await asyncio.to_thread(warm_up)
        self.writer.start()
        if self.cfg.metrics_port is not None:
            from algo_trade.collect.status import start_metrics

            self.metrics = start_metrics(self, self.cfg.metrics_port)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        # Websockets live for hours: no total timeout, only on connecting.
        self.ws_http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, connect=10)
        )
        # Everything loaded so far (modules, numba, pyarrow) lives for the whole run:
        # frozen, a full collection no longer walks it (gen-2 pauses, each a stall for
        # every task and the writer: 1.9 s a minute -> ~0.25 s). Unfrozen when the run ends.
        gc.collect()
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self.venues = [Venue(self, ex) for ex in self.cfg.exchanges]
            for v in self.venues:
                v.start()
            aux = [
                loop.create_task(self._ticker()),
                loop.create_task(self._watchdog()),
                loop.create_task(self._trim_memory()),
            ]
            try:
                await asyncio.wait_for(self._stop.wait(), self.cfg.duration_s)
            except TimeoutError:
                pass
            log.info("stopping: flushing queues and the spool")
            for t in aux:
                t.cancel()
            for v in self.venues:
                v.stopping = True
                for t in v.tasks:
                    t.cancel()
            await asyncio.gather(*(t for v in self.venues for t in v.tasks), return_exceptions=True)
            for v in self.venues:
                if not v.consumer.done():
                    await v.queue.put((-1, "stop", "", ""))
            await asyncio.gather(*(v.consumer for v in self.venues), return_exceptions=True)
            try:
                await self.drain_spooling()
            except Exception as exc:  # noqa: BLE001 - reported below, after the cleanup
                self.failure = self.failure or exc
        finally:
            await self.http.close()
            await self.ws_http.close()
            # Every flush handed to the spool thread lands before the writer's last round.
            await asyncio.to_thread(self._spool_exec.shutdown, True)
            self.left_in_spool = await asyncio.to_thread(
                self.writer.stop, self.cfg.shutdown_timeout_s
            )
            self.spool.close()
            if self.metrics is not None:
                self.metrics.shutdown()
            gc.unfreeze()
            sys.setswitchinterval(switch_interval)
        if self.failure is not None:
            raise StoreError(
                f"collection stopped: the write-ahead spool {self.spool.root} failed "
                f"({self.failure}); fix it (e.g. free disk space) and start again: what "
                "was spooled is replayed"
            ) from None
        return self.summary()

    def _consumer_done(self, task: asyncio.Task) -> None:
        """A consumer ended by an error (the spool failed): stop everything, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        self.failure = self.failure or task.exception()
        log.error("collection stopping: %s", task.exception())
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------ numbers
    def rows(self) -> list[dict]:
        """One status row per (exchange, stream)."""
        out = []
        kind_of = {
            "book": "book",
            "funding": "funding",
            "liquidation": "liquidation",
            "trade": "trade",
        }
        for v in self.venues:
            c = v.norm.counters
            for st in v.streams:
                out.append(
                    {
                        "exchange": v.exchange,
                        "stream": st,
                        "messages": c.by_stream.get(st, 0),
                        "rows_written": self.writer.written.get((v.exchange, kind_of[st]), 0),
                        "queue": v.queue.qsize(),
                        "connected": v.connected.get(st, st == "funding"),
                        "reconnects": v.reconnects.get(st, 0),
                        "resyncs": c.resyncs if st == "book" else 0,
                        "malformed": c.malformed,
                        "backpressure": v.waiting_on_store or v.queue.full(),
                        "exchange_lag_s": self.exchange_lag_s(v.exchange),
                    }
                )
        return out

    def exchange_lag_s(self, exchange: str) -> float | None:
        """Exchange event time -> durable in the store, for the newest batch written."""
        lag = self.writer.venue_lag_ns.get(exchange)
        return None if lag is None else round(lag / 1e9, 3)

    def lag_quantiles(self) -> dict[str, float | None]:
        """p50/p99/max lag from local receipt (the batch's oldest row) to durable in the
        store (``lag_*``), and to durable in the write-ahead spool (``spool_lag_*``)."""
        out: dict[str, float | None] = {}
        for prefix, samples in (
            ("lag", self.writer.lags_ns),
            ("spool_lag", self.writer.spool_lags_ns),
        ):
            lags = samples.values()
            if not len(lags):
                out.update(
                    {f"{prefix}_p50_s": None, f"{prefix}_p99_s": None, f"{prefix}_max_s": None}
                )
                continue
            q = np.quantile(lags, [0.5, 0.99]) / 1e9
            out[f"{prefix}_p50_s"] = float(q[0])
            out[f"{prefix}_p99_s"] = float(q[1])
            out[f"{prefix}_max_s"] = float(lags.max() / 1e9)
        return out

    def summary(self) -> dict:
        w = self.writer
        msgs = sum(v.norm.counters.messages for v in self.venues)
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "messages": msgs,
            "malformed": sum(v.norm.counters.malformed for v in self.venues),
            "resyncs": sum(v.norm.counters.resyncs for v in self.venues),
            "reconnects": sum(sum(v.reconnects.values()) for v in self.venues),
            "rows_written": sum(w.written.values()),
            "written": {f"{e}/{k}": n for (e, k), n in sorted(w.written.items())},
            "duplicates_skipped": w.duplicates,
            "rejected": dict(w.rejected),
            "store_errors": w.store_errors,
            "spooled_rows": w.backlog_rows,
            "replayed_from_spool": self.replayed_rows,
            "left_in_spool": self.left_in_spool,
            "dropped": 0,
            **self.lag_quantiles(),
            "streams": self.rows(),
        }


def _stall_event(exchange: str, stream: str, ts_ns: int, stale_s: float):
    from algo_trade.exchanges.base import Event

    return Event(
        exchange,
        "*",
        stream,
        ts_ns - int(stale_s * 1e9),
        ts_ns,
        "stall",
        f"no message for {stale_s:.0f} s",
    )


def run_collector(cfg: CollectConfig, store, status: bool = False) -> dict:
    """Run a collector until Ctrl-C, SIGTERM or cfg.duration_s; returns its summary."""

    async def main() -> dict:
        col = Collector(cfg, store)
        if status:
            from algo_trade.collect.status import live_status

            task = asyncio.get_running_loop().create_task(live_status(col))
            try:
                return await col.run()
            finally:
                task.cancel()
        return await col.run()

    return asyncio.run(main())
