"""Numba kernels of the backtest engine: arrays in, arrays out.

Rules: every jitted function ends in ``_nb``, is ``@njit(cache=True, nogil=True)``, takes
and returns plain NumPy arrays and scalars, and knows nothing of pandas, files or the CLI
(the pandas-facing side is `engine/api.py`). One kernel call runs one whole backtest.

Accounting model (linear perpetuals, quote currency):
    cash     = init_cash - sum(signed traded notional) - fees - funding paid
    equity   = cash + qty * mark            (the identity the tests check at every event)
    realized = sum over reductions of closed_qty * (fill_px - avg_entry) * sign(position)
    equity   = init_cash + realized + qty * (mark - avg_entry) - fees - funding paid

Outputs: equity per event (float64[n], the only per-event array), a compact ledger
(LEDGER_DTYPE[m], a structured record per fill, liquidation, missed or dust order or
funding payment) and the final state vector (S_* slots), which also carries one-pass return,
drawdown and round-trip statistics. Cash, position, average entry, realized PnL, fees and
funding change only at ledger rows, and round trips follow from the fills, so
`replay_ledger_nb` rebuilds them, through the same functions and so to the same bits,
only when a user asks for them: a run writes as little new memory as possible (fresh
pages are what a backtest's time goes to once the loop is tight). The ledger is
preallocated by the caller and never reassigned, which keeps reference counting out of
the per-event loop; when it runs out the kernel stops with S_FULL set and the caller runs
it again with `ledger_capacity_nb` rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- records (structured dtypes: a field per column, usable in numba as ``rec.field``)
# LEDGER_DTYPE: one row per fill, liquidation, missed order, dust order or funding payment.
# qty: signed fill qty (0 for funding, misses and dust); px: fill price or funding mark (NaN
# for misses and dust); fee: fee paid, or the funding payment (> 0 paid); aux: signed qty an
# order wanted but did not get (fills, misses, dust), or the funding rate.
LEDGER_DTYPE = np.dtype([("idx", np.int64), ("kind", np.int64), ("qty", np.float64), ("px", np.float64),
                         ("fee", np.float64), ("aux", np.float64)], align=True)  # fmt: skip
# AFTER_DTYPE: the account after each ledger row, rebuilt by replay_ledger_nb
AFTER_DTYPE = np.dtype([("cash", np.float64), ("pos", np.float64), ("avg", np.float64),
                        ("real", np.float64), ("fees", np.float64), ("fund", np.float64)], align=True)  # fmt: skip
KIND_TAKER, KIND_LIQUIDATION, KIND_FUNDING, KIND_MISS, KIND_DUST = 0, 1, 2, 3, 4
# The dust rule (docs/engine.md): an order that opens, adds to or reduces a position and
# whose notional is at most DUST_FRAC x the account's equity is float noise, not a trade:
# it is not executed but booked as a KIND_DUST ledger row (qty 0, aux = the signed qty it
# wanted) and counted in S_NDUST. An order that closes or flips a position always
# executes, whatever its size (equity may have shrunk to nothing: it still trades).
DUST_FRAC = 1e-12

# TRADE_DTYPE: one closed round trip (side: +1 long, -1 short)
TRADE_DTYPE = np.dtype([("entry_idx", np.int64), ("exit_idx", np.int64), ("side", np.int64),
                        ("qty", np.float64), ("entry_px", np.float64), ("exit_px", np.float64),
                        ("pnl", np.float64), ("fees", np.float64), ("funding", np.float64),
                        ("ret", np.float64), ("liquidated", np.bool_)], align=True)  # fmt: skip

# --- running state, one float64 vector (keeps helpers pure and numba-friendly)
(S_CASH, S_QTY, S_AVG, S_REAL, S_FEES, S_FUND, S_TURN, S_NLIQ, S_NLEDGER, S_NTRADE, S_NFILL,
 S_T_ENTRY, S_T_PEAK, S_T_PNL, S_T_FEES, S_T_FUND, S_T_IN_QTY, S_T_IN_COST, S_T_OUT_QTY,
 S_T_OUT_COST,
 # equity statistics, accumulated per event (definitions in docs/engine.md)
 S_PREV_EQ, S_SUM_R, S_SUM_R2, S_SUM_DN2, S_PEAK, S_PEAK_TS, S_MAX_DD, S_MAX_DD_NS,
 S_EXPOSED,
 # round trips: count, winners, gross profit, gross loss, sum of returns
 S_WINS, S_GROSS_WIN, S_GROSS_LOSS, S_SUM_TRET,
 # S_FULL: 1 when the record arrays ran out (run again, larger); S_BAD_ROW/COL: the first
 # input the kernel refused (-1: none; column 0-3 open/high/low/close, 4 ts)
 S_FULL, S_BAD_ROW, S_BAD_COL,
 # bars: the target last traded to and the liquidation bounds (long at LO, short at HI)
 S_LAST, S_LIQ_LO, S_LIQ_HI,
 # orders the dust rule did not execute
 S_NDUST) = range(40)  # fmt: skip
N_STATE = 40
# The state as a record (names in S_* order): `state_record(st)` views a kernel's final
# vector with these fields, no copy. The kernels keep the plain vector (slots that the hot
# loops keep in registers, written back in one place), the Python side reads names.
STATE_DTYPE = np.dtype([(name, np.float64) for name in (
    "cash", "qty", "avg", "real", "fees", "fund", "turnover", "nliq", "nledger", "ntrade", "nfill",
    "t_entry", "t_peak", "t_pnl", "t_fees", "t_fund", "t_in_qty", "t_in_cost", "t_out_qty", "t_out_cost",
    "prev_eq", "sum_r", "sum_r2", "sum_dn2", "peak", "peak_ts", "max_dd", "max_dd_ns", "exposed",
    "wins", "gross_win", "gross_loss", "sum_tret", "full", "bad_row", "bad_col", "last", "liq_lo",
    "liq_hi", "ndust")])  # fmt: skip
assert len(STATE_DTYPE.names) == N_STATE


def state_record(st: np.ndarray) -> np.void:
    """A kernel's final state vector seen as a STATE_DTYPE record (``rec["cash"]``)."""
    return np.ascontiguousarray(st).view(STATE_DTYPE)[0]


