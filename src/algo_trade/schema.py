"""Record kinds: one normalized Arrow schema each, validation at the boundary, the symbol rule.

Every table that enters a store passes `validate`, which casts columns to the kind's
schema and rejects bad rows with a count per reason (never stored silently).

Symbol rule: ``BASE-QUOTE-PERP`` for perpetual swaps (``BTC-USDT-PERP`` is linear,
margined in USDT; ``BTC-USD-PERP`` is inverse), ``BASE-QUOTE`` for spot, and
``BASE-QUOTE-YYMMDD`` for dated futures. Upper-case letters and digits only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from algo_trade.data import depth_nb
from algo_trade.errors import DataError

KINDS = ("book", "funding", "liquidation", "trade", "bar", "depth")
DEFAULT_DEPTH = 20
LABEL = pa.dictionary(pa.int32(), pa.string())  # exchange and symbol: few distinct values

_COMMON = [
    pa.field("ts", pa.int64()),  # ns since epoch, UTC
    pa.field("exchange", LABEL),
    pa.field("symbol", LABEL),
]

FUNDING = pa.schema(
    _COMMON
    + [
        pa.field("rate", pa.float64()),  # fraction per interval: 0.0001 = 1 bp
        pa.field("interval_h", pa.float64()),
        pa.field("mark_px", pa.float64()),
        pa.field("index_px", pa.float64()),
        pa.field("next_ts", pa.int64()),  # next settlement time, ns
        pa.field("settled", pa.bool_()),  # True: a settlement at ts; False: predicted rate
    ]
)
LIQUIDATION = pa.schema(
    _COMMON
    + [
        pa.field("side", pa.int8()),  # side of the forced order: -1 sell (a long liquidated), 1 buy
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
        pa.field("ts_local", pa.int64()),  # receipt time, ns; null for data from before it existed
    ]
)
TRADE = pa.schema(
    _COMMON
    + [
        pa.field("side", pa.int8()),  # taker side: 1 buy, -1 sell
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
        pa.field("trade_id", pa.string()),
        pa.field("ts_local", pa.int64()),  # receipt time, ns; null for data from before it existed
    ]
)
# One row per price-level change. Read order (total, equal to the venue's order): ts, seq,
# snapshot rows before diff rows, side, price -- see `depth_order`.
DEPTH = pa.schema(
    [
        pa.field("ts", pa.int64()),  # exchange event time, ns
        pa.field("ts_local", pa.int64()),  # receipt time, ns (our clock)
        pa.field("exchange", LABEL),
        pa.field("symbol", LABEL),
        pa.field("side", pa.int8()),  # 1 bid, -1 ask
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),  # new total size at the price; 0 deletes the level
        pa.field("seq", pa.int64()),  # venue update id (Binance/Bybit `u`); -1 where none
        pa.field("flags", pa.uint8()),  # DEPTH_* bits
    ]
)
# flags bits of a depth row. A snapshot run = consecutive DEPTH_SNAPSHOT rows with the same
# (ts, seq); replaying it clears that book first, so row order inside a message is free.
DEPTH_SNAPSHOT = 1
# The snapshot run rebuilds a book after a gap (resync): the book before it is not known
# from the previous row on, so book rows are not sampled across the gap. Writers stamp a
# snapshot run with a ts no later than the first diff applied on top of it.
DEPTH_RESYNC = 2
# Columns that may be absent from an input table (and from files written before they
# existed): they read as null.
OPTIONAL = {"trade": ("ts_local",), "liquidation": ("ts_local",)}
BAR = pa.schema(
    _COMMON + [pa.field(name, pa.float64()) for name in ("open", "high", "low", "close", "volume")]
)

# Columns that identify a record within one (kind, exchange, symbol); duplicates by key are dropped.
KEYS: dict[str, tuple[str, ...]] = {
    "book": ("ts",),
    "funding": ("ts", "settled"),
    "bar": ("ts",),
    "trade": ("trade_id",),
    "liquidation": ("ts", "side", "price", "qty"),
    # one row per (message, level); flags keeps a snapshot row apart from a diff row
    "depth": ("ts", "seq", "flags", "side", "price"),
}

# One naming rule for both stores, checked before anything is written. Patterns are used
# with fullmatch (`$` would let a trailing newline through: "BTC-USDT-PERP\n" is no symbol).
SYMBOL_RE = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}(-PERP|-\d{6})?")
EXCHANGE_RE = re.compile(r"[a-z0-9_]{1,32}")


def book_columns(depth: int = DEFAULT_DEPTH) -> list[str]:
    """Level columns of a book, best level first: bid_px_0.., bid_sz_0.., ask_px_0.., ask_sz_0.."""
    return [
        f"{side}_{what}_{i}"
        for side in ("bid", "ask")
        for what in ("px", "sz")
        for i in range(depth)
    ]


def book_schema(depth: int = DEFAULT_DEPTH) -> pa.Schema:
    """Schema of a `book` table with `depth` levels per side (NaN-padded)."""
    if depth < 1:
        raise DataError(f"book depth must be at least 1, got {depth}")
    return pa.schema(_COMMON + [pa.field(c, pa.float64()) for c in book_columns(depth)])


def book_depth(schema: pa.Schema) -> int:
    """Number of levels per side in a book schema."""
    return sum(1 for n in schema.names if n.startswith("bid_px_"))


def schema_for(kind: str, depth: int = DEFAULT_DEPTH) -> pa.Schema:
    """The Arrow schema of a record kind."""
    check_kind(kind)
    if kind == "book":
        return book_schema(depth)
    return {
        "funding": FUNDING,
        "liquidation": LIQUIDATION,
        "trade": TRADE,
        "bar": BAR,
        "depth": DEPTH,
    }[kind]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise DataError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    return kind


def make_symbol(base: str, quote: str, kind: str = "PERP") -> str:
    """Our symbol for an instrument: make_symbol('btc', 'usdt') == 'BTC-USDT-PERP'."""
    sym = f"{base}-{quote}".upper() + (f"-{kind.upper()}" if kind else "")
    check_symbol(sym)
    return sym


def check_symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise DataError(
            f"symbol {symbol!r} does not follow the rule BASE-QUOTE-PERP (e.g. BTC-USDT-PERP)"
        )
    return symbol


def check_exchange(exchange: str) -> str:
    """Exchange names: 1-32 lower-case letters, digits and _ (the same in every store)."""
    if not isinstance(exchange, str) or not EXCHANGE_RE.fullmatch(exchange):
        raise DataError(
            f"exchange name {exchange!r} is not allowed: use 1-32 lower-case letters, digits and _ "
            "(e.g. binance)"
        )
    return exchange


@dataclass
class Validated:
    """A table cast to its kind's schema, with the rows that failed a rule removed."""

    table: pa.Table
    rejected: dict[str, int] = field(default_factory=dict)
    # reason -> positions (in the input table) of the rows it removed, for line-level reports
    rows: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())


