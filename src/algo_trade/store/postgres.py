"""The server store: PostgreSQL, with TimescaleDB hypertables and compression when present.

One table per record kind (``book``, ``funding``, ``liquidation``, ``trade``, ``bar``),
keyed by ``(symbol, exchange, ts, ...)``. With the ``timescaledb`` extension each is a
hypertable on ``ts`` (int64 ns, daily chunks by default) compressed by
``symbol, exchange`` ordered by ``ts DESC``; on plain PostgreSQL each is range-partitioned
on ``ts`` with daily partitions created ahead as data arrives.

- Writes are one transaction per call: binary COPY built in bulk from the Arrow columns
  (`pgcopy`). When no stored row of the batch's series falls in its time range the rows
  are copied straight into the table; otherwise (or if a concurrent writer got there
  first) they go through a temporary staging table and ``INSERT ... ON CONFLICT DO
  NOTHING``, so a batch written twice is stored once.
- Book levels are stored as one ``bytea`` per row (bid_px, bid_sz, ask_px, ask_sz,
  ``depth`` values each): the server sends and receives it as-is, ~6x faster than
  ``float8[]`` (measured). Rows whose prices and sizes are decimals (nearly all) are
  packed as int32 mantissas with a decimal scale per row (`pgcopy.pack_levels`, checked
  exact), the rest as little-endian float64: half the bytes, so half the heap and WAL the
  server writes per row. The SQL function ``algo_trade_level(levels, i)`` reads one value
  of either layout for ad-hoc SQL.
- Reads send no user value in SQL text: queries bind parameters; COPY (which takes no
  parameters) reads them back with ``current_setting`` after a parameterized
  ``set_config``; names are fixed identifiers. Book scans read keyset pages of binary
  rows, one page ahead on a worker thread; other kinds stream ``COPY (SELECT ...) TO
  STDOUT (FORMAT BINARY)`` decoded in bulk. Memory stays bounded by the page size.

>>> store = PostgresStore("postgresql://me@localhost/algo_trade")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pyarrow as pa

from algo_trade.errors import DataError, StoreError
from algo_trade.schema import (
    KINDS,
    book_columns,
    book_depth,
    check_kind,
    label_array,
    schema_for,
)
from algo_trade.store import pgcopy
from algo_trade.store.base import DatasetStats, WriteResult, checked_for_write
from algo_trade.timeutil import NS_PER_DAY, parse_range_ns

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
WRITE_SLICE_ROWS = 16_384  # rows per COPY buffer (~5 MB); the next encodes while one is sent
SCAN_BATCH_BYTES = 8 << 20  # COPY bytes per decoded batch of a scan
SCAN_BLOCK_ROWS = 16_384  # book rows per page query (~10 MB at 20 levels; measured best)
TS_MIN, TS_MAX = -(2**63), 2**63 - 1
_LOCK_ID = 0x616C676F  # advisory lock for migrations and partition creation ("algo")

# Columns of each kind's table after the common (ts, exchange, symbol), with their COPY codes.
_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "book": [("levels", "bytea NOT NULL", pgcopy.RAW)],
    "funding": [
        ("rate", "float8", pgcopy.F8),
        ("interval_h", "float8", pgcopy.F8),
        ("mark_px", "float8", pgcopy.F8),
        ("index_px", "float8", pgcopy.F8),
        ("next_ts", "bigint", pgcopy.I8),
        ("settled", "boolean NOT NULL", pgcopy.BOOL),
    ],
    "liquidation": [
        ("side", "smallint NOT NULL", pgcopy.I2),
        ("price", "float8 NOT NULL", pgcopy.F8),
        ("qty", "float8 NOT NULL", pgcopy.F8),
    ],
    "trade": [
        ("side", "smallint NOT NULL", pgcopy.I2),
        ("price", "float8 NOT NULL", pgcopy.F8),
        ("qty", "float8 NOT NULL", pgcopy.F8),
        ("trade_id", "text NOT NULL", pgcopy.TEXT),
    ],
    "bar": [(c, "float8", pgcopy.F8) for c in ("open", "high", "low", "close", "volume")],
}
# Unique key per kind; every key holds ts (partitioned tables and hypertables require it).
# Ascending ts: a btree scans backward as fast for ORDER BY ts DESC, and with time-ordered
# inserts an ascending index appends at its right edge, while a DESC one splits pages in
# half (measured: 1.8x the size, 20-70% slower COPY).
_KEYS: dict[str, str] = {
    "book": "symbol, exchange, ts",
    "bar": "symbol, exchange, ts",
    "funding": "symbol, exchange, ts, settled",
    "liquidation": "symbol, exchange, ts, side, price, qty",
    "trade": "symbol, exchange, trade_id, ts",
}
# TimescaleDB compression order: ts DESC, then the rest of the key (columns of a unique
# index must be segmentby or orderby columns for conflict checks on compressed chunks).
_ORDERBY: dict[str, str] = {
    "book": "ts DESC",
    "bar": "ts DESC",
    "funding": "ts DESC, settled",
    "liquidation": "ts DESC, side, price, qty",
    "trade": "ts DESC, trade_id",
}
_COMMENT = "algo-trade {kind} records"


@dataclass(frozen=True)
class InitOptions:
    """Settings of `db init` (durations in ns)."""

    chunk_interval_ns: int = NS_PER_DAY
    compress_after_ns: int = 7 * NS_PER_DAY
    retain_ns: int | None = None
    timescale: bool = True  # use TimescaleDB when the server has it


@dataclass
class InitReport:
    backend: str  # "timescaledb" or "partitions"
    applied: list[int]
    version: int
    notes: list[str]


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except Exception:
        return "postgresql://…"
    host = d.get("host", "localhost")
    port = d.get("port", "5432")
    user = d.get("user", "")
    db = d.get("dbname", "")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


def _scrub(text: str, url: str) -> str:
    """`text` with the URL's password (if any) masked, in case a driver message echoes it."""
    m = re.search(r"://[^:/@]*:([^@]+)@", url) or re.search(r"password=(\S+)", url)
    return text.replace(m.group(1), "***") if m else text


