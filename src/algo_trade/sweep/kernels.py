"""Numba kernels of the sweep: many moving-average-cross backtests over one bar series.

Rules (as in `engine/kernels.py`): arrays in and out, no objects, no I/O, `_nb` suffix,
`cache=True`. Each combination is independent, so the outer loop is a `prange`: numba's
threads take combinations, and every thread reads the same (memory-mapped) price arrays
and cached indicator arrays.

One combination is the engine's bars backtest (`engine.kernels.simulate_bars_nb`) of the
`sma_cross`/`ema_cross` strategy, trade for trade: every fill goes through the engine's own
`fill_nb` (cash, fees, average entry, round-trip counts and sums in the state vector),
sizing through `target_qty_nb`, funding through `pay_funding_nb` and liquidation prices
through `liquidation_px_nb`, so accounting is shared code (a test compares every stat with
`algo_trade.backtest`). What the sweep leaves out is the per-bar equity array and the
ledger (no records: only the state); return and drawdown statistics are accumulated in
registers with the engine's definitions (`engine.api.compute_stats`).

Outputs per combination: ``STAT_NAMES`` in order and, for CSCV, per-block sums of the
per-bar returns and of their squares.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from algo_trade.engine import kernels as K

STAT_NAMES = (
    "final_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_days",
    "calmar",
    "orders",
    "trades",
    "win_rate",
    "profit_factor",
    "avg_trade",
    "avg_trade_return",
    "exposure",
    "turnover",
    "fees",
    "funding_pnl",
    "liquidations",
)
N_STATS = len(STAT_NAMES)
INT_STATS = ("orders", "trades", "liquidations")
NS_PER_DAY = 86_400e9


@njit(cache=True, nogil=True, inline="always")
def cross_target_nb(f, s, low):  # pragma: no cover - compiled
    """`strategies.indicators.cross_signal_nb` at one bar: 1 while fast > slow, `low` (0, or
    -1 with short) while fast < slow, 0 on a tie or in warm-up (NaN)."""
    if f > s:
        return 1.0
    if f < s:
        return low
    return 0.0


@njit(cache=True, nogil=True)
def _trade_to_nb(st, none, i, t, px, bar_range, fee, slip, slippage_range, leverage,
                 init_cash):  # fmt: skip  # pragma: no cover - compiled
    """The engine's bars trade (dust rule included)."""
    K._trade_bar_nb(
        st, none, none, i, t, px, bar_range, fee, slip, slippage_range, leverage, init_cash
    )


@njit(cache=True, nogil=True)
def _liq_bounds_nb(st, mm):  # pragma: no cover - compiled
    """(low, high) prices at which the open position is liquidated (the state changes only on
    fills, so this runs only then, not every bar)."""
    q = st[K.S_QTY]
    if q == 0.0 or mm <= 0.0:
        return -np.inf, np.inf
    p = K.liquidation_px_nb(st[K.S_CASH], q, mm)
    return (p, np.inf) if q > 0.0 else (-np.inf, p)


