"""The store protocol every backend implements, and `open_store` to pick one.

A store holds records of the kinds in `algo_trade.schema`, one dataset per
(kind, exchange, symbol). Every read names a half-open time range [start, end) in ns;
large reads stream as Arrow record batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa

from algo_trade.errors import ConfigError
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


def stats_rows(store: Store) -> list[dict[str, object]]:
    """One plain row per dataset of `store.stats()` (times as ISO text, bytes per row):
    what `db stats` prints and `--json` emits."""
    from algo_trade.timeutil import fmt_ns

    rows: list[dict[str, object]] = []
    for s in store.stats():
        row: dict[str, object] = {
            "kind": s.kind,
            "exchange": s.exchange,
            "symbol": s.symbol,
            "rows": s.rows,
            "first": fmt_ns(s.first_ts),
            "last": fmt_ns(s.last_ts),
            "bytes": s.bytes,
            "bytes_per_row": round(s.bytes / s.rows, 1) if s.rows else None,
            "parts": s.parts,
        }
        row.update(s.extra)
        rows.append(row)
    return rows


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


# libpq connection keywords (https://www.postgresql.org/docs/current/libpq-connect.html):
# a string starting with one of them followed by "=" is a key=value connection string.
_LIBPQ_KEYS = frozenset(
    "host hostaddr port dbname user password passfile require_auth channel_binding "
    "connect_timeout client_encoding options application_name fallback_application_name "
    "keepalives keepalives_idle keepalives_interval keepalives_count tcp_user_timeout "
    "replication gssencmode sslmode requiressl sslcompression sslcert sslkey sslpassword "
    "sslcertmode sslrootcert sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version "
    "ssl_max_protocol_version krbsrvname gsslib gssdelegation service target_session_attrs "
    "load_balance_hosts".split()
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_KEYWORD = re.compile(r"([A-Za-z_]+)\s*=")
_DB_FORMS = "postgresql://user@host/dbname or 'host=... dbname=...'"


def postgres_target(text: str, what: str = "--db") -> str:
    """The PostgreSQL connection string a user meant, normalized, or a ConfigError that
    never repeats the text (it may hold a password). Accepts postgresql:// and postgres://
    in any letter case with surrounding blanks, and libpq key=value strings.

    >>> postgres_target(" PostgreSQL://me@db/x")
    'postgresql://me@db/x'
    """
    s = str(text).strip()
    m = _SCHEME.match(s)
    if m:
        scheme = m.group(1).lower()
        if scheme in ("postgresql", "postgres"):
            return scheme + s[m.end(1) :]
        shown = m.group(1) if len(m.group(1)) <= 30 else m.group(1)[:30] + "…"
        raise ConfigError(
            f"{what}: {shown}:// is not a PostgreSQL URL; give {_DB_FORMS} "
            "(a lake is chosen with --home)"
        )
    k = _KEYWORD.match(s)
    if k and k.group(1).lower() in _LIBPQ_KEYS:
        _check_keywords(s, what)
        return s
    raise ConfigError(
        f"{what} is neither a postgresql:// URL nor a libpq key=value string; give {_DB_FORMS}"
        " (a lake directory is chosen with --home)"
    )


def _check_keywords(s: str, what: str) -> None:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - the driver is what connects anyway
        return
    try:
        conninfo_to_dict(s)
    except Exception as exc:
        # libpq may quote a piece of the text (a password) in its message: name only a keyword
        m = re.search(r'invalid connection option "(\w+)"', str(exc))
        why = f"unknown keyword {m.group(1)!r}" if m else "its quoting or a missing '='"
        raise ConfigError(
            f"{what}: the key=value connection string is malformed ({why}); give {_DB_FORMS}"
        ) from None


def is_postgres_target(text: str) -> bool:
    """True when `text` names PostgreSQL (URL or key=value string) rather than a lake home."""
    s = str(text).strip()
    m = _SCHEME.match(s)
    if m:
        return True  # any scheme: refused by postgres_target unless it is PostgreSQL's
    k = _KEYWORD.match(s)
    return bool(k and k.group(1).lower() in _LIBPQ_KEYS)


DEFAULT_LOOKBACK_NS = 86_400 * 10**9  # how far back a depth replay looks for its snapshot


def last_snapshot_at_or_before(
    store: Store, exchange: str, symbol: str, ts: int, lookback_ns: int = DEFAULT_LOOKBACK_NS
) -> int | None:
    """ts of the newest depth snapshot run at or before `ts` (within lookback), or None:
    where a replay of the depth stream must start to know the book at `ts`."""
    from algo_trade.schema import DEPTH_SNAPSHOT

    for batch in store.scan(
        "depth", exchange, symbol, ts - lookback_ns, ts + 1, columns=["ts", "flags"],
        descending=True,
    ):  # fmt: skip
        flags = batch.column("flags").to_numpy(zero_copy_only=False)
        hit = (flags & DEPTH_SNAPSHOT).nonzero()[0]
        if len(hit):
            return int(batch.column("ts")[int(hit[0])].as_py())
    return None


def open_store(target: str | Path | None = None, **options: object) -> Store:
    """Open a store: a PostgreSQL target (``postgresql://`` URL, any letter case, or a
    libpq ``host=... dbname=...`` string) selects the database, anything else is a lake
    home. A URL of another scheme is refused.

    >>> store = open_store("./algo-trade-data")  # doctest: +SKIP
    """
    if target is None:
        target = "./algo-trade-data"
    if not isinstance(target, Path) and is_postgres_target(target):
        url = postgres_target(target, "store target")
        require("postgres")
        from algo_trade.store.postgres import PostgresStore

        return PostgresStore(url, **options)  # type: ignore[arg-type]
    from algo_trade.store.lake import LakeStore

    return LakeStore(Path(target), **options)  # type: ignore[arg-type]