def _connect_error(exc: Exception, url: str) -> StoreError:
    """One line naming the problem and the fix; never the password."""
    text = _scrub(str(exc), url).strip()
    msg = text.splitlines()[-1] if text else type(exc).__name__
    where = redact(url)
    low = str(exc).lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return StoreError(
            f"PostgreSQL at {where} refused the login: {msg}; fix the user/password in --db or ALGO_TRADE_DB"
        )
    if "does not exist" in low and "database" in low:
        return StoreError(
            f"{msg} at {where}: create it (createdb NAME) or fix the database name in --db"
        )
    if (
        "connection refused" in low
        or "could not connect" in low
        or "timeout" in low
        or "translate host" in low
    ):
        return StoreError(
            f"cannot reach PostgreSQL at {where} ({msg}); is the server running, and are host/port in --db right?"
        )
    return StoreError(f"PostgreSQL at {where}: {msg}")


def _ddl_common(kind: str) -> str:
    cols = ["ts bigint NOT NULL", "exchange text NOT NULL", "symbol text NOT NULL"]
    cols += [f"{name} {typ}" for name, typ, _ in _COLUMNS[kind]]
    return ", ".join(cols)


def _migration_1(cur, opts: InitOptions, timescale: bool) -> list[str]:
    """Tables, keys, indexes, metadata; hypertables and policies with TimescaleDB."""
    notes = []
    cur.execute("CREATE TABLE algo_trade_settings (key text PRIMARY KEY, value text NOT NULL)")
    cur.execute(
        "CREATE TABLE algo_trade_datasets (kind text NOT NULL, exchange text NOT NULL,"
        " symbol text NOT NULL, depth int, rows bigint NOT NULL DEFAULT 0, first_ts bigint,"
        " last_ts bigint, version bigint NOT NULL DEFAULT 0, PRIMARY KEY (kind, exchange, symbol))"
    )
    # Reads one book value for ad-hoc SQL: i counts from 0 over bid_px, bid_sz, ask_px, ask_sz.
    cur.execute(
        """
        CREATE FUNCTION algo_trade_level(levels bytea, i int) RETURNS float8
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
          -- Little-endian IEEE 754 bits rebuilt with arithmetic (SQL has no bit cast to float8).
          SELECT CASE WHEN e = 2047 AND m <> 0 THEN 'NaN'::float8
                      WHEN e = 2047 THEN s * 'Infinity'::float8
                      WHEN e = 0 THEN s * m * 2::float8 ^ -1074
                      ELSE s * (1 + m * 2::float8 ^ -52) * 2::float8 ^ (e - 1023) END
          FROM (SELECT CASE WHEN b >> 63 = 0 THEN 1 ELSE -1 END AS s,
                       ((b >> 52) & 2047)::int AS e, (b & 4503599627370495)::float8 AS m
                FROM (SELECT ((get_byte(levels, 8 * i + 7)::bigint << 56)
                            | (get_byte(levels, 8 * i + 6)::bigint << 48)
                            | (get_byte(levels, 8 * i + 5)::bigint << 40)
                            | (get_byte(levels, 8 * i + 4)::bigint << 32)
                            | (get_byte(levels, 8 * i + 3)::bigint << 24)
                            | (get_byte(levels, 8 * i + 2)::bigint << 16)
                            | (get_byte(levels, 8 * i + 1)::bigint << 8)
                            | get_byte(levels, 8 * i)::bigint) AS b) bits) parts
        $$
        """
    )
    if timescale:
        cur.execute(
            "CREATE FUNCTION algo_trade_now_ns() RETURNS bigint LANGUAGE sql STABLE AS"
            " $$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$"
        )
    for kind in KINDS:
        table = kind
        if timescale:
            cur.execute(f"CREATE TABLE {table} ({_ddl_common(kind)})")
            cur.execute(
                "SELECT create_hypertable(%s::regclass, 'ts', chunk_time_interval => %s::bigint)",
                (table, opts.chunk_interval_ns),
            )
            cur.execute("SELECT set_integer_now_func(%s::regclass, 'algo_trade_now_ns')", (table,))
        else:
            cur.execute(f"CREATE TABLE {table} ({_ddl_common(kind)}) PARTITION BY RANGE (ts)")
        cur.execute(f"CREATE UNIQUE INDEX {table}_key ON {table} ({_KEYS[kind]})")
        if kind == "trade":
            cur.execute(
                f"CREATE INDEX {table}_symbol_exchange_ts ON {table} (symbol, exchange, ts)"
            )
        cur.execute(f"COMMENT ON TABLE {table} IS '{_COMMENT.format(kind=kind)}'")
        if timescale:
            cur.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress,"
                " timescaledb.compress_segmentby = 'symbol, exchange',"
                f" timescaledb.compress_orderby = '{_ORDERBY[kind]}')"
            )
    _apply_policies(cur, opts, timescale)
    if not timescale:
        notes.append(
            "TimescaleDB is not available on this server: using native daily partitions;"
            " not enabled: hypertables, compression, compression policy"
            + (", retention policy" if opts.retain_ns else "")
        )
    return notes