@njit(cache=True, nogil=True)
def run_cross_nb(ts, open_, high, low, close, fund_rate, fund_mark, fast, slow, lo, hi, short,
                 fill_at_close, init_cash, fee_bps, slippage_bps, slippage_range, leverage, mm,
                 liq_fee_bps, years, stats, s1, s2, rets):  # fmt: skip  # pragma: no cover - compiled
    """One cross backtest over bars [lo, hi), starting flat with init_cash.

    ts: int64[n] ns; open_, high, low, close: float64[n]; fund_rate, fund_mark: float64[n]
    funding settled during bar i (NaN: none) and its mark (NaN: the bar's open), or empty
    arrays when the data has no funding; fast, slow: float64[n] indicators
    (NaN in warm-up); short: -1 instead of 0 while fast < slow; fill_at_close: trade bar i's
    target at close[i] (else at open[i+1]); fee_bps, slippage_bps, slippage_range, leverage,
    mm (maintenance margin fraction), liq_fee_bps: as the engine's settings; years: the
    range's span for annualizing (the engine's: (ts[hi-1]-ts[lo]) * n/(n-1) / year).
    stats: float64[N_STATS] out; s1, s2: float64[B] per-block return sums (B may be 0);
    rets: float64[hi-lo] per-bar returns out, or an empty array to skip.
    """
    st = np.zeros(K.N_STATE, dtype=np.float64)
    st[K.S_CASH] = init_cash
    none = np.empty((0, 0), dtype=np.float64)  # no ledger, no trade records: only the state
    fee = fee_bps * 1e-4
    slip = slippage_bps * 1e-4
    liq_fee = liq_fee_bps * 1e-4
    lowv = -1.0 if short else 0.0
    n = hi - lo
    nb = s1.shape[0]
    for b in range(nb):
        s1[b] = 0.0
        s2[b] = 0.0
    keep = rets.shape[0] == n
    sig = 0.0  # the target decided at the previous bar's close (the run starts flat)
    last = 0.0  # the target last traded to (the run starts flat)
    prev_eq = init_cash
    sum_r = 0.0
    sum_r2 = 0.0
    dn2 = 0.0
    peak = init_cash
    peak_ts = ts[lo] if n > 0 else 0
    mdd = 0.0
    longest = 0
    exposed = 0
    blk = 0
    blk_end = lo + ((n + nb - 1) // nb if nb > 0 else n)  # bar t is in block (t - lo) * nb // n
    b1 = 0.0  # the current block's sums, in registers (flushed at each block's end)
    b2 = 0.0
    liq_lo, liq_hi = -np.inf, np.inf
    cash = init_cash
    q = 0.0
    has_funding = fund_rate.shape[0] == ts.shape[0]
    for i in range(lo, hi):
        if not fill_at_close and i > lo and sig != last:
            _trade_to_nb(st, none, i, sig, open_[i], high[i] - low[i], fee, slip,
                         slippage_range, leverage, init_cash)  # fmt: skip
            last = sig
            cash, q = st[K.S_CASH], st[K.S_QTY]
            liq_lo, liq_hi = _liq_bounds_nb(st, mm)
        if has_funding and q != 0.0 and fund_rate[i] == fund_rate[i]:
            m = fund_mark[i]
            K.pay_funding_nb(st, none, i, fund_rate[i], m if m == m else open_[i])
            cash = st[K.S_CASH]
            liq_lo, liq_hi = _liq_bounds_nb(st, mm)
        if q != 0.0 and (low[i] <= liq_lo or high[i] >= liq_hi):
            p = max(liq_lo if q > 0.0 else liq_hi, 0.0)
            K.fill_nb(st, none, none, i, -q, p, abs(q) * p * liq_fee, K.KIND_LIQUIDATION, 0.0)
            st[K.S_NLIQ] += 1.0
            cash, q = st[K.S_CASH], st[K.S_QTY]
            liq_lo, liq_hi = _liq_bounds_nb(st, mm)
        sig = cross_target_nb(fast[i], slow[i], lowv)
        if fill_at_close and sig != last:
            _trade_to_nb(st, none, i, sig, close[i], high[i] - low[i], fee, slip,
                         slippage_range, leverage, init_cash)  # fmt: skip
            last = sig
            cash, q = st[K.S_CASH], st[K.S_QTY]
            liq_lo, liq_hi = _liq_bounds_nb(st, mm)
        e = cash + q * close[i]
        r = e / prev_eq - 1.0 if prev_eq > 0.0 else 0.0
        prev_eq = e
        sum_r += r
        sum_r2 += r * r
        dn = min(r, 0.0)  # branch-free: the sign of a return is a coin toss
        dn2 += dn * dn
        if e >= peak:
            peak = e
            peak_ts = ts[i]
        else:
            if e < peak * (1.0 - mdd) or peak <= 0.0:  # a deeper drawdown: only then divide
                dd = 1.0 - e / peak if peak > 0.0 else 1.0
                if dd > mdd:
                    mdd = dd
            if ts[i] - peak_ts > longest:
                longest = ts[i] - peak_ts
        if q != 0.0:
            exposed += 1
        if nb > 0:
            if i >= blk_end:
                s1[blk] = b1
                s2[blk] = b2
                b1 = 0.0
                b2 = 0.0
                while i >= blk_end and blk < nb - 1:
                    blk += 1
                    blk_end = lo + ((blk + 1) * n + nb - 1) // nb
            b1 += r
            b2 += r * r
        if keep:
            rets[i - lo] = r
    if nb > 0:
        s1[blk] = b1
        s2[blk] = b2
    _finish_stats_nb(stats, st, n, sum_r, sum_r2, dn2, mdd, longest, exposed, prev_eq,
                     init_cash, years)  # fmt: skip


@njit(cache=True, nogil=True)
def _finish_stats_nb(stats, st, n, sum_r, sum_r2, dn2, mdd, longest, exposed, final,
                     init_cash, years):  # fmt: skip  # pragma: no cover - compiled
    """The engine's `compute_stats` numbers from the loop's sums (same formulas, same order)."""
    mean = sum_r / n if n > 0 else 0.0
    std = np.sqrt(max(sum_r2 - n * mean * mean, 0.0) / (n - 1)) if n > 1 else 0.0
    down = np.sqrt(dn2 / n) if n > 0 else 0.0
    ppy = n / years if years > 0 else 0.0
    ann = np.sqrt(ppy)
    if n == 0:
        final = init_cash
    if final <= 0:
        cagr = -1.0
    elif years <= 0:
        cagr = 0.0
    else:
        cagr = (final / init_cash) ** (1.0 / years) - 1.0  # inf on overflow, as the engine
    nt = int(st[K.S_NTRADE])
    n_win = st[K.S_WINS]
    wins = st[K.S_GROSS_WIN]
    losses = st[K.S_GROSS_LOSS]
    sum_ret = st[K.S_SUM_TRET]
    stats[0] = final
    stats[1] = final / init_cash - 1.0
    stats[2] = cagr
    stats[3] = std * ann
    stats[4] = mean / std * ann if std > 0 else 0.0
    stats[5] = mean / down * ann if down > 0 else 0.0
    stats[6] = mdd
    stats[7] = longest / 86_400e9
    stats[8] = cagr / mdd if mdd > 0 and np.isfinite(cagr) else np.nan
    stats[9] = st[K.S_NFILL]
    stats[10] = nt
    stats[11] = n_win / nt if nt > 0 else np.nan
    if losses > 0:
        stats[12] = wins / losses
    else:
        stats[12] = np.inf if wins > 0 else np.nan
    stats[13] = (wins - losses) / nt if nt > 0 else np.nan
    stats[14] = sum_ret / nt if nt > 0 else np.nan
    stats[15] = exposed / n if n > 0 else 0.0
    stats[16] = st[K.S_TURN] / init_cash
    stats[17] = st[K.S_FEES]
    stats[18] = -st[K.S_FUND]
    stats[19] = st[K.S_NLIQ]


@njit(cache=True, nogil=True, parallel=True)
def sweep_cross_nb(ts, open_, high, low, close, fund_rate, fund_mark, inds, fast_idx, slow_idx, short, lo,
                   hi, fill_at_close, init_cash, fee_bps, slippage_bps, slippage_range, leverage, mm,
                   liq_fee_bps, years, n_blocks):  # fmt: skip  # pragma: no cover - compiled
    """Many cross backtests: combination m uses inds[fast_idx[m]], inds[slow_idx[m]], short[m].

    inds: a typed List of float64[n] indicator arrays (each computed once for the sweep);
    fast_idx, slow_idx: int64[M]; short: bool[M]. Returns stats float64[M, N_STATS], s1 and
    s2 float64[M, n_blocks].
    """
    m = fast_idx.shape[0]
    stats = np.empty((m, N_STATS), dtype=np.float64)
    s1 = np.zeros((m, n_blocks), dtype=np.float64)
    s2 = np.zeros((m, n_blocks), dtype=np.float64)
    empty = np.empty(0, dtype=np.float64)
    for i in prange(m):
        run_cross_nb(ts, open_, high, low, close, fund_rate, fund_mark, inds[fast_idx[i]], inds[slow_idx[i]],
                     lo, hi, short[i],
                     fill_at_close, init_cash, fee_bps, slippage_bps, slippage_range, leverage, mm,
                     liq_fee_bps, years, stats[i], s1[i], s2[i], empty)  # fmt: skip
    return stats, s1, s2