ROWS_PER_EVENT = 3  # ledger rows one event can add at most (fill, funding, liquidation)

# --- book overflow modes (an order larger than the displayed depth)
OVERFLOW_PENALTY, OVERFLOW_UNFILLED = 0, 1


@njit(cache=True, nogil=True)
def ledger_capacity_nb(target, fund_rate, rebalance):  # pragma: no cover - compiled
    """Ledger rows a run can need: one fill per target change (every event when
    rebalancing), at most one liquidation or missed order each, one row per funding
    settlement."""
    n = target.shape[0]
    rows = 2
    prev = 0.0
    for i in range(n):
        if rebalance:
            rows += 2
        else:
            t = _clip_target_nb(target[i], 1.0)
            if t != prev:
                rows += 2
                prev = t
    for i in range(fund_rate.shape[0]):
        if fund_rate[i] == fund_rate[i]:
            rows += 1
    return rows


@njit(cache=True, nogil=True, inline="always")
def _no_room_nb(st, ledger):  # pragma: no cover - compiled
    """True (and S_FULL set) when one more event might not fit in the ledger."""
    if st[S_NLEDGER] + ROWS_PER_EVENT > ledger.shape[0]:
        st[S_FULL] = 1.0
        return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _sign_nb(x):  # pragma: no cover - compiled
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


@njit(cache=True, nogil=True, inline="always")
def _close_trade_nb(st, trades, i, side, liquidated):  # pragma: no cover - compiled
    """Count the open round trip in the stats; append it to `trades` if that has rows."""
    nt = int(st[S_NTRADE])
    cost = st[S_T_IN_COST]
    pnl = st[S_T_PNL]
    ret = pnl / cost if cost > 0.0 else 0.0
    if pnl > 0.0:
        st[S_WINS] += 1.0
        st[S_GROSS_WIN] += pnl
    elif pnl < 0.0:
        st[S_GROSS_LOSS] -= pnl
    st[S_SUM_TRET] += ret
    st[S_NTRADE] = nt + 1
    if trades.shape[0] == 0:
        return
    t = trades[nt]
    t.entry_idx = np.int64(st[S_T_ENTRY])
    t.exit_idx = np.int64(i)
    t.side = np.int64(side)
    t.qty = st[S_T_PEAK]
    t.entry_px = cost / st[S_T_IN_QTY] if st[S_T_IN_QTY] > 0.0 else np.nan
    t.exit_px = st[S_T_OUT_COST] / st[S_T_OUT_QTY] if st[S_T_OUT_QTY] > 0.0 else np.nan
    t.pnl = pnl
    t.fees = st[S_T_FEES]
    t.funding = st[S_T_FUND]
    t.ret = ret
    t.liquidated = liquidated


@njit(cache=True, nogil=True, inline="always")
def _open_trade_nb(st, i, qty_abs, px, fee):  # pragma: no cover - compiled
    st[S_T_ENTRY] = i
    st[S_T_PEAK] = qty_abs
    st[S_T_PNL] = -fee
    st[S_T_FEES] = fee
    st[S_T_FUND] = 0.0
    st[S_T_IN_QTY] = qty_abs
    st[S_T_IN_COST] = qty_abs * px
    st[S_T_OUT_QTY] = 0.0
    st[S_T_OUT_COST] = 0.0


