"""Binance public data (data.binance.vision, USD-M futures) -> record kinds.

The dataset comes from the header row when there is one, else from the file name
(``BTCUSDT-klines-1m-2024-01-01.zip``, ``BTCUSDT-aggTrades-2024-01.zip`` ...); the symbol
comes from the file name (``BTCUSDT`` -> ``BTC-USDT-PERP``) unless --symbol names it.

| dataset | columns (Binance's public-data layout) | kind |
|---|---|---|
| klines | open_time,open,high,low,close,volume,close_time,... (header optional) | bar at open_time |
| aggTrades | agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker | trade, id ``a<agg id>`` |
| trades | id,price,qty,quote_qty,time,is_buyer_maker | trade |
| fundingRate | calc_time,funding_interval_hours,last_funding_rate | funding, settled |
| bookTicker | update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time | book, 1 level |
| bookDepth | timestamp,percentage,depth,notional | refused (bands, not price levels) |

Times are ms in the futures dumps (µs in newer spot dumps): the unit is read from each
value's magnitude. A ``.CHECKSUM`` file beside a zip (``<sha256>  <name>``) is verified
before anything is read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algo_trade.errors import DataError, ExchangeError
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.reader import CsvSource, FileReport, read_header, source_progress
from algo_trade.schema import book_columns, book_schema, label_array, schema_for

EXCHANGE = "binance"
MINUTE_NS = 60_000_000_000

# dataset -> column names in file order (used for files without a header row)
COLUMNS: dict[str, list[str]] = {
    "klines": [
        "open_time", "open", "high", "low", "close", "volume", "close_time",
        "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
    ],
    "aggTrades": [
        "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
        "transact_time", "is_buyer_maker",
    ],
    "trades": ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"],
    "fundingRate": ["calc_time", "funding_interval_hours", "last_funding_rate"],
    "bookTicker": [
        "update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty",
        "transaction_time", "event_time",
    ],
}  # fmt: skip
TYPES: dict[str, dict[str, pa.DataType]] = {
    "klines": {
        "open_time": pa.int64(),
        **{c: pa.float64() for c in ("open", "high", "low", "close", "volume")},
    },
    "aggTrades": {
        "agg_trade_id": pa.int64(),
        "price": pa.float64(),
        "quantity": pa.float64(),
        "transact_time": pa.int64(),
        "is_buyer_maker": pa.bool_(),
    },
    "trades": {
        "id": pa.int64(),
        "price": pa.float64(),
        "qty": pa.float64(),
        "time": pa.int64(),
        "is_buyer_maker": pa.bool_(),
    },
    "fundingRate": {
        "calc_time": pa.int64(),
        "funding_interval_hours": pa.float64(),
        "last_funding_rate": pa.float64(),
    },
    "bookTicker": {
        "best_bid_price": pa.float64(),
        "best_bid_qty": pa.float64(),
        "best_ask_price": pa.float64(),
        "best_ask_qty": pa.float64(),
        "transaction_time": pa.int64(),
        "event_time": pa.int64(),
    },
}
_NAME_RE = re.compile(
    r"^(?P<sym>[A-Z0-9_]+)-(?P<ds>klines|aggTrades|trades|fundingRate|bookTicker|bookDepth|"
    r"markPriceKlines|indexPriceKlines|premiumIndexKlines|metrics|liquidationSnapshot)"
    r"(?:-(?P<iv>\d+[smhdwM]))?-\d{4}-\d{2}(?:-\d{2})?",
)
BOOK_DEPTH_MSG = (
    "bookDepth holds depth aggregated by percentage band around the mid, not price "
    "levels, so it cannot become an L2 book; import bookTicker (top of book) or a raw capture instead"
)


def to_ns(values: np.ndarray) -> np.ndarray:
    """Epoch ms, µs or ns -> ns, by each value's magnitude (Binance moved spot dumps to µs)."""
    v = values.astype(np.int64)
    return np.where(v < 10**14, v * 1_000_000, np.where(v < 10**17, v * 1_000, v))


def parse_name(path: Path) -> tuple[str | None, str | None, str | None]:
    """(venue symbol, dataset, interval) from a Binance public-data file name."""
    m = _NAME_RE.match(path.name)
    if not m:
        return None, None, None
    return m.group("sym"), m.group("ds"), m.group("iv")


def detect(path: Path, header: list[str]) -> tuple[str, bool]:
    """(dataset, has_header): from the header row, else from the file name."""
    _sym, by_name, _iv = parse_name(path)
    if by_name == "bookDepth" or header[:2] == ["timestamp", "percentage"]:
        raise DataError(f"{path}: {BOOK_DEPTH_MSG}")
    for ds, cols in COLUMNS.items():
        if header[: len(cols)] == cols or (ds == "aggTrades" and header[:7] == cols):
            return ds, True
    if header and re.fullmatch(r"-?\d+", header[0]):
        if by_name in COLUMNS and len(header) >= len(COLUMNS[by_name]) - (
            1 if by_name == "klines" else 0
        ):
            return by_name, False
        if by_name is not None and by_name not in COLUMNS:
            raise DataError(
                f"{path}: Binance dataset {by_name} is not supported "
                f"(supported: {', '.join(COLUMNS)})"
            )
        raise DataError(
            f"{path}: a file without a header row needs a Binance public-data file name "
            "such as BTCUSDT-klines-1m-2024-01-01.zip to tell its dataset"
        )
    if by_name is not None and by_name not in COLUMNS:
        raise DataError(
            f"{path}: Binance dataset {by_name} is not supported (supported: {', '.join(COLUMNS)})"
        )
    raise DataError(
        f"{path}: unknown header (not a Binance public-data CSV): {','.join(header[:8])}"
    )


