"""Numba kernels for Binance USD-M frames: a block of raw lines -> depth and trade columns.

Kernel rules (as in every ``*_nb`` module): plain arrays in and out, no objects, no I/O.

`parse_lines_nb` reads a block of ``<receive time> <raw frame>`` lines (a capture, or
frames the collector received) in one call: depth diffs, REST depth snapshots and
trades are read field by field from the bytes (see `framenb`); bookTicker frames are
recognised and skipped; every other frame is marked OTHER for the general parser
(`binance.Normalizer`: markPrice, forceOrder, aggTrade, replies, odd number formats).

`sequence_nb` then applies Binance's book rules to the parsed messages in order, per
symbol (the same rules as `binance.Normalizer`, see its docstring): diffs wait for a
snapshot; diffs with ``u < lastUpdateId`` are stale; the first applied diff must
bridge the snapshot (``U <= lastUpdateId <= u``); each later diff must have ``pu`` equal
to the previous ``u``, else the book is lost until a new snapshot. Accepted updates come
out as `depth` rows; a bridged snapshot as one snapshot run just before its first diff.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from algo_trade.exchanges.framenb import (
    LOST_FLAG,
    dec_nb,
    equals_nb,
    int_nb,
    levels_nb,
    match_symbol_nb,
    pattern,
    skip_ws_nb,
    str_nb,
    value_from_nb,
    value_nb,
)

# message kinds
EMPTY, BAD_LINE, OTHER, DIFF, SNAPSHOT, TRADE, IGNORED, UNPARSED, FOREIGN = range(9)
# UNPARSED: a depth or trade frame the kernel could not read (counted as malformed);
# FOREIGN: a frame of a symbol not imported (skipped, as the Normalizer does).

MSG = np.dtype(
    [
        ("kind", np.int8),
        ("sym", np.int32),
        ("recv", np.int64),  # local receive time, ns
        ("ts", np.int64),  # diff/snapshot E, trade T (venue ms -> ns)
        ("first_id", np.int64),  # diff U; trade id
        ("last_id", np.int64),  # diff u; snapshot lastUpdateId
        ("prev_id", np.int64),  # diff pu
        ("lv_lo", np.int64),  # levels [lv_lo, lv_hi) in the level arrays
        ("lv_hi", np.int64),
        ("px", np.float64),  # trade price
        ("qty", np.float64),  # trade qty
        ("side", np.int8),  # trade taker side
        ("line_lo", np.int64),  # the line's first byte in the block
        ("raw_lo", np.int64),  # the raw frame's bytes in the block
        ("raw_hi", np.int64),
    ]
)

SNAP_FLAG = 1  # schema.DEPTH_SNAPSHOT (kernels import nothing from the package)
MAX_HELD = 10_000  # diffs kept per symbol while no snapshot bridges them (as the Normalizer)
# counters
C_STALE, C_GAPS, C_TOO_OLD = 0, 1, 2
MS = 1_000_000

_E = pattern('"e":')
_BIG_E = pattern('"E":')
_T = pattern('"T":')
_S = pattern('"s":')
_BIG_U = pattern('"U":')
_U = pattern('"u":')
_PU = pattern('"pu":')
_B = pattern('"b":')
_A = pattern('"a":')
_T_ID = pattern('"t":')
_P = pattern('"p":')
_Q = pattern('"q":')
_M = pattern('"m":')
_LUID = pattern('"lastUpdateId":')
_BIDS = pattern('"bids":')
_ASKS = pattern('"asks":')
_DEPTH_UPDATE = pattern("depthUpdate")
_TRADE = pattern("trade")
_BOOK_TICKER = pattern("bookTicker")


@njit(cache=True, nogil=True)
def recv_ns_nb(v):  # pragma: no cover - compiled
    """A receive time in ms, µs or ns -> ns (by magnitude)."""
    if v < 100_000_000_000_000:
        return v * 1_000_000
    if v < 100_000_000_000_000_000:
        return v * 1000
    return v


@njit(cache=True, nogil=True)
def _symbol_nb(buf, lo, hi, names, offsets):  # pragma: no cover - compiled
    """(symbol index, found): -1 for a name not imported; found False when no "s"."""
    p = value_nb(buf, lo, hi, _S)
    if p < 0:
        return -1, False
    s, e = str_nb(buf, p, hi)
    if s < 0:
        return -1, False
    return match_symbol_nb(buf, s, e, names, offsets), True


@njit(cache=True, nogil=True)
def _diff_nb(buf, lo, hi, m, names, offsets, pow10, lv_px, lv_qty, lv_side, k):  # pragma: no cover
    """Fill message m from a depthUpdate frame; returns (new level count, kind). Fields
    are looked for in Binance's order first (E, s, U, u, pu, b, a), any order works."""
    ev, p = int_nb(buf, value_from_nb(buf, lo, lo, hi, _BIG_E), hi)
    if p < 0:
        return k, UNPARSED
    ps = value_from_nb(buf, p, lo, hi, _S)
    s, e = str_nb(buf, ps, hi)
    if s < 0:
        return k, UNPARSED
    sym = match_symbol_nb(buf, s, e, names, offsets)
    if sym < 0:
        return k, FOREIGN
    first, p = int_nb(buf, value_from_nb(buf, e, lo, hi, _BIG_U), hi)
    if p < 0:
        return k, UNPARSED
    last, p = int_nb(buf, value_from_nb(buf, p, lo, hi, _U), hi)
    if p < 0:
        return k, UNPARSED
    prev, p = int_nb(buf, value_from_nb(buf, p, lo, hi, _PU), hi)
    if p < 0:
        return k, UNPARSED
    k0 = k
    pb = value_from_nb(buf, p, lo, hi, _B)
    k, end = levels_nb(buf, pb, hi, 1, pow10, lv_px, lv_qty, lv_side, k)
    if end < 0:
        return k0, UNPARSED
    k, end = levels_nb(
        buf, value_from_nb(buf, end, lo, hi, _A), hi, -1, pow10, lv_px, lv_qty, lv_side, k
    )
    if end < 0:
        return k0, UNPARSED
    m["sym"] = sym
    m["ts"] = ev * MS
    m["first_id"] = first
    m["last_id"] = last
    m["prev_id"] = prev
    m["lv_lo"] = k0
    m["lv_hi"] = k
    return k, DIFF


