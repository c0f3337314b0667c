"""Numba kernel of the events engine: one event loop over depth, trade, funding and mark rows.

Rules as in `engine/kernels.py`: every jitted function ends in ``_nb``, is
``@njit(cache=True, nogil=True)``, works on plain arrays and knows no pandas, files or CLI.

Shape of a run. All state lives in a `Ctx` (a namedtuple of arrays, so numba caches every
function that takes it). The strategy owns the loop (the same shape a live trader has):
``while wait(ctx): ...read the book, submit/cancel/modify...``; `step_nb` (behind
`orderapi.wait`) runs the simulation until the strategy's next wake-up and returns True,
or returns False when the chunk of input is used up, the ledger or records are full, or
an error stopped the run; the driver (`engine/events.py`) then flushes, loads the next
chunk into a new Ctx over the same state arrays, and calls the strategy again.

Two clocks. Every input row has the exchange time ``ts`` and the receipt time ``ts_local``.
The exchange side (our copy of the venue's book, resting orders, queues, matching and the
account) applies rows at ``ts``; the strategy's side (its book, its view of orders and
position) applies the same rows at ``ts_local``. A request sent at local time t reaches the
exchange at t + entry latency; each answer reaches the strategy at the exchange time +
response latency. Messages keep their order on each path (one connection): a message never
overtakes an earlier one. Among items due at the same time the exchange side goes first.

Books are dense arrays over a price window (ticks base .. base + R); rows outside it are
counted and skipped. Semantics: docs/engine.md ("Events mode").
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from algo_trade.engine.orders import (
    BUY,
    CANCELED,
    E_BAD_PRICE,
    E_BAD_QTY,
    E_BAD_SLOT,
    E_BAD_TYPE,
    E_OFF_TICK,
    E_QUEUE_FULL,
    EV_DEPTH,
    EV_FUNDING,
    EV_MARK,
    EV_TRADE,
    EXPIRED,
    FILLED,
    FLAG_SNAP_START,
    FLAG_SNAPSHOT,
    FOK,
    FREE,
    GTC,
    IOC,
    LG_FUNDING,
    LG_LIQUIDATION,
    LG_MAKER,
    LG_TAKER,
    LIMIT,
    MARKET,
    N_TIFS,
    N_TYPES,
    OPEN,
    PENDING,
    POST_ONLY,
    Q_LOG,
    Q_POWER,
    R_LATENCY,
    R_LIQUIDATED,
    R_MARGIN,
    R_NO_LIQUIDITY,
    R_NOT_OPEN,
    R_POST_ONLY,
    R_REDUCE_ONLY,
    REJECTED,
    REQ_CANCEL,
    REQ_MODIFY,
    REQ_NEW,
    RSP_ACK,
    RSP_CANCEL_REJECT,
    RSP_DONE,
    RSP_FILL,
    RSP_LIQ,
    RSP_MODIFIED,
    RSP_MODIFY_REJECT,
)

Ctx = namedtuple(
    "Ctx",
    [
        # one chunk of input, ordered by ts; lorder: row indices in ts_local order
        "ev_ts", "ev_lts", "ev_kind", "ev_side", "ev_px", "ev_qty", "ev_flags", "lorder",
        # books over the price window: exchange side (x) and strategy side (l), qty per tick
        "xbid", "xask", "lbid", "lask",
        # order table, request and response rings, outputs
        "orders", "reqs", "resps", "ledger", "recs",
        # recorded latency series (empty: constant latencies)
        "lat_ts", "lat_entry", "lat_resp",
        # state, scratch, the strategy's own persistent array, an optional signal series
        "fs", "st", "scratch", "resting", "user", "sig_ts", "sig_val",
    ],
)  # fmt: skip

# --- int64 state (ctx.st)
(I_N, I_IX, I_IL, I_XNOW, I_LNOW, I_WAKE_EVERY, I_WAKE_FILL, I_NEXT_WAKE, I_REC_EVERY,
 I_NEXT_REC, I_NLED, I_NREC, I_QH, I_QN, I_PH, I_PN, I_SEQ, I_OID, I_XBB, I_XBA, I_LBB,
 I_LBA, I_BASE, I_ERR, I_HI_SLOT, I_NREST, I_EVENTS, I_QMODEL, I_PARTIAL, I_ENTRY_NS,
 I_RESP_NS, I_STOP, I_NLIQ, I_NMAKER, I_NTAKER, I_NREJ, I_OUT_ROI, I_WAKES, I_LAST_Q,
 I_LAST_P, I_FILLED_FLAG, I_WAKE_EVENT, I_NLOCAL, I_STARTED) = range(44)  # fmt: skip
N_ISTATE = 44
# --- float64 state (ctx.fs)
(F_CASH, F_POS, F_AVG, F_REAL, F_FEES, F_FUND, F_TURN, F_MARK, F_LPOS, F_LCASH, F_LRATE,
 F_LMARK, F_ERR_ARG, F_TICK, F_LOT, F_FMAKER, F_FTAKER, F_LEV, F_MM, F_LIQFEE, F_QN, F_INIT,
 F_XMID, F_LMID, F_LTRADE, F_LAST_RESP_LAT) = range(26)  # fmt: skip
N_FSTATE = 26

# why step_nb returned False (I_STOP)
STOP_NONE, STOP_CHUNK, STOP_FULL, STOP_ERROR = 0, 1, 2, 3
BIG = np.int64(9_223_372_036_854_775_807)
ROWS_PER_ITEM = 64  # ledger rows one item can add at most (a walk; capped by the check)


@njit(cache=True, nogil=True)
def new_state_nb(init_cash):  # pragma: no cover - compiled
    """(fs, st) for a fresh run."""
    fs = np.zeros(N_FSTATE, dtype=np.float64)
    st = np.zeros(N_ISTATE, dtype=np.int64)
    fs[F_CASH] = init_cash
    fs[F_LCASH] = init_cash
    fs[F_INIT] = init_cash
    fs[F_MARK] = np.nan
    fs[F_LRATE] = np.nan
    fs[F_LMARK] = np.nan
    fs[F_XMID] = np.nan
    fs[F_LMID] = np.nan
    fs[F_LTRADE] = np.nan
    st[I_XBB] = -1
    st[I_LBB] = -1
    st[I_NEXT_WAKE] = BIG
    st[I_NEXT_REC] = -BIG
    return fs, st


# ----------------------------------------------------------------------------- books
@njit(cache=True, nogil=True, inline="always")
def _book_set_nb(bid, ask, st, ibb, iba, side, rel, qty):  # pragma: no cover - compiled
    """Set one level (qty 0 deletes it), keep the best indices, drop levels the update
    crossed (an L2 diff stream can leave stale crossed levels). Returns the old qty."""
    r = bid.shape[0]
    if side == BUY:
        prev = bid[rel]
        bid[rel] = qty
        if qty > 0.0:
            if rel > st[ibb]:
                st[ibb] = rel
            if rel >= st[iba]:
                k = st[iba]
                while k <= rel:
                    ask[k] = 0.0
                    k += 1
                while k < r and not (ask[k] > 0.0):
                    k += 1
                st[iba] = k
        elif rel == st[ibb]:
            k = rel - 1
            while k >= 0 and not (bid[k] > 0.0):
                k -= 1
            st[ibb] = k
    else:
        prev = ask[rel]
        ask[rel] = qty
        if qty > 0.0:
            if rel < st[iba]:
                st[iba] = rel
            if rel <= st[ibb]:
                k = st[ibb]
                while k >= rel:
                    bid[k] = 0.0
                    k -= 1
                while k >= 0 and not (bid[k] > 0.0):
                    k -= 1
                st[ibb] = k
        elif rel == st[iba]:
            k = rel + 1
            while k < r and not (ask[k] > 0.0):
                k += 1
            st[iba] = k
    return prev


@njit(cache=True, nogil=True)
def _book_clear_nb(bid, ask, st, ibb, iba):  # pragma: no cover - compiled
    bid[:] = 0.0
    ask[:] = 0.0
    st[ibb] = -1
    st[iba] = bid.shape[0]


@njit(cache=True, nogil=True, inline="always")
def _mid_nb(ctx, ibb, iba):  # pragma: no cover - compiled
    st = ctx.st
    bb = st[ibb]
    ba = st[iba]
    if bb >= 0 and ba < ctx.xbid.shape[0]:
        return (0.5 * (bb + ba) + st[I_BASE]) * ctx.fs[F_TICK]
    return np.nan


# ----------------------------------------------------------------------------- messages
@njit(cache=True, nogil=True)
def _push_nb(
    ctx, ring, ih, inn, t, kind, slot, tick, qty, px, dcash, status, reason
):  # pragma: no cover
    """Append a message to a FIFO ring; its delivery time is kept >= the last one's."""
    st = ctx.st
    cap = ring.shape[0]
    n = st[inn]
    if n == cap:
        st[I_ERR] = E_QUEUE_FULL
        ctx.fs[F_ERR_ARG] = cap
        return
    if n > 0:
        last = ring[(st[ih] + n - 1) % cap].t
        if t < last:
            t = last
    m = ring[(st[ih] + n) % cap]
    m.t = t
    m.kind = kind
    m.slot = slot
    m.tick = tick
    m.qty = qty
    m.px = px
    m.dcash = dcash
    m.status = status
    m.reason = reason
    st[inn] = n + 1
    if slot >= 0:
        ctx.orders[slot].inflight += 1