@njit(cache=True, nogil=True, inline="always")
def fill_nb(st, ledger, trades, i, dq, px, fee, kind, unfilled):  # pragma: no cover - compiled
    """Book a fill of signed quantity dq at price px, paying `fee`, into state st.

    st: float64[N_STATE] running state; ledger, trades: record arrays, rows appended when
    they have any (the kernels pass no trades, the replay no ledger); i: event index;
    kind: KIND_*; unfilled: signed qty the order wanted but did not get (book mode).
    """
    q0 = st[S_QTY]
    q1 = q0 + dq
    a_dq = abs(dq)
    notional = a_dq * px
    st[S_CASH] -= dq * px + fee
    st[S_FEES] += fee
    st[S_TURN] += notional
    s0 = _sign_nb(q0)
    if q0 == 0.0:
        st[S_AVG] = px
        _open_trade_nb(st, i, a_dq, px, fee)
    elif _sign_nb(dq) == s0:  # adding to the position
        st[S_AVG] = (st[S_AVG] * abs(q0) + px * a_dq) / abs(q1)
        st[S_T_PNL] -= fee
        st[S_T_FEES] += fee
        st[S_T_IN_QTY] += a_dq
        st[S_T_IN_COST] += a_dq * px
        if abs(q1) > st[S_T_PEAK]:
            st[S_T_PEAK] = abs(q1)
    else:  # reducing, closing or flipping
        closed = min(a_dq, abs(q0))
        pnl = closed * (px - st[S_AVG]) * s0
        st[S_REAL] += pnl
        close_fee = fee * closed / a_dq
        st[S_T_PNL] += pnl - close_fee
        st[S_T_FEES] += close_fee
        st[S_T_OUT_QTY] += closed
        st[S_T_OUT_COST] += closed * px
        if a_dq >= abs(q0):
            _close_trade_nb(st, trades, i, s0, kind == KIND_LIQUIDATION)
            rest = a_dq - closed
            if rest > 0.0:
                st[S_AVG] = px
                _open_trade_nb(st, i, rest, px, fee - close_fee)
            else:
                st[S_AVG] = 0.0
                q1 = 0.0  # exact flat, no float residue
    st[S_QTY] = q1
    st[S_NFILL] += 1.0
    _ledger_row_nb(st, ledger, i, kind, dq, px, fee, unfilled)


@njit(cache=True, nogil=True, inline="always")
def _ledger_row_nb(st, ledger, i, kind, qty, px, fee, aux):  # pragma: no cover - compiled
    """Append a ledger row (nothing when the ledger has no rows: the replay)."""
    if ledger.shape[0] == 0:
        return
    r = int(st[S_NLEDGER])
    if r == ledger.shape[0]:
        raise ValueError("ledger capacity exceeded")
    row = ledger[r]
    row.idx = np.int64(i)
    row.kind = np.int64(kind)
    row.qty = qty
    row.px = px
    row.fee = fee
    row.aux = aux
    st[S_NLEDGER] = r + 1


@njit(cache=True, nogil=True, inline="always")
def pay_funding_nb(st, ledger, i, rate, mark):  # pragma: no cover - compiled
    """Funding on the open position: longs pay positive rates (payment = qty * mark * rate)."""
    pay = st[S_QTY] * mark * rate
    st[S_CASH] -= pay
    st[S_FUND] += pay
    st[S_T_PNL] -= pay
    st[S_T_FUND] += pay
    _ledger_row_nb(st, ledger, i, KIND_FUNDING, 0.0, mark, pay, rate)


@njit(cache=True, nogil=True, inline="always")
def liquidation_px_nb(cash, qty, mm):  # pragma: no cover - compiled
    """Mark price at which equity (cash + qty * P) falls to the maintenance margin mm * |qty| * P."""
    if qty > 0.0:
        return -cash / (qty * (1.0 - mm))
    return -cash / (qty * (1.0 + mm))


@njit(cache=True, nogil=True, inline="always")
def _liq_bounds_nb(st, mm):  # pragma: no cover - compiled
    """(low, high): a long is liquidated when the price reaches low, a short at high.

    A long whose liquidation price is below a billionth of its entry is fully
    collateralized (the price is only off zero by rounding): -inf, so the loop skips it."""
    q = st[S_QTY]
    if q == 0.0 or mm <= 0.0:
        return -np.inf, np.inf
    p = liquidation_px_nb(st[S_CASH], q, mm)
    if q > 0.0:
        return (p if p > 1e-9 * st[S_AVG] else -np.inf), np.inf
    return -np.inf, p


@njit(cache=True, nogil=True, inline="always")
def target_qty_nb(cash, q0, px, k, cost_rate):  # pragma: no cover - compiled
    """Quantity whose notional is k x equity after paying cost_rate on the traded notional.

    Equity is cash + q0 * px; "all-in" (k = 1) gives notional + fee = equity. Solved in
    closed form for each trade direction (|k| * cost_rate < 1 is checked by the API).
    """
    eq = cash + q0 * px
    if eq <= 0.0 or px <= 0.0:
        return 0.0
    n0 = q0 * px
    n1 = k * (eq + cost_rate * n0) / (1.0 + k * cost_rate)  # buying: n1 >= n0
    if n1 < n0:
        n1 = k * (eq - cost_rate * n0) / (1.0 - k * cost_rate)  # selling
    return n1 / px


