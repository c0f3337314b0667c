"""Replay servers: a venue's websocket + REST endpoints on 127.0.0.1, serving real captures.

Used by the collector tests and the benchmark. One `ReplayServer` per exchange serves the
recorded frames (``(recv ns, raw)`` pairs, e.g. from `load_capture`) to whoever
subscribes, at recorded speed (``speed=1``), faster, or as fast as possible
(``speed=None``), with fault injection (`Faults`): close connections mid-stream, skip
frames (sequence gaps), truncate frames (malformed JSON), stall, refuse connections.

Routes per venue:

- binance: ws ``/stream?streams=a/b`` (combined frames, filtered by stream name with the
  speed suffix ignored: ``btcusdt@depth@100ms`` gets the captured ``btcusdt@depth@0ms``);
  REST ``/fapi/v1/exchangeInfo`` and ``/fapi/v1/depth``, whose snapshot is the captured
  REST snapshot moved forward by every diff the server has passed (sent or skipped) -
  what the venue's book is at that moment; ``/fapi/v1/aggTrades`` (``fromId`` or
  ``startTime``/``endTime``, ``limit``) serves the captured ``@trade`` frames the server
  has passed, aggregated as the venue does (consecutive fills at one time, price and
  side: one aggregate with first/last trade ids and the summed qty).
- bybit: ws ``/v5/public/linear`` (``op`` subscribe/unsubscribe/ping); a subscribe to an
  order book mid-stream is answered with a fresh snapshot built the same way.
- hyperliquid: ws ``/ws`` (``method`` subscribe/ping), REST ``POST /info`` (meta,
  metaAndAssetCtxs).

Each subscribed stream continues where the previous connection stopped, like a venue
that kept publishing nothing while the client was away: lost frames are the client's.
With ``live=True`` (and a ``speed``) the venue's clock runs from the first connection
instead: a client (re)connecting gets the frames from now on, and what was published
while nobody listened is passed (gone, as on the real venue).
"""

from __future__ import annotations

import asyncio
import bisect
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from aiohttp import WSMsgType, web


@dataclass
class Faults:
    drop_every: int | None = None  # close each connection after this many frames
    max_drops: int = 1_000_000
    skip: set[int] = field(default_factory=set)  # frame indexes never sent (a sequence gap)
    malformed: set[int] = field(default_factory=set)  # frame indexes sent truncated
    stall_at: int | None = None  # frame index before which the server goes silent
    stall_s: float = 0.0
    refuse_s: float = 0.0  # refuse connections for this long after start


def _binance_key(stream: str) -> str:
    # trade and aggTrade subscriptions get the capture's trade frames, whichever it holds
    # (clients differ in which one they ask for: the benchmark serves both the same input)
    return "@".join(stream.split("@")[:2]).replace("@aggTrade", "@trade")


def frame_key(exchange: str, raw: str) -> str | None:
    """The subscription a frame belongs to (None: not a streamed frame)."""
    obj = orjson.loads(raw)
    if exchange == "binance":
        return _binance_key(obj["stream"]) if isinstance(obj, dict) and "stream" in obj else None
    if exchange == "bybit":
        topic = obj.get("topic") if isinstance(obj, dict) else None
        if not topic:
            return None
        head, _, sym = topic.rpartition(".")
        return f"{head.split('.')[0]}.{sym}"
    if isinstance(obj, dict) and obj.get("channel") in ("l2Book", "trades"):
        d = obj["data"]
        coin = d["coin"] if isinstance(d, dict) else d[0]["coin"]
        return f"{obj['channel']}:{coin}"
    return None


def _sub_key(exchange: str, name: str | dict) -> str:
    if exchange == "binance":
        return _binance_key(name)  # type: ignore[arg-type]
    if exchange == "bybit":
        head, _, sym = str(name).rpartition(".")
        return f"{head.split('.')[0]}.{sym}"
    return f"{name['type']}:{name['coin']}"  # type: ignore[index]