@njit(cache=True, nogil=True, inline="always")
def _head_t_nb(ring, st, ih, inn):  # pragma: no cover - compiled
    if st[inn] == 0:
        return BIG
    return ring[st[ih]].t


@njit(cache=True, nogil=True)
def latency_nb(lat_ts, lat_val, const_ns, t):  # pragma: no cover - compiled
    """Latency (ns) at time t: the constant when no series is given, else linear
    interpolation of the series; NaN outside it or next to a missing/negative value."""
    n = lat_ts.shape[0]
    if n == 0:
        return float(const_ns)
    if t < lat_ts[0] or t > lat_ts[n - 1]:
        return np.nan
    k = np.searchsorted(lat_ts, t)
    if lat_ts[k] == t:
        v = lat_val[k]
    else:
        a = lat_val[k - 1]
        b = lat_val[k]
        w = (t - lat_ts[k - 1]) / (lat_ts[k] - lat_ts[k - 1])
        v = a + (b - a) * w
        if a < 0.0 or b < 0.0:
            return np.nan
    if not (v >= 0.0):
        return np.nan
    return v


@njit(cache=True, nogil=True)
def _respond_nb(ctx, t, kind, slot, tick, qty, px, dcash, status, reason):  # pragma: no cover
    """An answer from the exchange at exchange time t, delivered after the response latency
    (the last known one where the series has no value)."""
    lat = latency_nb(ctx.lat_ts, ctx.lat_resp, ctx.st[I_RESP_NS], t)
    if lat == lat:
        ctx.fs[F_LAST_RESP_LAT] = lat
    else:
        lat = ctx.fs[F_LAST_RESP_LAT]
    _push_nb(ctx, ctx.resps, I_PH, I_PN, t + np.int64(lat), kind, slot, tick, qty, px, dcash, status, reason)  # fmt: skip