@njit(cache=True, nogil=True, inline="always")
def _acc_nb(acc, ts_i, eq, q):  # pragma: no cover - compiled
    """One event's return and drawdown statistics, carried in a tuple of locals (registers:
    keeping them in the state array costs a store-to-load chain per event)."""
    prev, s1, s2, dn2, peak, peak_ts, mdd, longest, exposed = acc
    r = eq / prev - 1.0 if prev > 0.0 else 0.0
    dn = min(r, 0.0)
    if eq >= peak:
        peak = eq
        peak_ts = ts_i
    elif eq < peak * (1.0 - mdd):  # a deeper drawdown: divide only then
        mdd = 1.0 - eq / peak if peak > 0.0 else 1.0
    return (eq, s1 + r, s2 + r * r, dn2 + dn * dn, peak, peak_ts, mdd,
            max(longest, ts_i - peak_ts), exposed + (1 if q != 0.0 else 0))  # fmt: skip


@njit(cache=True, nogil=True)
def _acc_init_nb(init_cash, ts0):  # pragma: no cover - compiled
    return (init_cash, 0.0, 0.0, 0.0, init_cash, ts0, 0.0, np.int64(0), np.int64(0))


@njit(cache=True, nogil=True)
def _acc_store_nb(st, acc):  # pragma: no cover - compiled
    prev, s1, s2, dn2, peak, peak_ts, mdd, longest, exposed = acc
    st[S_PREV_EQ] = prev
    st[S_SUM_R] = s1
    st[S_SUM_R2] = s2
    st[S_SUM_DN2] = dn2
    st[S_PEAK] = peak
    st[S_PEAK_TS] = peak_ts
    st[S_MAX_DD] = mdd
    st[S_MAX_DD_NS] = longest
    st[S_EXPOSED] = exposed


@njit(cache=True, nogil=True)
def new_state_nb(init_cash, ts0):  # pragma: no cover - compiled
    st = np.zeros(N_STATE, dtype=np.float64)
    st[S_CASH] = init_cash
    st[S_PREV_EQ] = init_cash
    st[S_PEAK] = init_cash
    st[S_PEAK_TS] = ts0
    st[S_BAD_ROW] = -1.0
    st[S_BAD_COL] = -1.0
    return st


@njit(cache=True, nogil=True, inline="always")
def _bad_nb(st, i, col):  # pragma: no cover - compiled
    st[S_BAD_ROW] = i
    st[S_BAD_COL] = col


@njit(cache=True, nogil=True, inline="always")
def _ok_px(x):  # pragma: no cover - compiled
    return x > 0.0 and x < np.inf


@njit(cache=True, nogil=True, inline="always")
def _clip_target_nb(t, lim):  # pragma: no cover - compiled
    if t != t:
        return 0.0
    return min(max(t, -lim), lim)


@njit(cache=True, nogil=True, inline="always")
def _liquidate_nb(st, ledger, trades, i, p_liq, liq_fee):  # pragma: no cover - compiled
    """Close the whole position at the liquidation price, paying the liquidation fee."""
    q = st[S_QTY]
    p = max(p_liq, 0.0)
    fill_nb(st, ledger, trades, i, -q, p, abs(q) * p * liq_fee, KIND_LIQUIDATION, 0.0)
    st[S_NLIQ] += 1.0


@njit(cache=True, nogil=True, inline="always")
def is_dust_nb(q0, dq, px, equity):  # pragma: no cover - compiled
    """The dust rule: True when an order of dq at px is not executed (see DUST_FRAC).
    Closing or flipping (the position reaches or crosses 0) always executes."""
    if q0 != 0.0 and (q0 + dq == 0.0 or (q0 > 0.0) != (q0 + dq > 0.0)):
        return False
    return not (abs(dq) * px > DUST_FRAC * abs(equity)) or dq == 0.0


@njit(cache=True, nogil=True, inline="always")
def record_dust_nb(st, ledger, i, wanted):  # pragma: no cover - compiled
    """A ledger row for an order the dust rule did not execute (qty 0, wanted qty in aux)."""
    st[S_NDUST] += 1.0
    _ledger_row_nb(st, ledger, i, KIND_DUST, 0.0, np.nan, 0.0, wanted)


@njit(cache=True, nogil=True, inline="always")
def _trade_bar_nb(st, ledger, trades, i, t, px, bar_range, fee, slip, slippage_range, leverage,
                  init_cash):  # fmt: skip  # pragma: no cover - compiled
    """Trade to target fraction t at price px (moved against the order by the slippage).
    An order already at its target (dq == 0 while the target agrees with the position) is
    no order; anything else either fills or is booked as dust."""
    s = slip + (slippage_range * bar_range / px if slippage_range > 0.0 else 0.0)
    q0 = st[S_QTY]
    dq = target_qty_nb(st[S_CASH], q0, px, t * leverage, fee + s) - q0
    if dq == 0.0 and (q0 != 0.0 or t == 0.0):
        return
    if is_dust_nb(q0, dq, px, st[S_CASH] + q0 * px):
        record_dust_nb(st, ledger, i, dq)
        return
    fill_px = px * (1.0 + s) if dq > 0.0 else px * (1.0 - s)
    fill_nb(st, ledger, trades, i, dq, fill_px, abs(dq) * fill_px * fee, KIND_TAKER, 0.0)


