"""Numba kernels of the sweep: many parameter combinations over one bar series.

Rules (as in `engine/kernels.py`): arrays in and out, no objects, no I/O, `_nb` suffix,
`cache=True`. Each combination is independent, so the outer loop is a `prange`: numba's
threads take combinations, and every thread reads the same (memory-mapped) price arrays
and cached indicator arrays.

Stats columns written per combination (``STAT_NAMES`` order) and, for CSCV, per-block sums
of per-bar returns and of their squares.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

STAT_NAMES = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "trades",
    "turnover",
    "fees",
    "exposure",
    "final_equity",
)
N_STATS = len(STAT_NAMES)


@njit(cache=True, nogil=True)
def cross_target_nb(fast, slow, t, long_only):  # pragma: no cover - compiled
    """Target position (-1, 0, 1) decided at bar t's close from two moving averages."""
    f = fast[t]
    s = slow[t]
    if not (f == f and s == s):  # NaN during warm-up: stay flat
        return 0.0
    if f > s:
        return 1.0
    if f < s and not long_only:
        return -1.0
    return 0.0


@njit(cache=True, nogil=True)
def run_cross_nb(open_, close, fast, slow, lo, hi, long_only, leverage, fee_bps, slippage_bps,
                 periods_per_year, stats, s1, s2, rets):  # fmt: skip  # pragma: no cover - compiled
    """One moving-average-cross backtest over bars [lo, hi).

    open_, close: float64[n] prices; fast, slow: float64[n] indicators (NaN in warm-up);
    the target decided at bar t-1's close is traded at bar t's open (slippage_bps against
    the trader, fee_bps on the traded notional); equity starts at 1.0, marked at each close.
    stats: float64[N_STATS] out; s1, s2: float64[B] per-block sums (B = len(s1), may be 0);
    rets: float64[hi-lo] per-bar returns out, or an empty array to skip.
    """
    cash = 1.0
    qty = 0.0
    pos = 0.0
    prev_eq = 1.0
    peak = 1.0
    mdd = 0.0
    n_tr = 0
    turnover = 0.0
    fees = 0.0
    exposed = 0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_dn2 = 0.0
    nb = s1.shape[0]
    for b in range(nb):
        s1[b] = 0.0
        s2[b] = 0.0
    n = hi - lo
    keep = rets.shape[0] == n
    fee = fee_bps * 1e-4
    slip = slippage_bps * 1e-4
    for t in range(lo, hi):
        tgt = cross_target_nb(fast, slow, t - 1, long_only) if t > lo else 0.0
        if tgt != pos:
            px = open_[t]
            eq_open = cash + qty * px
            if eq_open > 0.0:
                new_qty = tgt * leverage * eq_open / px
                d = new_qty - qty
                fill = px * (1.0 + slip) if d > 0 else px * (1.0 - slip)
                notional = abs(d) * fill
                cash -= d * fill + notional * fee
                fees += notional * fee
                turnover += notional
                qty = new_qty
                n_tr += 1
            pos = tgt
        eq = cash + qty * close[t]
        r = eq / prev_eq - 1.0 if prev_eq > 0.0 else 0.0
        prev_eq = eq
        if qty != 0.0:
            exposed += 1
        sum_r += r
        sum_r2 += r * r
        if r < 0.0:
            sum_dn2 += r * r
        if nb > 0:
            b = (t - lo) * nb // n
            s1[b] += r
            s2[b] += r * r
        if keep:
            rets[t - lo] = r
        if eq > peak:
            peak = eq
        dd = 1.0 - eq / peak if peak > 0.0 else 1.0
        if dd > mdd:
            mdd = dd
    mean = sum_r / n if n > 0 else 0.0
    var = (sum_r2 - n * mean * mean) / (n - 1) if n > 1 else 0.0
    ann = np.sqrt(periods_per_year)
    stats[0] = prev_eq - 1.0
    stats[1] = mean / np.sqrt(var) * ann if var > 0.0 else 0.0
    dn = np.sqrt(sum_dn2 / n) if n > 0 else 0.0
    stats[2] = mean / dn * ann if dn > 0.0 else 0.0
    stats[3] = mdd
    stats[4] = n_tr
    stats[5] = turnover
    stats[6] = fees
    stats[7] = exposed / n if n > 0 else 0.0
    stats[8] = prev_eq


@njit(cache=True, nogil=True, parallel=True)
def sweep_cross_nb(open_, close, inds, fast_idx, slow_idx, lo, hi, long_only, leverage, fee_bps,
                   slippage_bps, periods_per_year, n_blocks):  # fmt: skip  # pragma: no cover - compiled
    """Many cross backtests: combination m uses inds[fast_idx[m]] and inds[slow_idx[m]].

    inds: a typed List of float64[n] indicator arrays (each computed once for the sweep).
    Returns stats float64[M, N_STATS], s1 and s2 float64[M, n_blocks].
    """
    m = fast_idx.shape[0]
    stats = np.empty((m, N_STATS), dtype=np.float64)
    s1 = np.zeros((m, n_blocks), dtype=np.float64)
    s2 = np.zeros((m, n_blocks), dtype=np.float64)
    empty = np.empty(0, dtype=np.float64)
    for i in prange(m):
        run_cross_nb(open_, close, inds[fast_idx[i]], inds[slow_idx[i]], lo, hi, long_only, leverage,
                     fee_bps, slippage_bps, periods_per_year, stats[i], s1[i], s2[i], empty)  # fmt: skip
    return stats, s1, s2
