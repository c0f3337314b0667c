"""Book-from-depth kernels: replay `depth` rows (read order) into an L2 book and emit its
top L levels after every venue message or on a time grid. Arrays in, arrays out.

The book lives on a price grid per side: level size by integer tick (price * 10**k,
exact for the data's decimal scale k), plus a bitmap of occupied ticks, so an update is
O(1) and the next occupied level below/above the best is one word scan per 64 ticks.
The caller (`algo_trade.data.depth_books`) sizes the grids and regrids when prices leave
them (status ST_REGRID).

Rules (docs/data.md): a snapshot run (rows flagged SNAPSHOT with one (ts, seq)) clears
the book, then sets its levels; the book is live from the first run on. Grid point g
(a multiple of the interval) holds the book after every row with ts < g, the collector's
sampling rule. A run flagged RESYNC follows a gap: grid points between the previous row
and it are not emitted (the book then was not known). A silence longer than max_fill
grid points emits max_fill rows and no more (the collector's cap). Nothing is emitted
while the book is not live.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SNAPSHOT = 1  # schema.DEPTH_SNAPSHOT
RESYNC = 2  # schema.DEPTH_RESYNC

# state (int64[N_STATE]) slots
S_BEST_BID = 0  # grid index of the best bid, -1 when the side is empty
S_BEST_ASK = 1
S_LIVE = 2  # 1 once a snapshot run was applied
S_NEXT_G = 3  # next grid point to emit (0: none yet)
S_LAST_TS = 4  # ts of the last row applied
S_BID_BASE = 5  # tick of grid index 0
S_ASK_BASE = 6
S_MSGS = 7  # messages applied (diagnostics)
S_DIRTY = 8  # 1 when a message was applied since the last row emitted
N_STATE = 9

ST_DONE = 0
ST_FULL = 1  # output buffer full: call again from the returned row
ST_REGRID = 2  # a price outside its side's grid: regrid, then call again from the row


@njit(cache=True, nogil=True, inline="always")
def _set_bit(bits, i):  # pragma: no cover - compiled
    bits[i >> 6] |= np.uint64(1) << np.uint64(i & 63)


@njit(cache=True, nogil=True, inline="always")
def _clear_bit(bits, i):  # pragma: no cover - compiled
    bits[i >> 6] &= ~(np.uint64(1) << np.uint64(i & 63))


@njit(cache=True, nogil=True, inline="always")
def _msb(word):  # pragma: no cover - compiled
    """Index of the highest set bit of a non-zero uint64 (six halvings, not 64 shifts)."""
    b = 0
    if word >> np.uint64(32):
        word >>= np.uint64(32)
        b += 32
    if word >> np.uint64(16):
        word >>= np.uint64(16)
        b += 16
    if word >> np.uint64(8):
        word >>= np.uint64(8)
        b += 8
    if word >> np.uint64(4):
        word >>= np.uint64(4)
        b += 4
    if word >> np.uint64(2):
        word >>= np.uint64(2)
        b += 2
    if word >> np.uint64(1):
        b += 1
    return b


@njit(cache=True, nogil=True)
def _highest_at_or_below(bits, i):  # pragma: no cover - compiled
    """Highest occupied index <= i, or -1."""
    if i < 0:
        return -1
    w = i >> 6
    word = bits[w] & (np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(63 - (i & 63)))
    while True:
        if word != 0:
            return (w << 6) + _msb(word)
        w -= 1
        if w < 0:
            return -1
        word = bits[w]


@njit(cache=True, nogil=True)
def _lowest_at_or_above(bits, i, size):  # pragma: no cover - compiled
    """Lowest occupied index >= i, or -1."""
    if i >= size:
        return -1
    w = i >> 6
    nw = bits.shape[0]
    word = bits[w] & (np.uint64(0xFFFFFFFFFFFFFFFF) << np.uint64(i & 63))
    while True:
        if word != 0:
            return (w << 6) + _msb(word & (~word + np.uint64(1)))  # lowest set bit
        w += 1
        if w >= nw:
            return -1
        word = bits[w]


@njit(cache=True, nogil=True)
def _clear(q, bits):  # pragma: no cover - compiled
    for w in range(bits.shape[0]):
        word = bits[w]
        if word != 0:
            for b in range(64):
                if (word >> np.uint64(b)) & np.uint64(1):
                    q[(w << 6) + b] = 0.0
            bits[w] = np.uint64(0)


@njit(cache=True, nogil=True)
def _emit(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, row):  # pragma: no cover
    """Top L of both sides into out[row] (4, L): bid_px, bid_sz, ask_px, ask_sz; NaN-padded."""
    depth = out.shape[2]
    b = state[S_BEST_BID]
    base = state[S_BID_BASE]
    for j in range(depth):
        if b < 0:
            out[row, 0, j] = np.nan
            out[row, 1, j] = np.nan
        else:
            out[row, 0, j] = (base + b) / scale
            out[row, 1, j] = bid_q[b]
            b = _highest_at_or_below(bid_bits, b - 1)
    a = state[S_BEST_ASK]
    base = state[S_ASK_BASE]
    size = ask_q.shape[0]
    for j in range(depth):
        if a < 0:
            out[row, 2, j] = np.nan
            out[row, 3, j] = np.nan
        else:
            out[row, 2, j] = (base + a) / scale
            out[row, 3, j] = ask_q[a]
            a = _lowest_at_or_above(ask_bits, a + 1, size)


@njit(cache=True, nogil=True)
def _emit_or_copy(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, row):  # pragma: no cover
    """Grid rows in a quiet stretch repeat the book: copy the previous row of this buffer
    instead of walking the levels again."""
    if row > 0 and state[S_DIRTY] == 0:
        out[row] = out[row - 1]
    else:
        _emit(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, row)
        state[S_DIRTY] = 0


@njit(cache=True, nogil=True)
def replay_nb(
    ts, tick, side, qty, seq, flags, i0,
    state, bid_q, bid_bits, ask_q, ask_bits, scale,
    interval, emit_from, emit_until, horizon, max_fill,
    out_ts, out,
):  # fmt: skip  # pragma: no cover - compiled
    """Apply rows i0.. (read order) and emit book rows into out_ts/out (m, 4, L).

    interval > 0: grid mode (rows at multiples of interval); 0: one row after every
    message (rows sharing (ts, seq)). Rows are emitted only for emit_from <= ts <
    emit_until. horizon (grid mode): after the last row, grid points up to horizon
    (inclusive) are emitted too (the time the stream is known to reach; -1: none).
    Returns (next row, rows written, status ST_*). Stops only at message boundaries.
    """
    n = ts.shape[0]
    cap = out.shape[0]
    m = 0
    i = i0
    nb = bid_q.shape[0]
    na = ask_q.shape[0]
    while i < n:
        t = ts[i]
        sq = seq[i]
        snap = flags[i] & SNAPSHOT
        # message end
        j = i + 1
        while j < n and ts[j] == t and seq[j] == sq and (flags[j] & SNAPSHOT) == snap:
            j += 1
        # room for this message's rows: grid points passed (at most max_fill) + 1
        if m + max_fill + 2 > cap:
            return i, m, ST_FULL
        # every price of the message must fit its grid
        for k in range(i, j):
            if side[k] == 1:
                g = tick[k] - state[S_BID_BASE]
                if g < 0 or g >= nb:
                    return i, m, ST_REGRID
            else:
                g = tick[k] - state[S_ASK_BASE]
                if g < 0 or g >= na:
                    return i, m, ST_REGRID
        # grid points passed before this message: the book after rows with ts < g
        if interval > 0:
            nxt = state[S_NEXT_G]
            if state[S_LIVE] and t >= nxt:
                last = (t // interval) * interval
                if snap and (flags[i] & RESYNC):
                    last = nxt - interval  # the book before a resync is not known up to it
                cut = nxt + (max_fill - 1) * interval
                if last > cut:
                    last = cut
                g = nxt
                while g <= last:
                    if g >= emit_from and g < emit_until:
                        out_ts[m] = g
                        _emit_or_copy(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, m)
                        m += 1
                    g += interval
            if t >= nxt:
                state[S_NEXT_G] = (t // interval + 1) * interval
        # apply
        if snap:
            _clear(bid_q, bid_bits)
            _clear(ask_q, ask_bits)
            state[S_BEST_BID] = -1
            state[S_BEST_ASK] = -1
            state[S_LIVE] = 1
        bb = state[S_BEST_BID]
        ba = state[S_BEST_ASK]
        bbase = state[S_BID_BASE]
        abase = state[S_ASK_BASE]
        for k in range(i, j):
            q = qty[k]
            if side[k] == 1:
                g = tick[k] - bbase
                if q > 0.0:
                    bid_q[g] = q
                    _set_bit(bid_bits, g)
                    if g > bb:
                        bb = g
                else:
                    bid_q[g] = 0.0
                    _clear_bit(bid_bits, g)
                    if g == bb:
                        bb = _highest_at_or_below(bid_bits, g - 1)
            else:
                g = tick[k] - abase
                if q > 0.0:
                    ask_q[g] = q
                    _set_bit(ask_bits, g)
                    if ba < 0 or g < ba:
                        ba = g
                else:
                    ask_q[g] = 0.0
                    _clear_bit(ask_bits, g)
                    if g == ba:
                        ba = _lowest_at_or_above(ask_bits, g + 1, na)
        state[S_BEST_BID] = bb
        state[S_BEST_ASK] = ba
        state[S_LAST_TS] = t
        state[S_MSGS] += 1
        state[S_DIRTY] = 1
        if interval == 0 and state[S_LIVE] and t >= emit_from and t < emit_until:
            out_ts[m] = t
            _emit(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, m)
            m += 1
        i = j
    # trailing grid points, up to the time the stream is known to reach
    if interval > 0 and state[S_LIVE] and horizon >= 0:
        nxt = state[S_NEXT_G]
        if nxt > 0 and horizon >= nxt:
            last = (horizon // interval) * interval
            cut = nxt + (max_fill - 1) * interval
            if last > cut:
                last = cut
            g = nxt
            while g <= last and m < cap:
                if g >= emit_from and g < emit_until:
                    out_ts[m] = g
                    _emit_or_copy(state, bid_q, bid_bits, ask_q, ask_bits, scale, out, m)
                    m += 1
                g += interval
            state[S_NEXT_G] = g
    return i, m, ST_DONE


@njit(cache=True, nogil=True)
def levels_nb(q, bits, base):  # pragma: no cover - compiled
    """Occupied (tick, size) pairs of one side (for regridding)."""
    cnt = 0
    for w in range(bits.shape[0]):
        word = bits[w]
        while word != 0:
            word &= word - np.uint64(1)
            cnt += 1
    ticks = np.empty(cnt, dtype=np.int64)
    sizes = np.empty(cnt, dtype=np.float64)
    c = 0
    for w in range(bits.shape[0]):
        word = bits[w]
        if word != 0:
            for b in range(64):
                if (word >> np.uint64(b)) & np.uint64(1):
                    g = (w << 6) + b
                    ticks[c] = base + g
                    sizes[c] = q[g]
                    c += 1
    return ticks, sizes


@njit(cache=True, nogil=True)
def to_ticks_nb(price, scale):  # pragma: no cover - compiled
    """price * scale as int64 ticks, and whether every price is exactly tick / scale."""
    n = price.shape[0]
    out = np.empty(n, dtype=np.int64)
    exact = True
    for i in range(n):
        y = np.rint(price[i] * scale)
        out[i] = np.int64(y)
        exact &= y / scale == price[i]
    return out, exact