@njit(cache=True, nogil=True, inline="always")
def _range_nb(high, low, i, slippage_range):  # pragma: no cover - compiled
    """The bar's high - low, read only when the slippage model uses it (a flat position's
    bar has not been read yet: two cache misses per fill otherwise)."""
    return high[i] - low[i] if slippage_range > 0.0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def _set_liq_nb(st, mm):  # pragma: no cover - compiled
    lo, hi = _liq_bounds_nb(st, mm)
    st[S_LIQ_LO] = lo
    st[S_LIQ_HI] = hi


@njit(cache=True, nogil=True, inline="always")
def _bar_event_nb(st, ledger, trades, i, open_, high, low, close, target, fund_rate, fund_mark,
                  fill_at_close, fee, slip, slippage_range, leverage, mm, liq_fee, rebalance,
                  init_cash, has_funding):  # fmt: skip  # pragma: no cover - compiled
    """Everything that can happen inside bar i, in order: fill at the open (next mode),
    funding, liquidation over the bar, fill at the close (close mode). Kept out of the
    per-bar loop, which calls it only when one of them may apply. Returns 1 to stop (no
    room in the ledger, or a bad price: see S_FULL, S_BAD_ROW)."""
    if not fill_at_close and i > 0:
        t = _clip_target_nb(target[i - 1], 1.0)
        if t != st[S_LAST] or (rebalance and (t != 0.0 or st[S_QTY] != 0.0)):
            if _no_room_nb(st, ledger):
                return 1
            if not _ok_px(open_[i]):
                _bad_nb(st, i, 0)
                return 1
            _trade_bar_nb(st, ledger, trades, i, t, open_[i], _range_nb(high, low, i, slippage_range), fee, slip,
                          slippage_range, leverage, init_cash)  # fmt: skip
            st[S_LAST] = t
            _set_liq_nb(st, mm)
    if has_funding and st[S_QTY] != 0.0 and fund_rate[i] == fund_rate[i]:
        if _no_room_nb(st, ledger):
            return 1
        m = fund_mark[i]
        pay_funding_nb(st, ledger, i, fund_rate[i], m if m == m else open_[i])
        _set_liq_nb(st, mm)
    q = st[S_QTY]
    if (q > 0.0 and st[S_LIQ_LO] > 0.0) or (q < 0.0 and st[S_LIQ_HI] < np.inf):
        worst = low[i] if q > 0.0 else high[i]  # the side that can liquidate
        if not _ok_px(worst):
            _bad_nb(st, i, 2 if q > 0.0 else 1)
            return 1
        if (q > 0.0 and worst <= st[S_LIQ_LO]) or (q < 0.0 and worst >= st[S_LIQ_HI]):
            if _no_room_nb(st, ledger):
                return 1
            _liquidate_nb(st, ledger, trades, i, st[S_LIQ_LO] if q > 0.0 else st[S_LIQ_HI], liq_fee)
            _set_liq_nb(st, mm)
    if fill_at_close:
        t = _clip_target_nb(target[i], 1.0)
        if t != st[S_LAST] or (rebalance and (t != 0.0 or st[S_QTY] != 0.0)):
            if _no_room_nb(st, ledger):
                return 1
            _trade_bar_nb(st, ledger, trades, i, t, close[i], _range_nb(high, low, i, slippage_range), fee, slip,
                          slippage_range, leverage, init_cash)  # fmt: skip
            st[S_LAST] = t
            _set_liq_nb(st, mm)
    return 0