def _apply_policies(cur, opts: InitOptions, timescale: bool) -> None:
    settings = {
        "backend": "timescaledb" if timescale else "partitions",
        "chunk_interval_ns": str(opts.chunk_interval_ns),
        "compress_after_ns": str(opts.compress_after_ns),
        "retain_ns": str(opts.retain_ns or 0),
    }
    for k, v in settings.items():
        # Partition bounds are fixed once tables exist: a new interval would overlap old ones.
        keep = not timescale and k == "chunk_interval_ns"
        cur.execute(
            "INSERT INTO algo_trade_settings VALUES (%s, %s) ON CONFLICT (key) DO "
            + ("NOTHING" if keep else "UPDATE SET value = excluded.value"),
            (k, v),
        )
    if not timescale:
        return
    for kind in KINDS:
        cur.execute("SELECT remove_compression_policy(%s::regclass, if_exists => true)", (kind,))
        cur.execute(
            "SELECT add_compression_policy(%s::regclass, compress_after => %s::bigint)",
            (kind, opts.compress_after_ns),
        )
        cur.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", (kind,))
        if opts.retain_ns:
            cur.execute(
                "SELECT add_retention_policy(%s::regclass, drop_after => %s::bigint)",
                (kind, opts.retain_ns),
            )
        cur.execute(
            "SELECT set_chunk_time_interval(%s::regclass, %s::bigint)",
            (kind, opts.chunk_interval_ns),
        )


def _migration_2(cur, opts: InitOptions, timescale: bool) -> list[str]:
    """Book levels may be packed (int32 mantissas + decimal scales): algo_trade_level reads both.

    Rows written before stay as they are (raw float64, told apart by length); code that
    knows only version 1 refuses this schema instead of misreading packed rows.
    """
    cur.execute("ALTER FUNCTION algo_trade_level(bytea, int) RENAME TO algo_trade_level_raw")
    # Packed: bytes 0/1 the price/size scale, 2-3 zero, then 4*d little-endian int32 from
    # byte 4; value i is m / 10^scale of its group (i / d even: prices), INT32_MIN is NaN.
    cur.execute(
        """
        CREATE FUNCTION algo_trade_level_packed(levels bytea, i int) RETURNS float8
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
          SELECT CASE WHEN u = 2147483648 THEN 'NaN'::float8
                      ELSE (CASE WHEN u >= 2147483648 THEN u - 4294967296 ELSE u END)::float8
                           / 10::float8 ^ get_byte(levels, (i / d) % 2) END
          FROM (SELECT (length(levels) - 4) / 16 AS d,
                       (get_byte(levels, 4 * i + 7)::bigint << 24)
                       | (get_byte(levels, 4 * i + 6)::bigint << 16)
                       | (get_byte(levels, 4 * i + 5)::bigint << 8)
                       | get_byte(levels, 4 * i + 4)::bigint AS u) parts
        $$
        """
    )
    cur.execute(
        """
        CREATE FUNCTION algo_trade_level(levels bytea, i int) RETURNS float8
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
          SELECT CASE WHEN length(levels) % 16 = 4 THEN algo_trade_level_packed(levels, i)
                      ELSE algo_trade_level_raw(levels, i) END
        $$
        """
    )
    return []