# ----------------------------------------------------------------------------- accounting
@njit(cache=True, nogil=True)
def account_nb(fs, dq, px, fee):  # pragma: no cover - compiled
    """Book a fill of signed dq at px paying fee (< 0: rebate): cash, position, average
    entry, realized PnL, fees, turnover (formulas of engine/kernels.py)."""
    q0 = fs[F_POS]
    q1 = q0 + dq
    fs[F_CASH] -= dq * px + fee
    fs[F_FEES] += fee
    fs[F_TURN] += abs(dq) * px
    if q0 == 0.0:
        fs[F_AVG] = px
    elif (dq > 0.0) == (q0 > 0.0):
        fs[F_AVG] = (fs[F_AVG] * abs(q0) + px * abs(dq)) / abs(q1)
    else:
        closed = min(abs(dq), abs(q0))
        fs[F_REAL] += closed * (px - fs[F_AVG]) * (1.0 if q0 > 0.0 else -1.0)
        if abs(q1) <= 1e-12 * abs(q0):  # closed: exact flat, no float residue
            q1 = 0.0
            fs[F_AVG] = 0.0
        elif abs(dq) > abs(q0):
            fs[F_AVG] = px
    fs[F_POS] = q1


@njit(cache=True, nogil=True)
def _ledger_nb(ctx, t, kind, oid, qty, px, fee, rate):  # pragma: no cover - compiled
    st = ctx.st
    fs = ctx.fs
    r = st[I_NLED]
    if r >= ctx.ledger.shape[0]:  # never: step_nb stops with room for any one item
        st[I_ERR] = E_QUEUE_FULL
        return
    g = ctx.ledger[r]
    g.ts = t
    g.kind = kind
    g.oid = oid
    g.qty = qty
    g.px = px
    g.fee = fee
    g.rate = rate
    g.pos = fs[F_POS]
    g.cash = fs[F_CASH]
    g.realized = fs[F_REAL]
    g.mid = fs[F_XMID]
    st[I_NLED] = r + 1


@njit(cache=True, nogil=True)
def _fill_nb(ctx, slot, qty, px, maker, t):  # pragma: no cover - compiled
    """Fill `qty` of order `slot` at px (exchange side): account, ledger, answer. A
    reduce-only order is cut to the position it can still reduce (the rest expires).
    Returns the quantity filled."""
    fs = ctx.fs
    st = ctx.st
    o = ctx.orders[slot]
    side = o.side
    if o.reduce_only:
        pos = fs[F_POS]
        room = abs(pos) if pos * side < 0.0 else 0.0
        if qty > room:
            qty = room
    if qty > 0.0:
        dq = side * qty
        fee = qty * px * (fs[F_FMAKER] if maker else fs[F_FTAKER])
        account_nb(fs, dq, px, fee)
        o.leaves -= qty
        o.filled += qty
        if o.leaves <= 1e-12 * o.qty:
            o.leaves = 0.0
        o.t_exch = t
        _ledger_nb(ctx, t, LG_MAKER if maker else LG_TAKER, o.oid, dq, px, fee, np.nan)
        if maker:
            st[I_NMAKER] += 1
        else:
            st[I_NTAKER] += 1
        if o.leaves == 0.0:
            if o.xstatus == OPEN:
                _rest_del_nb(ctx, slot)
            o.xstatus = FILLED
        _respond_nb(ctx, t, RSP_FILL, slot, o.tick, dq, px, -(dq * px) - fee, o.xstatus, 0)
    if o.reduce_only and o.leaves > 0.0 and fs[F_POS] * side >= 0.0:
        _finish_nb(ctx, slot, EXPIRED, R_REDUCE_ONLY, t)
    return qty


@njit(cache=True, nogil=True)
def _finish_nb(ctx, slot, status, reason, t):  # pragma: no cover - compiled
    """End an order at the exchange (canceled, expired, rejected) and answer."""
    o = ctx.orders[slot]
    if o.xstatus == OPEN:
        _rest_del_nb(ctx, slot)
    o.xstatus = status
    o.reason = reason
    o.leaves = 0.0
    o.t_exch = t
    if status == REJECTED:
        ctx.st[I_NREJ] += 1
    _respond_nb(ctx, t, RSP_DONE, slot, o.tick, 0.0, np.nan, 0.0, status, reason)


@njit(cache=True, nogil=True)
def _rest_del_nb(ctx, slot):  # pragma: no cover - compiled
    """Drop a slot from the list of orders resting at the exchange (swap with the last)."""
    st = ctx.st
    n = st[I_NREST]
    for j in range(n):
        if ctx.resting[j] == slot:
            ctx.resting[j] = ctx.resting[n - 1]
            st[I_NREST] = n - 1
            return


# ----------------------------------------------------------------------------- queues
@njit(cache=True, nogil=True, inline="always")
def _queue_depth_nb(ctx, side, tick, prev, new):  # pragma: no cover - compiled
    """A level holding own resting orders changed from prev to new (market qty)."""
    st = ctx.st
    model = st[I_QMODEL]
    n = ctx.fs[F_QN]
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        o = ctx.orders[k]
        if o.xstatus != OPEN or o.side != side or o.tick != tick:
            continue
        if model == Q_POWER or model == Q_LOG:
            chg = prev - new - o.cum_trade  # trades already moved the queue
            o.cum_trade = 0.0
            if chg < 0.0:
                o.front = min(o.front, new)
                continue
            front = o.front
            back = prev - front
            if model == Q_POWER:
                fb = back**n if back > 0.0 else 0.0
                ff = front**n if front > 0.0 else 0.0
            else:
                fb = np.log1p(max(back, 0.0))
                ff = np.log1p(max(front, 0.0))
            p = fb / (fb + ff) if fb + ff > 0.0 else 1.0
            est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
            o.front = max(min(est, new), 0.0)
        else:
            o.front = min(o.front, new)


@njit(cache=True, nogil=True)
def _sorted_at_nb(ctx, side, tick):  # pragma: no cover - compiled
    """Own open orders at (side, tick), oldest (FIFO) first, in ctx.scratch; returns count."""
    sc = ctx.scratch
    m = 0
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        o = ctx.orders[k]
        if o.xstatus == OPEN and o.side == side and o.tick == tick:
            j = m
            while j > 0 and ctx.orders[sc[j - 1]].seq > o.seq:
                sc[j] = sc[j - 1]
                j -= 1
            sc[j] = k
            m += 1
    return m


