"""Generic OHLCV bars from CSV or Parquet, with a column mapping.

``--map ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume`` names the file's
columns; columns left out are found by name (case-insensitive: ts/timestamp/time/date/
datetime/open_time, open/o, high/h, low/l, close/c, volume/vol/v; an unnamed first
column is taken as the time). ``exchange=`` and ``symbol=`` may map columns too;
otherwise --exchange and --symbol are required. Volume is optional (NaN when absent).

Times: integers or floats since the epoch (``--ts-unit s|ms|us|ns``, or ``auto``: the
unit is read from the magnitude) or ISO-8601 text; text without a zone is read in
``--tz`` (default UTC), text with a zone or offset keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_trade.errors import ConfigError, DataError
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.reader import Chunk, CsvSource, FileReport, read_header, source_progress
from algo_trade.schema import check_symbol, label_array, schema_for

FIELDS = ("ts", "open", "high", "low", "close", "volume", "exchange", "symbol")
ALIASES = {
    "ts": ("ts", "timestamp", "time", "date", "datetime", "open_time", "open_time_s", ""),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NUMERIC_RE = r"^\s*[-+]?\d+(\.\d*)?\s*$"
_ISO_RE = r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"


def parse_mapping(text: str | None) -> dict[str, str]:
    """'ts=Date,close=Close' -> {'ts': 'Date', 'close': 'Close'} (fields checked)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        field, sep, col = part.partition("=")
        field = field.strip().lower()
        if not sep or field not in FIELDS:
            raise ConfigError(
                f"--map {part.strip()!r}: use FIELD=COLUMN with FIELD one of {', '.join(FIELDS)} "
                "(e.g. --map ts=Date,close=Close)"
            )
        out[field] = col.strip()
    return out


def resolve_columns(path: Path, names: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Our field -> the file's column, from --map and then by name."""
    lower = {n.strip().lower(): n for n in names}
    out: dict[str, str] = {}
    for field, col in mapping.items():
        if col not in names:
            hit = lower.get(col.lower())
            if hit is None:
                raise DataError(
                    f"{path}: --map {field}={col}: no such column (columns: {', '.join(names)})"
                )
            col = hit
        out[field] = col
    for field, aliases in ALIASES.items():
        if field in out:
            continue
        for a in aliases:
            if a in lower and lower[a] not in out.values():
                out[field] = lower[a]
                break
    missing = [f for f in ("ts", "open", "high", "low", "close") if f not in out]
    if missing:
        raise DataError(
            f"{path}: no column for {', '.join(missing)}; name them with --map, e.g. "
            f"--map {','.join(f'{m}=<column>' for m in missing)} (columns: {', '.join(names)})"
        )
    return out


def times_ns(col: pa.Array, unit: str, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(ns int64, bad mask) of a time column given as text or numbers."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(col)
    if pa.types.is_timestamp(col.type):
        ts = pc.cast(col, pa.timestamp("ns", tz=col.type.tz))
        if col.type.tz is None and tz != "UTC":
            ts = pc.assume_timezone(ts, tz)
        values = pc.cast(ts, pa.int64())
        return pc.fill_null(values, 0).to_numpy(zero_copy_only=False), pc.is_null(values).to_numpy(
            zero_copy_only=False
        )
    text = col if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else None
    if text is not None:
        numeric = pc.fill_null(pc.match_substring_regex(text, _NUMERIC_RE), False)
        if unit != "auto" or pc.all(numeric).as_py():
            bad = ~numeric.to_numpy(zero_copy_only=False)
            kept = pc.utf8_trim_whitespace(pc.if_else(numeric, text, pa.scalar(None, pa.string())))
            integral = pc.all(
                pc.fill_null(pc.match_substring_regex(kept, r"^[-+]?\d+$"), True)
            ).as_py()
            if integral:  # more than 18 digits cannot be an epoch that fits int64 ns
                long = pc.fill_null(pc.greater(pc.utf8_length(kept), 18), False)
                bad |= long.to_numpy(zero_copy_only=False)
                kept = pc.if_else(long, pa.scalar(None, pa.string()), kept)
            nums = pc.cast(kept, pa.int64() if integral else pa.float64())
            return _scale(pc.fill_null(nums, 0).to_numpy(zero_copy_only=False), unit, bad)
        iso = pc.fill_null(pc.match_substring_regex(text, _ISO_RE), False)
        # years int64 ns cannot hold (0001-01-01, 9999-12-31) are bad rows, not a crash
        head = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(text), 0, 4)
        year = pc.cast(pc.if_else(iso, head, pa.scalar(None, pa.string())), pa.int64())
        fits = pc.fill_null(pc.and_(pc.greater(year, 1677), pc.less(year, 2262)), False)
        iso = pc.and_(iso, fits)
        bad = ~iso.to_numpy(zero_copy_only=False)
        clean = pc.utf8_trim_whitespace(pc.if_else(iso, text, pa.scalar(None, pa.string())))
        zoned = pc.fill_null(pc.match_substring_regex(clean, r"(Z|[+-]\d{2}:?\d{2})$"), False)
        out = np.zeros(n, np.int64)
        if pc.any(zoned).as_py():
            part = pc.cast(
                pc.if_else(zoned, clean, pa.scalar(None, pa.string())), pa.timestamp("ns", tz="UTC")
            )
            vals = pc.cast(part, pa.int64()).to_numpy(zero_copy_only=False)
            sel = zoned.to_numpy(zero_copy_only=False)
            out[sel] = vals[sel]
        naive = pc.and_(iso, pc.invert(zoned))
        if pc.any(naive).as_py():
            part = pc.cast(
                pc.if_else(naive, clean, pa.scalar(None, pa.string())), pa.timestamp("ns")
            )
            if tz != "UTC":
                part = pc.assume_timezone(part, tz, ambiguous="earliest", nonexistent="earliest")
            vals = pc.cast(part, pa.int64()).to_numpy(zero_copy_only=False)
            sel = naive.to_numpy(zero_copy_only=False)
            out[sel] = vals[sel]
        return out, bad
    null = pc.is_null(col).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(col.type):
        return _scale(
            pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.int64), unit, null
        )
    nums = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    return _scale(nums, unit, null | np.isnan(nums))