def verify_checksum(path: Path) -> bool:
    """Check ``<zip>.CHECKSUM`` when present; False when there is none."""
    side = path.with_name(path.name + ".CHECKSUM")
    if not side.exists():
        return False
    try:
        expected = side.read_text().split()[0].lower()
    except (IndexError, OSError) as exc:
        raise DataError(f"{side}: unreadable checksum file ({exc})") from None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise DataError(
            f"{path}: SHA-256 does not match {side.name} (the download is corrupt or "
            "incomplete: fetch it again)"
        )
    return True


class BinanceVisionFormat:
    name = "binance-vision"
    suffixes = (".csv", ".csv.gz", ".zip")

    def __init__(self) -> None:
        self._src: CsvSource | None = None

    def progress(self) -> tuple[int, int]:
        return source_progress(self._src)

    def _symbol(self, path: Path, opts: ImportOptions) -> str:
        venue, _ds, _iv = parse_name(path)
        if venue is None:
            if opts.symbol:
                return opts.symbol
            raise DataError(
                f"{path}: the file name does not say the symbol (Binance names files "
                "BTCUSDT-<dataset>-<date>); give --symbol BTC-USDT-PERP"
            )
        from algo_trade.exchanges.binance import from_venue

        try:
            ours = from_venue(venue)
        except ExchangeError as exc:
            raise DataError(f"{path}: {exc}; give --symbol") from None
        if opts.symbol and opts.symbol != ours:
            raise DataError(f"{path}: holds {ours} ({venue}), but --symbol says {opts.symbol}")
        return ours

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        if path.name.lower().endswith(".zip") and verify_checksum(path):
            report.notes.append("checksum verified")
        header = read_header(path)
        dataset, has_header = detect(path, header)
        _venue, _ds, interval = parse_name(path)
        report.dataset = dataset + (f"_{interval}" if interval else "")
        symbol = self._symbol(path, opts)
        exchange = opts.exchange or EXCHANGE
        names = None
        if not has_header:
            names = list(COLUMNS[dataset])
            if dataset == "klines" and len(header) == len(names) - 1:
                names = names[:-1]
        self._src = src = CsvSource(path, report, TYPES[dataset], names=names)
        for chunk in src:
            t = chunk.table
            n = t.num_rows
            if n == 0:
                continue
            ex, sym = label_array(exchange, n), label_array(symbol, n)
            if dataset == "klines":
                cols = [_ts(t.column("open_time")), ex, sym] + [
                    t.column(c) for c in ("open", "high", "low", "close", "volume")
                ]
                yield Piece("bar", pa.table(cols, schema=schema_for("bar")), chunk.ordinals)
            elif dataset in ("aggTrades", "trades"):
                id_col, qty_col, ts_col = (
                    ("agg_trade_id", "quantity", "transact_time")
                    if dataset == "aggTrades"
                    else ("id", "qty", "time")
                )
                ids = pc.cast(t.column(id_col), pa.string())
                if dataset == "aggTrades":
                    # Same ids as the live aggTrade stream (exchanges/binance.py): "a<id>".
                    ids = pc.binary_join_element_wise("a", ids, "")
                maker = t.column("is_buyer_maker").to_numpy(zero_copy_only=False)
                side = np.where(maker.astype(bool), -1, 1).astype(np.int8)
                side[pc.is_null(t.column("is_buyer_maker")).to_numpy(zero_copy_only=False)] = 0
                cols = [
                    _ts(t.column(ts_col)),
                    ex,
                    sym,
                    pa.array(side),
                    t.column("price"),
                    t.column(qty_col),
                    ids,
                    pa.nulls(t.num_rows, pa.int64()),  # ts_local: the files carry no receipt time
                ]
                yield Piece("trade", pa.table(cols, schema=schema_for("trade")), chunk.ordinals)
            elif dataset == "fundingRate":
                # calc_time carries a few ms of jitter: settlements sit on the minute, as the
                # live stream announces them (same key for both sources).
                ts = _ts(t.column("calc_time"), round_to=MINUTE_NS)
                nan = np.full(n, np.nan)
                cols = [
                    ts,
                    ex,
                    sym,
                    t.column("last_funding_rate"),
                    t.column("funding_interval_hours"),
                    pa.array(nan),
                    pa.array(nan),
                    ts,
                    pa.array(np.ones(n, bool)),
                ]
                yield Piece("funding", pa.table(cols, schema=schema_for("funding")), chunk.ordinals)
            else:  # bookTicker
                ts_arr = _ts(pc.coalesce(t.column("transaction_time"), t.column("event_time")))
                cols = {
                    "bid_px_0": t.column("best_bid_price"),
                    "bid_sz_0": t.column("best_bid_qty"),
                    "ask_px_0": t.column("best_ask_price"),
                    "ask_sz_0": t.column("best_ask_qty"),
                }
                table = pa.table(
                    [ts_arr, ex, sym] + [cols[c] for c in book_columns(1)], schema=book_schema(1)
                )
                yield Piece("book", table, chunk.ordinals)


def _ts(col: pa.ChunkedArray | pa.Array, round_to: int = 0) -> pa.Array:
    """An epoch time column (ms, µs or ns) as int64 ns, optionally rounded to a step;
    nulls stay null (rejected as "missing ts")."""
    ns = to_ns(pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.int64))
    if round_to:
        ns = (ns + round_to // 2) // round_to * round_to
    return pa.array(ns, mask=pc.is_null(col).to_numpy(zero_copy_only=False))
