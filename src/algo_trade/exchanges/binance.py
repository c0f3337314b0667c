"""Binance USD-M futures: symbol mapping, message decoding, the depth-book rules.

Symbols: ``BTC-USDT-PERP`` <-> ``BTCUSDT`` (quote USDT, USDC or BUSD), dated futures
``BTC-USDT-240927`` <-> ``BTCUSDT_240927``.

Streams (combined ``{"stream","data"}`` frames or bare payloads both work):

- ``<s>@depth@100ms`` (any ``depthUpdate``) plus the REST ``/fapi/v1/depth`` body build the
  book with Binance's rules: buffer diffs until a snapshot; drop diffs with
  ``u < lastUpdateId``; the first applied diff must have ``U <= lastUpdateId <= u``;
  every later diff must have ``pu`` equal to the previous ``u``, else the book is
  rebuilt from a new snapshot (a resync, counted, with a gap event).
- ``<s>@markPrice@1s`` -> funding rows (predicted rate ``r``, mark ``p``, index ``i``,
  next funding ``T``); when ``T`` rolls forward, a ``settled`` row is added at the old
  ``T`` with the last rate published for that ``T`` (the stream keeps the old ``T``
  for a moment after the hour, with the final rate).
- ``<s>@forceOrder`` -> liquidations (side of the forced order, average price ``ap``
  when filled, filled qty ``z``).
- ``<s>@trade`` / ``<s>@aggTrade`` -> trades (``m`` true: the buyer was maker, so the
  taker sold). aggTrade ids are prefixed ``a`` so they never collide with trade ids.
- ``bookTicker`` and subscription replies are counted and ignored.
- A REST depth body names no symbol: pass ``symbol=`` to `feed`, or (as the collector
  records it) put the venue symbol first as ``{"s":"BTCUSDT","lastUpdateId":...}``.
"""

from __future__ import annotations

from algo_trade.errors import ConfigError, ExchangeError
from algo_trade.exchanges import binance_backfill
from algo_trade.exchanges.adapter import Connection, Endpoints, Request, VenueAdapter
from algo_trade.exchanges.base import BaseNormalizer, Event, ms_ns
from algo_trade.exchanges.binance_backfill import Hole

EXCHANGE = "binance"
WS_URL = "wss://fstream.binance.com"
REST_URL = "https://fapi.binance.com"
TEST_WS_URL = "wss://fstream.binancefuture.com"
TEST_REST_URL = "https://testnet.binancefuture.com"
# Binance USD-M accepts at most 200 streams per connection; fewer keeps URLs short.
MAX_STREAMS_PER_CONNECTION = 100
SNAPSHOT_LIMIT = 1000
QUOTES = ("USDT", "USDC", "BUSD")
DEFAULT_FUNDING_H = 8.0
MAX_BUFFERED_DIFFS = 10_000
STREAM_SUFFIX = {
    "book": "depth@100ms",
    "funding": "markPrice@1s",
    "liquidation": "forceOrder",
    "trade": "trade",
}


def to_venue(symbol: str) -> str:
    """BTC-USDT-PERP -> BTCUSDT; BTC-USDT-240927 -> BTCUSDT_240927."""
    parts = symbol.split("-")
    if len(parts) != 3:
        raise ConfigError(f"{symbol}: Binance USD-M lists perpetuals and dated futures only")
    base, quote, kind = parts
    if quote not in QUOTES:
        raise ConfigError(f"{symbol}: Binance USD-M has no {quote}-margined contracts")
    return f"{base}{quote}" if kind == "PERP" else f"{base}{quote}_{kind}"


def from_venue(name: str) -> str:
    """BTCUSDT -> BTC-USDT-PERP; BTCUSDT_240927 -> BTC-USDT-240927."""
    pair, _, expiry = name.upper().partition("_")
    for q in QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return f"{pair[: -len(q)]}-{q}-{expiry or 'PERP'}"
    raise ExchangeError(
        f"cannot map Binance symbol {name!r} (quote not one of {', '.join(QUOTES)})"
    )


