"""Copy records between two stores (lake <-> PostgreSQL, or any pair), streamed and idempotent."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from algo_trade.schema import check_kind
from algo_trade.store.base import Store, WriteResult
from algo_trade.timeutil import parse_range_ns

COPY_BATCH_ROWS = 200_000  # rows per write: bounded memory, few transactions


def copy_between(
    src: Store,
    dst: Store,
    start: object,
    end: object,
    kinds: list[str] | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
    progress: Callable[[str, str, str, int], None] | None = None,
) -> list[dict[str, object]]:
    """Copy every dataset of `src` (optionally filtered) within [start, end) into `dst`.

    Scans stream batch by batch; each batch is written with the destination's own
    deduplication, so re-running a copy stores nothing twice. Returns one row per dataset.
    """
    s, e = parse_range_ns(start, end)
    kinds = [check_kind(k) for k in kinds] if kinds else None
    report = []
    for kind, ex, sym in src.symbols():
        if (
            (kinds and kind not in kinds)
            or (exchange and ex != exchange)
            or (symbol and sym != symbol)
        ):
            continue
        done = WriteResult()
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in src.scan(kind, ex, sym, s, e):
            pending.append(batch)
            rows += batch.num_rows
            if rows >= COPY_BATCH_ROWS:
                done.add(dst.write(kind, pa.Table.from_batches(pending)))
                pending, rows = [], 0
                if progress:
                    progress(kind, ex, sym, done.written + done.duplicates)
        if pending:
            done.add(dst.write(kind, pa.Table.from_batches(pending)))
        report.append(
            {
                "kind": kind,
                "exchange": ex,
                "symbol": sym,
                "copied": done.written,
                "already_there": done.duplicates,
                "rejected": sum(done.rejected.values()),
            }
        )
    return report
