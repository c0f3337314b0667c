"""The Normalizer API every venue implements, plus the shared book and columnar buffers.

A Normalizer turns raw venue messages into normalized record tables. It does no I/O and
needs no event loop, so the live collector and `import capture` share it:

    n = binance.Normalizer(["BTC-USDT-PERP"], depth=20, book_interval_ns=1_000_000_000)
    for line in gzip.open("usdm_btcusdt_20240808.gz", "rt"):      # "<recv ns> <raw>"
        ts, raw = line.split(" ", 1)
        n.feed(int(ts), raw)               # any ws frame, or a REST depth-snapshot body
    tables = n.drain()                     # {"book"|"trade"|"funding"|"liquidation": pa.Table}
    events = n.drain_events()              # data-quality events (gaps, resyncs, malformed)
    n.counters                             # messages, malformed, gaps, resyncs, ...

- `feed(recv_ts_ns, raw, symbol=None)` never raises for bad input: a message it cannot
  use is counted (`counters.malformed`) and skipped. `symbol` names the instrument of a
  REST snapshot body that does not say it (Binance); with one symbol it is implied.
- Timestamps: the venue's own event time (ms) becomes ns here and nowhere else; the
  local receive time is only used where the venue sends no time (Hyperliquid REST).
- Books are sampled on a grid: the row at ts = k * book_interval_ns holds the book after
  every update with venue time < that ts. Grid times make book rows idempotent (a replay
  or a second collector produces the same keys). `sample_books(ts_ns)` adds rows on
  demand; `book_top(symbol)` returns the current top-N as a (4, depth) array
  (bid_px, bid_sz, ask_px, ask_sz, best first, NaN-padded).
- A sequence gap puts the symbol's book out of sync (no rows until it is rebuilt),
  counts a resync and opens a gap event; `pending_snapshots()` lists the symbols whose
  book waits for a REST snapshot (Binance) and `resubscribe()` those that need the
  venue to send a new snapshot (Bybit).
- `on_disconnect(ts_ns, reason)` marks every book out of sync and opens a gap event for
  each (symbol, stream); data arriving again closes it.
"""

from __future__ import annotations

import array
import heapq
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from algo_trade.errors import ConfigError
from algo_trade.schema import (
    DEPTH_RESYNC,
    DEPTH_SNAPSHOT,
    book_columns,
    book_schema,
    check_symbol,
    schema_for,
)

STREAMS = ("book", "depth", "funding", "liquidation", "trade")
BOOK_KINDS = ("book", "depth")  # the record kinds built from a venue's order-book feed
MAX_FILL_ROWS = 3600  # book rows added for one silent stretch; beyond it the gap is an event


@dataclass
class Event:
    """A data-quality event: data for (exchange, symbol, stream) is missing or suspect
    from start_ns to end_ns (ns, UTC; end None while still open)."""

    exchange: str
    symbol: str
    stream: str
    start_ns: int
    end_ns: int | None
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Counters:
    messages: int = 0
    malformed: int = 0
    gaps: int = 0
    resyncs: int = 0
    disconnects: int = 0
    stale_dropped: int = 0  # diffs older than the snapshot (normal during a sync)
    by_stream: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class Book:
    """One side-keyed L2 book: price -> size dicts (updates are O(1); the top-N is taken
    only when a row is sampled, once per interval)."""

    __slots__ = ("bids", "asks", "synced", "last_id")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.synced = False
        self.last_id = 0

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def load(self, bids: list, asks: list) -> None:
        self.bids = {float(p): float(q) for p, q, *_ in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q, *_ in asks if float(q) > 0}

    def apply_recorded(self, bids: list, asks: list, px: array.array, qty: array.array) -> None:
        """`apply`, also appending each level's price and new size (bids first, then
        asks, in message order) to the depth buffers: one float conversion per value."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            pop = side.pop
            for p, q in levels:
                price = float(p)
                size = float(q)
                px.append(price)
                qty.append(size)
                if size:
                    side[price] = size
                else:
                    pop(price, None)

    def apply(self, bids: list, asks: list) -> None:
        """Apply [price, size] level updates (size 0 deletes); the hot per-diff loop."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            pop = side.pop
            for p, q in levels:
                size = float(q)
                if size:
                    side[float(p)] = size
                else:
                    pop(float(p), None)

    def top(self, depth: int) -> list[float]:
        """bid_px.., bid_sz.., ask_px.., ask_sz.. (best first, NaN-padded): one book row."""
        nan = math.nan
        bp = heapq.nlargest(depth, self.bids)
        ap = heapq.nsmallest(depth, self.asks)
        pad_b = [nan] * (depth - len(bp))
        pad_a = [nan] * (depth - len(ap))
        return (
            bp
            + pad_b
            + [self.bids[p] for p in bp]
            + pad_b
            + ap
            + pad_a
            + [self.asks[p] for p in ap]
            + pad_a
        )


