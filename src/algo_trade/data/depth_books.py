"""Books from `depth` events: stream depth rows from a store through the replay kernel
(`book_nb`) and get `book` rows, on a time grid or after every venue message.

    for table in books_from_depth(store, "binance", "BTC-USDT-PERP", start, end,
                                  interval_ns=10_000_000):
        ...  # book-schema tables, in ts order

Memory is bounded: depth rows stream in store batches, the book lives on a price grid
sized to the prices seen, and book rows leave in batches of `OUT_ROWS`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from algo_trade.data import book_nb as K
from algo_trade.errors import DataError
from algo_trade.schema import DEFAULT_DEPTH, book_schema, label_array
from algo_trade.store.base import DEFAULT_LOOKBACK_NS, Store, last_snapshot_at_or_before
from algo_trade.timeutil import parse_range_ns

OUT_ROWS = 16_384  # book rows per output batch (~10 MB at 20 levels)
MAX_FILL = 3600  # grid rows emitted for one silent stretch (as the collector)
MAX_GRID = 1 << 26  # ticks per side (512 MB of sizes): beyond it prices are not a book
_COLS = ("ts", "side", "price", "qty", "seq", "flags")


class BookReplayer:
    """Replay state of one book: feed depth rows in read order, get book rows.

    interval_ns > 0: rows on that grid (row g = the book after every update with ts < g);
    0: one row after every venue message (rows sharing (ts, seq)).
    """

    def __init__(
        self, depth: int = DEFAULT_DEPTH, interval_ns: int = 0, max_fill: int = MAX_FILL
    ) -> None:
        if depth < 1:
            raise DataError(f"book depth must be at least 1, got {depth}")
        if interval_ns < 0:
            raise DataError("the book interval must be positive (or 0: every update)")
        self.depth = depth
        self.interval = int(interval_ns)
        self.max_fill = int(max_fill)
        self.state = np.zeros(K.N_STATE, dtype=np.int64)
        self.state[K.S_BEST_BID] = self.state[K.S_BEST_ASK] = -1
        self.k: int | None = None  # decimal scale of prices: tick = price * 10**k
        self.bid_q = np.zeros(0)
        self.ask_q = np.zeros(0)
        self.bid_bits = np.zeros(0, dtype=np.uint64)
        self.ask_bits = np.zeros(0, dtype=np.uint64)
        self._out_ts = np.empty(OUT_ROWS + self.max_fill + 2, dtype=np.int64)
        self._out = np.empty((OUT_ROWS + self.max_fill + 2, 4, depth), dtype=np.float64)
        self._held: dict[str, np.ndarray] | None = None  # the last message of a batch

    @property
    def live(self) -> bool:
        return bool(self.state[K.S_LIVE])

    # ---------------------------------------------------------------- feeding
    def feed(
        self,
        cols: dict[str, np.ndarray],
        emit_from: int = 0,
        emit_until: int = 2**63 - 1,
        final: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Apply a batch of depth rows (read order; arrays by column name). Yields
        (ts int64[m], book float64[m, 4, L]) batches. A batch's last message is held back
        until the next batch (it may continue there) unless `final`."""
        if self._held is not None:
            cols = {c: np.concatenate((self._held[c], cols[c])) for c in _COLS}
            self._held = None
        n = len(cols["ts"])
        if n == 0:
            return
        if not final:
            cut = _last_message_start(cols["ts"], cols["seq"], cols["flags"])
            self._held = {c: cols[c][cut:] for c in _COLS}
            cols = {c: cols[c][:cut] for c in _COLS}
            if cut == 0:
                return
        yield from self._run(cols, emit_from, emit_until, -1)

    def finish(
        self, horizon: int, emit_from: int = 0, emit_until: int = 2**63 - 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Apply the held message, then (grid mode) emit the grid points up to `horizon`,
        the time the stream is known to reach (the next row's ts; -1: no further rows)."""
        if self._held is not None:
            held, self._held = self._held, None
            yield from self._run(held, emit_from, emit_until, -1)
        empty = {c: np.zeros(0, dtype=np.int64) for c in _COLS}
        empty["price"] = empty["qty"] = np.zeros(0)
        empty["side"] = np.zeros(0, dtype=np.int8)
        empty["flags"] = np.zeros(0, dtype=np.uint8)
        yield from self._run(empty, emit_from, emit_until, horizon)

    def _run(self, cols, emit_from, emit_until, horizon):
        price = np.ascontiguousarray(cols["price"], dtype=np.float64)
        tick = self._ticks(price, cols["side"])
        args = (
            np.ascontiguousarray(cols["ts"], dtype=np.int64),
            tick,
            np.ascontiguousarray(cols["side"], dtype=np.int8),
            np.ascontiguousarray(cols["qty"], dtype=np.float64),
            np.ascontiguousarray(cols["seq"], dtype=np.int64),
            np.ascontiguousarray(cols["flags"], dtype=np.uint8),
        )
        i = 0
        n = len(tick)
        while True:
            i, m, status = K.replay_nb(
                *args, i, self.state, self.bid_q, self.bid_bits, self.ask_q, self.ask_bits,
                float(10**self.k if self.k is not None else 1), self.interval, emit_from,
                emit_until, horizon, self.max_fill, self._out_ts, self._out,
            )  # fmt: skip
            if m:
                yield self._out_ts[:m].copy(), self._out[:m].copy()
            if status == K.ST_DONE:
                return
            if status == K.ST_REGRID:
                self._regrid(tick[i:n], args[2][i:n])

    # ---------------------------------------------------------------- price grid
    def _ticks(self, price: np.ndarray, side: np.ndarray) -> np.ndarray:
        if len(price) == 0:
            return np.zeros(0, dtype=np.int64)
        k0 = self.k if self.k is not None else 0
        for k in range(k0, 11):
            tick, exact = K.to_ticks_nb(price, float(10**k))
            if exact:
                break
        else:
            raise DataError(
                "depth prices are not decimals with at most 10 digits after the point; "
                "they cannot be placed on a tick grid"
            )
        if self.k is not None and k != self.k:
            self._rescale(k)
        self.k = k
        return tick

    def _rescale(self, k: int) -> None:
        """Finer decimal scale: existing levels move to the new ticks."""
        f = 10 ** (k - self.k)
        self._regrid(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8), factor=f)

    def _regrid(self, tick: np.ndarray, side: np.ndarray, factor: int = 1) -> None:
        st = self.state
        old = {
            1: K.levels_nb(self.bid_q, self.bid_bits, st[K.S_BID_BASE]),
            -1: K.levels_nb(self.ask_q, self.ask_bits, st[K.S_ASK_BASE]),
        }
        for s, name in ((1, "bid"), (-1, "ask")):
            lt, ls = old[s]
            lt = lt * factor
            want = tick[side == s]
            lo_hi = [x for x in (lt, want) if len(x)]
            if not lo_hi:
                lo, hi = 0, 0
            else:
                lo = min(int(x.min()) for x in lo_hi)
                hi = max(int(x.max()) for x in lo_hi)
            span = hi - lo + 1
            margin = max(4096, min(span // 4, 1 << 20))
            size = span + 2 * margin
            size = -(-size // 64) * 64
            if size > MAX_GRID:
                raise DataError(
                    f"depth {name} prices span {span:,} ticks (from {lo / 10**self.k:g} to "
                    f"{hi / 10**self.k:g}): too wide for one book; filter out the far levels"
                )
            base = lo - margin
            q = np.zeros(size)
            bits = np.zeros(size // 64, dtype=np.uint64)
            g = lt - base
            q[g] = ls
            np.bitwise_or.at(bits, g >> 6, np.left_shift(np.uint64(1), (g & 63).astype(np.uint64)))
            if s == 1:
                self.bid_q, self.bid_bits = q, bits
                st[K.S_BID_BASE] = base
                st[K.S_BEST_BID] = int(g.max()) if len(g) else -1
            else:
                self.ask_q, self.ask_bits = q, bits
                st[K.S_ASK_BASE] = base
                st[K.S_BEST_ASK] = int(g.min()) if len(g) else -1


def _last_message_start(ts: np.ndarray, seq: np.ndarray, flags: np.ndarray) -> int:
    """Index of the first row of the batch's last message (rows sharing ts, seq, kind)."""
    n = len(ts)
    j = n - 1
    snap = flags & K.SNAPSHOT
    same = (ts == ts[j]) & (seq == seq[j]) & (snap == snap[j])
    # rows of the last message are a suffix
    k = j
    while k > 0 and same[k - 1]:
        k -= 1
    return k


def book_table(
    ts: np.ndarray, book: np.ndarray, exchange: str, symbol: str, depth: int
) -> pa.Table:
    """Kernel output (m, 4, L) as a `book` table."""
    n = len(ts)
    cols = [pa.array(ts), label_array(exchange, n), label_array(symbol, n)]
    flat = np.ascontiguousarray(book.transpose(1, 2, 0)).reshape(4 * depth, n)
    cols += [pa.array(flat[j]) for j in range(4 * depth)]
    return pa.Table.from_arrays(cols, schema=book_schema(depth))


def _conflate(ts: np.ndarray, book: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last row of each ts (every-update rows of messages sharing a ts)."""
    if len(ts) < 2:
        return ts, book
    keep = np.ones(len(ts), dtype=bool)
    keep[:-1] = ts[1:] != ts[:-1]
    return ts[keep], book[keep]


def books_from_depth(
    store: Store,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    interval_ns: int = 0,
    depth: int = DEFAULT_DEPTH,
    lookback_ns: int = DEFAULT_LOOKBACK_NS,
    conflate: bool = True,
    stats: dict[str, int] | None = None,
) -> Iterator[pa.Table]:
    """Book rows with start <= ts < end rebuilt from stored depth rows, in batches.

    Replay starts at the newest snapshot run at or before `start` (looking back at most
    `lookback_ns`); with none, no book is emitted until a snapshot run arrives. Every-update
    mode (interval_ns=0) keeps the last book of messages that share a ts (`conflate`),
    since `book` rows are keyed by ts.
    """
    s, e = parse_range_ns(start, end)
    snap = last_snapshot_at_or_before(store, exchange, symbol, s, lookback_ns)
    replay_from = snap if snap is not None else s
    rep = BookReplayer(depth, interval_ns)
    horizon = -1
    if interval_ns > 0:
        far = e + MAX_FILL * interval_ns
        nxt = list(store.scan("depth", exchange, symbol, e, far, columns=["ts"], limit=1))
        horizon = int(nxt[0].column("ts")[0].as_py()) if nxt and nxt[0].num_rows else -1

    carry: tuple[np.ndarray, np.ndarray] | None = None

    def out(parts):
        nonlocal carry
        for ts, book in parts:
            if conflate and interval_ns == 0:
                if carry is not None:
                    ts = np.concatenate((carry[0], ts))
                    book = np.concatenate((carry[1], book))
                ts, book = _conflate(ts, book)
                # the last row may share its ts with the next batch's first
                carry = (ts[-1:], book[-1:])
                ts, book = ts[:-1], book[:-1]
            if len(ts):
                yield book_table(ts, book, exchange, symbol, depth)

    for batch in store.scan("depth", exchange, symbol, replay_from, e, columns=list(_COLS)):
        if stats is not None:
            stats["depth_rows"] = stats.get("depth_rows", 0) + batch.num_rows
        cols = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in _COLS}
        yield from out(rep.feed(cols, s, e))
    yield from out(rep.finish(horizon, s, e))
    if carry is not None and len(carry[0]):
        yield book_table(carry[0], carry[1], exchange, symbol, depth)


def books_from_table(
    table: pa.Table,
    interval_ns: int = 0,
    depth: int = DEFAULT_DEPTH,
    start: int | None = None,
    end: int | None = None,
    conflate: bool = True,
) -> Iterator[pa.Table]:
    """Book rows from a validated depth table (read order, one exchange and symbol)."""
    if table.num_rows == 0:
        return
    exchange = str(table.column("exchange")[0].as_py())
    symbol = str(table.column("symbol")[0].as_py())
    rep = BookReplayer(depth, interval_ns)
    lo = start if start is not None else -(2**63)
    hi = end if end is not None else 2**63 - 1
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in _COLS}
    parts = list(rep.feed(cols, lo, hi, final=True))
    ts = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    book = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 4, depth))
    if conflate and interval_ns == 0:
        ts, book = _conflate(ts, book)
    for a in range(0, len(ts), OUT_ROWS):
        yield book_table(ts[a : a + OUT_ROWS], book[a : a + OUT_ROWS], exchange, symbol, depth)
