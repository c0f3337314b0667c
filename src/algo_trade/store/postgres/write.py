"""PostgreSQL writes: validated Arrow tables in, binary COPY out, one transaction per call.

When no stored row of the batch's series falls in its time range the rows are copied
straight into the table; otherwise (or if a concurrent writer got there first) they go
through a temporary staging table and ``INSERT ... ON CONFLICT DO NOTHING``, so a batch
written twice is stored once.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from algo_trade.errors import DataError, StoreError
from algo_trade.schema import book_columns, book_depth
from algo_trade.store import pgcopy
from algo_trade.store.base import WriteResult, checked_for_write
from algo_trade.store.postgres.levels import encode_levels
from algo_trade.store.postgres.schema import (
    _COLUMNS,
    _LOCK_ID,
    TS_MAX,
    _partition_name,
    pg_kind,
    tables_of,
)

WRITE_SLICE_ROWS = 16_384  # rows per COPY buffer (~5 MB); the next encodes while one is sent


def _configure(conn) -> None:
    """Per pooled connection: staging tables emptied at each commit (never WAL-logged)."""
    with conn.cursor() as cur:
        for kind in tables_of(cur):  # (code older than the schema must not trip on new tables)
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS stage_{kind} (LIKE {kind}) ON COMMIT DELETE ROWS"
            )


class Writer:
    """The store's write side (mixed into PostgresStore, which owns the pool)."""

    _pool: object
    _encoder: ThreadPoolExecutor
    _partitions: set[str]
    _lock: threading.Lock
    backend: str
    interval_ns: int
    display_url: str

    def write(self, kind: str, table: pa.Table) -> WriteResult:
        """Validate and store `table` in one transaction; rows already stored are skipped."""
        import psycopg

        pg_kind(kind)
        live = self._depth_live if kind == "depth" else None
        t, result = checked_for_write(kind, table, live=live)
        if t.num_rows == 0:
            return result
        # The first slice encodes on the worker thread while the checks below query the server.
        first = self._encoder.submit(encode_table, kind, t.slice(0, WRITE_SLICE_ROWS))
        depth = book_depth(t.schema) if kind == "book" else None
        groups = _groups(t)
        self._check_depths(kind, groups, depth)
        if self.backend == "partitions":
            self._ensure_partitions(kind, t.column("ts").to_numpy())
        n = t.num_rows
        # A deadlock between writers of overlapping batches rolls one back: it tries again.
        for attempt in ("direct", "staged", "staged"):
            try:
                with self._pool.connection() as conn:
                    if attempt == "direct" and self._any_stored(conn, kind, groups):
                        continue
                    with conn.transaction(), conn.cursor() as cur:
                        target = kind if attempt == "direct" else f"stage_{kind}"
                        self._copy_in(cur, kind, target, t, first)  # a retry reuses it
                        if attempt == "direct":
                            written = {(g.exchange, g.symbol): (g.rows, g.lo, g.hi) for g in groups}
                        else:
                            written = self._insert_staged(cur, kind)
                        self._record(cur, kind, written, depth)
                total = sum(v[0] for v in written.values())
                result.written += total
                result.duplicates += n - total
                return result
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                continue  # a concurrent writer, or duplicates inside the batch: go through staging
            except psycopg.Error as exc:
                raise self._fail(exc, "writing") from None
        raise StoreError(  # pragma: no cover - needs three deadlocks in a row
            f"PostgreSQL at {self.display_url}: a {kind} batch kept colliding with concurrent"
            " writers (deadlocks); nothing of it was stored, write it again"
        )

    async def write_async(self, kind: str, table: pa.Table) -> WriteResult:
        """`write` from asyncio code: runs in a worker thread (encoding and COPY release the GIL)."""
        return await asyncio.to_thread(self.write, kind, table)

    def _depth_live(self, exchange: str, symbol: str, ts: int) -> bool:
        """Whether a depth row at or before `ts` is stored: a batch starting with diffs then
        continues a stored stream (its snapshot came in an earlier write)."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM depth WHERE symbol = %s AND exchange = %s"
                " AND ts <= %s)",
                (symbol, exchange, ts),
            ).fetchone()
        return bool(row[0])

    def _check_depths(self, kind: str, groups: list[_Group], depth: int | None) -> None:
        if kind != "book":
            return
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT exchange, symbol, depth FROM algo_trade_datasets WHERE kind = 'book'"
                " AND (exchange, symbol) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([g.exchange for g in groups], [g.symbol for g in groups]),
            ).fetchall()
        for exchange, symbol, stored in rows:
            if stored is not None and stored != depth:
                raise DataError(
                    f"book {exchange}/{symbol} is stored with {stored} levels per side, this batch"
                    f" has {depth}; depth is fixed per dataset (resample the batch to {stored} levels)"
                )

    def _any_stored(self, conn, kind: str, groups: list[_Group]) -> bool:
        """Whether any stored row of these series lies in the batch's time range."""
        row = conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
            f" AS g(exchange, symbol, lo, hi) WHERE EXISTS (SELECT 1 FROM {kind} t"
            " WHERE t.symbol = g.symbol AND t.exchange = g.exchange AND t.ts >= g.lo AND t.ts <= g.hi))",
            (
                [g.exchange for g in groups],
                [g.symbol for g in groups],
                [g.lo for g in groups],
                [g.hi for g in groups],
            ),
        ).fetchone()
        return bool(row[0])

    def _copy_in(self, cur, kind: str, target: str, t: pa.Table, first: Future | None) -> None:
        """COPY `t` into `target`; `first`: its first slice, already submitted for encoding."""
        names = ["ts", "exchange", "symbol", *[c for c, _, _ in _COLUMNS[kind]]]
        slices = [t.slice(a, WRITE_SLICE_ROWS) for a in range(0, t.num_rows, WRITE_SLICE_ROWS)]
        with cur.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as cp:
            # Encode the next slice on a worker thread while this one is sent.
            pending = first or self._encoder.submit(encode_table, kind, slices[0])
            for i in range(len(slices)):
                buf = pending.result()
                if i + 1 < len(slices):
                    pending = self._encoder.submit(encode_table, kind, slices[i + 1])
                if i:
                    buf = buf[len(pgcopy.HEADER) :]
                cp.write(memoryview(buf[:-2] if i + 1 < len(slices) else buf))

    def _insert_staged(self, cur, kind: str) -> dict[tuple[str, str], tuple[int, int, int]]:
        cur.execute(
            f"WITH ins AS (INSERT INTO {kind} SELECT * FROM stage_{kind} ON CONFLICT DO NOTHING"
            " RETURNING exchange, symbol, ts)"
            " SELECT exchange, symbol, count(*), min(ts), max(ts) FROM ins GROUP BY 1, 2"
        )
        return {(e, s): (n, lo, hi) for e, s, n, lo, hi in cur.fetchall()}

    def _record(self, cur, kind: str, written: dict, depth: int | None) -> None:
        if not written:
            return
        keys = sorted(written)  # one lock order for every writer: no deadlocks on this table
        cur.execute(
            "INSERT INTO algo_trade_datasets AS d (kind, exchange, symbol, depth, rows, first_ts, last_ts, version)"
            " SELECT %s, e, s, %s, n, lo, hi, 1 FROM unnest(%s::text[], %s::text[], %s::bigint[],"
            " %s::bigint[], %s::bigint[]) AS w(e, s, n, lo, hi)"
            " ON CONFLICT (kind, exchange, symbol) DO UPDATE SET rows = d.rows + excluded.rows,"
            " first_ts = least(d.first_ts, excluded.first_ts), last_ts = greatest(d.last_ts, excluded.last_ts),"
            " version = d.version + 1",
            (
                kind,
                depth,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [int(written[k][0]) for k in keys],
                [int(written[k][1]) for k in keys],
                [int(written[k][2]) for k in keys],
            ),
        )

    def _ensure_partitions(self, kind: str, ts: np.ndarray) -> None:
        """Create the partitions these rows need, plus the next one (created ahead)."""
        iv = self.interval_ns
        starts = np.unique(ts // iv) * iv
        starts = np.union1d(starts, starts[-1:] + iv)
        missing = [(int(s), _partition_name(kind, int(s))) for s in starts]
        missing = [(s, name) for s, name in missing if name not in self._partitions]
        if not missing:
            return
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID + 1,))
            cur.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s)"
                " AND relnamespace = current_schema()::regnamespace",
                ([name for _, name in missing],),
            )
            exists = {r[0] for r in cur.fetchall()}
            for start, name in missing:
                if name not in exists:
                    # Names and bounds come from our own integers, never from user text.
                    cur.execute(
                        f"CREATE TABLE {name} PARTITION OF {kind}"
                        f" FOR VALUES FROM ({start}) TO ({min(start + iv, TS_MAX)})"
                    )
        with self._lock:
            self._partitions.update(name for _, name in missing)


