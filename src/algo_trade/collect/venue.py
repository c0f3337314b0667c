"""One venue's part of a collector run: its connections, queue, Normalizer and counters.

Nothing here knows a venue: what to connect to, what to send, how to ping, which REST
calls repair a book or poll a feed all come from the venue's adapter
(`algo_trade.exchanges.adapter`); this module runs them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from algo_trade.collect.rawlog import RawRecorder
from algo_trade.exchanges import adapter_for
from algo_trade.exchanges.adapter import Connection, Poll, Request, feed_of
from algo_trade.exchanges.base import BOOK_KINDS

if TYPE_CHECKING:
    from algo_trade.collect.pipeline import Collector

log = logging.getLogger("algo_trade.collect")

SPARSE_STREAMS = frozenset({"liquidation"})
SPARSE_HEARTBEAT_S = 30.0
SNAPSHOT_SPACING_S = 1.0  # at most one REST book snapshot per second and symbol
CONSUME_BATCH = 2000  # queue items parsed per wake-up of the consumer


class Venue:
    """One exchange: its connections, queue, Normalizer and counters.

    Status figures are kept per requested stream (`reconnects`, `connected`); a stream
    read from another's feed (depth from the book feed) shares that feed's connections.
    """

    def __init__(self, collector: Collector, exchange: str) -> None:
        cfg = collector.cfg
        self.c = collector
        self.exchange = exchange
        self.adapter = adapter_for(exchange)
        self.settings = cfg.settings(exchange)
        self.streams = list(cfg.streams)
        self.feeds = self.adapter.feeds(self.streams)
        self.norm = self.adapter.normalizer(
            list(cfg.symbols), cfg.depth, cfg.book_interval_ns, self.streams
        )
        self.queue: asyncio.Queue = asyncio.Queue(cfg.queue_size)
        ws_url = self.settings.ws_url.rstrip("/")
        self.rest_url = self.settings.rest_url.rstrip("/")
        syms = list(self.norm.symbols)
        # connection key (the feed, numbered when a venue needs several) -> Connection
        self.conns: dict[str, Connection] = {}
        for conn in self.adapter.connections(syms, self.feeds, ws_url):
            key = conn.feed
            n = 1
            while key in self.conns:
                n += 1
                key = f"{conn.feed}#{n}"
            self.conns[key] = conn
        self.polls: list[Poll] = self.adapter.polls(syms, self.feeds, self.settings)
        self.polled = {p.feed for p in self.polls}
        self.reconnects: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.reconnects_total = 0  # per connection (a feed shared by two streams counts once)
        self.connected: dict[str, bool] = {s: feed_of(s) in self.polled for s in self.streams}
        self._up: dict[str, bool] = dict.fromkeys(self.conns, False)
        self.last_msg: dict[str, float] = {}  # connection key -> monotonic time of last frame
        self.sockets: dict[str, tuple] = {}  # connection key -> (websocket, reader task)
        self.inflight: dict[str, float] = {}  # symbol -> when its REST snapshot was asked
        self.flush_due = False
        self.waiting_on_store = False
        self.resyncs_logged = 0
        self.frames_in = 0  # websocket frames read (tests wait until all sent ones are)
        self.stopping = False
        self.rec = RawRecorder(cfg.record_raw, exchange) if cfg.record_raw else None
        self.tasks: list[asyncio.Task] = []
        self.backfills: set[asyncio.Task] = set()
        self.restart_gaps = None  # downtime.RestartGaps from the last run's marks
        self.consumer: asyncio.Task | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for key in self.conns:
            self.tasks.append(loop.create_task(self._connection(key)))
        for poll in self.polls:
            self.tasks.append(loop.create_task(self._poll(poll)))
        self.consumer = loop.create_task(self._consume())
        self.consumer.add_done_callback(self.c._consumer_done)

    def _set_up(self, key: str, up: bool) -> None:
        self._up[key] = up
        feed = self.conns[key].feed
        state = all(u for k, u in self._up.items() if self.conns[k].feed == feed)
        for s in self.streams:
            if feed_of(s) == feed:
                self.connected[s] = state

    async def _connection(self, key: str) -> None:
        conn = self.conns[key]
        cfg = self.c.cfg
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
                heartbeat = SPARSE_HEARTBEAT_S if conn.feed in SPARSE_STREAMS else None
                async with self.c.ws_http.ws_connect(
                    conn.url, heartbeat=heartbeat, max_msg_size=0, compress=0, autoping=True
                ) as ws:
                    for msg in conn.subscribe:
                        await ws.send_str(msg)
                    was = True
                    self._set_up(key, True)
                    self.last_msg[key] = time.monotonic()
                    attempt = 0
                    log.info("connected %s %s", self.exchange, key)
                    loop = asyncio.get_running_loop()
                    reader = loop.create_task(self._read(key, ws))
                    pinger = (
                        loop.create_task(self._ping(ws, conn.ping, conn.ping_interval_s))
                        if conn.ping
                        else None
                    )
                    self.sockets[key] = (ws, reader)
                    try:
                        await asyncio.wait({reader})
                    finally:
                        reader.cancel()
                        if pinger:
                            pinger.cancel()
                    if reader.cancelled():
                        reason = f"stalled: no message for {cfg.stale_s:.0f} s"
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
                self.sockets.pop(key, None)
                self._set_up(key, False)
            if self.stopping:
                return
            attempt += 1
            cap = min(cfg.backoff_max_s, cfg.backoff_min_s * 2 ** min(attempt - 1, 16))
            delay = cap * (0.5 + random.random() / 2)
            if was:
                self.reconnects_total += 1
                for s in self.streams:
                    if feed_of(s) == conn.feed:
                        self.reconnects[s] += 1
                log.warning(
                    "disconnected %s %s: %s; reconnecting in %.2f s",
                    self.exchange,
                    key,
                    reason,
                    delay,
                )
                await self.queue.put((-1, "disconnect", key, reason))
            else:  # each failed attempt is logged: silence here looked like a hang
                log.warning(
                    "connect %s %s failed (attempt %d): %s; retrying in %.2f s",
                    self.exchange,
                    key,
                    attempt,
                    reason,
                    delay,
                )
            await asyncio.sleep(delay)

    async def _read(self, key: str, ws) -> None:  # noqa: ANN001 - aiohttp websocket
        """Frames -> (receive ns, raw) on the queue; a full queue makes this wait."""
        from aiohttp import WSMsgType

        q = self.queue
        last = self.last_msg
        text, binary, error = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.ERROR
        async for msg in ws:
            t = msg.type
            if t is text or t is binary:
                last[key] = time.monotonic()
                self.frames_in += 1
                item = (time.time_ns(), msg.data, None)
                try:
                    q.put_nowait(item)
                except asyncio.QueueFull:
                    await q.put(item)  # backpressure: TCP pushes back on the venue
            elif t is error:
                raise msg.data

    async def _ping(self, ws, msg: str, interval_s: float) -> None:  # noqa: ANN001
        while True:
            await asyncio.sleep(interval_s)
            await ws.send_str(msg)

    async def _request(self, req: Request) -> bytes:
        """One REST call to the venue; raises on a non-200 answer."""
        headers = {"Content-Type": "application/json"} if req.body is not None else None
        async with self.c.http.request(
            req.method, self.rest_url + req.path, data=req.body, headers=headers
        ) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return body

    async def _poll(self, poll: Poll) -> None:
        while not self.stopping:
            try:
                body = await self._request(poll.request)
                await self.queue.put((time.time_ns(), body, None))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed poll is retried next time
                log.warning("%s %s poll failed: %s", self.exchange, poll.feed, exc)
            await asyncio.sleep(poll.interval_s)

    async def _snapshot(self, sym: str, req: Request) -> None:
        try:
            body = await self._request(req)
            msg = self.adapter.snapshot_message(sym, body)
            await self.queue.put((time.time_ns(), msg, sym))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - asked again after the spacing below
            log.warning("%s book snapshot for %s failed: %s", self.exchange, sym, exc)
            self.inflight[sym] = time.monotonic() - SNAPSHOT_SPACING_S / 2

    def _after_batch(self) -> None:
        """Repair books the Normalizer lost: REST snapshots, or resubscriptions."""
        n = self.norm
        if n.counters.resyncs != self.resyncs_logged:
            self._log_resyncs()
        if n.backfills_trades and not self.stopping:
            for hole in n.pending_backfills(time.time_ns()):
                task = asyncio.get_running_loop().create_task(self._backfill(hole))
                self.backfills.add(task)
                task.add_done_callback(self.backfills.discard)
        pending = n.pending_snapshots()
        if pending:
            now = time.monotonic()
            loop = asyncio.get_running_loop()
            for sym in pending:
                last = self.inflight.get(sym)
                req = self.adapter.snapshot(sym)
                if req is not None and (last is None or now - last > SNAPSHOT_SPACING_S):
                    self.inflight[sym] = now
                    loop.create_task(self._snapshot(sym, req))
        syms = n.resubscribe()
        if syms:
            for key, conn in self.conns.items():
                mine = [s for s in syms if not conn.symbols or s in conn.symbols]
                sock = self.sockets.get(key)
                if conn.feed == "book" and mine and sock is not None:
                    msgs = self.adapter.resubscribe(mine)
                    asyncio.get_running_loop().create_task(self._send(sock[0], msgs))

    async def _backfill(self, hole) -> None:  # noqa: ANN001 - the venue's hole record
        """Fetch trades missed across a disconnect or restart; the answer goes through
        the queue like a frame (so it is recorded raw and parsed in order)."""
        log.info(
            "backfilling %s %s trade ids %d-%d",
            self.exchange,
            hole.symbol,
            hole.lo + 1,
            hole.hi - 1,
        )
        body = await self.norm.fetch_backfill(self.c.http, self.rest_url, hole)
        await self.queue.put((time.time_ns(), body, None))

    def _log_resyncs(self) -> None:
        """Log each book resync as it happens (sequence gap or unbridgeable snapshot)."""
        n = self.norm
        new = n.counters.resyncs - self.resyncs_logged
        self.resyncs_logged = n.counters.resyncs
        why = [
            f"{sym} {ev.reason} {ev.detail}".strip()
            for (sym, st), ev in n._open.items()
            if st in BOOK_KINDS
        ]
        log.warning(
            "resync %s book (%d new, %d so far): %s",
            self.exchange,
            new,
            n.counters.resyncs,
            "; ".join(dict.fromkeys(why)) or "rebuilt already",
        )

    async def _send(self, ws, msgs: list[str]) -> None:  # noqa: ANN001 - aiohttp websocket
        try:
            for m in msgs:
                await ws.send_str(m)
        except Exception as exc:  # noqa: BLE001 - the reconnect subscribes again anyway
            log.warning("%s resubscribe failed: %s", self.exchange, exc)

    async def _consume(self) -> None:
        q = self.queue
        n = self.norm
        rec = self.rec
        cfg = self.c.cfg
        feed = n.feed
        inflight = self.inflight
        while True:
            item = await q.get()
            items = [item]
            while len(items) < CONSUME_BATCH:
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
                    feed(ts, it[1], it[2])
                    if it[2] is not None:
                        inflight.pop(it[2], None)
                elif it[1] == "disconnect":
                    conn = self.conns[it[2]]
                    n.on_disconnect(time.time_ns(), it[3], [conn.feed], list(conn.symbols) or None)
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