MIGRATIONS = {
    1: ("tables, keys and partitioning per record kind", _migration_1),
    2: ("book levels packed as int32 mantissas with decimal scales", _migration_2),
}


def _timescale_available(cur) -> tuple[bool, str]:
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    if cur.fetchone():
        return True, ""
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if not cur.fetchone():
        return False, "the timescaledb extension is not installed on the server"
    try:
        with cur.connection.transaction():
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True, ""
    except Exception as exc:  # not preloaded, or no permission
        return False, f"CREATE EXTENSION timescaledb failed: {str(exc).strip().splitlines()[0]}"


def _foreign_tables(cur) -> list[str]:
    """Tables with our names that algo-trade did not create."""
    names = [*KINDS, "algo_trade_settings", "algo_trade_datasets", "schema_version"]
    cur.execute(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c"
        " WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND c.relnamespace = current_schema()::regnamespace",
        (names,),
    )
    return [
        name
        for name, comment in cur.fetchall()
        if name in KINDS and comment != _COMMENT.format(kind=name)
    ]


def migrate(conn, opts: InitOptions | None = None, reconfigure: bool = False) -> InitReport:
    """Bring the schema to SCHEMA_VERSION, idempotently (one transaction, under a lock).

    Refuses a schema newer than this code and tables of ours that we did not create.
    `reconfigure` re-applies chunk interval and policies on an existing schema.
    """
    opts = opts or InitOptions()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        has_versions = cur.fetchone()[0]
        current = 0
        if has_versions:
            cur.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'schema_version'"
                " AND table_schema = current_schema() AND column_name IN ('version', 'description')"
            )
            if cur.fetchone()[0] != 2:
                raise StoreError(
                    "the database has a table schema_version that algo-trade did not create;"
                    " use an empty database for algo-trade (createdb algo_trade) or rename that table"
                )
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            current = cur.fetchone()[0]
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is version {current}, newer than this algo-trade knows"
                f" ({SCHEMA_VERSION}); upgrade algo-trade (pip install -U algo-trade)"
            )
        foreign = _foreign_tables(cur)
        if foreign:
            raise StoreError(
                f"table {foreign[0]} already exists and was not created by algo-trade; use an empty"
                " database (createdb algo_trade) or rename that table"
            )
        if current == SCHEMA_VERSION:
            cur.execute("SELECT value FROM algo_trade_settings WHERE key = 'backend'")
            backend = cur.fetchone()[0]
            notes = []
            if reconfigure:
                _apply_policies(cur, opts, backend == "timescaledb")
            if backend != "timescaledb":
                notes.append(
                    "TimescaleDB is not enabled in this database: native daily partitions;"
                    " not enabled: hypertables, compression, compression policy"
                    + (", retention policy" if opts.retain_ns else "")
                )
            return InitReport(backend, [], current, notes)
        if not has_versions:
            cur.execute(
                "CREATE TABLE schema_version (version int PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("COMMENT ON TABLE schema_version IS 'algo-trade schema migrations'")
        timescale, why = (False, "disabled") if not opts.timescale else _timescale_available(cur)
        applied, notes = [], []
        for version in range(current + 1, SCHEMA_VERSION + 1):
            description, step = MIGRATIONS[version]
            notes += step(cur, opts, timescale)
            cur.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (version, description),
            )
            applied.append(version)
        if why and notes:
            notes[0] += f" ({why})"
        cur.execute("SELECT value FROM algo_trade_settings WHERE key = 'backend'")
        return InitReport(cur.fetchone()[0], applied, SCHEMA_VERSION, notes)


def _configure(conn) -> None:
    """Per pooled connection: staging tables emptied at each commit (never WAL-logged)."""
    with conn.cursor() as cur:
        for kind in KINDS:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS stage_{kind} (LIKE {kind}) ON COMMIT DELETE ROWS"
            )