@njit(cache=True, nogil=True)
def _snapshot_nb(
    buf, lo, hi, m, names, offsets, pow10, lv_px, lv_qty, lv_side, k
):  # pragma: no cover
    """Fill message m from a REST /fapi/v1/depth body; returns (new level count, kind)."""
    n_names = offsets.shape[0] - 1
    sym, found = _symbol_nb(buf, lo, hi, names, offsets)
    if not found:
        if n_names != 1:
            return k, UNPARSED  # a body naming no symbol only fits a one-symbol import
        sym = 0
    elif sym < 0:
        return k, FOREIGN
    luid, e1 = int_nb(buf, value_nb(buf, lo, hi, _LUID), hi)
    if e1 < 0:
        return k, UNPARSED
    # E (output time) is after every diff the snapshot holds; T if there is no E.
    ev, e2 = int_nb(buf, value_nb(buf, lo, hi, _BIG_E), hi)
    if e2 < 0:
        ev, e2 = int_nb(buf, value_nb(buf, lo, hi, _T), hi)
        if e2 < 0:
            ev = 0
    k0 = k
    k, end = levels_nb(buf, value_nb(buf, lo, hi, _BIDS), hi, 1, pow10, lv_px, lv_qty, lv_side, k)
    if end < 0:
        return k0, UNPARSED
    k, end = levels_nb(buf, value_nb(buf, lo, hi, _ASKS), hi, -1, pow10, lv_px, lv_qty, lv_side, k)
    if end < 0:
        return k0, UNPARSED
    m["sym"] = sym
    m["ts"] = ev * MS
    m["last_id"] = luid
    m["lv_lo"] = k0
    m["lv_hi"] = k
    return k, SNAPSHOT


