"""PostgreSQL metadata and maintenance: datasets, sizes, compression, planner statistics."""

from __future__ import annotations

from algo_trade.errors import StoreError
from algo_trade.store.base import DatasetStats
from algo_trade.store.postgres.schema import KINDS
from algo_trade.store.postgres.schema import pg_kind as check_kind


class Admin:
    """The store's metadata and maintenance side (mixed into PostgresStore)."""

    _pool: object
    backend: str
    interval_ns: int
    settings: dict[str, str]
    display_url: str

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
        """Compress chunks older than `older_than_ns` (default: the compression policy's age)
        now. Reports chunks compressed by this call apart from those that already were
        (`already_compressed`) and from compressed chunks that had taken new rows and were
        merged again (`recompressed`)."""
        if self.backend != "timescaledb":
            return {
                "compressed_chunks": 0,
                "already_compressed": 0,
                "note": "TimescaleDB is not enabled in this database: plain PostgreSQL has no chunk"
                " compression (install TimescaleDB, then `algo-trade db init` on a new database)",
            }
        age = (
            older_than_ns if older_than_ns is not None else int(self.settings["compress_after_ns"])
        )
        done: dict[str, object] = {
            "compressed_chunks": 0,
            "already_compressed": 0,
            "recompressed": 0,
        }
        per: dict[str, int] = {}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL default_toast_compression = 'lz4'")  # see schema migration 3
            for kind in KINDS:
                # chunk_status bits: 1 compressed, 8 partially compressed (rows added since).
                cur.execute(
                    "SELECT c, _timescaledb_functions.chunk_status(c) FROM show_chunks("
                    "%s::regclass, older_than => algo_trade_now_ns() - %s::bigint) c",
                    (kind, age),
                )
                chunks = cur.fetchall()
                todo = [c for c, st in chunks if not st & 1 or st & 8]
                for _c, st in chunks:
                    if st & 1 and not st & 8:
                        done["already_compressed"] = int(done["already_compressed"]) + 1  # type: ignore[call-overload]
                    elif st & 8:
                        done["recompressed"] = int(done["recompressed"]) + 1  # type: ignore[call-overload]
                for c in todo:
                    cur.execute("SELECT compress_chunk(%s::regclass)", (str(c),))
                fresh = sum(1 for _, st in chunks if not st & 1)
                per[kind] = fresh
                done["compressed_chunks"] = int(done["compressed_chunks"]) + fresh  # type: ignore[call-overload]
        done["per_table"] = per
        return done