def stream_names(symbols: list[str], streams: list[str]) -> list[str]:
    """Combined-stream names for our symbols and streams (book, funding, liquidation, trade)."""
    return [f"{to_venue(s).lower()}@{STREAM_SUFFIX[st]}" for s in symbols for st in streams]


def ws_path(symbols: list[str], streams: list[str]) -> str:
    return "/stream?streams=" + "/".join(stream_names(symbols, streams))


def depth_path(symbol: str, limit: int = 1000) -> str:
    return f"/fapi/v1/depth?symbol={to_venue(symbol)}&limit={limit}"


INSTRUMENTS_PATH = "/fapi/v1/exchangeInfo"


def parse_instruments(body: str | bytes) -> set[str]:
    """Our symbols of the trading contracts in an /fapi/v1/exchangeInfo body."""
    import orjson

    out = set()
    for s in orjson.loads(body)["symbols"]:
        if s.get("status", "TRADING") != "TRADING":
            continue
        try:
            out.add(from_venue(s["symbol"]))
        except ExchangeError:
            continue
    return out


class Normalizer(BaseNormalizer):
    """Binance USD-M messages -> normalized records (see the module docstring)."""

    exchange = EXCHANGE

    def __init__(
        self,
        symbols: list[str],
        depth: int = 20,
        book_interval_ns: int = 1_000_000_000,
        streams: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        super().__init__(symbols, depth, book_interval_ns, streams)
        self.funding_interval_h = dict.fromkeys(self.symbols, DEFAULT_FUNDING_H)
        # diffs waiting for a snapshot, with their receive times
        self._buf: dict[str, list[tuple[int, dict]]] = {s: [] for s in self.symbols}
        # sym -> (lastUpdateId, venue ts, receive ts) of a snapshot not yet bridged
        self._snap: dict[str, tuple[int, int, int]] = {}
        self._last_fund: dict[str, tuple[int, float]] = {}  # sym -> (next_ts, rate)
        # Trade ids are consecutive per symbol: sym -> [last id, its T ms, the trades at
        # that T as (first id, last id, qty)]; a jump is a Hole to backfill.
        self._tt: dict[str, list] = {}
        self.holes: dict[str, list[Hole]] = {s: [] for s in self.symbols}
        self.backfilled = 0  # rows added by backfills
        self.backfilled_ids = 0  # trade ids those rows cover
        self.unfilled = 0  # holes (or parts) recorded as gaps

    backfills_trades = True

    def venue_symbol(self, symbol: str) -> str:
        return to_venue(symbol)

    def pending_snapshots(self) -> list[str]:
        return [
            s
            for s in self.symbols
            if not self.books[s].synced and s not in self._snap and self._buf[s]
        ]

    def _on_disconnect_streams(
        self, ts_ns: int, reason: str, streams: list[str], symbols: list[str] | None = None
    ) -> None:
        super().on_disconnect(ts_ns, reason, streams, symbols)
        if "book" in streams:
            for s in symbols or self.symbols:
                self._snap.pop(s, None)
                self._buf[s].clear()

    def _feed(self, recv_ts_ns: int, obj: object, symbol: str | None) -> None:
        if not isinstance(obj, dict):
            raise TypeError("message is not a JSON object")
        d = obj.get("data", obj)
        e = d.get("e")
        if e == "depthUpdate":
            self._seen("book")
            self._depth(d)
        elif e == "trade" or e == "aggTrade":
            self._seen("trade")
            sym = self.ours.get(d["s"])
            if sym is not None:
                raw = e == "trade"  # aggTrade ids carry an "a" prefix
                self._trade_row(
                    ms_ns(d["T"]),
                    sym,
                    -1 if d["m"] else 1,
                    float(d["p"]),
                    float(d["q"]),
                    str(d["t"]) if raw else f"a{d['a']}",
                )
                if raw:  # the backfill finds gaps in raw trade ids
                    self._track(sym, int(d["t"]), int(d["T"]), d["q"], recv_ts_ns)
        elif e == "aggTradesBackfill":
            self._seen("backfill")
            self._backfill(d)
        elif e == "markPriceUpdate":
            self._seen("funding")
            self._mark(d)
        elif e == "forceOrder":
            self._seen("liquidation")
            o = d["o"]
            sym = self.ours.get(o["s"])
            if sym is not None:
                avg = float(o.get("ap") or 0)
                filled = float(o.get("z") or 0)
                self._liq_row(
                    ms_ns(o["T"]),
                    sym,
                    1 if o["S"] == "BUY" else -1,
                    avg if avg > 0 else float(o["p"]),
                    filled if filled > 0 else float(o["q"]),
                )
        elif "lastUpdateId" in d:
            self._seen("snapshot")
            self._snapshot(d, symbol)
        elif e == "bookTicker" or "result" in d or e is not None:
            self._seen("ignored")
        else:
            raise ValueError("not a Binance market-data message")

    # ------------------------------------------------------------ trade backfill
    def _track(self, sym: str, t: int, T: int, q: str, recv_ns: int) -> None:
        for h in self.holes[sym]:
            if not h.hi_closed and t > h.hi:
                if T == h.hi_T:
                    h.hi_tail.append((t, t, q))
                else:
                    h.hi_closed = True
        st = self._tt.get(sym)
        if st is None:
            self._tt[sym] = [t, T, [(t, t, q)]]
            return
        last, last_T, tail = st
        if t <= last:
            return  # a repeat (the store keeps one)
        if t > last + 1:
            self.holes[sym].append(Hole(sym, last, last_T, list(tail), t, T, [(t, t, q)], recv_ns))
        if T == last_T:
            tail.append((t, t, q))
        else:
            st[2] = [(t, t, q)]
        st[0], st[1] = t, T

    def pending_backfills(self, now_ns: int) -> list[Hole]:
        """Holes ready to be fetched (their later tail is complete, or 1 s has passed)."""
        out = []
        for hs in self.holes.values():
            for h in hs:
                if not h.asked and (
                    h.hi_closed or now_ns - h.seen_ns > binance_backfill.READY_AFTER_NS
                ):
                    h.asked = True
                    out.append(h)
        return out

    async def fetch_backfill(self, http, rest_url: str, hole: Hole) -> bytes:  # noqa: ANN001
        """The REST answer for a hole as one message for `feed` (recorded raw like any
        frame, so re-normalizing a capture repeats the backfill)."""
        import orjson

        aggs, complete, error = await binance_backfill.fetch(
            http, rest_url, self.venue[hole.symbol], hole
        )
        return orjson.dumps(
            {
                "e": "aggTradesBackfill",
                "s": self.venue[hole.symbol],
                "lo": hole.lo,
                "hi": hole.hi,
                "complete": complete,
                "error": error,
                "aggs": aggs,
            }
        )

    def _backfill(self, d: dict) -> None:
        sym = self.ours.get(d["s"])
        if sym is None:
            return
        hole = next((h for h in self.holes[sym] if h.lo == d["lo"] and h.hi == d["hi"]), None)
        if hole is None:
            return  # answered already (a re-sent answer)
        self.holes[sym].remove(hole)
        rows, gap = binance_backfill.plan(hole, d["aggs"])
        for T, side, px, qty, tid in rows:
            self._trade_row(ms_ns(T), sym, side, float(px), float(qty), tid)
        self.backfilled += len(rows)
        for *_, tid in rows:
            a, b = binance_backfill.parse_id(tid)
            self.backfilled_ids += b - a + 1
        if gap is not None:
            detail = f"{gap[2]}{'; ' + d['error'] if d.get('error') else ''}"
            self._unfilled(sym, ms_ns(gap[0]), ms_ns(gap[1]), detail)

    def _unfilled(self, sym: str, start_ns: int, end_ns: int, detail: str) -> None:
        self.unfilled += 1
        self._events.append(
            Event(self.exchange, sym, "trade", start_ns, end_ns, "trades not backfilled", detail)
        )

    def drain_events(self, close_open_at: int | None = None) -> list[Event]:
        if close_open_at is not None:  # stopping: a hole never fetched is a gap
            for sym, hs in self.holes.items():
                for h in hs:
                    self._unfilled(sym, ms_ns(h.lo_T), ms_ns(h.hi_T), "collector stopped first")
                hs.clear()
        return super().drain_events(close_open_at)

    def on_disconnect(
        self,
        ts_ns: int,
        reason: str,
        streams: list[str] | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        # Trades are not given a disconnect gap: the id jump after it is backfilled, and
        # what the backfill cannot fetch becomes the gap (in venue time).
        streams = list(streams or self.streams)
        if "trade" in streams:
            self.counters.disconnects += 1 if streams == ["trade"] else 0
            streams.remove("trade")
            if not streams:
                return
        self._on_disconnect_streams(ts_ns, reason, streams, symbols)

    def resume_state(self) -> dict:
        """What the next run needs to backfill across a restart (see collect/downtime)."""
        # Copies: the spool thread writes this while the consumer goes on changing _tt.
        return {
            sym: {
                "last": [st[0], st[1], list(st[2])] if (st := self._tt.get(sym)) else None,
                "holes": [h.to_dict() for h in self.holes[sym]],
            }
            for sym in self.symbols
            if sym in self._tt or self.holes[sym]
        }

    def resume(self, state: dict) -> None:
        """Continue from a previous run's `resume_state`: the next trade id received is
        compared with the last one durable then, and unfetched holes are asked again."""
        for sym, st in state.items():
            if sym not in self.holes:
                continue
            if st.get("last"):
                last, last_T, tail = st["last"]
                self._tt[sym] = [int(last), int(last_T), [tuple(x) for x in tail]]
            self.holes[sym].extend(Hole.from_dict(h) for h in st.get("holes", []))

    def resume_rows(self, kind: str, table) -> None:  # noqa: ANN001 - a pa.Table
        """Trades the spool holds beyond the resumed state (a crash between a commit's
        data and its marks): without them the backfill would store again, as ranges,
        trades already stored one by one."""
        if kind != "trade" or not table.num_rows:
            return
        d = table.select(["ts", "symbol", "qty", "trade_id"]).to_pydict()
        rows = sorted(
            (binance_backfill.parse_id(tid), ts // 1_000_000, sym, q)
            for ts, sym, q, tid in zip(d["ts"], d["symbol"], d["qty"], d["trade_id"], strict=True)
            if sym in self.holes and tid.replace("-", "").isdigit()
        )
        for (a, b), T, sym, q in rows:
            st = self._tt.get(sym)
            if st is not None and b <= st[0]:
                continue
            if st is None or T != st[1]:
                self._tt[sym] = [b, T, [(a, b, repr(q))]]
            else:
                st[0] = b
                st[2].append((a, b, repr(q)))

    # ------------------------------------------------------------ book rules
    def _snapshot(self, d: dict, symbol: str | None) -> None:
        symbol = symbol or d.get("s")
        if symbol is None:
            if len(self.symbols) != 1:
                raise ValueError("depth snapshot without a symbol (pass symbol=)")
            sym = self.symbols[0]
        else:
            sym = self.ours.get(symbol) or self.canonical(symbol)
            if sym not in self.books:
                raise ValueError(f"depth snapshot for unknown symbol {symbol}")
        book = self.books[sym]
        book.synced = False
        book.load(d["bids"], d["asks"])
        # E (output time) is after every diff the snapshot holds; T can be earlier than
        # their event times, which would put a row before a diff it already contains.
        ts = ms_ns(d.get("E") or d.get("T") or 0)
        self._snap[sym] = (int(d["lastUpdateId"]), ts, self._recv)
        pending, self._buf[sym] = self._buf[sym], []
        recv = self._recv
        for r, diff in pending:
            # A diff held for its snapshot is usable from the snapshot's receipt on: its
            # rows' ts_local is the later of the two (the receipt clock never goes back).
            self._recv = max(r, recv)
            self._depth(diff)
        self._recv = recv

    def _depth(self, d: dict) -> None:
        sym = self.ours.get(d["s"])
        if sym is None:
            return
        book = self.books[sym]
        u = int(d["u"])
        ts = ms_ns(d["E"])
        if book.synced:
            if int(d["pu"]) != book.last_id:
                self._lost(sym, ts, "sequence gap", f"pu {d['pu']} != previous u {book.last_id}")
                self._buf[sym].append((self._recv, d))
                return
            self._clock(sym, ts)
            if self.emit_depth:
                self._depth_diff(sym, ts, u, book, d["b"], d["a"])
            else:
                book.apply(d["b"], d["a"])
            book.last_id = u
            return
        snap = self._snap.get(sym)
        if snap is None:
            buf = self._buf[sym]
            buf.append((self._recv, d))
            if len(buf) > MAX_BUFFERED_DIFFS:  # no snapshot came: keep the newest
                del buf[: len(buf) - MAX_BUFFERED_DIFFS]
            return
        last_id, snap_ts, snap_recv = snap
        if u < last_id:
            self.counters.stale_dropped += 1
            return
        if int(d["U"]) > last_id:
            # The snapshot is older than the first diff we hold: it cannot be bridged.
            del self._snap[sym]
            self._lost(sym, ts, "snapshot too old", f"U {d['U']} > lastUpdateId {last_id}")
            self._buf[sym].append((self._recv, d))
            return
        del self._snap[sym]
        self._synced(sym, snap_ts)
        if self.emit_depth:
            # The snapshot's state (update lastUpdateId) existed by the bridging diff's
            # event time, which can be earlier than the snapshot's E: the run is stamped
            # with the earlier one, so reading by ts replays it before that diff.
            self._depth_snapshot(sym, min(snap_ts, ts), last_id, book, True, snap_recv)
        self._clock(sym, ts)
        if self.emit_depth and u > last_id:
            self._depth_diff(sym, ts, u, book, d["b"], d["a"])
        else:  # u == lastUpdateId: every update in it is already in the snapshot
            book.apply(d["b"], d["a"])
        book.last_id = u

    # ------------------------------------------------------------ funding
    def _mark(self, d: dict) -> None:
        sym = self.ours.get(d["s"])
        if sym is None:
            return
        ts = ms_ns(d["E"])
        rate = float(d["r"])
        next_ts = ms_ns(d["T"])
        ih = self.funding_interval_h[sym]
        mark = float(d["p"])
        index = float(d["i"])
        prev = self._last_fund.get(sym)
        if prev is not None and next_ts > prev[0] and ts >= prev[0]:
            self._fund_row(prev[0], sym, prev[1], ih, mark, index, prev[0], True)
        self._last_fund[sym] = (next_ts, rate)
        self._fund_row(ts, sym, rate, ih, mark, index, next_ts, False)


class Adapter(VenueAdapter):
    """Binance USD-M for the collector: combined streams, REST depth snapshots."""

    name = EXCHANGE
    title = "Binance USD-M"
    urls = {
        "live": Endpoints(WS_URL, REST_URL),
        "test": Endpoints(TEST_WS_URL, TEST_REST_URL),
    }
    normalizer_cls = Normalizer

    def connections(self, symbols: list[str], feeds: list[str], ws_url: str) -> list[Connection]:
        out = []
        per = max(1, MAX_STREAMS_PER_CONNECTION)
        for feed in feeds:
            for i in range(0, len(symbols), per):
                chunk = symbols[i : i + per]
                out.append(Connection(feed, ws_url + ws_path(chunk, [feed]), symbols=tuple(chunk)))
        return out

    def instruments(self) -> Request:
        return Request("GET", INSTRUMENTS_PATH)

    def parse_instruments(self, body: bytes) -> set[str]:
        return parse_instruments(body)

    def snapshot(self, symbol: str) -> Request:
        return Request("GET", depth_path(symbol, SNAPSHOT_LIMIT))

    def snapshot_message(self, symbol: str, body: bytes) -> bytes:
        # The body names no symbol: add it (as "s") so a raw recording stays attributable.
        return b'{"s":"' + to_venue(symbol).encode() + b'",' + body.lstrip()[1:]


ADAPTER = Adapter()