def label_array(value: str, n: int) -> pa.DictionaryArray:
    """A column of n copies of one string, cheap (dictionary-encoded)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _cast_column(name: str, col: pa.ChunkedArray, typ: pa.DataType) -> pa.ChunkedArray:
    if col.type == typ:
        return col
    try:
        if pa.types.is_dictionary(typ):
            if pa.types.is_dictionary(col.type):
                return col.cast(typ)
            return pc.dictionary_encode(col.cast(pa.string())).cast(typ)
        if name in ("ts", "next_ts") and pa.types.is_floating(col.type):
            # NaN timestamps become nulls, rejected below as "missing ts".
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
            return pc.cast(col, typ, safe=False)
        if pa.types.is_timestamp(col.type) and name in ("ts", "next_ts"):
            return pc.cast(pc.cast(col, pa.timestamp("ns", tz=col.type.tz)), pa.int64())
        if typ == pa.string():
            return col.cast(pa.string())
        return col.cast(typ)  # safe cast: lossy conversions raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column {name!r} has type {col.type}, expected {typ}: {exc}") from None


# No real price or size comes near this; +inf, 1e308 and the like are typing or parsing
# errors that would overflow the lake's scaled integers and every sum downstream.
MAX_VALUE = 1e15


@njit(cache=True, nogil=True)
def _level_flags_nb(px, sz, neg, unsized, huge):  # pragma: no cover - compiled
    """px, sz: float64[n] one book level; sets neg[i] (price <= 0 or size < 0),
    unsized[i] (exactly one of price/size is NaN) and huge[i] (price or size infinite or
    above MAX_VALUE). One pass instead of eight NumPy ops."""
    for i in range(px.shape[0]):
        p = px[i]
        q = sz[i]
        neg[i] |= (p <= 0.0) or (q < 0.0)
        unsized[i] |= (p != p) != (q != q)
        huge[i] |= (p > MAX_VALUE) or (q > MAX_VALUE)


def _too_big(*arrays: np.ndarray) -> np.ndarray:
    """Rows where any value is infinite or beyond MAX_VALUE in size (NaN is not)."""
    out = np.zeros(len(arrays[0]), dtype=bool)
    for a in arrays:
        out |= np.abs(a) > MAX_VALUE
    return out


def _np(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_floating(col.type):
        return col.to_numpy()  # nulls become NaN
    return col.to_numpy(zero_copy_only=False)


_HUGE = "infinite or absurdly large value (above 1e15)"

# live(exchange, symbol, ts) -> True when the store already holds that depth stream before
# ts, so a batch may start with diffs continuing it.
LiveFn = Callable[[str, str, int], bool]


def validate(
    kind: str, table: pa.Table, depth: int | None = None, live: LiveFn | None = None
) -> Validated:
    """Cast `table` to the schema of `kind` and drop rows that break a rule.

    Raises DataError for missing columns or types that cannot be cast. Row rules
    (missing ts, crossed book, negative price or size, ...) remove rows and count them.
    Columns in `OPTIONAL` may be absent (they become null). A `depth` table comes back in
    read order (`depth_nb.depth_order`); `live` says which streams continue stored ones.
    """
    check_kind(kind)
    if kind == "book":
        depth = depth or book_depth(table.schema) or DEFAULT_DEPTH
    schema = schema_for(kind, depth or DEFAULT_DEPTH)
    present = set(table.column_names)  # a set: books have 100+ columns
    for name in OPTIONAL.get(kind, ()):
        if name not in present:
            table = table.append_column(
                schema.field(name), pa.nulls(table.num_rows, schema.field(name).type)
            )
            present.add(name)
    missing = [n for n in schema.names if n not in present]
    if missing:
        raise DataError(
            f"{kind} table is missing columns {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    cols = [_cast_column(f.name, table.column(f.name), f.type) for f in schema]
    table = pa.Table.from_arrays(cols, schema=schema)
    n = table.num_rows
    rejected: dict[str, int] = {}
    rows: dict[str, np.ndarray] = {}
    bad = np.zeros(n, dtype=bool)

    def rule(reason: str, mask: np.ndarray) -> None:
        nonlocal bad
        if not mask.any():  # the common case: one pass, not four
            return
        new = mask & ~bad
        count = int(new.sum())
        if count:
            rejected[reason] = rejected.get(reason, 0) + count
            rows[reason] = np.flatnonzero(new)
            bad |= new

    if n == 0:
        return Validated(table, rejected, rows)
    rule("missing ts", table.column("ts").is_null().to_numpy(zero_copy_only=False))
    rule(
        "missing exchange or symbol",
        pc.or_(table.column("exchange").is_null(), table.column("symbol").is_null()).to_numpy(
            zero_copy_only=False
        ),
    )
    syms = table.column("symbol").combine_chunks()
    if isinstance(syms, pa.DictionaryArray) and len(syms.dictionary):
        ok_dict = np.array(
            [bool(SYMBOL_RE.fullmatch(s or "")) for s in syms.dictionary.to_pylist()]
        )
        idx = syms.indices.fill_null(0).to_numpy(zero_copy_only=False)
        rule("symbol not normalized (BASE-QUOTE-PERP)", ~ok_dict[idx])
    exs = table.column("exchange").combine_chunks()
    if isinstance(exs, pa.DictionaryArray) and len(exs.dictionary):
        ok_ex = np.array([bool(EXCHANGE_RE.fullmatch(s or "")) for s in exs.dictionary.to_pylist()])
        idx = exs.indices.fill_null(0).to_numpy(zero_copy_only=False)
        rule("exchange name not allowed (lower-case letters, digits, _)", ~ok_ex[idx])

    if kind == "book":
        with np.errstate(invalid="ignore"):
            bid0, ask0 = _np(table, "bid_px_0"), _np(table, "ask_px_0")
            rule("missing best bid or ask", np.isnan(bid0) | np.isnan(ask0))
            rule("crossed book (best bid >= best ask)", bid0 >= ask0)
            neg = np.zeros(n, dtype=bool)
            unsized = np.zeros(n, dtype=bool)
            huge = np.zeros(n, dtype=bool)
            for side in ("bid", "ask"):
                for i in range(depth or DEFAULT_DEPTH):
                    px, sz = _np(table, f"{side}_px_{i}"), _np(table, f"{side}_sz_{i}")
                    _level_flags_nb(px, sz, neg, unsized, huge)
            rule(_HUGE, huge)
            rule("negative or zero price, or negative size", neg)
            rule("level with a price but no size (or the reverse)", unsized)
    elif kind in ("trade", "liquidation"):
        with np.errstate(invalid="ignore"):
            price, qty = _np(table, "price"), _np(table, "qty")
            rule("missing price or qty", np.isnan(price) | np.isnan(qty))
            rule(_HUGE, _too_big(price, qty))
            rule("negative or zero price or qty", (price <= 0) | (qty <= 0))
        side = table.column("side").to_numpy(zero_copy_only=False)
        rule("side must be 1 (buy) or -1 (sell)", ~np.isin(side, (1, -1)))
        if kind == "trade":
            rule(
                "missing trade_id",
                table.column("trade_id").is_null().to_numpy(zero_copy_only=False),
            )
    elif kind == "depth":
        order = _depth_rules(table, rule, lambda: bad, live)
        if order is not None:
            keep = order[~bad[order]]
            return Validated(table.take(pa.array(keep)), rejected, rows)
    elif kind == "bar":
        with np.errstate(invalid="ignore"):
            o, h, lo, c, v = (_np(table, x) for x in ("open", "high", "low", "close", "volume"))
            rule("missing price", np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c))
            rule(_HUGE, _too_big(o, h, lo, c, v))
            rule(
                "negative or zero price, or negative volume",
                (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0) | (v < 0),
            )
            rule(
                "inconsistent OHLC (high below open/close or low above)",
                (h < np.maximum(o, c)) | (lo > np.minimum(o, c)),
            )
    elif kind == "funding":
        with np.errstate(invalid="ignore"):
            rate = _np(table, "rate")
            rule("missing rate", np.isnan(rate))
            rule(_HUGE, _too_big(rate, _np(table, "mark_px"), _np(table, "index_px")))
            rule("negative price", (_np(table, "mark_px") < 0) | (_np(table, "index_px") < 0))
            rule("interval_h must be positive", _np(table, "interval_h") <= 0)
    if bad.any():
        table = table.filter(pa.array(~bad))
    return Validated(table, rejected, rows)


def _filled(col: pa.ChunkedArray, value: int) -> np.ndarray:
    """An integer column as NumPy, nulls replaced (no copy pass when there are none)."""
    if col.null_count:
        col = col.fill_null(value)
    return col.to_numpy()


def _depth_rules(table: pa.Table, rule, bad_now, live: LiveFn | None) -> np.ndarray | None:
    """Row rules of `depth`; returns the read-order permutation when the input is not in
    read order (None: it is)."""
    n = table.num_rows
    ts_local = table.column("ts_local")
    if ts_local.null_count:
        rule("missing ts_local", ts_local.is_null().to_numpy(zero_copy_only=False))
    side = _filled(table.column("side"), 0)
    price, qty = _np(table, "price"), _np(table, "qty")
    code = depth_nb.row_checks_nb(side, price, qty)
    rule("side must be 1 (bid) or -1 (ask)", code == 1)
    rule("non-finite price or qty", code == 2)
    rule("negative or zero price, or negative qty", code == 3)
    seq = _filled(table.column("seq"), -1)
    flags = _filled(table.column("flags"), 0)
    ts = _filled(table.column("ts"), 0)
    ex = table.column("exchange").combine_chunks()
    sym = table.column("symbol").combine_chunks()
    ex_idx = _filled(pa.chunked_array([ex.indices]), 0).astype(np.int64)
    sym_idx = _filled(pa.chunked_array([sym.indices]), 0).astype(np.int64)
    n_sym = max(len(sym.dictionary), 1)
    group = ex_idx * n_sym + sym_idx
    n_groups = max(len(ex.dictionary), 1) * n_sym
    tl = _filled(ts_local, 0)
    rule(
        "non-monotonic ts_local (receipt time went back within the batch)",
        depth_nb.ts_local_back_nb(group, tl, flags, ~bad_now(), n_groups),
    )
    single = n_groups == 1 or np.all(group == group[0])
    if single and depth_nb.in_order_nb(ts, seq, flags, side, price):
        order = np.arange(n)
        sorted_already = True
    else:
        order = depth_nb.depth_order(ts, seq, flags, side, price, group)
        sorted_already = False
    live0 = np.zeros(n_groups, dtype=np.bool_)
    if live is not None:
        ex_names, sym_names = ex.dictionary.to_pylist(), sym.dictionary.to_pylist()
        g_sorted = group[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(g_sorted)) + 1))
        for k in starts:  # the first row of each group in read order
            g, t0 = int(g_sorted[k]), int(ts[order[k]])
            e, s = ex_names[g // n_sym], sym_names[g % n_sym]
            live0[g] = e is not None and s is not None and bool(live(e, s, t0))
    codes = depth_nb.depth_state_nb(
        order, group, ts, seq, flags, side, price, qty, bad_now(), live0
    )
    for code in range(1, len(depth_nb.REASONS)):
        rule(depth_nb.REASONS[code], codes == code)
    return None if sorted_already else order
