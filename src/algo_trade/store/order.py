"""The one total order of every read, in every store: ts, then the rest of the kind's key.

`schema.KEYS` names the key. Rows sharing a ts (funding: a settlement and a predicted
rate; trades: a burst of fills) come back in key order, so results do not depend on the
order rows were written in, on file merges or on compression: booleans false first
(a predicted funding rate before the settlement at the same ts), numbers ascending, and
trade ids as numbers where they are decimal digits (shorter first, then bytewise; the
same rule is a total order for ids that are not numbers). `depth` rows: ts, seq, the rows
of a snapshot before diffs, side, price (`data.depth_nb.depth_order`). PostgreSQL reads
use the same order (`store.postgres.schema.order_by`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algo_trade.data import depth_nb
from algo_trade.schema import KEYS

DEPTH_ORDER = ("ts", "seq", "flags", "side", "price")


def tie_keys(kind: str) -> tuple[str, ...]:
    """Key columns after ts that order rows sharing a ts (empty: ts alone is the key)."""
    return tuple(k for k in KEYS[kind] if k != "ts")


def _sort_keys(kind: str, table: pa.Table) -> list[np.ndarray]:
    """np.lexsort keys for (ts, tie keys): least significant first, ts last."""
    keys: list[np.ndarray] = []
    for name in reversed(tie_keys(kind)):
        col = table.column(name)
        if name == "trade_id":
            ids = col.combine_chunks().cast(pa.string())
            rank = np.empty(len(ids), dtype=np.int64)
            rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))  # bytewise order
            keys += [rank, pc.utf8_length(ids).to_numpy(zero_copy_only=False)]
        elif pa.types.is_boolean(col.type):
            keys.append(col.to_numpy(zero_copy_only=False).astype(np.int8))
        else:
            keys.append(col.to_numpy(zero_copy_only=False))
    keys.append(table.column("ts").to_numpy())
    return keys


def total_order(kind: str, table: pa.Table) -> np.ndarray | None:
    """The permutation that puts `table` in read order, or None when it already is.

    Sorting by ts is stable; only runs of equal ts are then sorted by the rest of the key,
    so a table without ties costs one pass.
    """
    ts = table.column("ts").to_numpy()
    n = len(ts)
    if n < 2:
        return None
    if kind == "depth":  # its own order: snapshot rows before diffs (`data.depth_nb`)
        keys = [np.ascontiguousarray(table.column(c).to_numpy()) for c in DEPTH_ORDER]
        if depth_nb.in_order_nb(*keys):
            return None
        return depth_nb.depth_order(*keys)
    d = np.diff(ts)
    order = None if (d >= 0).all() else np.argsort(ts, kind="stable")
    if not tie_keys(kind):
        return order
    if order is not None:
        d = np.diff(ts[order])
    tie = d == 0
    if not tie.any():
        return order
    # Rows in runs of equal ts; the runs are contiguous once sorted by ts, so sorting just
    # these rows by (ts, key) and writing them back into their positions finishes the job.
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= tie
    in_run[:-1] |= tie
    base = order if order is not None else np.arange(n)
    pos = np.flatnonzero(in_run)
    sub = table.take(pa.array(base[pos]))
    sub_order = np.lexsort(_sort_keys(kind, sub))
    if order is None and (sub_order == np.arange(len(pos))).all():
        return None
    out = base.copy()
    out[pos] = base[pos][sub_order]
    return out


def in_total_order(kind: str, table: pa.Table) -> pa.Table:
    """`table` in read order (itself when it already is)."""
    order = total_order(kind, table)
    return table if order is None else table.take(pa.array(order))
