"""`load`: read one instrument's data from a store into `MarketData` on one timeline.

>>> import algo_trade
>>> md = algo_trade.load("./algo-trade-data", "sim", "BTC-USDT-PERP", "2024-01-01",
...                      "2024-01-02", kinds=("book", "funding"))  # doctest: +SKIP
>>> res = algo_trade.backtest(md, "book_imbalance")  # doctest: +SKIP

The timeline is the book snapshots when "book" is loaded, else the bars. Other kinds are
aligned to it without look-ahead (rules in docs/engine.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from algo_trade.data.market import MarketData
from algo_trade.errors import ConfigError, DamagedFileError, DataError, StoreError
from algo_trade.schema import KINDS, book_columns, book_depth, check_symbol
from algo_trade.store.base import Store, open_store, read_table
from algo_trade.timeutil import NS_PER_DAY, fmt_ns, parse_duration_ns, parse_range_ns

DEFAULT_KINDS = ("bar", "funding")
FUNDING_LOOKBACK_NS = 2 * NS_PER_DAY  # to know the latest rate at the start


def load(
    store: Store | str | Path,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    kinds: Sequence[str] | str = DEFAULT_KINDS,
    bar: str | int | None = None,
    book_from: str = "book",
    book_interval: str | int | None = None,
    book_depth: int = 20,
) -> MarketData:
    """Load [start, end) of `kinds` for one instrument, aligned on one timeline.

    kinds: any of book, bar, funding, liquidation, trade; one of book or bar is required
    (the timeline). bar: a bar length ("1m", "5m", "1h"): resamples stored bars, or builds
    bars of the mid from books (or of trade prices) when no bars are stored.
    book_from: "book" reads stored book rows; "depth" rebuilds books from stored depth
    events, on a `book_interval` grid ("10ms") or, with None, after every update (the
    last book of each ts), `book_depth` levels per side (docs/data.md).
    """
    if book_from not in ("book", "depth"):
        raise ConfigError(f"book_from must be 'book' or 'depth', got {book_from!r}")
    if isinstance(kinds, str):
        kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    kinds = tuple(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"unknown kind {bad[0]!r}: choose from {', '.join(KINDS)}")
    if "depth" in kinds:
        raise ConfigError(
            "depth events are not a load kind: load books rebuilt from them with "
            "kinds=('book',), book_from='depth' (and book_interval='10ms' for a grid)"
        )
    if "book" not in kinds and "bar" not in kinds:
        raise ConfigError(
            "kinds must include 'book' or 'bar' (the timeline), e.g. kinds=('bar', 'funding')"
        )
    check_symbol(symbol)
    s, e = parse_range_ns(start, end)
    bar_ns = parse_duration_ns(bar) if bar is not None else None
    if bar_ns is not None and bar_ns > e - s:
        raise ConfigError(
            f"the bar ({bar}) is longer than the range [{fmt_ns(s)}, {fmt_ns(e)}): widen the range"
            " or use a shorter bar"
        )
    book_iv = parse_duration_ns(book_interval) if book_interval is not None else 0
    if book_iv < 0 or (book_interval is not None and book_iv == 0):
        raise ConfigError(f"book_interval must be positive, got {book_interval!r}")
    from_depth = (book_iv, book_depth) if book_from == "depth" else None
    st = open_store(store) if isinstance(store, (str, Path)) else store
    try:
        return _load(st, exchange, symbol, s, e, kinds, bar_ns, from_depth)
    finally:
        if st is not store:
            st.close()


def _optional(store: Store, kind: str, exchange: str, symbol: str, s: int, e: int,
              columns: list[str] | None = None) -> pa.Table | None:  # fmt: skip
    try:
        t = read_table(store, kind, exchange, symbol, s, e, columns=columns)
    except DamagedFileError:
        raise  # a damaged file is no "no data": the user must hear of it
    except StoreError:
        return None
    return t


def _no_data(kind: str, exchange: str, symbol: str, s: int, e: int, store: Store) -> DataError:
    stored = ", ".join(f"{x}/{y}" for k, x, y in store.symbols(kind)) or "none"
    return DataError(
        f"no {kind} data for {exchange}/{symbol} in [{fmt_ns(s)}, {fmt_ns(e)}); "
        f"stored {kind} datasets: {stored}"
    )


def _load(store: Store, exchange: str, symbol: str, s: int, e: int, kinds: tuple[str, ...],
          bar_ns: int | None, from_depth: tuple[int, int] | None = None) -> MarketData:  # fmt: skip
    cols: dict[str, np.ndarray] = {}
    missing: list[str] = []
    if "book" in kinds:
        mode = "book"
        if from_depth is not None:
            tbl = _books_from_depth(store, exchange, symbol, s, e, *from_depth)
        else:
            tbl = _optional(store, "book", exchange, symbol, s, e)
        if tbl is None or tbl.num_rows == 0:
            raise _no_data("book", exchange, symbol, s, e, store)
        ts, book = _book_arrays(tbl)
        del tbl
        cols.update(book)
        mid = _mid(book["bid_px"][:, 0], book["ask_px"][:, 0])
        cols.update(open=mid, high=mid, low=mid, close=mid)
        step = None
    else:
        mode = "bars"
        tbl = _optional(store, "bar", exchange, symbol, s, e)
        if tbl is not None and tbl.num_rows:
            ts = tbl.column("ts").to_numpy()
            ohlcv = {
                c: tbl.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")
            }
            del tbl
            step = _median_step(ts)
            if step is None:
                if bar_ns is None:
                    raise DataError(
                        f"[{fmt_ns(s)}, {fmt_ns(e)}) holds one {exchange}/{symbol} bar: a backtest"
                        " needs at least two; widen the range"
                    )
                step = bar_ns
            if bar_ns is not None and bar_ns != step:
                if step and bar_ns % step:
                    raise ConfigError(
                        f"cannot build {bar_ns // 10**9}s bars from stored {step // 10**9}s bars: "
                        "use a multiple of the stored bar length"
                    )
                ts, ohlcv = resample_bars(ts, ohlcv, bar_ns)
                step = bar_ns
        else:
            if bar_ns is None:
                raise _no_data("bar", exchange, symbol, s, e, store)
            ts, ohlcv = _bars_from_ticks(store, exchange, symbol, s, e, bar_ns)
            step = bar_ns
        cols.update(ohlcv)
    if len(ts) == 0:
        raise _no_data("book" if mode == "book" else "bar", exchange, symbol, s, e, store)
    # what each event may know: bars decide at their close, snapshots at their own time
    known_by = ts + (step - 1) if mode == "bars" else ts
    if "funding" in kinds:
        f = _optional(store, "funding", exchange, symbol, s - FUNDING_LOOKBACK_NS, e)
        if f is None or f.num_rows == 0:
            missing.append("funding")
        else:
            cols.update(align_funding(ts, known_by, f.column("ts").to_numpy(), f.column("rate").to_numpy(),
                                      f.column("mark_px").to_numpy(), f.column("settled").to_numpy(zero_copy_only=False)))  # fmt: skip
    for kind, names in (("liquidation", ("liq_sell_notional", "liq_buy_notional")),
                        ("trade", ("trade_sell_qty", "trade_buy_qty"))):  # fmt: skip
        if kind not in kinds:
            continue
        t = _optional(store, kind, exchange, symbol, s, e, ["ts", "side", "price", "qty"])
        if t is None or t.num_rows == 0:
            missing.append(kind)
            continue
        side = t.column("side").to_numpy()
        qty = t.column("qty").to_numpy()
        weight = qty * t.column("price").to_numpy() if kind == "liquidation" else qty
        idx = event_index(ts, t.column("ts").to_numpy(), mode)
        sell, buy = bucket_sum(idx, weight, side, len(ts))
        cols[names[0]], cols[names[1]] = sell, buy
    return MarketData(ts, cols, mode, exchange, symbol, kinds, step,
                      {"start": s, "end": e, "missing": missing})  # fmt: skip


def _books_from_depth(store: Store, exchange: str, symbol: str, s: int, e: int,
                      interval_ns: int, depth: int) -> pa.Table | None:  # fmt: skip
    """Books rebuilt from depth events (streamed: depth rows never all in memory)."""
    from algo_trade.data.depth_books import books_from_depth

    try:
        parts = list(books_from_depth(store, exchange, symbol, s, e, interval_ns, depth))
    except StoreError:
        return None
    return pa.concat_tables(parts) if parts else None


# ----------------------------------------------------------------------------- pieces
def _median_step(ts: np.ndarray) -> int | None:
    return int(np.median(np.diff(ts[: min(len(ts), 100_000)]))) if len(ts) > 1 else None


def _mid(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    mid = 0.5 * (bid + ask)
    one_sided = np.isnan(mid)
    if one_sided.any():
        mid[one_sided] = np.where(np.isnan(bid[one_sided]), ask[one_sided], bid[one_sided])
    return mid


def _book_arrays(tbl: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ts, {bid_px, bid_sz, ask_px, ask_sz: float64[n, L] C-contiguous})."""
    depth = book_depth(tbl.schema)
    n = tbl.num_rows
    out = {}
    names = book_columns(depth)
    for side in ("bid", "ask"):
        for what in ("px", "sz"):
            a = np.empty((n, depth), dtype=np.float64)
            for i in range(depth):
                a[:, i] = tbl.column(f"{side}_{what}_{i}").to_numpy()
            out[f"{side}_{what}"] = a
    assert len(names) == 4 * depth
    return tbl.column("ts").to_numpy(), out