@njit(cache=True, nogil=True)
def _trade_nb(buf, lo, hi, m, names, offsets, pow10):  # pragma: no cover - compiled
    """Fill message m from a trade frame (fields looked for in order T, s, t, p, q, m)."""
    t, p = int_nb(buf, value_from_nb(buf, lo, lo, hi, _T), hi)
    if p < 0:
        return UNPARSED
    s, e = str_nb(buf, value_from_nb(buf, p, lo, hi, _S), hi)
    if s < 0:
        return UNPARSED
    sym = match_symbol_nb(buf, s, e, names, offsets)
    if sym < 0:
        return FOREIGN
    tid, p = int_nb(buf, value_from_nb(buf, e, lo, hi, _T_ID), hi)
    if p < 0:
        return UNPARSED
    px, p = dec_nb(buf, value_from_nb(buf, p, lo, hi, _P), hi, pow10)
    if p < 0:
        return UNPARSED
    qty, p = dec_nb(buf, value_from_nb(buf, p, lo, hi, _Q), hi, pow10)
    if p < 0:
        return UNPARSED
    pm = value_from_nb(buf, p, lo, hi, _M)
    if pm < 0:
        return UNPARSED
    if buf[pm] == 116:  # m true: the buyer was maker, so the taker sold
        side = -1
    elif buf[pm] == 102:
        side = 1
    else:
        return UNPARSED
    m["sym"] = sym
    m["ts"] = t * MS
    m["first_id"] = tid
    m["px"] = px
    m["qty"] = qty
    m["side"] = side
    return TRADE


@njit(cache=True, nogil=True)
def parse_lines_nb(buf, names, offsets, pow10, msgs, lv_px, lv_qty, lv_side):  # pragma: no cover
    """Parse every line of buf.

    buf: uint8[n] whole lines; names/offsets: the imported venue symbols (concatenated
    bytes, int64[n_sym + 1]); pow10: `framenb.POW10`; msgs: MSG[>= lines]; lv_*:
    float64/float64/int8[cap] level rows (cap >= the levels in buf). Returns (messages,
    levels); msgs[i] is line i. The level arrays must be large enough: a level takes at
    least 9 bytes, so n // 9 + 1 always is.
    """
    n = buf.shape[0]
    pos = 0
    i = 0
    k = 0
    while pos < n:
        end = pos
        while end < n and buf[end] != 10:
            end += 1
        nxt = end + 1
        hi = end
        while hi > pos and (buf[hi - 1] == 13 or buf[hi - 1] == 32):
            hi -= 1
        m = msgs[i]
        m["kind"] = EMPTY
        m["sym"] = -1
        m["lv_lo"] = k
        m["lv_hi"] = k
        m["line_lo"] = pos
        m["raw_lo"] = pos
        m["raw_hi"] = hi
        p = pos
        v = 0
        while p < hi and 48 <= buf[p] <= 57 and p - pos < 19:
            v = v * 10 + (buf[p] - 48)
            p += 1
        if hi > pos:
            if p == pos or p >= hi or buf[p] != 32:
                m["kind"] = BAD_LINE
            else:
                lo = skip_ws_nb(buf, p + 1, hi)
                m["recv"] = recv_ns_nb(v)
                m["raw_lo"] = lo
                if lo >= hi:
                    m["kind"] = BAD_LINE
                else:
                    m["kind"] = OTHER
                    pe = value_nb(buf, lo, hi, _E)
                    if pe >= 0:
                        s, e = str_nb(buf, pe, hi)
                        if s >= 0:
                            if equals_nb(buf, s, e, _DEPTH_UPDATE):
                                k, kind = _diff_nb(
                                    buf, lo, hi, m, names, offsets, pow10, lv_px, lv_qty, lv_side, k
                                )
                                m["kind"] = kind
                            elif equals_nb(buf, s, e, _TRADE):
                                m["kind"] = _trade_nb(buf, lo, hi, m, names, offsets, pow10)
                            elif equals_nb(buf, s, e, _BOOK_TICKER):
                                m["kind"] = IGNORED
                    elif value_nb(buf, lo, min(hi, lo + 64), _LUID) >= 0:
                        k, kind = _snapshot_nb(
                            buf, lo, hi, m, names, offsets, pow10, lv_px, lv_qty, lv_side, k
                        )
                        m["kind"] = kind
        i += 1
        pos = nxt
    return i, k


