"""Copy records between two stores (lake <-> PostgreSQL, or any pair), streamed and idempotent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from algo_trade.schema import check_kind
from algo_trade.store.base import Store, WriteResult, last_snapshot_at_or_before
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
    A `depth` dataset is copied from its newest snapshot run at or before `start` (a
    day's lookback), so the copy replays on its own: diffs without their snapshot would
    be rejected by the destination.
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
        s_kind = s
        if kind == "depth":
            snap = last_snapshot_at_or_before(src, ex, sym, s)
            s_kind = min(s, snap) if snap is not None else s
        for batch in src.scan(kind, ex, sym, s_kind, e):
            pending.append(batch)
            rows += batch.num_rows
            if rows >= COPY_BATCH_ROWS:
                done.add(dst.write(kind, _as_received(kind, pa.Table.from_batches(pending))))
                pending, rows = [], 0
                if progress:
                    progress(kind, ex, sym, done.written + done.duplicates)
        if pending:
            done.add(dst.write(kind, _as_received(kind, pa.Table.from_batches(pending))))
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


def _as_received(kind: str, table: pa.Table) -> pa.Table:
    """Depth rows in receipt order (ts_local, stable) for the destination's checks.

    A store returns depth in read order (ts, seq, ...), but a write checks that ts_local
    never goes back within a batch (there it is receipt order): a message stamped later
    by the exchange but received earlier would be refused on the way. The destination
    puts the rows back in read order.
    """
    if kind != "depth" or table.num_rows < 2:
        return table
    tl = table.column("ts_local").to_numpy()
    if (tl[1:] >= tl[:-1]).all():
        return table
    return table.take(pa.array(np.argsort(tl, kind="stable")))