def _scale(nums: np.ndarray, unit: str, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers -> ns. Integers stay integers (ns values do not fit a float64)."""
    if unit == "auto":
        a = np.abs(nums)
        mult = np.where(a < 1e11, 10**9, np.where(a < 1e14, 10**6, np.where(a < 1e17, 10**3, 1)))
    else:
        mult = np.int64(UNITS[unit])
    # epochs whose ns do not fit int64 (or are not finite) are bad rows, not wrapped values
    with np.errstate(invalid="ignore", over="ignore"):
        huge = ~(np.abs(nums.astype(np.float64)) * mult < 9.2e18)
    bad = bad | huge
    if nums.dtype.kind == "f":
        nums = np.nan_to_num(np.where(bad, 0.0, nums))
        return np.round(nums * mult).astype(np.int64), bad
    return (np.where(bad, 0, nums) * mult).astype(np.int64), bad


class OhlcvFormat:
    name = "ohlcv"
    suffixes = (".csv", ".csv.gz", ".zip", ".parquet")

    def __init__(self) -> None:
        self._src: CsvSource | None = None
        self._pq: tuple[int, int] | None = None

    def progress(self) -> tuple[int, int]:
        if self._pq is not None:
            return self._pq
        return source_progress(self._src)

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        if opts.ts_unit not in ("auto", *UNITS):
            raise ConfigError(f"--ts-unit {opts.ts_unit}: choose auto, s, ms, us or ns")
        if opts.symbol:
            check_symbol(opts.symbol)
        report.dataset = "bars"
        if path.name.lower().endswith(".parquet"):
            chunks, names = self._parquet(path)
        else:
            names = read_header(path)
            cols = resolve_columns(path, names, opts.mapping)
            types: dict[str, pa.DataType] = {cols["ts"]: pa.string()}
            types.update(
                {
                    cols[f]: pa.float64()
                    for f in ("open", "high", "low", "close", "volume")
                    if f in cols
                }
            )
            types.update({cols[f]: pa.string() for f in ("exchange", "symbol") if f in cols})
            self._src = CsvSource(path, report, types)
            chunks = iter(self._src)
        cols = resolve_columns(path, names, opts.mapping)
        if "symbol" not in cols and not opts.symbol:
            raise ConfigError(
                f"{path}: say which instrument these bars are: --symbol BTC-USDT-PERP"
            )
        if "exchange" not in cols and not opts.exchange:
            raise ConfigError(
                f"{path}: say where these bars come from: --exchange NAME (e.g. binance)"
            )
        for chunk in chunks:
            t = chunk.table
            n = t.num_rows
            if n == 0:
                continue
            ts, bad = times_ns(t.column(cols["ts"]), opts.ts_unit, opts.tz)
            if bad.any():
                report.bad_ordinals(f"column {cols['ts']!r}: not a time", chunk.ordinals[bad], 1)
            ex = (
                label_array(opts.exchange, n)
                if opts.exchange
                else pc.dictionary_encode(pc.cast(t.column(cols["exchange"]), pa.string()))
            )
            sym = (
                label_array(opts.symbol, n)
                if opts.symbol
                else pc.dictionary_encode(pc.cast(t.column(cols["symbol"]), pa.string()))
            )
            values = [
                pc.cast(t.column(cols[f]), pa.float64()) if f in cols else pa.nulls(n, pa.float64())
                for f in ("open", "high", "low", "close", "volume")
            ]
            table = pa.table([pa.array(ts), ex, sym, *values], schema=schema_for("bar"))
            ords = chunk.ordinals
            if bad.any():
                table = table.filter(pa.array(~bad))
                ords = ords[~bad]
            yield Piece("bar", table, ords)

    def _parquet(self, path: Path) -> tuple[Iterator[Chunk], list[str]]:
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        names = pf.schema_arrow.names
        total = pf.metadata.num_rows

        def chunks() -> Iterator[Chunk]:
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=65_536):
                    n = batch.num_rows
                    done += n
                    self._pq = (done, total)
                    yield Chunk(pa.Table.from_batches([batch]), np.arange(done - n, done))
            except (OSError, pa.ArrowInvalid) as exc:
                raise DataError(f"{path}: cannot be read to its end ({exc})") from None

        return chunks(), names