@njit(cache=True, nogil=True)
def _row_nb(out, r, ts, ts_local, sym, side, px, qty, seq, flags):  # pragma: no cover
    o_ts, o_tl, o_sym, o_side, o_px, o_qty, o_seq, o_flags = out
    o_ts[r] = ts
    o_tl[r] = ts_local
    o_sym[r] = sym
    o_side[r] = side
    o_px[r] = px
    o_qty[r] = qty
    o_seq[r] = seq
    o_flags[r] = flags


@njit(cache=True, nogil=True)
def _emit_side_nb(
    lo, hi, want, lv_px, lv_qty, lv_side, ts, ts_local, sym, seq, flags, out, r
):  # pragma: no cover - compiled  # fmt: skip
    """Rows of one side of a message, prices ascending when the venue listed them
    monotonically (diffs list both sides ascending, REST bids descending)."""
    first = -1.0
    last = -1.0
    for q in range(lo, hi):
        if lv_side[q] == want:
            if first < 0.0:
                first = lv_px[q]
            last = lv_px[q]
    snap = flags & SNAP_FLAG
    if last >= first:
        for q in range(lo, hi):
            if lv_side[q] == want and not (snap and lv_qty[q] <= 0.0):
                _row_nb(out, r, ts, ts_local, sym, want, lv_px[q], lv_qty[q], seq, flags)
                r += 1
    else:
        for q in range(hi - 1, lo - 1, -1):
            if lv_side[q] == want and not (snap and lv_qty[q] <= 0.0):
                _row_nb(out, r, ts, ts_local, sym, want, lv_px[q], lv_qty[q], seq, flags)
                r += 1
    return r


@njit(cache=True, nogil=True)
def _emit_nb(msgs, j, lv_px, lv_qty, lv_side, ts, ts_local, seq, flags, out, r):  # pragma: no cover
    """Copy message j's levels as rows r.. of out (a snapshot skips empty levels), in
    the depth read order where the venue's lists allow (asks before bids, prices
    ascending), so the store need not sort them."""
    sym = msgs[j]["sym"]
    lo = msgs[j]["lv_lo"]
    hi = msgs[j]["lv_hi"]
    r = _emit_side_nb(lo, hi, -1, lv_px, lv_qty, lv_side, ts, ts_local, sym, seq, flags, out, r)
    return _emit_side_nb(lo, hi, 1, lv_px, lv_qty, lv_side, ts, ts_local, sym, seq, flags, out, r)


@njit(cache=True, nogil=True)
def _lost_nb(sym, ts, out, r):  # pragma: no cover - compiled
    _row_nb(out, r, ts, ts, sym, 0, np.nan, np.nan, -1, LOST_FLAG)
    return r + 1


@njit(cache=True, nogil=True)
def _hold_nb(msgs, j, sym, held, held_first, held_count):  # pragma: no cover - compiled
    """Keep diff j of `sym` until a snapshot comes (at most MAX_HELD: the oldest goes)."""
    held[j] = True
    if held_count[sym] == 0:
        held_first[sym] = j
    held_count[sym] += 1
    if held_count[sym] > MAX_HELD:  # no snapshot came: keep the newest
        q = held_first[sym]
        while not (held[q] and msgs[q]["sym"] == sym):
            q += 1
        held[q] = False
        held_count[sym] -= 1
        q += 1
        while q < j and not (held[q] and msgs[q]["sym"] == sym):
            q += 1
        held_first[sym] = q