class ReplayServer:
    """Serve `frames` for `exchange` on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        exchange: str,
        frames: list[tuple[int, str]],
        rest: dict[str, bytes] | None = None,
        speed: float | None = None,
        faults: Faults | None = None,
        loops: int = 1,
        shift_loops: bool = False,
        live: bool = False,
    ) -> None:
        self.exchange = exchange
        self.live = live and speed is not None
        self._aggs: list[dict] | None = None
        self.clock0: float | None = None  # live mode: when the first client connected
        self.agg_requests = 0
        self.rest = dict(rest or {})
        self.speed = speed
        self.faults = faults or Faults()
        self.loops = loops
        self.frames: list[tuple[int, str, str]] = []  # (ts, key, raw)
        self.snapshots: dict[str, dict] = {}  # binance: symbol -> captured REST snapshot
        for ts, raw in frames:
            key = frame_key(exchange, raw)
            if key is not None:
                self.frames.append((ts, key, raw))
            elif exchange == "binance" and '"lastUpdateId"' in raw:
                snap = orjson.loads(raw)
                sym = snap.get("s") or next(k.split("@")[0].upper() for _, k, _ in self.frames)
                self.snapshots[sym.upper()] = snap
        self.n = len(self.frames)
        self._span_ns = (self.frames[-1][0] - self.frames[0][0] + 1) if self.frames else 0
        self._by_key: dict[str, list[int]] = {}
        for i, (_, key, _) in enumerate(self.frames):
            self._by_key.setdefault(key, []).append(i)
        self.shift = _LoopShift(self.frames) if shift_loops and exchange == "binance" else None
        self.cursor: dict[str, int] = {}  # key -> next global index (over all loops)
        self.sent = 0
        self.frames_out = 0  # every websocket text frame sent (data, acks, pongs, snapshots)
        self.last_conn_sent: dict[str, int] = {}  # key -> frames sent on its newest connection
        self._gen: dict[str, int] = {}  # key -> number of its newest connection
        self.drops = 0
        self.connections = 0
        self.refused = 0
        self.started = 0.0
        self.refuse_until = 0.0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/_replay/stats", self._stats)
        if self.exchange == "binance":
            app.router.add_get("/stream", self._ws_binance)
            # Binance's newer per-kind routes (used by cryptofeed 3): same streams
            app.router.add_get("/public/stream", self._ws_binance)
            app.router.add_get("/market/stream", self._ws_binance)
            app.router.add_get("/fapi/v1/depth", self._depth)
            app.router.add_get("/fapi/v1/exchangeInfo", self._rest_get)
            app.router.add_get("/fapi/v1/aggTrades", self._agg_trades)
        elif self.exchange == "bybit":
            app.router.add_get("/v5/public/linear", self._ws_sub)
            app.router.add_get("/v5/market/instruments-info", self._rest_get)
        else:
            app.router.add_get("/ws", self._ws_sub)
            app.router.add_post("/info", self._info)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.started = time.monotonic()
        self.refuse_until = self.started + self.faults.refuse_s
        return self.port

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse_for(self, seconds: float) -> None:
        self.refuse_until = time.monotonic() + seconds

    def done(self, keys: set[str] | None = None) -> bool:
        """Every frame (of `keys`) has been passed."""
        total = self.n * self.loops
        ks = keys or {k for _, k, _ in self.frames}
        return all(self.cursor.get(k, 0) >= self._last_index(k) + 1 for k in ks) if total else True

    def _last_index(self, key: str) -> int:
        last = max((i for i, (_, k, _) in enumerate(self.frames) if k == key), default=-1)
        return (self.loops - 1) * self.n + last

    # ------------------------------------------------------------ websocket
    async def _refuse(self, request: web.Request) -> web.Response | None:
        if time.monotonic() < self.refuse_until:
            self.refused += 1
            return web.Response(status=503, text="refused (fault injection)")
        return None

    async def _ws_binance(self, request: web.Request) -> web.StreamResponse:
        refused = await self._refuse(request)
        if refused is not None:
            return refused
        keys = {_sub_key("binance", s) for s in request.query.get("streams", "").split("/") if s}
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.add(ws)
        reader = asyncio.get_running_loop().create_task(self._drain_client(ws))
        try:
            await self._pump(ws, keys, request.transport)
        finally:
            reader.cancel()
            self._sockets.discard(ws)
        return ws

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        await ws.send_str(text)
        self.frames_out += 1

    async def _drain_client(self, ws: web.WebSocketResponse) -> None:
        async for _ in ws:
            pass

    async def _ws_sub(self, request: web.Request) -> web.StreamResponse:
        refused = await self._refuse(request)
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.add(ws)
        keys: set[str] = set()
        pump: asyncio.Task | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = orjson.loads(msg.data)
                if self.exchange == "bybit":
                    op = req.get("op")
                    if op == "ping":
                        await self._send(
                            ws, '{"success":true,"ret_msg":"pong","conn_id":"replay","op":"ping"}'
                        )
                        continue
                    new = {_sub_key("bybit", a) for a in req.get("args", [])}
                    await self._send(
                        ws,
                        orjson.dumps(
                            {"success": True, "ret_msg": "", "conn_id": "replay", "op": op}
                        ).decode(),
                    )
                    if op == "unsubscribe":
                        keys -= new
                        continue
                    books = [k for k in new if k.startswith("orderbook.") and self.cursor.get(k)]
                    if books:
                        # Joining a book mid-stream: like the venue, answer with a snapshot
                        # of the book as it is now, then go on from there.
                        if pump is not None:
                            pump.cancel()
                            await asyncio.gather(pump, return_exceptions=True)
                            pump = None
                        for k in books:
                            await self._send(ws, self._bybit_snapshot(k))
                    keys |= new
                else:
                    if req.get("method") == "ping":
                        await self._send(ws, '{"channel":"pong"}')
                        continue
                    if req.get("method") == "subscribe":
                        keys.add(_sub_key("hyperliquid", req["subscription"]))
                        await self._send(
                            ws,
                            orjson.dumps({"channel": "subscriptionResponse", "data": req}).decode(),
                        )
                if pump is None:
                    await asyncio.sleep(0.05)  # let the other subscribe frames of the batch arrive
                    pump = asyncio.get_running_loop().create_task(self._pump(ws, keys))
        finally:
            self._sockets.discard(ws)
            if pump is not None:
                pump.cancel()
        return ws

    async def _pump(
        self, ws: web.WebSocketResponse, keys: set[str], transport: asyncio.Transport | None = None
    ) -> None:
        """Send the frames of `keys` from their cursors, with pacing and faults.

        Without faults (the benchmark), frames are framed here and written to the
        transport in batches: a Python server sending one frame per call would be slower
        than the collector it measures."""
        f = self.faults
        n = self.n
        frames = self.frames
        batch = transport is not None and not (
            f.skip or f.malformed or f.drop_every or f.stall_at is not None
        )
        out: list[bytes] = []
        t0 = time.monotonic()
        ts0 = None
        if self.live:
            # The venue's clock ran while nobody listened: start from now.
            if self.clock0 is None:
                self.clock0 = time.monotonic()
            t0, ts0 = self.clock0, self.frames[0][0] if self.frames else 0
            now_i = self._live_index()
            for k in keys:
                if self.cursor.get(k, 0) < now_i:
                    self.cursor[k] = now_i
        start = min((self.cursor.get(k, 0) for k in keys), default=0)
        sent_here = 0
        gen = {}
        for k in keys:
            self.last_conn_sent[k] = 0
            gen[k] = self._gen[k] = self._gen.get(k, 0) + 1
        i = start
        end = n * self.loops
        seen: frozenset[str] = frozenset()
        offsets: list[int] = []
        while i < end:
            if seen != keys:  # subscriptions changed: the positions to visit
                seen = frozenset(keys)
                offsets = sorted(o for k in seen for o in self._by_key.get(k, ()))
            loop, off = divmod(i, n)
            j = bisect.bisect_left(offsets, off)
            if j == len(offsets):
                i = (loop + 1) * n
                if out:
                    await self._write(transport, out)
                if not offsets:
                    await asyncio.sleep(0.05)
                continue
            i = loop * n + offsets[j]
            ts, key, raw = frames[offsets[j]]
            if self.cursor.get(key, 0) > i:
                i += 1
                continue
            if f.stall_at is not None and i == f.stall_at and f.stall_s > 0:
                stall, f.stall_s = f.stall_s, 0.0
                until = time.monotonic() + stall
                while time.monotonic() < until and not ws.closed:
                    await asyncio.sleep(0.05)
            if self.speed is not None:
                if ts0 is None:
                    ts0 = ts + loop * self._span_ns
                # Recorded time runs on across loops (each loop one capture span later).
                delay = (ts + loop * self._span_ns - ts0) / 1e9 / self.speed - (
                    time.monotonic() - t0
                )
                if delay > 0:
                    if out:
                        await self._write(transport, out)
                    await asyncio.sleep(delay)
            if ws.closed or (transport is not None and transport.is_closing()):
                return
            self.cursor[key] = i + 1
            if i in f.skip:
                i += 1
                continue
            if self.shift is not None and i >= n:
                raw = self.shift.frame(offsets[j], loop)
            if i in f.malformed:
                raw = raw[: len(raw) // 2]
            if batch:
                out.append(_text_frame(raw.encode()))
                if len(out) >= 256:
                    await self._write(transport, out)
            else:
                await ws.send_str(raw)
            if self._gen.get(key) == gen.get(key):  # an older connection's pump: not counted
                self.last_conn_sent[key] = self.last_conn_sent.get(key, 0) + 1
            self.sent += 1
            self.frames_out += 1
            sent_here += 1
            i += 1
            if f.drop_every and sent_here >= f.drop_every and self.drops < f.max_drops:
                self.drops += 1
                await ws.close()
                return
            if not batch and sent_here % 256 == 0:
                await asyncio.sleep(0)  # let other connections and REST calls in
        if out:
            await self._write(transport, out)
        # All sent: stay open and quiet, like a venue with nothing new.
        while not ws.closed:
            await asyncio.sleep(0.2)

    async def _write(self, transport: asyncio.Transport | None, out: list[bytes]) -> None:
        if transport is None or transport.is_closing():
            out.clear()
            return
        transport.write(b"".join(out))
        out.clear()
        while transport.get_write_buffer_size() > 1 << 20 and not transport.is_closing():
            await asyncio.sleep(0.001)  # the client's pace: TCP pushes back
        await asyncio.sleep(0)

    # ------------------------------------------------------------ REST
    async def _stats(self, request: web.Request) -> web.Response:
        body = {
            "sent": self.sent,
            "frames_out": self.frames_out,
            "connections": self.connections,
            "drops": self.drops,
            "cursor": self.cursor,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _rest_get(self, request: web.Request) -> web.Response:
        body = self.rest.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        req = await request.json()
        body = self.rest.get(f"/info:{req.get('type')}")
        if body is None:
            return web.Response(status=400, text="unknown request")
        return web.Response(body=body, content_type="application/json")

    def _live_index(self) -> int:
        """The global frame index the venue's clock has reached (live mode)."""
        if not self.frames or not self._span_ns:
            return 0
        elapsed = int((time.monotonic() - self.clock0) * self.speed * 1e9)
        loop, rem = divmod(elapsed, self._span_ns)
        if loop >= self.loops:
            return self.n * self.loops
        ts = self.frames[0][0] + rem
        off = bisect.bisect_left([f[0] for f in self.frames], ts)
        return loop * self.n + off

    def aggregates(self) -> list[dict]:
        """The captured trades as the venue's aggregated trades (first loop), each with
        the frame index of its last trade (``_i``: published once the cursor passed it)."""
        if self._aggs is None:
            aggs: list[dict] = []
            for i, (_, key, raw) in enumerate(self.frames):
                if not key.endswith("@trade"):
                    continue
                d = orjson.loads(raw)["data"]
                g = aggs[-1] if aggs else None
                if (
                    g is not None
                    and g["s"] == d["s"]
                    and g["T"] == d["T"]
                    and g["p"] == d["p"]
                    and g["m"] == d["m"]
                    and g["l"] + 1 == d["t"]
                ):
                    g["l"] = d["t"]
                    g["q"] = str(Decimal(g["q"]) + Decimal(d["q"]))
                    g["_i"] = i
                    continue
                aggs.append(
                    {
                        "s": d["s"],
                        "a": 3_000_000_000 + len(aggs),  # agg ids are not trade ids
                        "p": d["p"],
                        "q": d["q"],
                        "f": d["t"],
                        "l": d["t"],
                        "T": d["T"],
                        "m": d["m"],
                        "_i": i,
                    }
                )
            self._aggs = aggs
        return self._aggs

    def _aggs_passed(self, sym: str, passed: int) -> list[dict]:
        """The aggregates of every loop the cursor passed (later loops moved forward by
        the loop shift, like their frames; without a shift only the first loop)."""
        base = [g for g in self.aggregates() if g["s"] == sym]
        out = [g for g in base if g["_i"] < passed]
        if self.shift is None or not self.n:
            return out
        n_aggs = len(self.aggregates())
        span_t, span_e = self.shift.span.get("t", 0), self.shift.span.get("E", 0)
        for k in range(1, min(passed // self.n, self.loops - 1) + 1):
            for g in base:
                if k * self.n + g["_i"] >= passed:
                    break
                out.append(
                    {
                        **g,
                        "a": g["a"] + k * n_aggs,
                        "f": g["f"] + k * span_t,
                        "l": g["l"] + k * span_t,
                        "T": g["T"] + k * span_e,
                    }
                )
        return out

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self.agg_requests += 1
        q = request.query
        sym = q.get("symbol", "").upper()
        limit = min(int(q.get("limit", 500)), 1000)
        passed = self.cursor.get(f"{sym.lower()}@trade", 0)
        out = self._aggs_passed(sym, passed)
        if "fromId" in q:
            out = [g for g in out if g["a"] >= int(q["fromId"])]
        elif "startTime" in q:
            lo = int(q["startTime"])
            hi = int(q.get("endTime", lo + 3_599_999))
            out = [g for g in out if lo <= g["T"] <= hi]
        else:
            out = out[-limit:]
        body = [{k: v for k, v in g.items() if k not in ("s", "_i")} for g in out[:limit]]
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _levels(self, bids: dict, asks: dict) -> tuple[list, list]:
        return (
            [[p, q] for p, q in sorted(bids.items(), key=lambda x: -float(x[0]))],
            [[p, q] for p, q in sorted(asks.items(), key=lambda x: float(x[0]))],
        )

    @staticmethod
    def _apply_diff(bids: dict, asks: dict, d: dict) -> None:
        """Move a price -> size book by one diff's `b`/`a` levels (size 0 deletes the level;
        Binance and Bybit diffs share this shape)."""
        for side, lv in ((bids, d["b"]), (asks, d["a"])):
            for p, q in lv:
                if float(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q

    async def _depth(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "").upper()
        snap = self.snapshots.get(sym)
        if snap is None:
            return web.Response(status=400, text='{"code":-1121,"msg":"Invalid symbol."}')
        key = f"{sym.lower()}@depth"
        pos = self.cursor.get(key, 0)
        last = snap["lastUpdateId"]
        bids = {p: q for p, q in snap["bids"]}
        asks = {p: q for p, q in snap["asks"]}
        e, t = snap.get("E", 0), snap.get("T", 0)
        # The book as the venue has it now: the captured snapshot moved forward by every
        # diff of the current loop up to the cursor.
        loop_start = pos // self.n * self.n if self.n else 0
        for i in range(loop_start, pos):
            _, k, raw = self.frames[i % self.n]
            if k != key:
                continue
            d = orjson.loads(raw)["data"]
            if d["u"] < snap["lastUpdateId"]:
                continue
            self._apply_diff(bids, asks, d)
            last, e, t = d["u"], d["E"], d["T"]
        if self.shift is not None:
            k = pos // self.n if self.n else 0
            last += k * self.shift.span["u"]
            e += k * self.shift.span["E"]
            t += k * self.shift.span["E"]
        b, a = self._levels(bids, asks)
        limit = int(request.query.get("limit", 1000))
        body = orjson.dumps(
            {"lastUpdateId": last, "E": e, "T": t, "bids": b[:limit], "asks": a[:limit]}
        )
        return web.Response(body=body, content_type="application/json")

    def _bybit_snapshot(self, key: str) -> str:
        """orderbook.<SYM>: the captured book moved forward to the cursor, as a snapshot."""
        pos = self.cursor.get(key, 0)
        bids: dict = {}
        asks: dict = {}
        msg = None
        for i in range(pos // self.n * self.n if self.n else 0, pos):
            _, k, raw = self.frames[i % self.n]
            if k != key:
                continue
            msg = orjson.loads(raw)
            d = msg["data"]
            if msg["type"] == "snapshot":
                bids, asks = {}, {}
            self._apply_diff(bids, asks, d)
        if msg is None:
            return '{"success":true,"op":"noop"}'
        b, a = self._levels(bids, asks)
        d = msg["data"]
        out = {
            "topic": msg["topic"],
            "type": "snapshot",
            "ts": msg["ts"],
            "data": {"s": d["s"], "b": b, "a": a, "u": d["u"], "seq": d.get("seq", 0)},
        }
        return orjson.dumps(out).decode()


_SHIFTED = re.compile(r'"(E|T|U|u|pu|t|a)":(\d+)')


class _LoopShift:
    """Binance frames of loop k with times, update ids and trade ids moved forward by k
    spans, so a capture replayed in loops stays new data: continuous ``pu``/``u``
    sequences, unique trade ids, rising times (the benchmark's sustained load)."""

    def __init__(self, frames: list[tuple[int, str, str]]) -> None:
        self.parts: list[tuple[list[str], list[str]]] = []
        lo: dict[str, int] = {}
        hi: dict[str, int] = {}
        first_pu = last_u = None
        for _, _, raw in frames:
            depth = '"depthUpdate"' in raw  # bookTicker frames carry their own u
            texts, keys = [], []
            pos = 0
            for m in _SHIFTED.finditer(raw):
                texts.append(raw[pos : m.start(2)])
                keys.append(m.group(1))
                texts.append(m.group(2))
                pos = m.end(2)
                group = "E" if m.group(1) in ("E", "T") else m.group(1)
                v = int(m.group(2))
                if m.group(1) != "T":  # T can be a future time (next funding): not a span
                    lo[group] = min(lo.get(group, v), v)
                    hi[group] = max(hi.get(group, v), v)
                if depth and m.group(1) == "pu" and first_pu is None:
                    first_pu = v
                if depth and m.group(1) == "u":
                    last_u = v
            texts.append(raw[pos:])
            self.parts.append((texts, keys))
        self.span = {g: hi[g] - lo[g] + 1 for g in hi}
        self.span["E"] = self.span.get("E", 0) + 100  # the next loop starts 100 ms later
        if first_pu is not None and last_u is not None:
            seq = last_u - first_pu  # the next loop's first pu equals this loop's last u
            self.span.update(U=seq, u=seq, pu=seq)
        else:
            self.span.update(U=0, u=0, pu=0)

    def frame(self, index: int, loop: int) -> str:
        texts, keys = self.parts[index]
        out = [texts[0]]
        for j, key in enumerate(keys):
            group = "E" if key in ("E", "T") else key
            out.append(str(int(texts[2 * j + 1]) + loop * self.span.get(group, 0)))
            out.append(texts[2 * j + 2])
        return "".join(out)


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed websocket text frame (RFC 6455 5.2), server to client."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def load_capture(path, ts_scale: int = 1, limit: int | None = None) -> list[tuple[int, str]]:
    """(recv ns, raw) pairs from a ``<ts> <raw>`` gzip capture (hftbacktest / our raw log)."""
    import gzip

    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            ts, raw = line.rstrip("\n").split(" ", 1)
            out.append((int(ts) * ts_scale, raw))
            if limit is not None and len(out) >= limit:
                break
    return out


def force_order(symbol: str, side: str, price: str, qty: str, ts_ms: int) -> str:
    """A Binance liquidation frame in the documented ``forceOrder`` format (no real capture
    exists; see /work/shared/realdata/README.md)."""
    data = {
        "e": "forceOrder",
        "E": ts_ms,
        "o": {
            "s": symbol,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": qty,
            "p": price,
            "ap": price,
            "X": "FILLED",
            "l": qty,
            "z": qty,
            "T": ts_ms,
        },
    }
    return orjson.dumps({"stream": f"{symbol.lower()}@forceOrder", "data": data}).decode()


def main(argv: list[str] | None = None) -> None:
    """Serve a capture until SIGTERM: ``python -m algo_trade.testing.replay --exchange
    binance --capture FILE [--ts-scale 1000] [--rest /fapi/v1/exchangeInfo=FILE]
    [--loops N --shift-loops] [--speed X] [--port-file F]``; prints the port."""
    import argparse
    import signal
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m algo_trade.testing.replay")
    ap.add_argument("--exchange", required=True, choices=["binance", "bybit", "hyperliquid"])
    ap.add_argument("--capture", required=True, help="'<recv ts> <raw>' gzip capture")
    ap.add_argument("--ts-scale", type=int, default=1, help="1000 for a µs capture")
    ap.add_argument("--rest", action="append", default=[], help="PATH=FILE served as-is")
    ap.add_argument("--loops", type=int, default=1)
    ap.add_argument("--shift-loops", action="store_true")
    ap.add_argument("--speed", type=float, default=None, help="default: as fast as possible")
    ap.add_argument("--port-file", type=Path)
    args = ap.parse_args(argv)
    rest = {}
    for item in args.rest:
        path, _, file = item.partition("=")
        rest[path] = Path(file).read_bytes()

    async def serve() -> None:
        srv = ReplayServer(
            args.exchange,
            load_capture(args.capture, args.ts_scale),
            rest=rest,
            speed=args.speed,
            loops=args.loops,
            shift_loops=args.shift_loops,
        )
        port = await srv.start()
        print(port, flush=True)
        if args.port_file:
            args.port_file.write_text(str(port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await srv.stop()

    asyncio.run(serve())


if __name__ == "__main__":  # pragma: no cover
    main()
