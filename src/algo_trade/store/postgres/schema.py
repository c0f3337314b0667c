"""PostgreSQL schema: one table per record kind, numbered migrations, TimescaleDB setup.

`migrate` brings a database to `SCHEMA_VERSION` in one transaction under an advisory
lock; each migration is a function of (cursor, options, timescale?). With TimescaleDB the
tables are hypertables with compression and policies; without it, range-partitioned
tables whose partitions the writer creates as data arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from algo_trade.errors import ConfigError, StoreError
from algo_trade.schema import KEYS, check_kind
from algo_trade.schema import KINDS as _SCHEMA_KINDS
from algo_trade.store import pgcopy
from algo_trade.timeutil import NS_PER_DAY

SCHEMA_VERSION = 3
TS_MIN, TS_MAX = -(2**63), 2**63 - 1
_LOCK_ID = 0x616C676F  # advisory lock for migrations and partition creation ("algo")

# Columns of each kind's table after the common (ts, exchange, symbol), with their COPY
# codes, as migration 1 created them (frozen: later migrations alter the tables).
_V1_KINDS = ("book", "funding", "liquidation", "trade", "bar")
_V1_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
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
# Migration 3: receipt time on trades and liquidations (null for rows from before), and
# one row per order-book change.
_V3_TS_LOCAL = ("liquidation", "trade")
_V3_DEPTH = [
    ("ts_local", "bigint NOT NULL", pgcopy.I8),
    ("side", "smallint NOT NULL", pgcopy.I2),
    ("price", "float8 NOT NULL", pgcopy.F8),
    ("qty", "float8 NOT NULL", pgcopy.F8),
    ("seq", "bigint NOT NULL", pgcopy.I8),
    ("flags", "smallint NOT NULL", pgcopy.I2),
]
# The columns as this code reads and writes them (SCHEMA_VERSION).
_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    **{k: list(v) for k, v in _V1_COLUMNS.items()},
    **{k: [*_V1_COLUMNS[k], ("ts_local", "bigint", pgcopy.I8)] for k in _V3_TS_LOCAL},
    "depth": _V3_DEPTH,
}
# Kinds with a table here.
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
    "depth": "symbol, exchange, ts, seq, flags, side, price",
}
# TimescaleDB compression order: ts DESC, then the rest of the key (columns of a unique
# index must be segmentby or orderby columns for conflict checks on compressed chunks).
_ORDERBY: dict[str, str] = {
    "book": "ts DESC",
    "bar": "ts DESC",
    "funding": "ts DESC, settled",
    "liquidation": "ts DESC, side, price, qty",
    "trade": "ts DESC, trade_id",
    "depth": "ts DESC, seq, flags, side, price",
}
_COMMENT = "algo-trade {kind} records"


def order_by(kind: str, descending: bool = False) -> str:
    """The total order of every read: ts, then the rest of the kind's key (`schema.KEYS`).

    Trade ids sort as numbers when they are decimal digits: shorter first, then bytewise
    (the "C" collation, whatever the database's locale), which is also a total order for
    ids that are not numbers. Descending reverses every term, so it is the exact reverse.
    """
    if kind == "depth":  # as data.depth_nb.depth_order: a snapshot's rows before diffs
        terms = ["ts", "seq", "(flags & 1) DESC", "side", "price", "flags"]
        if descending:
            terms = [t[:-5] if t.endswith(" DESC") else t + " DESC" for t in terms]
        return ", ".join(terms)
    terms = ["ts"]
    for name in KEYS[kind]:
        if name == "ts":
            continue
        if name == "trade_id":
            terms += ["length(trade_id)", 'trade_id COLLATE "C"']
        else:
            terms.append(name)
    return ", ".join(t + (" DESC" if descending else "") for t in terms)


CHUNK_MIN_NS = 60 * 1_000_000_000  # 1 minute
CHUNK_MAX_NS = 366 * NS_PER_DAY
DEFAULT_CHUNK_NS = NS_PER_DAY
DEFAULT_COMPRESS_NS = 7 * NS_PER_DAY


@dataclass(frozen=True)
class InitOptions:
    """Settings of `db init` (durations in ns). None keeps what the database has (the
    defaults on a new one: 1-day chunks, compression after 7 days, no retention);
    `retain_ns=0` removes a retention policy."""

    chunk_interval_ns: int | None = None
    compress_after_ns: int | None = None
    retain_ns: int | None = None
    timescale: bool = True  # use TimescaleDB when the server has it

    def __post_init__(self) -> None:
        iv = self.chunk_interval_ns
        if iv is not None and not CHUNK_MIN_NS <= iv <= CHUNK_MAX_NS:
            # Below a minute, partitions pile up (and sub-second ones would share a name);
            # far above a year, bounds overflow int64 ns.
            raise ConfigError(
                f"--chunk-interval must be between 1m and 366d, got {fmt_duration(iv)};"
                " 1d suits most datasets (1h for dense depth data)"
            )
        for name, v in (("--compress-after", self.compress_after_ns), ("--retain", self.retain_ns)):
            if v is not None and not 0 <= v <= 100 * 366 * NS_PER_DAY:
                raise ConfigError(f"{name} must be between 0 and 100 years, got {fmt_duration(v)}")


def fmt_duration(ns: int) -> str:
    """A short human duration for messages: 90s -> '1.5m'."""
    for unit, size in (("d", NS_PER_DAY), ("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if abs(ns) >= size:
            return f"{ns / size:g}{unit}"
    return f"{ns / 1e6:g}ms"


@dataclass
class InitReport:
    backend: str  # "timescaledb" or "partitions"
    applied: list[int]
    version: int
    notes: list[str]


def _ddl_common(columns: list[tuple[str, str, int]]) -> str:
    cols = ["ts bigint NOT NULL", "exchange text NOT NULL", "symbol text NOT NULL"]
    cols += [f"{name} {typ}" for name, typ, _ in columns]
    return ", ".join(cols)


def _create_table(cur, table: str, columns, opts: InitOptions, timescale: bool) -> None:
    """A hypertable on ts (no default (ts DESC) index: our key index serves ts order), or a
    table range-partitioned on ts."""
    if timescale:
        cur.execute(f"CREATE TABLE {table} ({_ddl_common(columns)})")
        iv = opts.chunk_interval_ns or int(_setting(cur, "chunk_interval_ns") or DEFAULT_CHUNK_NS)
        cur.execute(
            "SELECT create_hypertable(%s::regclass, 'ts', chunk_time_interval => %s::bigint,"
            " create_default_indexes => false)",
            (table, iv),
        )
        cur.execute("SELECT set_integer_now_func(%s::regclass, 'algo_trade_now_ns')", (table,))
    else:
        cur.execute(f"CREATE TABLE {table} ({_ddl_common(columns)}) PARTITION BY RANGE (ts)")


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
    for kind in _V1_KINDS:
        table = kind
        _create_table(cur, table, _V1_COLUMNS[kind], opts, timescale)
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
    return notes


def _setting(cur, key: str) -> str | None:
    cur.execute("SELECT value FROM algo_trade_settings WHERE key = %s", (key,))
    row = cur.fetchone()
    return row[0] if row else None


def _put_setting(cur, key: str, value: object) -> None:
    cur.execute(
        "INSERT INTO algo_trade_settings VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )


def _apply_policies(cur, opts: InitOptions, timescale: bool, new: bool) -> list[str]:
    """Apply the options that were given (all, with defaults, on a new schema); keep the rest.

    A retention or compression policy a user added or changed by hand stays unless the
    matching option is given. Returns notes on what was kept or could not be changed.
    """
    notes: list[str] = []
    if new:
        _put_setting(cur, "backend", "timescaledb" if timescale else "partitions")
    iv = opts.chunk_interval_ns or (DEFAULT_CHUNK_NS if new else None)
    compress = opts.compress_after_ns or (DEFAULT_COMPRESS_NS if new else None)
    retain = opts.retain_ns
    old_iv = _setting(cur, "chunk_interval_ns")
    if iv is not None and old_iv is not None and int(old_iv) != iv and not timescale:
        cur.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = ANY(%s) AND p.relnamespace = current_schema()::regnamespace",
            (list(tables_of(cur)),),
        )
        parts = cur.fetchone()[0]
        if parts:
            raise ConfigError(
                f"cannot change --chunk-interval to {fmt_duration(iv)}: this plain-PostgreSQL"
                f" database already has {parts} partitions of {fmt_duration(int(old_iv))}, and"
                " partitions on a new grid would overlap them; keep"
                f" --chunk-interval {fmt_duration(int(old_iv))}, or `algo-trade db copy` the data"
                " into a new database initialised with the new interval"
            )
    if iv is not None:
        _put_setting(cur, "chunk_interval_ns", iv)
    if compress is not None:
        _put_setting(cur, "compress_after_ns", compress)
    if retain is not None or new:
        _put_setting(cur, "retain_ns", retain or 0)
    if not timescale:
        return notes
    for table in tables_of(cur):
        if iv is not None:
            # TimescaleDB applies it to chunks created from now on; existing chunks keep theirs.
            cur.execute("SELECT set_chunk_time_interval(%s::regclass, %s::bigint)", (table, iv))
        if compress is not None:
            cur.execute(
                "SELECT remove_compression_policy(%s::regclass, if_exists => true)", (table,)
            )
            cur.execute(
                "SELECT add_compression_policy(%s::regclass, compress_after => %s::bigint)",
                (table, compress),
            )
        if retain is not None:
            cur.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", (table,))
            if retain:
                cur.execute(
                    "SELECT add_retention_policy(%s::regclass, drop_after => %s::bigint)",
                    (table, retain),
                )
    if not new and retain is None:
        cur.execute(
            "SELECT hypertable_name, config->>'drop_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention' AND hypertable_name = ANY(%s)"
            " ORDER BY hypertable_name",
            (list(tables_of(cur)),),
        )
        kept = cur.fetchall()
        if kept:
            notes.append(
                "kept the retention policies in place ("
                + ", ".join(f"{t}: drop after {fmt_duration(int(v))}" for t, v in kept)
                + "); --retain DURATION replaces them, --retain off removes them"
            )
    return notes


def tables_of(cur) -> tuple[str, ...]:
    """The record tables this database has (older schemas lack newer kinds)."""
    cur.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p')"
        " AND c.relnamespace = current_schema()::regnamespace",
        (list(KINDS),),
    )
    have = {r[0] for r in cur.fetchall()}
    return tuple(k for k in KINDS if k in have)


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


def _migration_3(cur, opts: InitOptions, timescale: bool) -> list[str]:
    """Book levels in the compact layout (`levels.py`; older rows stay as they are and read
    as before), ts_local on trades and liquidations, the depth table, and no TimescaleDB
    (ts DESC) index on any table (our key indexes serve ts order; it cost ~20 bytes a book
    row and slowed copies)."""
    notes: list[str] = []
    cur.execute(_COMPACT_SQL)
    cur.execute("ALTER FUNCTION algo_trade_level(bytea, int) RENAME TO algo_trade_level_v2")
    cur.execute(
        """
        CREATE FUNCTION algo_trade_level(levels bytea, i int) RETURNS float8
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
          SELECT CASE WHEN get_byte(levels, 0) = 160 AND length(levels) % 32 <> 0
                      THEN (algo_trade_levels_compact(levels))[i + 1]
                      ELSE algo_trade_level_v2(levels, i) END
        $$
        """
    )
    for kind in _V1_KINDS:
        cur.execute(f"DROP INDEX IF EXISTS {kind}_ts_idx")  # TimescaleDB's default index
    for kind in _V3_TS_LOCAL:
        cur.execute(f"ALTER TABLE {kind} ADD COLUMN ts_local bigint")
    _create_table(cur, "depth", _V3_DEPTH, opts, timescale)
    cur.execute(f"CREATE UNIQUE INDEX depth_key ON depth ({_KEYS['depth']})")
    cur.execute(f"COMMENT ON TABLE depth IS '{_COMMENT.format(kind='depth')}'")
    if timescale:
        cur.execute(
            "ALTER TABLE depth SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'symbol, exchange',"
            f" timescaledb.compress_orderby = '{_ORDERBY['depth']}')"
        )
        # An existing database keeps its policies; the new table gets the same ones.
        compress = _setting(cur, "compress_after_ns")
        if compress:
            cur.execute(
                "SELECT add_compression_policy('depth'::regclass, compress_after => %s::bigint)",
                (int(compress),),
            )
        retain = _setting(cur, "retain_ns")
        if retain and int(retain):
            cur.execute(
                "SELECT add_retention_policy('depth'::regclass, drop_after => %s::bigint)",
                (int(retain),),
            )
        # Book rows are bytes TimescaleDB keeps as they are, then TOAST compresses them: LZ4
        # is faster and smaller than the default pglz (measured, docs/stores.md). Set for the
        # database so the policy's background jobs use it too; it needs ownership.
        try:
            with cur.connection.transaction():
                cur.execute(_TOAST_LZ4_SQL)
        except Exception as exc:  # not the owner, or a server built without lz4
            notes.append(
                "could not set default_toast_compression = lz4 for this database"
                f" ({str(exc).strip().splitlines()[0]}); compressed book chunks stay ~3% larger"
            )
    return notes


_TOAST_LZ4_SQL = (
    "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_toast_compression = ''lz4''',"
    " current_database()); END $$"
)
# The compact layout of store/postgres/levels.py decoded in SQL, for ad-hoc queries:
# bid_px, bid_sz, ask_px, ask_sz (4 * d values, NaN past each side's count).
_COMPACT_SQL = """
CREATE FUNCTION algo_trade_levels_compact(b bytea) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  q int := 2; acc numeric := 0; nb int := 0; fp float8; fs float8; d int;
  c int[] := '{0,0}'; best bigint[] := '{0,0}'; out float8[]; v bigint; w int := 0;
  cnt int; price bigint; h int; sh int; z int;
BEGIN
  IF get_byte(b, 0) <> 160 THEN RETURN NULL; END IF;
  fp := 10::float8 ^ (get_byte(b, 1) >> 4);
  fs := 10::float8 ^ (get_byte(b, 1) & 15);
  FOR k IN 0..2 LOOP  -- varints: d, bid count, ask count
    v := 0; sh := 0;
    LOOP
      z := get_byte(b, q); q := q + 1; v := v | ((z & 127)::bigint << sh); sh := sh + 7;
      EXIT WHEN z < 128;
    END LOOP;
    IF k = 0 THEN d := v; ELSE c[k] := v; END IF;
  END LOOP;
  out := array_fill('NaN'::float8, ARRAY[4 * d]);
  FOR k IN 1..2 LOOP  -- best prices: zigzag varints
    IF c[k] > 0 THEN
      v := 0; sh := 0;
      LOOP
        z := get_byte(b, q); q := q + 1; v := v | ((z & 127)::bigint << sh); sh := sh + 7;
        EXIT WHEN z < 128;
      END LOOP;
      best[k] := (v >> 1) # -(v & 1);
    END IF;
  END LOOP;
  FOR seg IN 0..3 LOOP  -- bit runs: bid gaps, bid sizes, ask gaps, ask sizes
    h := seg / 2;
    IF seg % 2 = 0 THEN
      price := best[h + 1];
      IF c[h + 1] > 0 THEN out[2 * h * d + 1] := price / fp; END IF;
      cnt := c[h + 1] - 1;
    ELSE
      cnt := c[h + 1];
    END IF;
    FOR j IN 0..cnt - 1 LOOP
      IF j % 8 = 0 THEN
        WHILE nb < 6 LOOP
          acc := acc + get_byte(b, q) * 2::numeric ^ nb; q := q + 1; nb := nb + 8;
        END LOOP;
        w := mod(acc, 64)::int; acc := div(acc, 64); nb := nb - 6;
      END IF;
      WHILE nb < w LOOP
        acc := acc + get_byte(b, q) * 2::numeric ^ nb; q := q + 1; nb := nb + 8;
      END LOOP;
      v := mod(acc, 2::numeric ^ w)::bigint; acc := div(acc, 2::numeric ^ w); nb := nb - w;
      IF seg % 2 = 1 THEN
        out[2 * h * d + d + j + 1] := v / fs;
      ELSE
        price := CASE WHEN h = 0 THEN price - ((v >> 1) # -(v & 1))
                      ELSE price + ((v >> 1) # -(v & 1)) END;
        out[2 * h * d + j + 2] := price / fp;
      END IF;
    END LOOP;
  END LOOP;
  RETURN out;
END $$
"""

MIGRATIONS = {
    1: ("tables, keys and partitioning per record kind", _migration_1),
    2: ("book levels packed as int32 mantissas with decimal scales", _migration_2),
    3: ("compact book levels, ts_local, depth table, no default ts index", _migration_3),
}


ENABLE_TIMESCALE = (
    "add shared_preload_libraries = 'timescaledb' to postgresql.conf (or run ALTER SYSTEM SET"
    " shared_preload_libraries = 'timescaledb'), restart PostgreSQL"
)


def timescale_preloaded(cur) -> bool:
    """Whether the server loads TimescaleDB at start (the only way it can run)."""
    cur.execute("SHOW shared_preload_libraries")
    libs = [x.strip().strip('"').strip() for x in (cur.fetchone()[0] or "").split(",")]
    # An entry may be a path or carry a version suffix ("$libdir/timescaledb-2.28.3").
    return any(x.rsplit("/", 1)[-1].split("-", 1)[0] == "timescaledb" for x in libs if x)


def _timescale_available(cur) -> tuple[bool, str]:
    """(usable, why not). Checks before CREATE EXTENSION: without preloading, loading
    TimescaleDB is FATAL and ends the session, so the fallback would find a dead connection."""
    cur.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    row = cur.fetchone()
    if row is None:
        return False, "the timescaledb extension is not installed on the server"
    if not timescale_preloaded(cur):
        return False, (
            f"TimescaleDB {row[0]} is installed on the server but not preloaded; to use it,"
            f" {ENABLE_TIMESCALE}, then run `algo-trade db init` on a new database"
        )
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    if cur.fetchone():
        return True, ""
    try:
        with cur.connection.transaction():
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True, ""
    except Exception as exc:  # e.g. no permission: the session is still alive here
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
        backend = _setting(cur, "backend") if current else None
        if current and backend == "timescaledb" and not timescale_preloaded(cur):
            raise StoreError(
                "this database uses TimescaleDB but the server does not preload it, so its"
                f" tables cannot be read; {ENABLE_TIMESCALE}"
            )
        if not has_versions:
            cur.execute(
                "CREATE TABLE schema_version (version int PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("COMMENT ON TABLE schema_version IS 'algo-trade schema migrations'")
        if current:
            timescale = backend == "timescaledb"
            why = (
                "this database was created without it; to use TimescaleDB, `algo-trade db init`"
                " a new database on a server that has it and `algo-trade db copy` the data"
            )
        elif not opts.timescale:
            timescale, why = False, "--no-timescale"
        else:
            timescale, why = _timescale_available(cur)
        applied: list[int] = []
        notes: list[str] = []
        for version in range(current + 1, SCHEMA_VERSION + 1):
            description, step = MIGRATIONS[version]
            notes += step(cur, opts, timescale)
            cur.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (version, description),
            )
            applied.append(version)
        if not current or reconfigure:
            notes += _apply_policies(cur, opts, timescale, new=not current)
        if not timescale:
            notes.insert(
                0,
                "TimescaleDB is not enabled in this database: native range partitions;"
                " not enabled: hypertables, compression, compression policy"
                + (", retention policy" if opts.retain_ns else "")
                + f" ({why})",
            )
        return InitReport(
            "timescaledb" if timescale else "partitions", applied, SCHEMA_VERSION, notes
        )


def _partition_name(kind: str, start_ns: int) -> str:
    dt = datetime.fromtimestamp(start_ns // 1_000_000_000, tz=UTC)
    return f"{kind}_p{dt.strftime('%Y%m%d_%H%M%S')}"


def describe(report: InitReport) -> str:
    """One line for `db init`."""
    what = f"applied migrations {report.applied}" if report.applied else "schema already up to date"
    return f"schema version {report.version} ({report.backend}): {what}"
