"""The store protocol every backend implements, and `open_store` to pick one.

A store holds records of the kinds in `algo_trade.schema`, one dataset per
(kind, exchange, symbol). Every read names a half-open time range [start, end) in ns;
large reads stream as Arrow record batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa

from algo_trade.extras import require


@dataclass
class WriteResult:
    """What one `write` did: rows stored, duplicates skipped, rows rejected per reason."""

    written: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def add(self, other: WriteResult) -> None:
        self.written += other.written
        self.duplicates += other.duplicates
        for k, v in other.rejected.items():
            self.rejected[k] = self.rejected.get(k, 0) + v


def checked_for_write(
    kind: str, table: pa.Table, live: Callable[[str, str, int], bool] | None = None
) -> tuple[pa.Table, WriteResult]:
    """Where every store's write starts: a known kind, rows validated (rejects counted in
    the result), one chunk with unified dictionaries. An empty table means nothing to write.
    `live`: see `schema.validate` (depth streams the store already holds)."""
    from algo_trade.schema import check_kind, validate

    check_kind(kind)
    checked = validate(kind, table, live=live)
    result = WriteResult(rejected=dict(checked.rejected))
    t = checked.table
    if t.num_rows:
        t = t.unify_dictionaries().combine_chunks()
    return t, result


@dataclass
class DatasetStats:
    """Size and span of one (kind, exchange, symbol) dataset."""

    kind: str
    exchange: str
    symbol: str
    rows: int
    first_ts: int | None
    last_ts: int | None
    bytes: int
    parts: int  # files (lake) or partitions/chunks (database)
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Operations shared by the lake and the database stores."""

    def write(self, kind: str, table: pa.Table) -> WriteResult:
        """Validate and store `table`; rows already stored (same key) are skipped."""
        ...

    def scan(
        self,
        kind: str,
        exchange: str,
        symbol: str,
        start: object,
        end: object,
        columns: list[str] | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Stream records with start <= ts < end, ordered by ts."""
        ...

    def latest(self, kind: str, exchange: str, symbol: str, n: int) -> pa.Table:
        """The newest n records, oldest first."""
        ...

    def symbols(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """(kind, exchange, symbol) of every dataset."""
        ...

    def stats(self) -> list[DatasetStats]: ...

    def compact(self) -> dict[str, int]: ...

    def version(self, kind: str, exchange: str, symbol: str) -> str:
        """A token that changes whenever the dataset's content changes (for caches)."""
        ...

    def close(self) -> None: ...


def read_table(
    store: Store,
    kind: str,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    columns: list[str] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Collect a scan into one table (for results that fit in memory)."""
    batches = list(store.scan(kind, exchange, symbol, start, end, columns=columns, limit=limit))
    if not batches:
        from algo_trade.schema import schema_for

        schema = schema_for(kind)
        if columns:
            schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
        return schema.empty_table()
    return pa.Table.from_batches(batches)


def open_store(target: str | Path | None = None, **options: object) -> Store:
    """Open a store: a ``postgresql://`` URL selects the database, anything else is a lake home.

    >>> store = open_store("./algo-trade-data")  # doctest: +SKIP
    """
    text = str(target) if target is not None else "./algo-trade-data"
    if text.startswith(("postgresql://", "postgres://")):
        require("postgres")
        from algo_trade.store.postgres import PostgresStore

        return PostgresStore(text, **options)  # type: ignore[arg-type]
    from algo_trade.store.lake import LakeStore

    return LakeStore(Path(text), **options)  # type: ignore[arg-type]