def event_index(ev_ts: np.ndarray, rec_ts: np.ndarray, mode: str) -> np.ndarray:
    """The event each record belongs to: bars, the bar containing it (known at its close);
    books, the first snapshot at or after it. -1 or n: outside the timeline."""
    if mode == "bars":
        return np.searchsorted(ev_ts, rec_ts, side="right") - 1
    return np.searchsorted(ev_ts, rec_ts, side="left")


def bucket_sum(
    idx: np.ndarray, weight: np.ndarray, side: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-event sums of weight for side -1 (sells) and side 1 (buys)."""
    ok = (idx >= 0) & (idx < n)
    sell = np.bincount(idx[ok & (side < 0)], weights=weight[ok & (side < 0)], minlength=n)
    buy = np.bincount(idx[ok & (side > 0)], weights=weight[ok & (side > 0)], minlength=n)
    return sell[:n].astype(np.float64), buy[:n].astype(np.float64)


def align_funding(ev_ts: np.ndarray, known_by: np.ndarray, f_ts: np.ndarray, rate: np.ndarray,
                  mark: np.ndarray, settled: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Funding on the timeline.

    funding_rate: the latest rate (settled or predicted) published at or before each
    event's known_by time (NaN before the first). fund_settle_rate / fund_settle_mark:
    each settlement at time T is paid at the last event with ts <= T (the position held at
    T); NaN where none.
    """
    n = len(ev_ts)
    order = np.argsort(f_ts, kind="stable")
    f_ts, rate, mark, settled = f_ts[order], rate[order], mark[order], settled[order]
    j = np.searchsorted(f_ts, known_by, side="right") - 1
    known = np.where(j >= 0, rate[np.maximum(j, 0)], np.nan)
    s_ts, s_rate, s_mark = f_ts[settled], rate[settled], mark[settled]
    inside = (s_ts >= ev_ts[0]) & (s_ts <= ev_ts[-1] + (ev_ts[-1] - ev_ts[-2] if n > 1 else 0))
    idx = np.searchsorted(ev_ts, s_ts[inside], side="right") - 1
    pay_rate = np.full(n, np.nan)
    pay_mark = np.full(n, np.nan)
    if len(idx):
        acc = np.zeros(n)
        np.add.at(acc, idx, s_rate[inside])
        has = np.zeros(n, dtype=bool)
        has[idx] = True
        pay_rate[has] = acc[has]
        pay_mark[idx] = s_mark[inside]  # the last settlement's mark when several share an event
    return {"funding_rate": known, "fund_settle_rate": pay_rate, "fund_settle_mark": pay_mark}


def resample_bars(
    ts: np.ndarray, ohlcv: dict[str, np.ndarray], bar_ns: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bars of length bar_ns (UTC-aligned) from shorter bars: first open, max high, min low,
    last close, summed volume."""
    bucket = ts // bar_ns
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    out = {
        "open": ohlcv["open"][starts],
        "high": np.maximum.reduceat(ohlcv["high"], starts),
        "low": np.minimum.reduceat(ohlcv["low"], starts),
        "close": ohlcv["close"][ends],
        "volume": np.add.reduceat(np.nan_to_num(ohlcv["volume"]), starts),
    }
    out_ts = bucket[starts] * bar_ns
    if len(out_ts):
        # a UTC-aligned first bar may start before the data (and the requested range):
        # it is stamped at its first input bar, so no result shows a time outside the range
        out_ts[0] = max(out_ts[0], ts[0])
    return out_ts, out


def _bars_from_ticks(store: Store, exchange: str, symbol: str, s: int, e: int,
                     bar_ns: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Bars of the book mid, or of trade prices when no books are stored."""
    tbl = _optional(store, "book", exchange, symbol, s, e, ["ts", "bid_px_0", "ask_px_0"])
    if tbl is not None and tbl.num_rows:
        ts = tbl.column("ts").to_numpy()
        px = _mid(tbl.column("bid_px_0").to_numpy(), tbl.column("ask_px_0").to_numpy())
        vol = np.zeros(len(ts))
    else:
        tbl = _optional(store, "trade", exchange, symbol, s, e, ["ts", "price", "qty"])
        if tbl is None or tbl.num_rows == 0:
            raise _no_data("bar", exchange, symbol, s, e, store)
        ts = tbl.column("ts").to_numpy()
        px = tbl.column("price").to_numpy()
        vol = tbl.column("qty").to_numpy()
    ok = np.isfinite(px)
    ts, px, vol = ts[ok], px[ok], vol[ok]
    return resample_bars(
        ts, {"open": px, "high": px, "low": px, "close": px, "volume": vol}, bar_ns
    )