@njit(cache=True, nogil=True)
def simulate_bars_nb(ts, open_, high, low, close, target, fund_rate, fund_mark, fill_at_close,
                     init_cash, fee_bps, slippage_bps, slippage_range, leverage, mm, liq_fee_bps,
                     rebalance, equity, ledger, limit, bad_col):  # fmt: skip  # pragma: no cover - compiled
    """Backtest target positions over bars.

    ts: int64[n] bar open times (any unit: drawdown durations come out in it); open_, high,
    low, close: float64[n] prices; target:
    float64[n] or int8[n], the position decided at bar i's close as a fraction of equity
    (clipped to [-1, 1], NaN = flat), scaled by leverage; fund_rate, fund_mark: float64[n]
    funding settled during bar i (NaN: none) and its mark price (NaN: the bar's open), or
    empty arrays when there is no funding; fill_at_close: fill bar i's target at close[i]
    (else at open[i+1]); fee_bps: taker fee on traded notional; slippage_bps and
    slippage_range (fraction of high-low): price moved against the order; mm: maintenance
    margin fraction (0 disables liquidation); liq_fee_bps: fee on a liquidation's notional;
    rebalance: trade back to the target fraction at every bar, not only when it changes.
    Outputs: equity float64[n] (marked at each close); ledger (see the module docstring).
    limit, bad_col: `first_bad_bar_nb(ts, close)` (n, -1 when every close and time is good).
    Returns the final state (S_NLEDGER: rows used; S_BAD_ROW >= 0: stopped at a
    NaN/non-positive price or a timestamp not after the previous one).
    """
    n = close.shape[0]
    st = new_state_nb(init_cash, ts[0] if n > 0 else 0)
    trades = np.empty(0, dtype=TRADE_DTYPE)  # round trips: counted, not stored
    acc = _acc_init_nb(init_cash, ts[0] if n > 0 else np.int64(0))
    has_funding = fund_rate.shape[0] == n
    fee = fee_bps * 1e-4
    slip = slippage_bps * 1e-4
    liq_fee = liq_fee_bps * 1e-4
    _set_liq_nb(st, mm)
    # The caller checked close and ts (first_bad_bar_nb: the run ends at the first bad bar,
    # `limit`, reported as column `bad_col`); open, high and low are checked where they
    # are read. Runs of quiet bars (cash and position constant) alternate with event bars:
    # a scan finds the next bar where something may happen, a tight loop marks the run
    # before it, and _bar_event_nb handles the event bar.
    i = 0
    while i < limit:
        q = st[S_QTY]
        j = min(_next_event_nb(target, fund_rate, low, high, i, limit, fill_at_close, rebalance,
                               has_funding, st[S_LAST], q, st[S_LIQ_LO], st[S_LIQ_HI]), limit)  # fmt: skip
        acc = _mark_run_nb(ts, close, equity, i, j, st[S_CASH], q, st[S_LAST] == 0.0, acc)
        if j >= limit:
            i = limit
            break
        if _bar_event_nb(st, ledger, trades, j, open_, high, low, close, target, fund_rate,
                         fund_mark, fill_at_close, fee, slip, slippage_range, leverage, mm,
                         liq_fee, rebalance, init_cash, has_funding):  # fmt: skip
            break
        q = st[S_QTY]
        e = st[S_CASH] + q * close[j]
        equity[j] = e
        acc = _acc_nb(acc, ts[j], e, q)
        i = j + 1
    if i == limit and limit < n:
        _bad_nb(st, limit, bad_col)
    _acc_store_nb(st, acc)
    return st


@njit(cache=True, nogil=True)
def first_bad_bar_nb(ts, close):  # pragma: no cover - compiled
    """(first bar whose close is NaN/non-positive/infinite (column 3) or whose time is not
    after the previous one (column 4), that column); (n, -1) when all are good. A
    branch-free pass over the bits (vectorized) first; bar by bar only when one is bad."""
    n = close.shape[0]
    bits = close.view(np.uint64)
    one = np.uint64(1)
    top = np.uint64(0x7FEFFFFFFFFFFFFF)  # bits - 1 below this: a positive finite float
    bad = np.uint64(0)
    for k in range(n):
        bad |= np.uint64((bits[k] - one) >= top)
    for k in range(1, n):
        bad |= np.uint64(ts[k] <= ts[k - 1])
    if bad:
        for k in range(n):
            if not _ok_px(close[k]):
                return k, 3
            if k > 0 and ts[k] <= ts[k - 1]:
                return k, 4
    return n, -1


