"""Numba kernel: replay an incremental L2 stream (level sets) into book rows on a time grid.

Kernel rules (as in every ``*_nb`` module): plain arrays in and out, no objects, no I/O.
The book is two sorted arrays per side (best level last: bids ascending, asks
descending) updated by binary search; a set with size 0 deletes the level. The row at grid time g holds the
book after every update with time < g (the collector's rule), so rows are idempotent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# state slots (int64 array)
NEXT, IN_SNAP, SYNCED, NB, NA, OVERFLOW = 0, 1, 2, 3, 4, 5
STATE_LEN = 6
CAPACITY = 262_144  # price levels per side kept; beyond it the worst levels are dropped
MAX_FILL = 3600  # rows added for one silent stretch (as the collector)


def new_state(capacity: int = CAPACITY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(state int64[6], bids float64[2, cap], asks float64[2, cap]) of an empty book."""
    return (
        np.zeros(STATE_LEN, dtype=np.int64),
        np.empty((2, capacity), dtype=np.float64),
        np.empty((2, capacity), dtype=np.float64),
    )


@njit(cache=True, nogil=True)
def _set_level_nb(lv, n, px, sz, ascending):  # pragma: no cover - compiled
    """lv: float64[2, cap] (prices, sizes) sorted with the best level LAST (bids
    ascending, asks descending), so the frequent updates near the top move few levels;
    n: levels used. Returns the new n. A full book drops its worst level (index 0)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        p = lv[0, mid]
        if (p < px) if ascending else (p > px):
            lo = mid + 1
        else:
            hi = mid
    found = lo < n and lv[0, lo] == px
    if sz == 0.0:
        if found:
            for j in range(lo, n - 1):
                lv[0, j] = lv[0, j + 1]
                lv[1, j] = lv[1, j + 1]
            return n - 1
        return n
    if found:
        lv[1, lo] = sz
        return n
    if n < lv.shape[1]:
        for j in range(n, lo, -1):
            lv[0, j] = lv[0, j - 1]
            lv[1, j] = lv[1, j - 1]
        lv[0, lo] = px
        lv[1, lo] = sz
        return n + 1
    if lo == 0:
        return n  # worse than every kept level of a full book
    for j in range(0, lo - 1):
        lv[0, j] = lv[0, j + 1]
        lv[1, j] = lv[1, j + 1]
    lv[0, lo - 1] = px
    lv[1, lo - 1] = sz
    return n


@njit(cache=True, nogil=True)
def _emit_nb(out_lv, k, bids, nb, asks, na, depth):  # pragma: no cover - compiled
    for i in range(depth):
        if i < nb:
            out_lv[k, i] = bids[0, nb - 1 - i]
            out_lv[k, depth + i] = bids[1, nb - 1 - i]
        else:
            out_lv[k, i] = np.nan
            out_lv[k, depth + i] = np.nan
        if i < na:
            out_lv[k, 2 * depth + i] = asks[0, na - 1 - i]
            out_lv[k, 3 * depth + i] = asks[1, na - 1 - i]
        else:
            out_lv[k, 2 * depth + i] = np.nan
            out_lv[k, 3 * depth + i] = np.nan


@njit(cache=True, nogil=True)
def replay_l2_nb(
    ts, is_snap, is_bid, px, sz, start, state, bids, asks, interval, out_ts, out_lv
):  # pragma: no cover
    """Apply updates start.. of one instrument; write grid rows into out_ts/out_lv.

    ts: int64[n] update time, ns (non-decreasing); is_snap: int8[n] (0 a diff, 1 a
    snapshot row, 2 the first row of a snapshot run, -1 "the book is lost here": no rows
    until the next snapshot); is_bid: bool[n]; px, sz:
    float64[n] the level set (sz 0 deletes); start: first update to apply; state, bids,
    asks: the book (see `new_state`), updated in place; interval: grid step, ns;
    out_ts: int64[m], out_lv: float64[m, 4 * depth] (bid_px, bid_sz, ask_px, ask_sz).
    Returns (next update to apply, rows written): it stops early when out is full.
    A snapshot run (snapshot rows after other rows, or from a row coded 2) replaces the book.
    """
    depth = out_lv.shape[1] // 4
    m = out_ts.shape[0]
    k = 0
    i = start
    n = ts.shape[0]
    while i < n:
        t = ts[i]
        if t >= state[NEXT]:
            nxt = state[NEXT]
            if state[SYNCED] == 1 and nxt > 0 and (state[NB] > 0 or state[NA] > 0):
                last = (t // interval) * interval
                cap_last = nxt + (MAX_FILL - 1) * interval
                if last > cap_last:
                    last = cap_last
                while state[NEXT] <= last:
                    if k == m:
                        return i, k  # out is full: resume at update i
                    out_ts[k] = state[NEXT]
                    _emit_nb(out_lv, k, bids, state[NB], asks, state[NA], depth)
                    k += 1
                    state[NEXT] += interval
            state[NEXT] = (t // interval + 1) * interval
        code = is_snap[i]
        if code < 0:
            state[SYNCED] = 0
            state[NB] = 0
            state[NA] = 0
            state[IN_SNAP] = 0
            i += 1
            continue
        if code > 0:
            if state[IN_SNAP] == 0 or code == 2:
                state[NB] = 0
                state[NA] = 0
                state[IN_SNAP] = 1
            state[SYNCED] = 1
        else:
            state[IN_SNAP] = 0
        if is_bid[i]:
            state[NB] = _set_level_nb(bids, state[NB], px[i], sz[i], True)
        else:
            state[NA] = _set_level_nb(asks, state[NA], px[i], sz[i], False)
        i += 1
    return i, k


@njit(cache=True, nogil=True)
def final_row_nb(state, bids, asks, out_ts, out_lv):  # pragma: no cover - compiled
    """At the end of the data: one row at the next grid time holding the last book."""
    if state[SYNCED] == 1 and state[NEXT] > 0 and (state[NB] > 0 or state[NA] > 0):
        depth = out_lv.shape[1] // 4
        out_ts[0] = state[NEXT]
        _emit_nb(out_lv, 0, bids, state[NB], asks, state[NA], depth)
        return 1
    return 0