def _col(typecode: str) -> array.array:
    return array.array(typecode)


_NP = {"q": np.int64, "i": np.int32, "b": np.int8, "d": np.float64}


def _arrow(col: array.array | np.ndarray | list, typ: pa.DataType | None = None) -> pa.Array:
    """A typed column buffer as an Arrow array (one copy, no per-value conversion)."""
    if isinstance(col, array.array):
        return pa.array(np.frombuffer(col, dtype=_NP[col.typecode]).copy(), typ)
    return pa.array(col, typ)


def _labels(codes: array.array | np.ndarray | list[int], names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(_arrow(codes, pa.int32()), pa.array(names, pa.string()))


class BaseNormalizer:
    """Shared state of every venue Normalizer: symbol maps, books, buffers, counters, events.

    Subclasses set `exchange`, implement `venue_symbol(our) -> venue` / `our_symbol(venue)`
    and `_feed(recv_ts_ns, obj, symbol)` on the decoded JSON.
    """

    exchange = ""
    streams: tuple[str, ...] = STREAMS

    def __init__(
        self,
        symbols: list[str],
        depth: int = 20,
        book_interval_ns: int = 1_000_000_000,
        streams: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        if not symbols:
            raise ConfigError("give at least one symbol, e.g. BTC-USDT-PERP")
        if depth < 1:
            raise ConfigError(f"--depth must be at least 1, got {depth}")
        if book_interval_ns <= 0:
            raise ConfigError("--book-interval must be positive")
        self.depth = depth
        self.book_interval_ns = int(book_interval_ns)
        # What the book feed becomes: sampled `book` rows (the default, as before depth
        # existed) and/or every update as `depth` rows.
        kinds = [k for k in (streams or ("book",)) if k in BOOK_KINDS]
        self.book_kinds = tuple(kinds)
        self.emit_book = "book" in kinds
        self.emit_depth = "depth" in kinds
        self.symbols = [self.canonical(check_symbol(s)) for s in symbols]
        self.symbols = list(dict.fromkeys(self.symbols))
        self.venue = {s: self.venue_symbol(s) for s in self.symbols}
        self.ours = {v: s for s, v in self.venue.items()}
        self.code = {s: i for i, s in enumerate(self.symbols)}
        self.books = {s: Book() for s in self.symbols}
        self.next_sample = dict.fromkeys(self.symbols, 0)
        self.counters = Counters()
        self._events: list[Event] = []
        self._open: dict[tuple[str, str], Event] = {}
        self._cur = ""
        self._recv = 0  # receive time of the message being parsed (ts_local of its rows)
        self._reset_buffers()
        self.first_recv_ns: int | None = None  # oldest receive time of the undrained rows
        self.max_venue_ts_ns = 0

    # ------------------------------------------------------------ venue hooks
    def canonical(self, symbol: str) -> str:
        """Our stored name for a requested symbol (venues with one quote map aliases here)."""
        return symbol

    def venue_symbol(self, symbol: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _feed(self, recv_ts_ns: int, obj: object, symbol: str | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _decode(self, raw: str | bytes) -> object:
        import orjson

        return orjson.loads(raw)

    # ------------------------------------------------------------ public API
    def feed(self, recv_ts_ns: int, raw: str | bytes, symbol: str | None = None) -> None:
        """Parse one raw message (ws frame or REST body); bad input is counted, never raised."""
        self.counters.messages += 1
        if self.first_recv_ns is None:
            self.first_recv_ns = recv_ts_ns
        self._cur = ""
        self._recv = recv_ts_ns
        try:
            obj = self._decode(raw)
            self._feed(recv_ts_ns, obj, symbol)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            self.malformed(recv_ts_ns, f"{type(exc).__name__}: {str(exc)[:80]}")
        if self._open and self._cur:
            self.on_message_after_gap(recv_ts_ns, self._cur)

    def malformed(self, ts_ns: int, detail: str) -> None:
        self.counters.malformed += 1
        self._events.append(Event(self.exchange, "*", "*", ts_ns, ts_ns, "malformed", detail))

    def pending_snapshots(self) -> list[str]:
        """Our symbols whose book waits for a REST depth snapshot."""
        return []

    def resubscribe(self) -> list[str]:
        """Our symbols whose book needs the venue to send a fresh snapshot."""
        return []

    # Venues whose missed trades can be fetched back set this and implement
    # pending_backfills(now_ns) and `async fetch_backfill(http, rest_url, hole) -> bytes`
    # (the answer, fed back as a message). See binance_backfill.
    backfills_trades = False

    def pending_backfills(self, now_ns: int) -> list:
        """Missed trade ranges ready to be fetched from the venue's REST history."""
        return []

    def resume_state(self) -> dict:
        """JSON-able state a restarted collector passes to `resume` (default: none)."""
        return {}

    def resume(self, state: dict) -> None:
        """Continue from a previous run's `resume_state`."""

    def resume_rows(self, kind: str, table: pa.Table) -> None:
        """Rows durable after that state (spooled after its last commit): fold them in."""

    def book_top(self, symbol: str) -> np.ndarray | None:
        """The current top-N of a synced book as a (4, depth) array, or None."""
        book = self.books[self.canonical(symbol)]
        if not book.synced:
            return None
        return np.array(book.top(self.depth), dtype=np.float64).reshape(4, self.depth)

    def sample_books(self, ts_ns: int) -> int:
        """Add a book row at ts_ns for every synced book (on demand); returns rows added."""
        n = 0
        for s, book in self.books.items():
            if self.emit_book and book.synced and (book.bids or book.asks):
                self._book_row(s, ts_ns, book)
                n += 1
        return n

    def on_disconnect(
        self,
        ts_ns: int,
        reason: str,
        streams: list[str] | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        """A connection carrying `streams` (feeds, default all) of `symbols` (default
        all) dropped at ts_ns: their data has a gap from ts_ns, and their books go out of
        sync until rebuilt."""
        self.counters.disconnects += 1
        streams = list(streams or self.streams)
        if "book" in streams:
            streams = [s for s in streams if s not in BOOK_KINDS] + list(self.book_kinds)
        book_lost = any(s in BOOK_KINDS for s in streams)
        for s in symbols or self.symbols:
            if book_lost:
                self.books[s].synced = False
                self.books[s].clear()
            for stream in streams:
                self._open_gap(s, stream, ts_ns, reason)

    def on_message_after_gap(self, recv_ts_ns: int, stream: str) -> None:
        """A `stream` message arrived: its open gaps end (book gaps end when rebuilt)."""
        if stream in BOOK_KINDS:
            return
        for key in [k for k in self._open if k[1] == stream]:
            self._close_gap(key[0], key[1], recv_ts_ns)

    def drain_events(self, close_open_at: int | None = None) -> list[Event]:
        """Events since the last call; with close_open_at, open gaps end there (shutdown)."""
        if close_open_at is not None:
            for s, stream in list(self._open):
                self._close_gap(s, stream, close_open_at)
        out, self._events = self._events, []
        return out

    def drain(self) -> dict[str, pa.Table]:
        """The normalized records gathered since the last call, one table per kind."""
        out: dict[str, pa.Table] = {}
        names = self.symbols
        t = self._trade
        if t[0]:
            out["trade"] = _table(
                "trade",
                {
                    "ts": _arrow(t[0], pa.int64()),
                    "ts_local": _arrow(t[6], pa.int64()),
                    "exchange": _labels(np.zeros(len(t[0]), np.int32), [self.exchange]),
                    "symbol": _labels(t[1], names),
                    "side": _arrow(t[2], pa.int8()),
                    "price": _arrow(t[3], pa.float64()),
                    "qty": _arrow(t[4], pa.float64()),
                    "trade_id": pa.array(t[5], pa.string()),
                },
            )
        lq = self._liq
        if lq[0]:
            out["liquidation"] = _table(
                "liquidation",
                {
                    "ts": _arrow(lq[0], pa.int64()),
                    "ts_local": _arrow(lq[5], pa.int64()),
                    "exchange": _labels(np.zeros(len(lq[0]), np.int32), [self.exchange]),
                    "symbol": _labels(lq[1], names),
                    "side": _arrow(lq[2], pa.int8()),
                    "price": _arrow(lq[3], pa.float64()),
                    "qty": _arrow(lq[4], pa.float64()),
                },
            )
        f = self._fund
        if f[0]:
            out["funding"] = pa.Table.from_arrays(
                [
                    _arrow(f[0], pa.int64()),
                    _labels(np.zeros(len(f[0]), np.int32), [self.exchange]),
                    _labels(f[1], names),
                    *(_arrow(f[i], pa.float64()) for i in (2, 3, 4, 5)),
                    _arrow(f[6], pa.int64()),
                    pa.array(np.frombuffer(f[7], dtype=np.int8) != 0),
                ],
                schema=schema_for("funding"),
            )
        b = self._book
        if b[0]:
            levels = np.array(b[2], dtype=np.float64)  # (rows, 4 * depth)
            out["book"] = pa.Table.from_arrays(
                [
                    pa.array(b[0], pa.int64()),
                    _labels(np.zeros(len(b[0]), np.int32), [self.exchange]),
                    _labels(b[1], names),
                ]
                + [pa.array(levels[:, i]) for i in range(levels.shape[1])],
                schema=book_schema(self.depth),
            )
        if self._dmsg[0]:
            out["depth"] = self._depth_table()
        for kind, table in out.items():
            self.counters.rows[kind] = self.counters.rows.get(kind, 0) + table.num_rows
        self._reset_buffers()
        self.first_recv_ns = None
        return out

    def _depth_table(self) -> pa.Table:
        """Depth rows from the per-message and per-level buffers: a message's scalars
        (times, symbol, seq, flags) repeat over its levels, bids (side 1) before asks."""
        ts, ts_local, code, seq, flags, n_bid, n_ask = (
            np.frombuffer(c, dtype=_NP[c.typecode]) for c in self._dmsg
        )
        counts = np.empty(2 * len(ts), dtype=np.int64)
        counts[0::2] = n_bid
        counts[1::2] = n_ask
        per_msg = n_bid.astype(np.int64) + n_ask
        side = np.repeat(np.tile(np.array([1, -1], dtype=np.int8), len(ts)), counts)
        return _table(
            "depth",
            {
                "ts": pa.array(np.repeat(ts, per_msg)),
                "ts_local": pa.array(np.repeat(ts_local, per_msg)),
                "exchange": _labels(np.zeros(len(side), np.int32), [self.exchange]),
                "symbol": _labels(np.repeat(code, per_msg), self.symbols),
                "side": pa.array(side),
                "price": _arrow(self._dpx, pa.float64()),
                "qty": _arrow(self._dqty, pa.float64()),
                "seq": pa.array(np.repeat(seq, per_msg)),
                "flags": pa.array(np.repeat(flags, per_msg).astype(np.uint8)),
            },
        )

    def pending_rows(self) -> int:
        return (
            len(self._trade[0])
            + len(self._liq[0])
            + len(self._fund[0])
            + len(self._book[0])
            + len(self._dpx)
        )

    # ------------------------------------------------------------ helpers for venues
    def _reset_buffers(self) -> None:
        # Typed column buffers per kind (array.array: contiguous C values, amortized
        # growth): an append stores the C value, and a drain hands the memory to Arrow
        # without converting Python objects one by one (several times cheaper than
        # lists of floats). Trade ids stay str; book rows are sampled, not per message.
        # ts sym side price qty trade_id ts_local
        self._trade = (_col("q"), _col("i"), _col("b"), _col("d"), _col("d"), [], _col("q"))
        # ts sym side price qty ts_local
        self._liq = (_col("q"), _col("i"), _col("b"), _col("d"), _col("d"), _col("q"))
        # ts sym rate interval_h mark index next_ts settled
        self._fund = (
            _col("q"),
            _col("i"),
            _col("d"),
            _col("d"),
            _col("d"),
            _col("d"),
            _col("q"),
            _col("b"),
        )
        self._book: tuple[list, ...] = ([], [], [])  # ts, sym, levels
        # depth: per message ts ts_local sym seq flags n_bid n_ask; per level price, qty
        self._dmsg = (_col("q"), _col("q"), _col("i"), _col("q"), _col("b"), _col("i"), _col("i"))
        self._dpx = _col("d")
        self._dqty = _col("d")

    def _seen(self, stream: str) -> None:
        self._cur = stream
        c = self.counters.by_stream
        c[stream] = c.get(stream, 0) + 1

    def _trade_row(self, ts: int, sym: str, side: int, px: float, qty: float, tid: str) -> None:
        t = self._trade
        t[0].append(ts)
        t[1].append(self.code[sym])
        t[2].append(side)
        t[3].append(px)
        t[4].append(qty)
        t[5].append(tid)
        t[6].append(self._recv)
        if ts > self.max_venue_ts_ns:
            self.max_venue_ts_ns = ts

    def _liq_row(self, ts: int, sym: str, side: int, px: float, qty: float) -> None:
        lq = self._liq
        lq[0].append(ts)
        lq[1].append(self.code[sym])
        lq[2].append(side)
        lq[3].append(px)
        lq[4].append(qty)
        lq[5].append(self._recv)

    def _fund_row(
        self,
        ts: int,
        sym: str,
        rate: float,
        interval_h: float,
        mark: float,
        index: float,
        next_ts: int,
        settled: bool,
    ) -> None:
        f = self._fund
        for col, v in zip(
            f, (ts, self.code[sym], rate, interval_h, mark, index, next_ts, settled), strict=True
        ):
            col.append(v)

    def _book_row(self, sym: str, ts: int, book: Book) -> None:
        b = self._book
        b[0].append(ts)
        b[1].append(self.code[sym])
        b[2].append(book.top(self.depth))

    def _clock(self, sym: str, ts_ns: int) -> None:
        """Venue time reached ts_ns for sym's book: add rows for the grid points passed."""
        nxt = self.next_sample[sym]
        if ts_ns < nxt:
            return
        book = self.books[sym]
        iv = self.book_interval_ns
        if self.emit_book and book.synced and nxt and (book.bids or book.asks):
            last = min(ts_ns // iv * iv, nxt + (MAX_FILL_ROWS - 1) * iv)
            for g in range(nxt, last + 1, iv):
                self._book_row(sym, g, book)
        self.next_sample[sym] = (ts_ns // iv + 1) * iv
        if ts_ns > self.max_venue_ts_ns:
            self.max_venue_ts_ns = ts_ns

    def _synced(self, sym: str, ts_ns: int) -> None:
        """sym's book was (re)built with venue time ts_ns: start sampling, close its gap."""
        book = self.books[sym]
        book.synced = True
        self.next_sample[sym] = (ts_ns // self.book_interval_ns + 1) * self.book_interval_ns
        for kind in self.book_kinds:
            self._close_gap(sym, kind, ts_ns)

    def _lost(self, sym: str, ts_ns: int, reason: str, detail: str = "") -> None:
        """sym's book broke its sequence rule: count, open a gap, wait for a rebuild."""
        book = self.books[sym]
        self.counters.gaps += 1
        self.counters.resyncs += 1
        book.synced = False
        book.clear()
        for kind in self.book_kinds:
            self._open_gap(sym, kind, ts_ns, reason, detail)

    # ------------------------------------------------------------ depth rows
    def _depth_diff(self, sym: str, ts: int, seq: int, book: Book, bids: list, asks: list) -> None:
        """Apply one diff message to `book`, storing each level as a depth row."""
        m = self._dmsg
        m[0].append(ts)
        m[1].append(self._recv)
        m[2].append(self.code[sym])
        m[3].append(seq)
        m[4].append(0)
        m[5].append(len(bids))
        m[6].append(len(asks))
        book.apply_recorded(bids, asks, self._dpx, self._dqty)

    def _depth_snapshot(
        self, sym: str, ts: int, seq: int, book: Book, resync: bool, recv: int = -1
    ) -> None:
        """Store `book` as it is now as a snapshot run (replaying it clears the book
        first); `resync`: it rebuilds a book that was not known (start, gap, reconnect)."""
        m = self._dmsg
        m[0].append(ts)
        m[1].append(self._recv if recv < 0 else recv)
        m[2].append(self.code[sym])
        m[3].append(seq)
        m[4].append(DEPTH_SNAPSHOT | DEPTH_RESYNC if resync else DEPTH_SNAPSHOT)
        m[5].append(len(book.bids))
        m[6].append(len(book.asks))
        # Best first on each side: the run reads like a venue snapshot.
        for levels, prices in (
            (book.bids, sorted(book.bids, reverse=True)),
            (book.asks, sorted(book.asks)),
        ):
            self._dpx.extend(prices)
            self._dqty.extend([levels[p] for p in prices])

    def _open_gap(self, sym: str, stream: str, ts_ns: int, reason: str, detail: str = "") -> None:
        key = (sym, stream)
        if key not in self._open:
            self._open[key] = Event(self.exchange, sym, stream, ts_ns, None, reason, detail)

    def _close_gap(self, sym: str, stream: str, ts_ns: int) -> None:
        ev = self._open.pop((sym, stream), None)
        if ev is not None:
            ev.end_ns = max(ts_ns, ev.start_ns)
            self._events.append(ev)


def _table(kind: str, columns: dict[str, pa.Array]) -> pa.Table:
    """A kind's table from named columns, in its schema's order (a column the schema
    does not have, e.g. ts_local before the stores know it, is left out)."""
    schema = schema_for(kind)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def ms_ns(ms: int | str) -> int:
    """Venue milliseconds to our ns (integers stay exact)."""
    return int(ms) * 1_000_000


def book_column_names(depth: int) -> list[str]:
    return book_columns(depth)