@njit(cache=True, nogil=True, inline="always")
def _next_event_nb(target, fund_rate, low, high, i, n, fill_at_close, rebalance, has_funding,
                   last, q, liq_lo, liq_hi):  # fmt: skip  # pragma: no cover - compiled
    """The first bar in [i, n) where something may happen, given the state: the target as
    traded (bar k's own at the close, bar k-1's at the open) differs from the last one
    traded (or rebalancing), or, with a position, a funding settlement or a price reaching
    the liquidation bound (a NaN fails every comparison: the event bar reports it; a long
    reads only the low, a short only the high). n when none."""
    shift = 0 if fill_at_close else 1
    k = i
    if k == 0 and shift == 1:
        k = 1  # nothing fills at the first open
    if k >= n:
        return n
    watch_lo = liq_lo > 0.0 and q > 0.0  # the bounds first: the same answer run after run
    watch_hi = liq_hi < np.inf and q < 0.0
    funding = has_funding and q != 0.0
    if rebalance or watch_lo or watch_hi or funding:
        while k < n:
            t = _clip_target_nb(target[k - shift], 1.0)
            if t != last or (rebalance and (t != 0.0 or q != 0.0)):
                return k
            if funding and fund_rate[k] == fund_rate[k]:
                return k
            if watch_lo:
                lo = low[k]
                if not (lo > liq_lo and lo < np.inf):
                    return k
            if watch_hi:
                hi = high[k]
                if not (hi < liq_hi and hi > 0.0):
                    return k
            k += 1
        return n
    # the common case, a target change: raw values compared (no conversion), clipped only
    # where they differ
    ref = target[k - shift]
    if _clip_target_nb(ref, 1.0) != last:
        return k
    while k < n:
        x = target[k - shift]
        if x != ref:
            if _clip_target_nb(x, 1.0) != last:
                return k
            ref = x
        k += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _mark_run_nb(ts, close, equity, i, j, cash, q, flat_target, acc):  # pragma: no cover - compiled
    """Equity and its statistics over bars [i, j) (checked inputs), where cash and position
    do not change. Same numbers as _acc_nb bar by bar: a drawdown's duration is taken at
    its last bar (before a new peak, and at the run's end) instead of at every bar."""
    if j <= i:
        return acc
    prev, s1, s2, dn2, peak, peak_ts, mdd, longest, exposed = acc
    # test the target first: it is known early, while q comes out of the last fill's
    # divisions, and a branch on it that goes the other way than last time stalls the loop
    if flat_target and q == 0.0:
        # flat: equity is cash throughout, so after the run's first bar every return is
        # exactly 0 and the peak can only stay where it is
        acc = _acc_nb(acc, ts[i], cash, q)
        prev, s1, s2, dn2, peak, peak_ts, mdd, longest, exposed = acc
        for k in range(i, j):
            equity[k] = cash
        if cash >= peak:
            peak_ts = ts[j - 1]
        return (prev, s1, s2, dn2, peak, peak_ts, mdd, max(longest, ts[j - 1] - peak_ts), exposed)
    for k in range(i, j):
        e = cash + q * close[k]
        equity[k] = e
        r = e / prev - 1.0 if prev > 0.0 else 0.0
        prev = e
        s1 += r
        s2 += r * r
        dn = min(r, 0.0)
        dn2 += dn * dn
        if e >= peak:
            if k > 0:
                longest = max(longest, ts[k - 1] - peak_ts)
            peak = e
            peak_ts = ts[k]
        elif e < peak * (1.0 - mdd):  # a deeper drawdown: divide only then
            mdd = 1.0 - e / peak if peak > 0.0 else 1.0
    longest = max(longest, ts[j - 1] - peak_ts)
    held = j - i if q != 0.0 else 0  # 0 for a liquidated position whose target stays
    return (prev, s1, s2, dn2, peak, peak_ts, mdd, longest, exposed + held)


@njit(cache=True, nogil=True)
def walk_book_nb(px, sz, qty, sign, overflow, penalty):  # pragma: no cover - compiled
    """Fill a market order of qty > 0 against one side of a book.

    px, sz: float64[L] that side's levels, best first, NaN-padded; sign: +1 buy (asks),
    -1 sell (bids); overflow: OVERFLOW_PENALTY fills what the book lacks at the worst
    displayed level moved `penalty` (fraction) against the order, OVERFLOW_UNFILLED leaves
    it unfilled. Returns (filled qty, VWAP price; NaN if nothing filled).
    """
    rem = qty
    cost = 0.0
    worst = np.nan
    for lvl in range(px.shape[0]):
        p = px[lvl]
        s = sz[lvl]
        if p != p:
            break
        if not (s > 0.0):
            continue
        take = s if s < rem else rem
        cost += take * p
        rem -= take
        worst = p
        if rem <= 0.0:
            rem = 0.0
            break
    if rem > 0.0 and overflow == OVERFLOW_PENALTY and worst == worst:
        cost += rem * worst * (1.0 + sign * penalty)
        rem = 0.0
    filled = qty - rem
    return filled, (cost / filled if filled > 0.0 else np.nan)


@njit(cache=True, nogil=True)
def _record_miss_nb(st, ledger, i, side, wanted):  # pragma: no cover - compiled
    """A ledger row for an order that got nothing (qty 0, the wanted qty as unfilled)."""
    _ledger_row_nb(st, ledger, i, KIND_MISS, 0.0, np.nan, 0.0, side * wanted)


