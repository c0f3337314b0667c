"""PostgreSQL schema: one table per record kind, numbered migrations, TimescaleDB setup.

`migrate` brings a database to `SCHEMA_VERSION` in one transaction under an advisory
lock; each migration is a function of (cursor, options, timescale?). With TimescaleDB the
tables are hypertables with compression and policies; without it, range-partitioned
tables whose partitions the writer creates as data arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from algo_trade.errors import StoreError
from algo_trade.schema import KINDS as _SCHEMA_KINDS
from algo_trade.schema import check_kind
from algo_trade.store import pgcopy
from algo_trade.timeutil import NS_PER_DAY

SCHEMA_VERSION = 2
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
# Kinds with a table here (`depth` and the ts_local columns are not in this schema yet:
# the lake holds them; a later migration adds them).
KINDS = tuple(k for k in _SCHEMA_KINDS if k in _COLUMNS)


def pg_kind(kind: str) -> str:
    """`kind`, checked to be one this schema has a table for."""
    check_kind(kind)
    if kind not in _COLUMNS:
        raise StoreError(f"the PostgreSQL store does not hold {kind} records yet; use the lake")
    return kind


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


def _partition_name(kind: str, start_ns: int) -> str:
    dt = datetime.fromtimestamp(start_ns // 1_000_000_000, tz=UTC)
    return f"{kind}_p{dt.strftime('%Y%m%d_%H%M%S')}"


def describe(report: InitReport) -> str:
    """One line for `db init`."""
    what = f"applied migrations {report.applied}" if report.applied else "schema already up to date"
    return f"schema version {report.version} ({report.backend}): {what}"