class PostgresStore:
    """PostgreSQL/TimescaleDB store behind a connection pool. Thread-safe.

    >>> store = PostgresStore("postgresql://me@localhost/algo_trade")  # doctest: +SKIP
    >>> store.write("book", books)  # doctest: +SKIP
    """

    def __init__(self, url: str, pool_size: int = 8, init: InitOptions | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._url = url
        self.display_url = self.url = redact(url)  # never the password
        try:
            with psycopg.connect(url, connect_timeout=10) as conn:
                conn.autocommit = False
                self.init_report = migrate(conn, init)
                with conn.cursor() as cur:
                    cur.execute("SELECT key, value FROM algo_trade_settings")
                    self.settings = dict(cur.fetchall())
        except psycopg.OperationalError as exc:
            raise _connect_error(exc, url) from None
        except psycopg.Error as exc:
            first = (_scrub(str(exc), url).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"PostgreSQL at {self.display_url}: {first}") from None
        for note in self.init_report.notes:
            log.info(note)
        self.backend = self.settings["backend"]
        self.interval_ns = int(self.settings["chunk_interval_ns"])
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            configure=_configure,
            kwargs={"connect_timeout": 10, "autocommit": True},
            name="algo-trade",
        )
        self._partitions: set[str] = set()
        self._depths: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="pg-encode")
        # Closed at garbage collection or exit even when the caller forgets close().
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._encoder)

    def __repr__(self) -> str:
        return f"PostgresStore({self.display_url!r})"

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ errors
    def _fail(self, exc: Exception, doing: str) -> StoreError:
        import psycopg

        text = _scrub(str(exc), self._url).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"lost the connection to PostgreSQL at {self.display_url} while {doing} ({first});"
                " nothing of this batch was stored, retry when the server is back"
                if doing == "writing"
                else f"lost the connection to PostgreSQL at {self.display_url} while {doing} ({first})"
            )
        return StoreError(f"PostgreSQL at {self.display_url} failed while {doing}: {first}")

    # ------------------------------------------------------------------ write
    def write(self, kind: str, table: pa.Table) -> WriteResult:
        """Validate and store `table` in one transaction; rows already stored are skipped."""
        import psycopg

        t, result = checked_for_write(kind, table)
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

    # ------------------------------------------------------------------ read
    def _depth(self, kind: str, exchange: str, symbol: str) -> int:
        """Book depth of a stored dataset (0 for other kinds); StoreError when it does not exist."""
        key = (kind, exchange, symbol)
        if key in self._depths:
            return self._depths[key]
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT depth FROM algo_trade_datasets WHERE kind = %s AND exchange = %s AND symbol = %s",
                key,
            ).fetchone()
        if row is None:
            known = [f"{e}/{s}" for _, e, s in self.symbols(kind)]
            hint = (
                f"; stored {kind} datasets: {', '.join(known[:10])}"
                if known
                else f"; no {kind} data is stored yet"
            )
            raise StoreError(f"no {kind} data for {exchange}/{symbol} in {self.display_url}{hint}")
        self._depths[key] = row[0] or 0
        return self._depths[key]

    def _columns(self, kind: str, depth: int, columns: list[str] | None) -> list[str]:
        names = _names(kind, depth or 20)
        if columns is None:
            return list(names)
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise DataError(
                f"unknown {kind} columns {', '.join(unknown)}; valid: {', '.join(names[:12])} ..."
            )
        return list(columns)

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
        """Stream records with start <= ts < end in ts order, in batches of about 8 MB."""
        check_kind(kind)
        s, e = parse_range_ns(start, end)
        if limit is not None and limit < 0:
            raise DataError(f"limit must be >= 0, got {limit}")
        depth = self._depth(kind, exchange, symbol)
        cols = self._columns(kind, depth, columns)
        return self._scan(kind, exchange, symbol, depth, s, e, cols, limit, descending)

    def _scan(
        self, kind, exchange, symbol, depth, s, e, cols, limit, descending
    ) -> Iterator[pa.RecordBatch]:
        import psycopg

        if limit == 0:
            return
        if kind == "book":
            yield from self._scan_book(exchange, symbol, depth, s, e, cols, limit, descending)
            return
        levels = [c for c in cols if c not in ("ts", "exchange", "symbol")]
        select = [("ts", pgcopy.I8)] + [(c, code) for c, _, code in _COLUMNS[kind] if c in levels]
        query = (
            f"COPY (SELECT {', '.join(c for c, _ in select)} FROM {kind}"
            " WHERE symbol = current_setting('algo_trade.symbol')"
            " AND exchange = current_setting('algo_trade.exchange')"
            " AND ts >= current_setting('algo_trade.lo')::bigint"
            " AND ts < current_setting('algo_trade.hi')::bigint"
            f" ORDER BY ts{' DESC' if descending else ''}"
            + (" LIMIT current_setting('algo_trade.limit')::bigint" if limit is not None else "")
            + ") TO STDOUT (FORMAT BINARY)"
        )
        codes = [c for _, c in select]
        names = [n for n, _ in select]
        try:
            # Abandoned mid-stream, psycopg cancels the COPY before the connection goes back.
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('algo_trade.symbol', %s, false),"
                    " set_config('algo_trade.exchange', %s, false),"
                    " set_config('algo_trade.lo', %s, false), set_config('algo_trade.hi', %s, false),"
                    " set_config('algo_trade.limit', %s, false)",
                    (symbol, exchange, str(s), str(e), str(limit or 0)),
                )
                with cur.copy(query) as cp:
                    first = True
                    parts: list[bytes] = []
                    size = 0
                    while True:
                        data = cp.read()
                        if data:
                            parts.append(data)
                            size += len(data)
                        if parts and (not data or size >= SCAN_BATCH_BYTES):
                            raw, _ = pgcopy.decode(b"".join(parts), codes, names, first)
                            first = False
                            parts, size = [], 0
                            if raw.num_rows:
                                yield _to_batch(kind, raw, cols, exchange, symbol, depth)
                        if not data:
                            break
        except psycopg.Error as exc:
            raise self._fail(exc, "reading") from None

    def _scan_book(
        self, exchange, symbol, depth, s, e, cols, limit, descending
    ) -> Iterator[pa.RecordBatch]:
        """Books in keyset pages of binary rows; a worker thread fetches the next page while
        this one is decoded. Measured against alternatives on 10M rows: server-side
        aggregation of a page into one int8[] + one bytea (no per-row objects in the client)
        made the server ~2x slower than psycopg's C row loop costs the client, and one COPY
        message per row decoded in numba was slower still."""
        levels = any(c not in ("ts", "exchange", "symbol") for c in cols)
        order = "ts DESC" if descending else "ts"
        query = (
            f"SELECT ts{', levels' if levels else ''} FROM book WHERE symbol = %s"
            f" AND exchange = %s AND ts >= %s AND ts < %s ORDER BY {order} LIMIT %s"
        )
        k = 4 * depth if levels else 0
        widths = (8 * k, pgcopy.packed_width(depth)) if k else ()
        pages = self._book_pages(query, exchange, symbol, s, e, limit, descending, widths)
        if limit is None or limit > SCAN_BLOCK_ROWS:
            pages = _prefetch(pages)
        for ts, lv_blob, n, lengths in pages:
            if k:
                blob = np.frombuffer(lv_blob, dtype=np.uint8)
                matrix, bad = pgcopy.unpack_levels(blob, lengths, n, depth)
                if bad >= 0:
                    raise StoreError(
                        f"book rows of {exchange}/{symbol} do not all hold {depth} levels:"
                        " the table was changed outside algo-trade"
                    )
            else:
                matrix = np.empty((0, n), dtype=np.float64)
            yield _book_batch(ts, matrix, cols, exchange, symbol, depth)

    def _book_pages(
        self, query, exchange, symbol, s, e, limit, descending, widths
    ) -> Iterator[tuple]:
        """(ts int64[n], the rows' levels joined, n, lengths) per page, by keyset pagination
        on ts. `lengths` (int64[n]) only when the rows do not all have one of `widths`."""
        import psycopg

        remaining = limit
        try:
            with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
                while True:
                    want = SCAN_BLOCK_ROWS if remaining is None else min(SCAN_BLOCK_ROWS, remaining)
                    cur.execute(query, (symbol, exchange, s, e, want), prepare=True)
                    rows = cur.fetchall()
                    n = len(rows)
                    if not n:
                        return
                    # psycopg builds the rows in C; these two passes are the page's only Python loops.
                    ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
                    blob = b"".join(r[1] for r in rows) if len(rows[0]) > 1 else None
                    lengths = None
                    if blob is not None and all(len(blob) != w * n for w in widths):
                        lengths = np.fromiter((len(r[1]) for r in rows), dtype=np.int64, count=n)
                    del rows
                    yield ts, blob, n, lengths
                    if remaining is not None:
                        remaining -= n
                        if remaining <= 0:
                            return
                    if n < want:
                        return
                    if descending:
                        e = int(ts[-1])
                    else:
                        s = int(ts[-1]) + 1
        except psycopg.Error as exc:
            raise self._fail(exc, "reading") from None

    def latest(self, kind: str, exchange: str, symbol: str, n: int) -> pa.Table:
        """The newest `n` records, oldest first."""
        check_kind(kind)
        depth = self._depth(kind, exchange, symbol)
        cols = self._columns(kind, depth, None)
        batches = list(
            self._scan(kind, exchange, symbol, depth, TS_MIN, TS_MAX, cols, max(n, 0), True)
        )
        if not batches:
            return _empty(kind, depth, cols)
        t = pa.Table.from_batches(batches)
        return t.take(pa.array(np.arange(t.num_rows - 1, -1, -1)))

    # ------------------------------------------------------------------ metadata
    def symbols(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        kinds = [check_kind(kind)] if kind else list(KINDS)
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT kind, exchange, symbol FROM algo_trade_datasets WHERE kind = ANY(%s) AND rows > 0",
                (kinds,),
            ).fetchall()
        order = {k: i for i, k in enumerate(KINDS)}
        return sorted(((k, e, s) for k, e, s in rows), key=lambda r: (order[r[0]], r[1], r[2]))

    def version(self, kind: str, exchange: str, symbol: str) -> str:
        """Changes whenever a write stores rows in the dataset."""
        check_kind(kind)
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT version, rows, last_ts FROM algo_trade_datasets WHERE kind = %s AND exchange = %s AND symbol = %s",
                (kind, exchange, symbol),
            ).fetchone()
        if row is None:
            raise StoreError(f"no {kind} data for {exchange}/{symbol} in {self.display_url}")
        return f"{row[0]}-{row[1]}-{row[2]}"

    def table_stats(self) -> list[dict[str, object]]:
        """Per table: partitions or chunks, bytes before and after compression, the ratio."""
        out = []
        with self._pool.connection() as conn, conn.cursor() as cur:
            for kind in KINDS:
                if self.backend == "timescaledb":
                    cur.execute(
                        "SELECT count(*), count(*) FILTER (WHERE is_compressed)"
                        " FROM timescaledb_information.chunks WHERE hypertable_name = %s",
                        (kind,),
                    )
                    parts, compressed = cur.fetchone()
                    cur.execute("SELECT hypertable_size(%s::regclass)", (kind,))
                    total = cur.fetchone()[0] or 0
                    cur.execute(
                        "SELECT coalesce(sum(before_compression_total_bytes), 0)::bigint,"
                        " coalesce(sum(after_compression_total_bytes), 0)::bigint"
                        " FROM chunk_compression_stats(%s::regclass)",
                        (kind,),
                    )
                    before_c, after_c = cur.fetchone()
                    before = total - after_c + before_c
                    after = total
                else:
                    cur.execute(
                        "SELECT count(*), coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint"
                        " FROM pg_inherits WHERE inhparent = %s::regclass",
                        (kind,),
                    )
                    parts, total = cur.fetchone()
                    compressed = 0
                    before = after = total
                out.append(
                    {
                        "table": kind,
                        "backend": self.backend,
                        "parts": int(parts),
                        "compressed_parts": int(compressed),
                        "bytes_before": int(before),
                        "bytes_after": int(after),
                        "ratio": round(float(before) / float(after), 2) if after else None,
                    }
                )
        return out

    def stats(self) -> list[DatasetStats]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT kind, exchange, symbol, depth, rows, first_ts, last_ts FROM algo_trade_datasets"
                " WHERE rows > 0 ORDER BY kind, exchange, symbol"
            ).fetchall()
        if not rows:
            return []
        tables = {t["table"]: t for t in self.table_stats()}
        per_kind: dict[str, int] = {}
        for kind, *_, n, _lo, _hi in rows:
            per_kind[kind] = per_kind.get(kind, 0) + n
        out = []
        for kind, exchange, symbol, depth, n, lo, hi in rows:
            # The table's bytes shared out by rows: datasets share tables and partitions.
            size = int(tables[kind]["bytes_after"] * n / per_kind[kind]) if per_kind[kind] else 0
            parts = int(hi // self.interval_ns - lo // self.interval_ns + 1)
            extra: dict[str, object] = {"backend": self.backend}
            if kind == "book":
                extra["depth"] = depth
            out.append(DatasetStats(kind, exchange, symbol, n, lo, hi, max(size, 1), parts, extra))
        return out

    def compact(self) -> dict[str, int]:
        """Refresh planner statistics (PostgreSQL keeps no small files to merge)."""
        with self._pool.connection() as conn:
            for kind in KINDS:
                conn.execute(f"ANALYZE {kind}")
        return {"datasets": len(self.symbols()), "tables_analyzed": len(KINDS)}

    def compress(self, older_than_ns: int | None = None) -> dict[str, object]:
        """Compress chunks older than `older_than_ns` (default: the compression policy's age) now."""
        if self.backend != "timescaledb":
            return {
                "compressed_chunks": 0,
                "note": "TimescaleDB is not enabled in this database: plain PostgreSQL has no chunk"
                " compression (install TimescaleDB, then `algo-trade db init` on a new database)",
            }
        age = (
            older_than_ns if older_than_ns is not None else int(self.settings["compress_after_ns"])
        )
        done: dict[str, object] = {"compressed_chunks": 0}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for kind in KINDS:
                cur.execute(
                    "SELECT count(compress_chunk(c, if_not_compressed => true))"
                    " FROM show_chunks(%s::regclass, older_than => algo_trade_now_ns() - %s::bigint) c",
                    (kind, age),
                )
                n = cur.fetchone()[0]
                done[kind] = n
                done["compressed_chunks"] = int(done["compressed_chunks"]) + n  # type: ignore[call-overload]
        return done


def _shutdown(pool, encoder) -> None:
    pool.close()
    encoder.shutdown(wait=True)


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
        cols.append(pgcopy.pack_levels(levels, depth))
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


def _to_batch(
    kind: str, raw: pa.RecordBatch, cols: list[str], exchange: str, symbol: str, depth: int
) -> pa.RecordBatch:
    """Decoded COPY columns -> a record batch with the kind's schema, restricted to `cols`."""
    n = raw.num_rows
    schema = schema_for(kind, depth or 20)
    arrays: dict[str, pa.Array] = {"ts": raw.column(0)}
    for j, name in enumerate(raw.schema.names):
        arrays[name] = raw.column(j)
    out = []
    for name in cols:
        if name == "exchange":
            out.append(label_array(exchange, n))
        elif name == "symbol":
            out.append(label_array(symbol, n))
        else:
            arr = arrays[name]
            typ = schema.field(name).type
            out.append(arr if arr.type == typ else arr.cast(typ))
    return pa.RecordBatch.from_arrays(out, schema=pa.schema([schema.field(c) for c in cols]))


def _prefetch(pages: Iterator[tuple], depth: int = 2) -> Iterator[tuple]:
    """Run `pages` on a worker thread, at most `depth` items ahead; stops when abandoned."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for item in pages:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        finally:
            pages.close()

    worker = threading.Thread(target=work, name="pg-scan", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


@lru_cache(maxsize=64)
def _book_layout(depth: int) -> tuple[pa.Schema, dict[str, int]]:
    return schema_for("book", depth), {name: j for j, name in enumerate(book_columns(depth))}


def _book_batch(ts, matrix, cols, exchange, symbol, depth) -> pa.RecordBatch:
    schema, index = _book_layout(depth)
    n = len(ts)
    flat = pa.array(matrix.reshape(-1)) if matrix.size else None  # one array, sliced per level
    out = []
    for name in cols:
        if name == "ts":
            out.append(pa.array(ts))
        elif name == "exchange":
            out.append(label_array(exchange, n))
        elif name == "symbol":
            out.append(label_array(symbol, n))
        else:
            out.append(flat.slice(index[name] * n, n))
    if len(cols) != len(schema) or cols != schema.names:
        schema = pa.schema([schema.field(c) for c in cols])
    return pa.RecordBatch.from_arrays(out, schema=schema)


@lru_cache(maxsize=64)
def _names(kind: str, depth: int) -> tuple[str, ...]:
    return tuple(schema_for(kind, depth).names)


def _empty(kind: str, depth: int, cols: list[str]) -> pa.Table:
    schema = schema_for(kind, depth or 20)
    return pa.schema([schema.field(c) for c in cols]).empty_table()


def _partition_name(kind: str, start_ns: int) -> str:
    dt = datetime.fromtimestamp(start_ns // 1_000_000_000, tz=UTC)
    return f"{kind}_p{dt.strftime('%Y%m%d_%H%M%S')}"


def describe(report: InitReport) -> str:
    """One line for `db init`."""
    what = f"applied migrations {report.applied}" if report.applied else "schema already up to date"
    return f"schema version {report.version} ({report.backend}): {what}"


__all__ = ["InitOptions", "PostgresStore", "describe", "migrate", "redact"]