@njit(cache=True, nogil=True)
def simulate_book_nb(ts, bid_px, bid_sz, ask_px, ask_sz, target, fund_rate, fund_mark, latency_ns,
                     init_cash, fee_bps, leverage, mm, liq_fee_bps, rebalance, overflow,
                     overflow_penalty_bps, equity, ledger):  # fmt: skip  # pragma: no cover - compiled
    """Backtest target positions over L2 book snapshots with market orders.

    ts: int64[n] snapshot times (latency_ns in the same unit); bid_px, bid_sz, ask_px, ask_sz: float64[n, L] levels,
    best first, NaN-padded; target: float64[n] or int8[n] decided at snapshot i (fraction of equity,
    clipped to [-1, 1], scaled by leverage); an order sent at snapshot i executes at the first
    later snapshot j > i with ts[j] >= ts[i] + latency_ns, walking that snapshot's levels
    (several orders arriving at one snapshot: the newest wins). fund_rate, fund_mark:
    float64[n] funding settled at or after snapshot i and before the next (NaN: none; mark
    NaN: the mid). overflow, overflow_penalty_bps: see walk_book_nb. Positions are marked at
    the mid (the last one when a side is empty); outputs as in simulate_bars_nb.
    """
    n = ts.shape[0]
    st = new_state_nb(init_cash, ts[0] if n > 0 else 0)
    trades = np.empty(0, dtype=TRADE_DTYPE)  # round trips: counted, not stored
    acc = _acc_init_nb(init_cash, ts[0] if n > 0 else np.int64(0))
    has_funding = fund_rate.shape[0] == n
    fee = fee_bps * 1e-4
    liq_fee = liq_fee_bps * 1e-4
    pen = overflow_penalty_bps * 1e-4
    pending = np.empty(n, dtype=np.int64)  # events whose order is in flight, oldest first
    head = 0
    tail = 0
    last = 0.0
    mid = np.nan
    for i in range(n):
        b = bid_px[i, 0]
        a = ask_px[i, 0]
        if a == a and b == b:
            mid = 0.5 * (a + b)
        elif b == b:
            mid = b
        elif a == a:
            mid = a
        if _no_room_nb(st, ledger):
            break
        j = -1
        while head < tail and ts[pending[head]] + latency_ns <= ts[i]:
            j = pending[head]
            head += 1
        if j >= 0 and mid == mid:
            t = _clip_target_nb(target[j], 1.0)
            half = 0.5 * (a - b) / mid if (a == a and b == b) else 0.0
            q0 = st[S_QTY]
            dq = target_qty_nb(st[S_CASH], q0, mid, t * leverage, fee + half) - q0
            if dq == 0.0 and (q0 != 0.0 or t == 0.0):
                pass  # already at the target: no order
            elif is_dust_nb(q0, dq, mid, st[S_CASH] + q0 * mid):
                record_dust_nb(st, ledger, i, dq)
            else:
                if dq > 0.0:
                    got, vwap = walk_book_nb(ask_px[i], ask_sz[i], dq, 1.0, overflow, pen)
                    sdq = got
                else:
                    got, vwap = walk_book_nb(bid_px[i], bid_sz[i], -dq, -1.0, overflow, pen)
                    sdq = -got
                if got > 0.0:
                    fill_nb(st, ledger, trades, i, sdq, vwap, got * vwap * fee, KIND_TAKER,
                            _sign_nb(dq) * (abs(dq) - got))  # fmt: skip
                else:  # nothing displayed on that side: record the miss
                    _record_miss_nb(st, ledger, i, _sign_nb(dq), abs(dq))
        if has_funding and st[S_QTY] != 0.0 and fund_rate[i] == fund_rate[i]:
            r = fund_rate[i]
            m = fund_mark[i]
            pay_funding_nb(st, ledger, i, r, m if m == m else mid)
        q = st[S_QTY]
        if q != 0.0 and mm > 0.0:
            p_liq = liquidation_px_nb(st[S_CASH], q, mm)
            if (q > 0.0 and mid <= p_liq) or (q < 0.0 and mid >= p_liq):
                _liquidate_nb(st, ledger, trades, i, p_liq, liq_fee)
        q = st[S_QTY]
        eq = st[S_CASH] + q * mid
        equity[i] = eq
        acc = _acc_nb(acc, ts[i], eq, q)
        t = _clip_target_nb(target[i], 1.0)
        if t != last or (rebalance and (t != 0.0 or st[S_QTY] != 0.0)):
            pending[tail] = i
            tail += 1
            last = t
    _acc_store_nb(st, acc)
    return st


@njit(cache=True, nogil=True)
def replay_ledger_nb(ledger, init_cash, n_trades):  # pragma: no cover - compiled
    """Re-apply a run's ledger: the state after each row and the round trips.

    ledger: LEDGER_DTYPE[m] from a kernel; n_trades: rows to allocate (the run's S_NTRADE).
    Returns (after AFTER_DTYPE[m], trades TRADE_DTYPE[n_trades]). Same functions as the run,
    so the same numbers.
    """
    m = ledger.shape[0]
    st = new_state_nb(init_cash, 0)
    none = np.empty(0, dtype=LEDGER_DTYPE)
    trades = np.empty(n_trades, dtype=TRADE_DTYPE)
    after = np.empty(m, dtype=AFTER_DTYPE)
    for r in range(m):
        row = ledger[r]
        kind = row.kind
        i = row.idx
        if kind == KIND_TAKER or kind == KIND_LIQUIDATION:
            fill_nb(st, none, trades, i, row.qty, row.px, row.fee, kind, 0.0)
        elif kind == KIND_FUNDING:
            pay_funding_nb(st, none, i, row.aux, row.px)
        a = after[r]
        a.cash = st[S_CASH]
        a.pos = st[S_QTY]
        a.avg = st[S_AVG] if st[S_QTY] != 0.0 else np.nan
        a.real = st[S_REAL]
        a.fees = st[S_FEES]
        a.fund = st[S_FUND]
    return after, trades[: int(st[S_NTRADE])]
