"""Kernels over `depth` rows (arrays in, arrays out): read order, duplicates, validation.

The read order of depth rows is total: ts, seq, snapshot rows before diff rows, side
(asks -1 before bids 1), price. Rows of one venue message share (ts, seq); inside a
message each (side, price) appears once, and a snapshot run clears the book before it
is applied, so ordering the rows of one message by (side, price) changes no book state.
Across messages (ts, seq) is the venue's order (see docs/data.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit

SNAPSHOT = 1  # schema.DEPTH_SNAPSHOT (kernels import nothing from the package)

# Reasons a row is rejected by `depth_state_nb` (codes into REASONS).
R_OK = 0
R_NO_SNAPSHOT = 1
R_CROSSED = 2
R_PARTIAL = 3
REASONS = (
    "",
    "depth diff with no valid snapshot before it (replay would invent a book)",
    "depth snapshot with crossed levels (best bid >= best ask)",
    "depth snapshot run with a rejected row (incomplete snapshot)",
)


@njit(cache=True, nogil=True)
def _before(ts, seq, snap, side, price, i, j):  # pragma: no cover - compiled
    """Row i strictly before row j in read order (0: equal keys, 1: before, -1: after)."""
    if ts[i] != ts[j]:
        return 1 if ts[i] < ts[j] else -1
    if seq[i] != seq[j]:
        return 1 if seq[i] < seq[j] else -1
    if snap[i] != snap[j]:
        return 1 if snap[i] > snap[j] else -1
    if side[i] != side[j]:
        return 1 if side[i] < side[j] else -1
    if price[i] != price[j]:
        return 1 if price[i] < price[j] else -1
    return 0


@njit(cache=True, nogil=True)
def in_order_nb(ts, seq, flags, side, price):  # pragma: no cover - compiled
    """True when the rows are already in read order (ties allowed: duplicates)."""
    n = ts.shape[0]
    snap = flags & SNAPSHOT
    for i in range(1, n):
        if ts[i] > ts[i - 1]:  # the common case, decided by ts alone
            continue
        if ts[i] < ts[i - 1] or _before(ts, seq, snap, side, price, i - 1, i) < 0:
            return False
    return True


@njit(cache=True, nogil=True)
def adjacent_dups_nb(ts, seq, flags, side, price):  # pragma: no cover - compiled
    """Rows in read order: True where a row's key equals the previous row's key."""
    n = ts.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        out[i] = (
            ts[i] == ts[i - 1]
            and seq[i] == seq[i - 1]
            and flags[i] == flags[i - 1]
            and side[i] == side[i - 1]
            and price[i] == price[i - 1]
        )
    return out


def depth_order(ts, seq, flags, side, price, group=None) -> np.ndarray:
    """Permutation putting rows in read order (`group` first when given; stable)."""
    snap_first = 1 - (np.asarray(flags) & SNAPSHOT).astype(np.int8)
    keys = (price, side, snap_first, seq, ts)
    if group is not None:
        keys = keys + (group,)
    return np.lexsort(keys)


@njit(cache=True, nogil=True)
def row_checks_nb(side, price, qty):  # pragma: no cover - compiled
    """Per row: 0 ok, 1 side not 1/-1, 2 price or qty not finite, 3 price <= 0 or qty < 0."""
    n = side.shape[0]
    out = np.zeros(n, dtype=np.int8)
    for i in range(n):
        p = price[i]
        q = qty[i]
        if side[i] != 1 and side[i] != -1:
            out[i] = 1
        elif not (np.isfinite(p) and np.isfinite(q)):
            out[i] = 2
        elif p <= 0.0 or q < 0.0:
            out[i] = 3
    return out


@njit(cache=True, nogil=True)
def ts_local_back_nb(group, ts_local, flags, valid, n_groups):  # pragma: no cover - compiled
    """Input (receipt) order: True for diff rows whose ts_local is below an earlier diff
    row's of the same group (the receipt clock never runs backwards within one batch).
    Snapshot rows are left out: a REST snapshot is received after diffs that are applied
    on top of it (they were buffered while it was fetched)."""
    n = ts_local.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    last = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    for i in range(n):
        if not valid[i] or (flags[i] & SNAPSHOT):
            continue
        g = group[i]
        if ts_local[i] < last[g]:
            out[i] = True
        else:
            last[g] = ts_local[i]
    return out


@njit(cache=True, nogil=True)
def depth_state_nb(order, group, ts, seq, flags, side, price, qty, bad, live0):  # pragma: no cover
    """Walk rows in `order` (grouped, read order) and give each a reason code (R_*).

    A group's book is live after a clean snapshot run (or from the start when live0[g]:
    the store already holds its stream). A diff while not live is rejected; a run with a
    row already rejected (`bad`) or with crossed levels is rejected whole and leaves the
    book not live; a rejected diff row leaves the book unknown (not live) as well.
    """
    n = order.shape[0]
    out = np.zeros(n, dtype=np.int8)
    k = 0
    g_prev = -1
    live = False
    while k < n:
        i = order[k]
        g = group[i]
        if g != g_prev:
            live = live0[g]
            g_prev = g
        if flags[i] & SNAPSHOT:
            end = k + 1
            while end < n:
                j = order[end]
                if group[j] != g or not (flags[j] & SNAPSHOT) or ts[j] != ts[i] or seq[j] != seq[i]:
                    break
                end += 1
            partial = False
            best_bid = -np.inf
            best_ask = np.inf
            for m in range(k, end):
                j = order[m]
                if bad[j]:
                    partial = True
                elif qty[j] > 0.0:
                    if side[j] == 1:
                        best_bid = max(best_bid, price[j])
                    else:
                        best_ask = min(best_ask, price[j])
            code = R_OK
            if partial:
                code = R_PARTIAL
            elif best_bid >= best_ask:
                code = R_CROSSED
            if code != R_OK:
                for m in range(k, end):
                    j = order[m]
                    if not bad[j]:
                        out[j] = code
            live = code == R_OK
            k = end
            continue
        if bad[i]:
            live = False
        elif not live:
            out[i] = R_NO_SNAPSHOT
        k += 1
    return out
