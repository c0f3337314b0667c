"""Tardis.dev CSV datasets -> record kinds.

The dataset type comes from the header (and, for trades vs liquidations which share
one header, the file name); exchange and symbol come from the rows.

| dataset | kind |
|---|---|
| book_snapshot_N (asks[i].price ...) | book, N levels (or --depth) |
| quotes | book, 1 level |
| trades | trade |
| liquidations | liquidation |
| derivative_ticker | funding (predicted rows; a settled row when funding_timestamp rolls) |
| incremental_book_L2 | depth (every row; is_snapshot runs are snapshot runs), and book rows on the --book-interval grid, --depth levels (default 20) |

`timestamp` (the exchange's time, µs) becomes `ts`; `local_timestamp` (Tardis' receive
time) becomes `ts_local` of depth rows, and `ts` where `timestamp` is empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algo_trade.errors import DataError, ExchangeError
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.booksample import BookSampler, run_codes
from algo_trade.importers.reader import CsvSource, FileReport, read_header, source_progress
from algo_trade.schema import DEFAULT_DEPTH, SYMBOL_RE, book_columns, book_schema, schema_for

US = 1_000  # Tardis times are µs
NS_PER_S = 1_000_000_000
HOUR_NS = 3_600_000_000_000
DEFAULT_FUNDING_H = 8.0
_QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH", "EUR")
_LEVEL_RE = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
DICT = pa.dictionary(pa.int32(), pa.string())


def _split_pair(pair: str) -> tuple[str, str] | None:
    for q in _QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return pair[: -len(q)], q
    return None


def _binance_usdm(s: str) -> str:
    from algo_trade.exchanges.binance import from_venue

    return from_venue(s)


def _binance_coinm(s: str) -> str:
    pair, _, exp = s.upper().partition("_")  # BTCUSD_PERP, BTCUSD_240927
    base_quote = _split_pair(pair)
    if base_quote is None:
        raise ExchangeError(s)
    return f"{base_quote[0]}-{base_quote[1]}-{'PERP' if exp in ('', 'PERP') else exp}"


def _bybit(s: str) -> str:
    from algo_trade.exchanges.bybit import from_venue

    return from_venue(s)


def _deribit(s: str) -> str:
    m = re.match(r"^([A-Z0-9]+)(?:_([A-Z]+))?-PERPETUAL$", s.upper())
    if not m:
        raise ExchangeError(s)
    return f"{m.group(1)}-{m.group(2) or 'USD'}-PERP"


def _bitmex(s: str) -> str:
    bq = _split_pair(s.upper())
    if bq is None or re.search(r"[FGHJKMNQUVXZ]\d\d$", s):
        raise ExchangeError(s)
    base = "BTC" if bq[0] == "XBT" else bq[0]
    return f"{base}-{bq[1]}-PERP"


def _dashed_swap(s: str) -> str:
    parts = s.upper().split("-")  # OKX BTC-USDT-SWAP, Huobi BTC-USD, FTX BTC-PERP
    if len(parts) == 3 and parts[2] == "SWAP":
        return f"{parts[0]}-{parts[1]}-PERP"
    if len(parts) == 2 and parts[1] == "PERP":
        return f"{parts[0]}-USD-PERP"
    if len(parts) == 2:
        return f"{parts[0]}-{parts[1]}-PERP"
    raise ExchangeError(s)


def _hyperliquid(s: str) -> str:
    return f"{s.upper()}-USDC-PERP"


def _generic(s: str) -> str:
    up = s.upper()
    if SYMBOL_RE.fullmatch(up):
        return up
    bq = _split_pair(up.replace("-", "").replace("_", "").replace("/", ""))
    if bq is None:
        raise ExchangeError(s)
    return f"{bq[0]}-{bq[1]}-PERP"


# Tardis exchange id -> (our exchange name, venue symbol -> our symbol)
EXCHANGES: dict[str, tuple[str, Callable[[str], str]]] = {
    "binance-futures": ("binance", _binance_usdm),
    "binance-delivery": ("binance_coinm", _binance_coinm),
    "bybit": ("bybit", _bybit),
    "deribit": ("deribit", _deribit),
    "bitmex": ("bitmex", _bitmex),
    "okex-swap": ("okx", _dashed_swap),
    "huobi-dm-swap": ("huobi", _dashed_swap),
    "huobi-dm-linear-swap": ("huobi", _dashed_swap),
    "ftx": ("ftx", _dashed_swap),
    "hyperliquid": ("hyperliquid", _hyperliquid),
}

DATASETS = (
    "book_snapshot",
    "quotes",
    "trades",
    "liquidations",
    "derivative_ticker",
    "incremental_book_L2",
)


def detect(path: Path, header: list[str]) -> tuple[str, int]:
    """(dataset, levels) from a Tardis header; the file name breaks the trades/liquidations tie."""
    cols = set(header)
    base = {"exchange", "symbol", "timestamp", "local_timestamp"}
    if not base <= cols:
        raise DataError(
            f"{path}: unknown header (not a Tardis CSV: it needs exchange, symbol, timestamp, "
            f"local_timestamp): {','.join(header[:8])}"
        )
    levels = [m for m in (_LEVEL_RE.match(c) for c in header) if m]
    if levels:
        return "book_snapshot", 1 + max(int(m.group(2)) for m in levels)
    if {"ask_amount", "ask_price", "bid_price", "bid_amount"} <= cols:
        return "quotes", 1
    if {"is_snapshot", "side", "price", "amount"} <= cols:
        return "incremental_book_L2", 0
    if {"funding_rate", "funding_timestamp"} <= cols:
        return "derivative_ticker", 0
    if {"side", "price", "amount"} <= cols:
        return ("liquidations" if "liquidation" in path.name.lower() else "trades"), 0
    raise DataError(f"{path}: unknown Tardis header: {','.join(header[:10])}")


class TardisFormat:
    name = "tardis"
    suffixes = (".csv", ".csv.gz", ".zip")

    def __init__(self) -> None:
        self._src: CsvSource | None = None

    def progress(self) -> tuple[int, int]:
        return source_progress(self._src)

    # ------------------------------------------------------------ helpers
    def _labels(self, path: Path, opts: ImportOptions, t: pa.Table) -> tuple[pa.Array, pa.Array]:
        """Our exchange and symbol columns for a chunk (mapped once per distinct value)."""
        ex = t.column("exchange").combine_chunks()
        sym = t.column("symbol").combine_chunks()
        used = set(pc.unique(ex.indices).to_pylist()) - {None}
        exs = [ex.dictionary[i].as_py() for i in sorted(used)]
        if len(exs) > 1:
            raise DataError(
                f"{path}: rows from several exchanges ({', '.join(exs)}); split the file"
            )
        tardis_ex = exs[0] if exs else ""
        ours, mapper = EXCHANGES.get(
            tardis_ex, (re.sub(r"[^a-z0-9]+", "_", tardis_ex.lower()), _generic)
        )
        ours = opts.exchange or ours
        mapped = []
        for s in sym.dictionary.to_pylist():
            if s is None:
                mapped.append(None)
                continue
            try:
                mapped.append(mapper(s))
            except ExchangeError:
                if opts.symbol:
                    mapped.append(opts.symbol)  # the user names it; --symbol checks the rest
                else:
                    raise DataError(
                        f"{path}: cannot map {tardis_ex} symbol {s!r} to BASE-QUOTE-PERP; "
                        "give --symbol (e.g. --symbol BTC-USD-PERP)"
                    ) from None
        n = t.num_rows
        exchange = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([ours]))
        symbol = pa.DictionaryArray.from_arrays(sym.indices, pa.array(mapped, pa.string()))
        return exchange, symbol

    @staticmethod
    def _ts(t: pa.Table, name: str = "timestamp") -> pa.Array:
        ts = pc.coalesce(t.column(name), t.column("local_timestamp"))
        return pc.multiply(ts, pa.scalar(US, pa.int64())).combine_chunks()

    @staticmethod
    def _local(t: pa.Table) -> pa.Array:
        """ts_local: Tardis' receive time (µs -> ns)."""
        return pc.multiply(t.column("local_timestamp"), pa.scalar(US, pa.int64())).combine_chunks()

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        header = read_header(path)
        dataset, levels = detect(path, header)
        report.dataset = dataset + (f"_{levels}" if dataset == "book_snapshot" else "")
        types: dict[str, pa.DataType] = {
            "exchange": DICT,
            "symbol": DICT,
            "timestamp": pa.int64(),
            "local_timestamp": pa.int64(),
        }
        if dataset == "book_snapshot":
            types.update({c: pa.float64() for c in header if _LEVEL_RE.match(c)})
        elif dataset == "quotes":
            types.update(
                {c: pa.float64() for c in ("ask_amount", "ask_price", "bid_price", "bid_amount")}
            )
        elif dataset in ("trades", "liquidations"):
            types.update(
                {"id": pa.string(), "side": DICT, "price": pa.float64(), "amount": pa.float64()}
            )
        elif dataset == "incremental_book_L2":
            types.update(
                {
                    "is_snapshot": pa.bool_(),
                    "side": DICT,
                    "price": pa.float64(),
                    "amount": pa.float64(),
                }
            )
        elif dataset == "derivative_ticker":
            types.update(
                {
                    "funding_timestamp": pa.int64(),
                    "funding_rate": pa.float64(),
                    "predicted_funding_rate": pa.float64(),
                    "index_price": pa.float64(),
                    "mark_price": pa.float64(),
                }
            )
        types = {k: v for k, v in types.items() if k in header}
        self._src = src = CsvSource(path, report, types)
        if dataset == "incremental_book_L2":
            yield from self._l2(path, opts, src)
            return
        fund_state: dict[str, tuple[int, float]] = {}
        for chunk in src:
            t = chunk.table
            if t.num_rows == 0:
                continue
            exchange, symbol = self._labels(path, opts, t)
            ts = self._ts(t)
            if dataset == "book_snapshot":
                depth = opts.depth or levels
                cols = {"ts": ts, "exchange": exchange, "symbol": symbol}
                nan = pa.nulls(t.num_rows, pa.float64())
                present = set(t.column_names)
                for side, tside in (("bid", "bids"), ("ask", "asks")):
                    for what, twhat in (("px", "price"), ("sz", "amount")):
                        for i in range(depth):
                            name = f"{tside}[{i}].{twhat}"
                            cols[f"{side}_{what}_{i}"] = t.column(name) if name in present else nan
                table = pa.table(
                    [cols[c] for c in ["ts", "exchange", "symbol", *book_columns(depth)]],
                    schema=book_schema(depth),
                )
                yield Piece("book", table, chunk.ordinals)
            elif dataset == "quotes":
                depth = opts.depth or 1
                cols = {
                    "ts": ts,
                    "exchange": exchange,
                    "symbol": symbol,
                    "bid_px_0": t.column("bid_price"),
                    "bid_sz_0": t.column("bid_amount"),
                    "ask_px_0": t.column("ask_price"),
                    "ask_sz_0": t.column("ask_amount"),
                }
                nan = pa.nulls(t.num_rows, pa.float64())
                table = pa.table(
                    [cols.get(c, nan) for c in ["ts", "exchange", "symbol", *book_columns(depth)]],
                    schema=book_schema(depth),
                )
                yield Piece("book", table, chunk.ordinals)
            elif dataset in ("trades", "liquidations"):
                side = _side(t.column("side"))
                cols = [ts, exchange, symbol, side, t.column("price"), t.column("amount")]
                if dataset == "trades":
                    ids = (
                        t.column("id")
                        if "id" in t.column_names
                        else pa.nulls(t.num_rows, pa.string())
                    )
                    # Some venues publish no trade id: the file position stands in (stable on re-import).
                    fallback = pc.binary_join_element_wise(
                        "L", pc.cast(pa.array(chunk.ordinals), pa.string()), ""
                    )
                    cols.append(pc.coalesce(ids, fallback))
                    cols.append(self._local(t))
                    yield Piece("trade", pa.table(cols, schema=schema_for("trade")), chunk.ordinals)
                else:
                    cols.append(self._local(t))
                    yield Piece(
                        "liquidation",
                        pa.table(cols, schema=schema_for("liquidation")),
                        chunk.ordinals,
                    )
            else:
                yield from self._funding(t, ts, exchange, symbol, chunk.ordinals, fund_state)

    def _funding(self, t, ts, exchange, symbol, ordinals, state) -> Iterator[Piece]:
        """Predicted rows as published; a settled row at the old funding_timestamp when it rolls."""
        n = t.num_rows
        nxt = pc.fill_null(
            pc.multiply(t.column("funding_timestamp"), pa.scalar(US, pa.int64())), -1
        )
        nxt = nxt.to_numpy(zero_copy_only=False).astype(np.int64)
        rate = t.column("funding_rate").to_numpy(zero_copy_only=False).astype(np.float64)
        mark = _f(t, "mark_price")
        index = _f(t, "index_price")
        ts_np = ts.to_numpy()
        sym_idx = symbol.indices.to_numpy(zero_copy_only=False)
        names = symbol.dictionary.to_pylist()
        # Tardis gives no interval: 8 h until the file shows two funding times in a row,
        # then their distance (venues settle every 1, 4 or 8 h).
        interval_h = np.full(n, DEFAULT_FUNDING_H)
        s_ts, s_sym, s_rate, s_ih, s_mark, s_idx, s_ord = [], [], [], [], [], [], []
        for code in np.unique(sym_idx):
            rows = np.flatnonzero(sym_idx == code)
            name = names[code]
            prev_next, prev_rate, ih = state.get(name, (-1, np.nan, DEFAULT_FUNDING_H))
            f_next = np.concatenate(([prev_next], nxt[rows]))
            f_rate = np.concatenate(([prev_rate], rate[rows]))
            roll = np.flatnonzero(
                (f_next[1:] > f_next[:-1]) & (f_next[:-1] > 0) & (ts_np[rows] >= f_next[:-1])
            )
            ih_rows = np.full(len(rows), ih)
            for j in roll:
                ih = (f_next[j + 1] - f_next[j]) / HOUR_NS
                ih_rows[j:] = ih
                s_ts.append(f_next[j])
                s_sym.append(code)
                s_rate.append(f_rate[j])
                s_ih.append(ih)
                s_mark.append(mark[rows[j]])
                s_idx.append(index[rows[j]])
                s_ord.append(ordinals[rows[j]])
            interval_h[rows] = ih_rows
            valid = rows[nxt[rows] > 0]
            if len(valid):
                state[name] = (int(nxt[valid[-1]]), float(rate[valid[-1]]), ih)
        table = pa.table(
            [
                ts,
                exchange,
                symbol,
                pa.array(rate),
                pa.array(interval_h),
                pa.array(mark),
                pa.array(index),
                pa.array(nxt),
                pa.array(np.zeros(n, bool)),
            ],
            schema=schema_for("funding"),
        )
        yield Piece("funding", table, ordinals)
        if s_ts:
            k = len(s_ts)
            table = pa.table(
                [
                    pa.array(s_ts, pa.int64()),
                    exchange.slice(0, k),
                    pa.DictionaryArray.from_arrays(pa.array(s_sym, pa.int32()), symbol.dictionary),
                    pa.array(s_rate, pa.float64()),
                    pa.array(s_ih, pa.float64()),
                    pa.array(s_mark, pa.float64()),
                    pa.array(s_idx, pa.float64()),
                    pa.array(s_ts, pa.int64()),
                    pa.array(np.ones(k, bool)),
                ],
                schema=schema_for("funding"),
            )
            yield Piece("funding", table, np.array(s_ord))

    def _l2(self, path: Path, opts: ImportOptions, src: CsvSource) -> Iterator[Piece]:
        """incremental_book_L2 -> every row as `depth` (is_snapshot runs become snapshot
        runs), and book rows on the grid from the same rows, one book state per symbol."""
        sampler = BookSampler(
            opts.depth or DEFAULT_DEPTH, opts.book_interval_ns or NS_PER_S, final_row=True
        )
        runs: dict[str, int | None] = {}  # symbol -> ts of the snapshot run still open
        for chunk in src:
            t = chunk.table
            if t.num_rows == 0:
                continue
            exchange, symbol = self._labels(path, opts, t)
            ex_label = exchange.dictionary[0].as_py()
            ts = self._ts(t).to_numpy()
            ts_local = pc.multiply(t.column("local_timestamp"), pa.scalar(US, pa.int64()))
            ts_local = ts_local.combine_chunks().to_numpy(zero_copy_only=False)
            is_snap = t.column("is_snapshot").to_numpy(zero_copy_only=False).astype(bool)
            side = t.column("side").cast(pa.string())
            is_bid = pc.equal(side, "bid").to_numpy(zero_copy_only=False).astype(bool)
            bad_side = ~pc.is_in(side, pa.array(["bid", "ask"])).to_numpy(
                zero_copy_only=False
            ).astype(bool)
            px = t.column("price").to_numpy().astype(np.float64)
            sz = t.column("amount").to_numpy().astype(np.float64)
            bad = bad_side | np.isnan(px) | np.isnan(sz) | (sz < 0) | (px <= 0)
            if bad.any():
                src.report.bad_ordinals(
                    "level with a bad side, price or amount", chunk.ordinals[bad], 1
                )
            sym_idx = symbol.indices.to_numpy(zero_copy_only=False)
            names = symbol.dictionary.to_pylist()
            for code in np.unique(sym_idx):
                sel = np.flatnonzero((sym_idx == code) & ~bad)
                if not len(sel):
                    continue
                name = names[code]
                snap = is_snap[sel]
                # A run = consecutive is_snapshot rows; its rows share the first one's ts
                # (the depth contract: one run, one (ts, seq)), continuing across chunks.
                start = snap.copy()
                start[1:] &= ~snap[:-1]
                open_ts = runs.get(name)
                if open_ts is not None and snap[0]:
                    start[0] = False
                run_id = np.cumsum(start) - 1
                starts_ts = ts[sel][start]
                if open_ts is not None and snap[0]:
                    starts_ts = np.concatenate(([open_ts], starts_ts))
                    run_id += 1
                d_ts = ts[sel].copy()
                d_ts[snap] = starts_ts[run_id[snap]]
                runs[name] = int(d_ts[-1]) if snap[-1] else None
                n = len(sel)
                flags = snap.astype(np.uint8)  # schema.DEPTH_SNAPSHOT
                table = pa.Table.from_arrays(
                    [
                        pa.array(d_ts),
                        pa.array(ts_local[sel]),
                        _label(ex_label, n),
                        _label(name, n),
                        pa.array(np.where(is_bid[sel], 1, -1).astype(np.int8)),
                        pa.array(px[sel]),
                        pa.array(sz[sel]),
                        pa.array(np.full(n, -1, np.int64)),
                        pa.array(flags),
                    ],
                    schema=schema_for("depth"),
                )
                yield Piece("depth", table, chunk.ordinals[sel])
                if len(d_ts) > 1 and np.any(d_ts[1:] < d_ts[:-1]):
                    # Replay in time order (ties keep file order).
                    order = np.argsort(d_ts, kind="stable")
                else:
                    order = slice(None)
                codes = run_codes(snap, start)
                for book in sampler.feed(
                    ex_label, name, d_ts[order], codes[order], is_bid[sel][order],
                    px[sel][order], sz[sel][order],
                ):  # fmt: skip
                    yield Piece("book", book, None)
        for book in sampler.finish():
            yield Piece("book", book, None)


def _label(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def _f(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    return t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _side(col: pa.ChunkedArray) -> pa.Array:
    """buy -> 1, sell -> -1, anything else -> 0 (rejected by validation, reported)."""
    s = pc.utf8_lower(col.cast(pa.string()))
    out = pc.if_else(pc.equal(s, "buy"), 1, pc.if_else(pc.equal(s, "sell"), -1, 0))
    return pc.fill_null(out, 0).cast(pa.int8()).combine_chunks()