@njit(cache=True, nogil=True)
def _diff_step_nb(
    msgs, j, lv_px, lv_qty, lv_side, synced, last_u, snap, held, held_first, held_count, floor,
    out, r, cnt,
):  # pragma: no cover - compiled  # fmt: skip
    """Apply Binance's rules to diff j; returns the new row count. floor[sym]: the
    receipt time of the symbol's last snapshot (diffs held for it are usable from then)."""
    m = msgs[j]
    s = m["sym"]
    u = m["last_id"]
    if synced[s] == 1:
        if m["prev_id"] != last_u[s]:
            synced[s] = 0
            cnt[C_GAPS] += 1
            r = _lost_nb(s, m["ts"], out, r)
            _hold_nb(msgs, j, s, held, held_first, held_count)
            return r
        tl = m["recv"] if m["recv"] > floor[s] else floor[s]
        r = _emit_nb(msgs, j, lv_px, lv_qty, lv_side, m["ts"], tl, u, 0, out, r)
        last_u[s] = u
        return r
    sj = snap[s]
    if sj < 0:
        _hold_nb(msgs, j, s, held, held_first, held_count)
        return r
    lid = msgs[sj]["last_id"]
    if u < lid:
        cnt[C_STALE] += 1
        return r
    if m["first_id"] > lid:
        # The snapshot is older than the first diff we hold: it cannot be bridged.
        snap[s] = -1
        cnt[C_TOO_OLD] += 1
        r = _lost_nb(s, m["ts"], out, r)
        _hold_nb(msgs, j, s, held, held_first, held_count)
        return r
    snap[s] = -1
    synced[s] = 1
    # The snapshot's state is at lastUpdateId <= u: no later than this diff, so its run
    # is stamped at most at the diff's time (its own E can be later and would sort after).
    snap_ts = msgs[sj]["ts"]
    if m["ts"] < snap_ts:
        snap_ts = m["ts"]
    snap_recv = msgs[sj]["recv"]
    floor[s] = snap_recv
    r = _emit_nb(msgs, sj, lv_px, lv_qty, lv_side, snap_ts, snap_recv, lid, SNAP_FLAG, out, r)
    # A diff received before its snapshot is usable only from the snapshot's arrival.
    tl = m["recv"] if m["recv"] > snap_recv else snap_recv
    r = _emit_nb(msgs, j, lv_px, lv_qty, lv_side, m["ts"], tl, u, 0, out, r)
    last_u[s] = u
    return r


@njit(cache=True, nogil=True)
def sequence_nb(
    msgs, n, lv_px, lv_qty, lv_side, synced, last_u, out, cnt, carry
):  # pragma: no cover - compiled
    """Apply the book rules to msgs[:n] in order; write accepted depth rows to out.

    synced: int8[n_sym], last_u: int64[n_sym]: each symbol's book state, carried from
    the previous block and updated in place; out: (ts, ts_local int64, sym int32, side
    int8, px, qty float64, seq int64, flags uint8) arrays with room for every level of
    the block plus one row per message; cnt: int64[3] counters (stale, gaps, snapshots
    too old), added to; carry: bool[n] set for the messages whose fate is still open at
    the end of the block (a snapshot no diff bridged yet, diffs waiting for a snapshot):
    the caller puts their lines before the next block. Returns the rows written.
    """
    n_sym = synced.shape[0]
    snap = np.full(n_sym, -1, np.int64)
    held = np.zeros(n, np.bool_)
    held_first = np.full(n_sym, -1, np.int64)
    held_count = np.zeros(n_sym, np.int64)
    floor = np.zeros(n_sym, np.int64)
    r = 0
    for j in range(n):
        kind = msgs[j]["kind"]
        if kind == DIFF:
            r = _diff_step_nb(
                msgs, j, lv_px, lv_qty, lv_side, synced, last_u, snap, held, held_first,
                held_count, floor, out, r, cnt,
            )  # fmt: skip
        elif kind == SNAPSHOT:
            s = msgs[j]["sym"]
            if synced[s] == 1:
                synced[s] = 0
                r = _lost_nb(s, msgs[j]["ts"], out, r)
            snap[s] = j
            if held_count[s] > 0:
                todo = np.empty(held_count[s], np.int64)
                c = 0
                for q in range(held_first[s], j):
                    if held[q] and msgs[q]["sym"] == s:
                        held[q] = False
                        todo[c] = q
                        c += 1
                held_count[s] = 0
                held_first[s] = -1
                for q in todo[:c]:
                    r = _diff_step_nb(
                        msgs, q, lv_px, lv_qty, lv_side, synced, last_u, snap, held,
                        held_first, held_count, floor, out, r, cnt,
                    )  # fmt: skip
    for j in range(n):
        carry[j] = held[j]
    for s in range(n_sym):
        if snap[s] >= 0:
            carry[snap[s]] = True
    return r
