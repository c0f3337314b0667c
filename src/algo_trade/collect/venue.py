"""One venue's part of a collector run: its connections, queue, Normalizer and counters."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

import orjson

from algo_trade.collect.rawlog import RawRecorder
from algo_trade.exchanges import binance, bybit, hyperliquid, normalizer_for

if TYPE_CHECKING:
    from algo_trade.collect.pipeline import Collector

log = logging.getLogger("algo_trade.collect")

SPARSE_STREAMS = frozenset({"liquidation"})
SPARSE_HEARTBEAT_S = 30.0


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
        self.resyncs_logged = 0
        self.frames_in = 0  # websocket frames read (tests wait until all sent ones are)
        self.stopping = False
        self.rec = RawRecorder(cfg.record_raw, exchange) if cfg.record_raw else None
        self.tasks: list[asyncio.Task] = []
        self.backfills: set[asyncio.Task] = set()
        self.restart_gaps = None  # downtime.RestartGaps from the last run's marks

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
            attempt += 1
            cap = min(
                self.c.cfg.backoff_max_s, self.c.cfg.backoff_min_s * 2 ** min(attempt - 1, 16)
            )
            delay = cap * (0.5 + random.random() / 2)
            if was:
                self.reconnects[stream] += 1
                log.warning(
                    "disconnected %s %s: %s; reconnecting in %.2f s",
                    self.exchange,
                    stream,
                    reason,
                    delay,
                )
                await self.queue.put((-1, "disconnect", stream, reason))
            else:  # each failed attempt is logged: silence here looked like a hang
                log.warning(
                    "connect %s %s failed (attempt %d): %s; retrying in %.2f s",
                    self.exchange,
                    stream,
                    attempt,
                    reason,
                    delay,
                )
            await asyncio.sleep(delay)

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
                self.frames_in += 1
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
        if n.counters.resyncs != self.resyncs_logged:
            self._log_resyncs()
        if n.backfills_trades and not self.stopping:
            for hole in n.pending_backfills(time.time_ns()):
                task = asyncio.get_running_loop().create_task(self._backfill(hole))
                self.backfills.add(task)
                task.add_done_callback(self.backfills.discard)
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
            if st == "book"
        ]
        log.warning(
            "resync %s book (%d new, %d so far): %s",
            self.exchange,
            new,
            n.counters.resyncs,
            "; ".join(why) or "rebuilt already",
        )

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
