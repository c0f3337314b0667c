"""`db books --from-depth`: rebuild book rows from depth events (store or Parquet file)
into the store's `book` dataset or a Parquet file written whole or not at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_trade.data.depth_books import books_from_depth, books_from_table
from algo_trade.errors import DataError
from algo_trade.fileio import atomic_path
from algo_trade.schema import DEPTH, check_symbol, validate
from algo_trade.store.base import Store
from algo_trade.timeutil import fmt_ns, parse_duration_ns, parse_range_ns


def _read_depth_file(path: Path, exchange: str, symbol: str) -> tuple[pa.Table, dict[str, int]]:
    """The file's depth rows of (exchange, symbol), validated; rejects counted."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}") from None
    missing = [c for c in DEPTH.names if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path} is not a depth file: it lacks {', '.join(missing)} "
            f"(depth columns: {', '.join(DEPTH.names)})"
        )
    ex = pc.cast(table.column("exchange"), pa.string())
    sym = pc.cast(table.column("symbol"), pa.string())
    mine = pc.and_(pc.equal(ex, exchange), pc.equal(sym, symbol))
    n_mine = pc.sum(mine.cast(pa.int64())).as_py() or 0
    if n_mine == 0:
        held = sorted(
            {
                f"{e}/{s}"
                for e, s in zip(ex.to_pylist()[:100_000], sym.to_pylist()[:100_000], strict=True)
            }
        )
        raise DataError(
            f"{path} holds no depth rows of {exchange}/{symbol}; it holds {', '.join(held[:5]) or 'none'}"
        )
    table = table.filter(mine)
    checked = validate("depth", table)
    if checked.table.num_rows == 0:
        reasons = "; ".join(f"{k}: {v:,}" for k, v in checked.rejected.items())
        raise DataError(
            f"nothing valid in {path}: all {table.num_rows:,} depth rows were rejected "
            f"({reasons}); a depth stream must start with a snapshot run"
        )
    return checked.table, dict(checked.rejected)


def run(
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    interval: str | None,
    depth: int,
    out: Path | None,
    depth_file: Path | None,
    open_store: Callable[[], Store],
) -> dict:
    """Rebuild books; returns a report (books, depth_rows, rejected, out)."""
    check_symbol(symbol)
    s, e = parse_range_ns(start, end)
    interval_ns = parse_duration_ns(interval) if interval is not None else 0
    if interval is not None and interval_ns <= 0:
        raise DataError(f"--interval must be positive, got {interval!r}")
    if depth < 1:
        raise DataError(f"--depth must be at least 1, got {depth}")
    stats: dict[str, int] = {}
    rejected: dict[str, int] = {}
    store: Store | None = None
    if depth_file is not None:
        table, rejected = _read_depth_file(Path(depth_file), exchange, symbol)
        stats["depth_rows"] = table.num_rows
        books = books_from_table(table, interval_ns, depth, s, e)
    else:
        store = open_store()
        books = books_from_depth(store, exchange, symbol, s, e, interval_ns, depth, stats=stats)
    n = 0
    try:
        if out is not None:
            with atomic_path(out) as tmp:
                writer = None
                try:
                    for t in books:
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, t.schema, compression="zstd")
                        writer.write_table(t)
                        n += t.num_rows
                finally:
                    if writer is not None:
                        writer.close()
                if n == 0:
                    raise _no_books(exchange, symbol, s, e)
            where = str(out)
        else:
            store = store or open_store()
            for t in books:
                store.write("book", t)
                n += t.num_rows
            if n == 0:
                raise _no_books(exchange, symbol, s, e)
            where = f"{getattr(store, 'url', '')} book/{exchange}/{symbol}"
    finally:
        if store is not None:
            store.close()
    return {
        "books": n,
        "depth_rows": stats.get("depth_rows", 0),
        "rejected": rejected,
        "out": where,
    }


def _no_books(exchange: str, symbol: str, s: int, e: int) -> DataError:
    return DataError(
        f"no book could be rebuilt for {exchange}/{symbol} in [{fmt_ns(s)}, {fmt_ns(e)}): "
        "no depth snapshot run at or before that window; widen --start/--end"
    )