@dataclass(frozen=True)
class _Group:
    exchange: str
    symbol: str
    rows: int
    lo: int
    hi: int


def _groups(t: pa.Table) -> list[_Group]:
    """(exchange, symbol) series in a validated, combined table, with row counts and ts span."""
    ex = t.column("exchange").chunk(0)
    sym = t.column("symbol").chunk(0)
    ts = t.column("ts").to_numpy()
    ex_idx = ex.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    sym_idx = sym.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if len(ex.dictionary) == 1 and len(sym.dictionary) == 1:
        return [
            _Group(
                ex.dictionary[0].as_py(),
                sym.dictionary[0].as_py(),
                len(ts),
                int(ts.min()),
                int(ts.max()),
            )
        ]
    code = ex_idx * len(sym.dictionary) + sym_idx
    order = np.argsort(code, kind="stable")
    code_s, ts_s = code[order], ts[order]
    cut = np.flatnonzero(np.diff(code_s)) + 1
    bounds = np.concatenate(([0], cut, [len(ts)]))
    names_e, names_s = ex.dictionary.to_pylist(), sym.dictionary.to_pylist()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        c = int(code_s[a])
        seg = ts_s[a:b]
        out.append(
            _Group(
                names_e[c // len(names_s)],
                names_s[c % len(names_s)],
                int(b - a),
                int(seg.min()),
                int(seg.max()),
            )
        )
    return out


def encode_table(kind: str, t: pa.Table) -> np.ndarray:
    """A binary COPY buffer for the table's rows in the column order of `kind`'s table."""
    n = t.num_rows
    cols = [
        pgcopy.fixed_column(pgcopy.I8, t.column("ts").to_numpy()),
        pgcopy.text_column(t.column("exchange")),
        pgcopy.text_column(t.column("symbol")),
    ]
    if kind == "book":
        names = book_columns(book_depth(t.schema))  # bid_px, bid_sz, ask_px, ask_sz
        depth = book_depth(t.schema)
        levels = np.stack([t.column(name).to_numpy() for name in names])
        cols.append(encode_levels(levels, depth))
    else:
        for name, _, code in _COLUMNS[kind]:
            col = t.column(name)
            if code == pgcopy.TEXT:
                cols.append(pgcopy.text_column(col))
                continue
            valid = col.is_valid().to_numpy(zero_copy_only=False) if col.null_count else None
            values = (
                col.fill_null(0).to_numpy(zero_copy_only=False)
                if valid is not None
                else col.to_numpy()
            )
            cols.append(pgcopy.fixed_column(code, values, valid))
    return pgcopy.encode(cols, n)