@njit(cache=True, nogil=True)
def _trade_nb(ctx, side, tick, qty, t):  # pragma: no cover - compiled
    """A market trade (taker `side`) at `tick` for `qty` meets own resting orders: those
    priced through the trade fill whole; those at the trade's price share one FIFO: the
    trade takes the market quantity ahead of the first, then it, then the market quantity
    between it and the next... (partial fills off: an order reached by the trade fills
    whole, as hftbacktest's no-partial-fill exchange)."""
    st = ctx.st
    fs = ctx.fs
    rest_side = -side  # a buy trade meets resting sells
    tk = fs[F_TICK]
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        o = ctx.orders[k]
        if o.xstatus != OPEN or o.side != rest_side:
            continue
        if (rest_side == BUY and o.tick > tick) or (rest_side != BUY and o.tick < tick):
            _fill_nb(ctx, k, o.leaves, o.tick * tk, True, t)
    m = _sorted_at_nb(ctx, rest_side, tick)
    if m == 0:
        return
    lot = fs[F_LOT]
    half = 0.5 * lot if lot > 0.0 else 0.0
    rem = qty
    used = 0.0  # market quantity the trade consumed ahead of our orders
    for j in range(m):
        o = ctx.orders[ctx.scratch[j]]
        o.cum_trade += qty
        need = o.front - used
        if need > 0.0:
            take = min(rem, need)
            used += take
            rem -= take
        if rem <= half or o.leaves <= 0.0:
            continue
        if st[I_PARTIAL]:
            got = min(rem, o.leaves)
            if lot > 0.0:
                got = np.floor(got / lot + 1e-9) * lot
            if got <= 0.0:
                continue
            rem -= got
        else:
            got = o.leaves
            rem -= min(rem, got)
        _fill_nb(ctx, ctx.scratch[j], got, o.tick * tk, True, t)
    for j in range(m):
        o = ctx.orders[ctx.scratch[j]]
        o.front = max(o.front - used, 0.0)


@njit(cache=True, nogil=True)
def _cross_fill_nb(ctx, t):  # pragma: no cover - compiled
    """Own resting orders the opposite best moved through fill whole at their price."""
    st = ctx.st
    base = st[I_BASE]
    bb = st[I_XBB] + base if st[I_XBB] >= 0 else -BIG
    ba = st[I_XBA] + base if st[I_XBA] < ctx.xbid.shape[0] else BIG
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        o = ctx.orders[k]
        if o.xstatus != OPEN:
            continue
        if (o.side == BUY and o.tick >= ba) or (o.side != BUY and o.tick <= bb):
            _fill_nb(ctx, k, o.leaves, o.tick * ctx.fs[F_TICK], True, t)


# ----------------------------------------------------------------------------- matching
@njit(cache=True, nogil=True)
def _available_nb(ctx, side, limit_rel):  # pragma: no cover - compiled
    """Market quantity an order of `side` can take up to limit_rel (ticks in the window)."""
    st = ctx.st
    tot = 0.0
    if side == BUY:
        k = st[I_XBA]
        while k < ctx.xask.shape[0] and k <= limit_rel:
            tot += ctx.xask[k]
            k += 1
    else:
        k = st[I_XBB]
        while k >= 0 and k >= limit_rel:
            tot += ctx.xbid[k]
            k -= 1
    return tot


@njit(cache=True, nogil=True)
def _walk_nb(ctx, slot, limit_rel, t):  # pragma: no cover - compiled
    """Take liquidity for order `slot` level by level, best first, up to limit_rel; each
    level is one taker fill at its price. Taken quantity leaves our copy of the book until
    the venue's next update of that level."""
    st = ctx.st
    o = ctx.orders[slot]
    base = st[I_BASE]
    tk = ctx.fs[F_TICK]
    r = ctx.xbid.shape[0]
    while o.leaves > 0.0 and o.xstatus != EXPIRED and st[I_NLED] + 2 < ctx.ledger.shape[0]:
        if o.side == BUY:
            k = st[I_XBA]
            if k >= r or k > limit_rel:
                break
            take = min(o.leaves, ctx.xask[k])
            got = _fill_nb(ctx, slot, take, (k + base) * tk, False, t)
            if got <= 0.0:
                break
            _book_set_nb(ctx.xbid, ctx.xask, st, I_XBB, I_XBA, -1, k, max(ctx.xask[k] - got, 0.0))
        else:
            k = st[I_XBB]
            if k < 0 or k < limit_rel:
                break
            take = min(o.leaves, ctx.xbid[k])
            got = _fill_nb(ctx, slot, take, (k + base) * tk, False, t)
            if got <= 0.0:
                break
            _book_set_nb(ctx.xbid, ctx.xask, st, I_XBB, I_XBA, 1, k, max(ctx.xbid[k] - got, 0.0))


@njit(cache=True, nogil=True)
def _margin_ok_nb(ctx, slot):  # pragma: no cover - compiled
    """Initial margin: the position if this order and every open order on its side filled
    stays within leverage x equity (equity at the exchange mid)."""
    fs = ctx.fs
    o = ctx.orders[slot]
    worst = fs[F_POS] + o.side * o.leaves
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        p = ctx.orders[k]
        if k != slot and p.xstatus == OPEN and p.side == o.side and not p.reduce_only:
            worst += p.side * p.leaves
    mid = fs[F_XMID]
    px = o.tick * fs[F_TICK] if o.otype == LIMIT else mid
    eq = fs[F_CASH] + fs[F_POS] * mid
    return abs(worst) * px <= fs[F_LEV] * eq * (1.0 + 1e-9) or abs(worst) <= abs(fs[F_POS])


@njit(cache=True, nogil=True)
def _new_order_nb(ctx, slot, t):  # pragma: no cover - compiled
    st = ctx.st
    fs = ctx.fs
    o = ctx.orders[slot]
    o.t_exch = t
    pos = fs[F_POS]
    if o.reduce_only and not (pos * o.side < 0.0):
        _finish_nb(ctx, slot, REJECTED, R_REDUCE_ONLY, t)
        return
    if not o.reduce_only and not _margin_ok_nb(ctx, slot):
        _finish_nb(ctx, slot, REJECTED, R_MARGIN, t)
        return
    r = ctx.xbid.shape[0]
    rel = o.tick - st[I_BASE]
    if o.otype == MARKET:
        lim = r if o.side == BUY else -1
        crosses = True
    elif o.side == BUY:
        lim = rel
        crosses = st[I_XBA] < r and rel >= st[I_XBA]
    else:
        lim = rel
        crosses = st[I_XBB] >= 0 and rel <= st[I_XBB]
    if crosses:
        if o.tif == POST_ONLY:
            _finish_nb(ctx, slot, REJECTED, R_POST_ONLY, t)
            return
        if o.tif == FOK and _available_nb(ctx, o.side, lim) < o.leaves * (1.0 - 1e-12):
            _finish_nb(ctx, slot, EXPIRED, R_NO_LIQUIDITY, t)
            return
        o.xstatus = PENDING  # taking: not in the book
        _walk_nb(ctx, slot, lim, t)
        if o.xstatus == FILLED or o.xstatus == EXPIRED:
            return
        if o.otype == MARKET or o.tif != GTC:
            _finish_nb(ctx, slot, EXPIRED, R_NO_LIQUIDITY, t)
            return
    elif o.otype == LIMIT and (o.tif == IOC or o.tif == FOK):
        _finish_nb(ctx, slot, EXPIRED, R_NO_LIQUIDITY, t)
        return
    # rest in the book, behind the market quantity displayed at the price
    o.front = _qty_at_nb(ctx.xbid, ctx.xask, o.side, rel)
    o.cum_trade = 0.0
    st[I_SEQ] += 1
    o.seq = st[I_SEQ]
    o.xstatus = OPEN
    ctx.resting[st[I_NREST]] = slot
    st[I_NREST] += 1
    _respond_nb(ctx, t, RSP_ACK, slot, o.tick, o.leaves, np.nan, 0.0, OPEN, 0)


@njit(cache=True, nogil=True, inline="always")
def _qty_at_nb(bid, ask, side, rel):  # pragma: no cover - compiled
    if rel < 0 or rel >= bid.shape[0]:
        return 0.0
    return bid[rel] if side == BUY else ask[rel]


@njit(cache=True, nogil=True)
def _request_nb(ctx, t):  # pragma: no cover - compiled
    """The oldest request reaches the exchange at t."""
    st = ctx.st
    m = ctx.reqs[st[I_QH]]
    slot = m.slot
    kind = m.kind
    tick = m.tick
    qty = m.qty
    st[I_QH] = (st[I_QH] + 1) % ctx.reqs.shape[0]
    st[I_QN] -= 1
    o = ctx.orders[slot]
    o.inflight -= 1
    if kind == REQ_NEW:
        _new_order_nb(ctx, slot, t)
    elif kind == REQ_CANCEL:
        if o.xstatus == OPEN:
            _finish_nb(ctx, slot, CANCELED, 0, t)
        else:  # too late: filled or gone already (its answer is on the way)
            _respond_nb(
                ctx, t, RSP_CANCEL_REJECT, slot, o.tick, 0.0, np.nan, 0.0, o.xstatus, R_NOT_OPEN
            )
    elif kind == REQ_MODIFY:
        if o.xstatus != OPEN:
            _respond_nb(
                ctx, t, RSP_MODIFY_REJECT, slot, o.tick, 0.0, np.nan, 0.0, o.xstatus, R_NOT_OPEN
            )
            return
        rel = tick - st[I_BASE]
        r = ctx.xbid.shape[0]
        crosses = (o.side == BUY and st[I_XBA] < r and rel >= st[I_XBA]) or (
            o.side != BUY and st[I_XBB] >= 0 and rel <= st[I_XBB]
        )
        leaves = qty - o.filled
        if crosses or not (leaves > 0.0):
            _respond_nb(ctx, t, RSP_MODIFY_REJECT, slot, o.tick, 0.0, np.nan, 0.0, o.xstatus,
                        R_POST_ONLY if crosses else R_NOT_OPEN)  # fmt: skip
            return
        if tick != o.tick or leaves > o.leaves:  # loses its place in the queue
            o.front = _qty_at_nb(ctx.xbid, ctx.xask, o.side, rel)
            o.cum_trade = 0.0
            st[I_SEQ] += 1
            o.seq = st[I_SEQ]
        o.tick = tick
        o.qty = qty
        o.leaves = leaves
        o.t_exch = t
        _respond_nb(ctx, t, RSP_MODIFIED, slot, tick, leaves, np.nan, 0.0, OPEN, 0)


@njit(cache=True, nogil=True)
def _liquidate_nb(ctx, t, p_liq):  # pragma: no cover - compiled
    """Cancel every resting order, then close the position at p_liq with the fee."""
    st = ctx.st
    fs = ctx.fs
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        if ctx.orders[k].xstatus == OPEN:
            _finish_nb(ctx, k, CANCELED, R_LIQUIDATED, t)
    dq = -fs[F_POS]
    fee = abs(dq) * p_liq * fs[F_LIQFEE]
    account_nb(fs, dq, p_liq, fee)
    fs[F_POS] = 0.0
    fs[F_AVG] = 0.0
    st[I_NLIQ] += 1
    _ledger_nb(ctx, t, LG_LIQUIDATION, -1, dq, p_liq, fee, np.nan)
    _respond_nb(ctx, t, RSP_LIQ, -1, 0, dq, p_liq, -(dq * p_liq) - fee, 0, R_LIQUIDATED)


@njit(cache=True, nogil=True, inline="always")
def _exchange_event_nb(ctx, i):  # pragma: no cover - compiled
    """Apply input row i on the exchange side at its ts."""
    st = ctx.st
    fs = ctx.fs
    t = ctx.ev_ts[i]
    kind = ctx.ev_kind[i]
    base = st[I_BASE]
    tk = fs[F_TICK]
    if kind == EV_DEPTH:
        flags = ctx.ev_flags[i]
        if flags & FLAG_SNAP_START:
            _book_clear_nb(ctx.xbid, ctx.xask, st, I_XBB, I_XBA)
        rel = np.int64(np.round(ctx.ev_px[i] / tk)) - base
        if rel < 0 or rel >= ctx.xbid.shape[0]:
            st[I_OUT_ROI] += 1
        else:
            side = ctx.ev_side[i]
            bb = st[I_XBB]
            ba = st[I_XBA]
            new = ctx.ev_qty[i]
            prev = _book_set_nb(ctx.xbid, ctx.xask, st, I_XBB, I_XBA, side, rel, new)
            if st[I_NREST] > 0:
                if not (flags & FLAG_SNAPSHOT):
                    _queue_depth_nb(ctx, side, rel + base, prev, new)
                if st[I_XBB] > bb or st[I_XBA] < ba:
                    _cross_fill_nb(ctx, t)
        m = _mid_nb(ctx, I_XBB, I_XBA)
        if m == m:
            fs[F_XMID] = m
    elif kind == EV_TRADE:
        if st[I_NREST] > 0:
            _trade_nb(ctx, ctx.ev_side[i], np.int64(np.round(ctx.ev_px[i] / tk)), ctx.ev_qty[i], t)
    elif kind == EV_FUNDING:
        mark = ctx.ev_px[i]
        if mark == mark and mark > 0.0:
            fs[F_MARK] = mark
        else:
            mark = fs[F_XMID]
        rate = ctx.ev_qty[i]
        if fs[F_POS] != 0.0 and rate == rate and mark == mark:
            pay = fs[F_POS] * mark * rate
            fs[F_CASH] -= pay
            fs[F_FUND] += pay
            _ledger_nb(ctx, t, LG_FUNDING, -1, 0.0, mark, pay, rate)
            _respond_nb(ctx, t, RSP_LIQ, -1, 0, 0.0, mark, -pay, 0, 0)
    elif kind == EV_MARK:
        mark = ctx.ev_px[i]
        if mark == mark and mark > 0.0:
            fs[F_MARK] = mark
    # liquidation on the mark price (the mid where the data has none)
    q = fs[F_POS]
    if q != 0.0 and fs[F_MM] > 0.0:
        ref = fs[F_MARK] if fs[F_MARK] == fs[F_MARK] else fs[F_XMID]
        mm = fs[F_MM]
        if q > 0.0:
            p_liq = -fs[F_CASH] / (q * (1.0 - mm))
            if ref <= p_liq and p_liq > 1e-9 * fs[F_AVG]:
                _liquidate_nb(ctx, t, p_liq)
        else:
            p_liq = -fs[F_CASH] / (q * (1.0 + mm))
            if ref >= p_liq:
                _liquidate_nb(ctx, t, p_liq)
    # equity records: every event (rec_every 0) or on a time grid
    if t >= st[I_NEXT_REC]:
        _record_nb(ctx, t)
        every = st[I_REC_EVERY]
        st[I_NEXT_REC] = (t // every + 1) * every if every > 0 else t


@njit(cache=True, nogil=True)
def _record_nb(ctx, t):  # pragma: no cover - compiled
    st = ctx.st
    fs = ctx.fs
    r = st[I_NREC]
    g = ctx.recs[r]
    mid = fs[F_XMID]
    g.ts = t
    g.mid = mid
    g.mark = fs[F_MARK] if fs[F_MARK] == fs[F_MARK] else mid
    g.pos = fs[F_POS]
    g.cash = fs[F_CASH]
    g.equity = fs[F_CASH] + fs[F_POS] * mid if fs[F_POS] != 0.0 else fs[F_CASH]
    g.avg = fs[F_AVG] if fs[F_POS] != 0.0 else np.nan
    g.realized = fs[F_REAL]
    g.fees = fs[F_FEES]
    g.funding = fs[F_FUND]
    bq = np.nan
    aq = np.nan
    tk = fs[F_TICK]
    for j in range(ctx.st[I_NREST] - 1, -1, -1):  # backwards: a fill may drop entry j
        k = ctx.resting[j]
        o = ctx.orders[k]
        if o.xstatus == OPEN:
            p = o.tick * tk
            if o.side == BUY:
                if not (bq >= p):
                    bq = p
            elif not (aq <= p):
                aq = p
    g.bid_quote = bq
    g.ask_quote = aq
    st[I_NREC] = r + 1


# ----------------------------------------------------------------------------- strategy side
@njit(cache=True, nogil=True, inline="always")
def _local_event_nb(ctx, i):  # pragma: no cover - compiled
    """Apply input row i to the strategy's view (at its ts_local)."""
    st = ctx.st
    fs = ctx.fs
    kind = ctx.ev_kind[i]
    if kind == EV_DEPTH:
        if ctx.ev_flags[i] & FLAG_SNAP_START:
            _book_clear_nb(ctx.lbid, ctx.lask, st, I_LBB, I_LBA)
        rel = np.int64(np.round(ctx.ev_px[i] / fs[F_TICK])) - st[I_BASE]
        if rel >= 0 and rel < ctx.lbid.shape[0]:
            _book_set_nb(ctx.lbid, ctx.lask, st, I_LBB, I_LBA, ctx.ev_side[i], rel, ctx.ev_qty[i])
        m = _mid_nb(ctx, I_LBB, I_LBA)
        if m == m:
            fs[F_LMID] = m
    elif kind == EV_TRADE:
        fs[F_LTRADE] = ctx.ev_px[i]
    elif kind == EV_FUNDING or kind == EV_MARK:
        if ctx.ev_px[i] == ctx.ev_px[i]:
            fs[F_LMARK] = ctx.ev_px[i]
        if ctx.ev_qty[i] == ctx.ev_qty[i]:
            fs[F_LRATE] = ctx.ev_qty[i]


@njit(cache=True, nogil=True)
def _deliver_nb(ctx):  # pragma: no cover - compiled
    """The oldest response reaches the strategy. Returns True for a fill or liquidation."""
    st = ctx.st
    fs = ctx.fs
    m = ctx.resps[st[I_PH]]
    kind = m.kind
    slot = m.slot
    st[I_PH] = (st[I_PH] + 1) % ctx.resps.shape[0]
    st[I_PN] -= 1
    if kind == RSP_LIQ:
        fs[F_LPOS] += m.qty
        fs[F_LCASH] += m.dcash
        if m.qty != 0.0:
            fs[F_LPOS] = 0.0  # liquidated: flat
        return m.qty != 0.0
    o = ctx.orders[slot]
    o.inflight -= 1
    if kind == RSP_FILL:
        q = abs(m.qty)
        fs[F_LPOS] += m.qty
        if abs(fs[F_LPOS]) < 1e-12 * q:
            fs[F_LPOS] = 0.0
        fs[F_LCASH] += m.dcash
        o.lfilled += q
        o.lleaves = max(o.lleaves - q, 0.0)
        if m.status == FILLED:
            o.lleaves = 0.0
            o.status = FILLED
        elif o.status == PENDING:
            o.status = OPEN
        return True
    if kind == RSP_ACK:
        if o.status == PENDING:
            o.status = OPEN
    elif kind == RSP_DONE:
        o.status = m.status
        o.lleaves = 0.0
        o.reason = m.reason
    elif kind == RSP_MODIFIED:
        o.ltick = m.tick
        o.lleaves = m.qty
    return False


@njit(cache=True, nogil=True)
def step_nb(ctx):  # pragma: no cover - compiled
    """Run until the strategy's next wake-up (True) or a stop (False: I_STOP says why).

    Items in time order: exchange-side rows (at ts) and requests arriving at the exchange,
    then strategy-side rows (at ts_local), responses and the timer; the exchange side goes
    first on ties. Wake-ups: the timer (every I_WAKE_EVERY ns of local time), a fill or
    liquidation reaching the strategy (I_WAKE_FILL), every input row (I_WAKE_EVENT)."""
    st = ctx.st
    n = st[I_N]
    ev_ts = ctx.ev_ts
    ev_lts = ctx.ev_lts
    lorder = ctx.lorder
    cap_led = ctx.ledger.shape[0] - ctx.orders.shape[0] - ROWS_PER_ITEM
    cap_rec = ctx.recs.shape[0] - 2
    if st[I_ERR] != 0:
        st[I_STOP] = STOP_ERROR
        return False
    st[I_STOP] = STOP_NONE
    while True:
        if st[I_NLED] >= cap_led or st[I_NREC] >= cap_rec:
            st[I_STOP] = STOP_FULL
            return False
        ix = st[I_IX]
        il = st[I_IL]
        if ix >= n and il >= n:
            st[I_STOP] = STOP_CHUNK
            return False
        tx = ev_ts[ix] if ix < n else BIG
        tl = BIG
        if il < n:
            tl = ev_lts[lorder[il]]
            if tl < st[I_LNOW]:
                tl = st[I_LNOW]  # receipt times never go back
        tq = _head_t_nb(ctx.reqs, st, I_QH, I_QN)
        tr = _head_t_nb(ctx.resps, st, I_PH, I_PN)
        tw = st[I_NEXT_WAKE]
        t_ex = min(tx, tq)
        t_lo = min(min(tl, tr), tw)
        if t_ex <= t_lo:
            if tq <= tx:
                st[I_XNOW] = tq
                _request_nb(ctx, tq)
            else:
                st[I_XNOW] = tx
                _exchange_event_nb(ctx, ix)
                st[I_IX] = ix + 1
                st[I_EVENTS] += 1
            if st[I_ERR] != 0:
                st[I_STOP] = STOP_ERROR
                return False
            continue
        if il >= n and tr == BIG:
            # the strategy has no more input in this chunk: only the exchange side runs on
            # (a timer past the last local row waits for the next chunk)
            if tx < BIG:
                st[I_XNOW] = tx
                _exchange_event_nb(ctx, ix)
                st[I_IX] = ix + 1
                st[I_EVENTS] += 1
                continue
            st[I_STOP] = STOP_CHUNK
            return False
        st[I_LNOW] = t_lo
        if tr <= tl and tr <= tw:
            filled = _deliver_nb(ctx)
            if filled and st[I_WAKE_FILL]:
                st[I_WAKES] += 1
                return True
        elif tl <= tw:
            _local_event_nb(ctx, lorder[il])
            st[I_IL] = il + 1
            st[I_NLOCAL] += 1
            if st[I_WAKE_EVENT]:
                st[I_WAKES] += 1
                return True
        else:
            every = st[I_WAKE_EVERY]
            st[I_NEXT_WAKE] = tw + every if every > 0 else BIG
            st[I_WAKES] += 1
            return True


# ----------------------------------------------------------------------------- order entry
@njit(cache=True, nogil=True)
def _free_slot_nb(ctx):  # pragma: no cover - compiled
    st = ctx.st
    orders = ctx.orders
    # never-used slots first (finished orders stay readable as long as possible), then the
    # finished ones whose answers have all arrived
    k = st[I_HI_SLOT]
    if k < orders.shape[0]:
        st[I_HI_SLOT] = k + 1
        return k
    for k in range(orders.shape[0]):
        o = orders[k]
        if o.inflight == 0 and o.status >= FILLED and o.xstatus >= FILLED:
            return k
    return -1


@njit(cache=True, nogil=True)
def _on_tick_nb(ctx, price):  # pragma: no cover - compiled
    """The price in ticks, or -1 (error set) when it is not positive or not on the grid."""
    fs = ctx.fs
    if not (price > 0.0 and price < np.inf):
        ctx.st[I_ERR] = E_BAD_PRICE
        fs[F_ERR_ARG] = price
        return np.int64(-1)
    x = price / fs[F_TICK]
    k = np.round(x)
    if abs(x - k) > 1e-6 * max(1.0, 1e-3 * abs(k)) and abs(x - k) > 1e-9 * abs(x):
        ctx.st[I_ERR] = E_OFF_TICK
        fs[F_ERR_ARG] = price
        return np.int64(-1)
    return np.int64(k)


@njit(cache=True, nogil=True)
def submit_nb(ctx, side, price, qty, otype, tif, reduce_only):  # pragma: no cover - compiled
    """Send a new order; returns its handle (slot), or -1 when it was refused at once
    (no latency known now: the order is kept with status REJECTED) or the order table is
    full. Bad arguments stop the run with an error."""
    st = ctx.st
    fs = ctx.fs
    if otype < 0 or otype >= N_TYPES or tif < 0 or tif >= N_TIFS or (side != 1 and side != -1):
        st[I_ERR] = E_BAD_TYPE
        fs[F_ERR_ARG] = otype * 100 + tif
        return -1
    lot = fs[F_LOT]
    if not (qty > 0.0 and qty < np.inf) or (
        lot > 0.0 and abs(qty / lot - np.round(qty / lot)) > 1e-6
    ):
        st[I_ERR] = E_BAD_QTY
        fs[F_ERR_ARG] = qty
        return -1
    if otype == MARKET:
        tick = np.int64(0)
    else:
        tick = _on_tick_nb(ctx, price)
        if tick < 0:
            return -1
    slot = _free_slot_nb(ctx)
    if slot < 0:
        return -1
    now = st[I_LNOW]
    o = ctx.orders[slot]
    st[I_OID] += 1
    o.oid = st[I_OID]
    o.side = side
    o.otype = otype
    o.tif = tif
    o.reduce_only = 1 if reduce_only else 0
    o.tick = tick
    o.ltick = tick
    o.qty = qty
    o.leaves = qty
    o.filled = 0.0
    o.lleaves = qty
    o.lfilled = 0.0
    o.front = 0.0
    o.cum_trade = 0.0
    o.seq = 0
    o.inflight = 0
    o.t_submit = now
    o.t_exch = 0
    o.reason = 0
    lat_in = latency_nb(ctx.lat_ts, ctx.lat_entry, st[I_ENTRY_NS], now)
    lat_out = latency_nb(ctx.lat_ts, ctx.lat_resp, st[I_RESP_NS], now)
    if not (lat_in == lat_in and lat_out == lat_out):
        o.status = REJECTED
        o.xstatus = REJECTED
        o.reason = R_LATENCY
        o.lleaves = 0.0
        o.leaves = 0.0
        st[I_NREJ] += 1
        return slot
    o.status = PENDING
    o.xstatus = PENDING
    _push_nb(ctx, ctx.reqs, I_QH, I_QN, now + np.int64(lat_in), REQ_NEW, slot, tick, qty, np.nan, 0.0, 0, 0)  # fmt: skip
    return slot


@njit(cache=True, nogil=True)
def _check_slot_nb(ctx, slot):  # pragma: no cover - compiled
    if slot < 0 or slot >= ctx.st[I_HI_SLOT] or ctx.orders[slot].status == FREE:
        ctx.st[I_ERR] = E_BAD_SLOT
        ctx.fs[F_ERR_ARG] = slot
        return False
    return True


@njit(cache=True, nogil=True)
def cancel_nb(ctx, slot):  # pragma: no cover - compiled
    """Ask to cancel; False when the strategy already knows the order is done."""
    if not _check_slot_nb(ctx, slot):
        return False
    o = ctx.orders[slot]
    if o.status != OPEN and o.status != PENDING:
        return False
    st = ctx.st
    now = st[I_LNOW]
    lat = latency_nb(ctx.lat_ts, ctx.lat_entry, st[I_ENTRY_NS], now)
    if not (lat == lat):
        return False  # no latency known now: the request cannot be sent
    _push_nb(ctx, ctx.reqs, I_QH, I_QN, now + np.int64(lat), REQ_CANCEL, slot, o.tick, 0.0, np.nan, 0.0, 0, 0)  # fmt: skip
    return True


@njit(cache=True, nogil=True)
def modify_nb(ctx, slot, price, qty):  # pragma: no cover - compiled
    """Ask to change a resting order's price and/or total quantity; a new price or a larger
    quantity loses the queue position, a smaller one keeps it."""
    if not _check_slot_nb(ctx, slot):
        return False
    o = ctx.orders[slot]
    if o.status != OPEN and o.status != PENDING:
        return False
    tick = _on_tick_nb(ctx, price)
    if tick < 0:
        return False
    st = ctx.st
    if not (qty > 0.0 and qty < np.inf):
        st[I_ERR] = E_BAD_QTY
        ctx.fs[F_ERR_ARG] = qty
        return False
    now = st[I_LNOW]
    lat = latency_nb(ctx.lat_ts, ctx.lat_entry, st[I_ENTRY_NS], now)
    if not (lat == lat):
        return False
    _push_nb(ctx, ctx.reqs, I_QH, I_QN, now + np.int64(lat), REQ_MODIFY, slot, tick, qty, np.nan, 0.0, 0, 0)  # fmt: skip
    return True
