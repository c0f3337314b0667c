"""Numba indicator and signal kernels used by the built-in strategies (arrays in and out).

Signal kernels return int8 targets (-1, 0, 1): the engine streams a 1-byte array.

Every output at index i depends only on inputs at indices <= i (no look-ahead); NaN marks
the warm-up, during which signal kernels hold a flat target.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sma_nb(x, window):  # pragma: no cover - compiled
    """Simple moving average of float64[n] over `window` events; NaN for the first window-1."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    acc = 0.0
    head = min(window - 1, n)
    for i in range(head):
        acc += x[i]
        out[i] = np.nan
    for i in range(head, n):
        # one add on the loop-carried chain (the difference is computed off it): twice the
        # speed of adding and subtracting in turn
        acc += x[i] - x[i - window] if i >= window else x[i]
        out[i] = acc / window
    return out


@njit(cache=True, nogil=True)
def ema_nb(x, span):  # pragma: no cover - compiled
    """Exponential moving average, alpha = 2 / (span + 1), seeded with the first value;
    NaN for the first span-1 events."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    a = 2.0 / (span + 1.0)
    m = x[0] if n > 0 else 0.0
    for i in range(n):
        m = a * x[i] + (1.0 - a) * m
        out[i] = m if i >= span - 1 else np.nan
    return out


@njit(cache=True, nogil=True)
def rolling_std_nb(x, window):  # pragma: no cover - compiled
    """Population standard deviation over `window` events (two-pass per window: exact)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for i in range(window - 1, n):
        m = 0.0
        for k in range(i - window + 1, i + 1):
            m += x[k]
        m /= window
        v = 0.0
        for k in range(i - window + 1, i + 1):
            v += (x[k] - m) ** 2
        out[i] = np.sqrt(v / window)
    return out


@njit(cache=True, nogil=True)
def rsi_nb(x, window):  # pragma: no cover - compiled
    """Wilder's RSI (0..100) of float64[n]; NaN for the first `window` events."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    up = 0.0
    dn = 0.0
    for i in range(1, n):
        d = x[i] - x[i - 1]
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if i <= window:
            up += g / window
            dn += lo / window
        else:
            up = (up * (window - 1) + g) / window
            dn = (dn * (window - 1) + lo) / window
        if i >= window:
            out[i] = 100.0 if dn == 0.0 else 100.0 - 100.0 / (1.0 + up / dn)
    return out


@njit(cache=True, nogil=True)
def cross_signal_nb(fast, slow, short):  # pragma: no cover - compiled
    """1 while fast > slow, else 0; with `short`, -1 while fast < slow. Warm-up (NaN): 0.
    int8[n]: whole targets, a small array for the engine to stream."""
    n = fast.shape[0]
    out = np.empty(n, dtype=np.int8)
    low = -1 if short else 0
    for i in range(n):
        f = fast[i]
        s = slow[i]
        if f > s:
            out[i] = 1
        elif f < s:
            out[i] = low
        else:  # equal, or NaN in warm-up
            out[i] = 0
    return out


@njit(cache=True, nogil=True)
def sma_cross_nb(x, fast, slow, short):  # pragma: no cover - compiled
    """cross_signal_nb(sma_nb(x, fast), sma_nb(x, slow), short) in one pass, to the same
    bits (the same sums in the same order), without the two float64[n] averages. The
    averages are compared by cross-multiplying (no division, no branch); where the two
    are within rounding of each other a second pass decides as the divided averages do.
    Needs fast < slow."""
    out = np.zeros(x.shape[0], dtype=np.int8)
    low = -1 if short else 0
    if _sma_cross_pass_nb(x, fast, slow, low, out, False):
        _sma_cross_pass_nb(x, fast, slow, low, out, True)  # the same sums again
    return out


@njit(cache=True, nogil=True)
def _sma_cross_pass_nb(x, fast, slow, low, out, ties):  # pragma: no cover - compiled
    """One pass of sma_cross_nb from event slow - 1: with ties False, out = 1 where the
    cross-multiplied fast average is above, else low, returning how many were within
    rounding of a tie; with ties True, only those are decided, on the divided averages."""
    near = 0
    acc_f, acc_s = _sma_pair_start_nb(x, fast, slow)
    for i in range(slow - 1, x.shape[0]):
        if i >= slow:
            acc_f += x[i] - x[i - fast]
            acc_s += x[i] - x[i - slow]
        a = acc_f * slow
        b = acc_s * fast
        tie = abs(a - b) <= 1e-9 * (abs(a) + abs(b))
        if not ties:
            out[i] = 1 if a > b else low
            near += tie
        elif tie:
            out[i] = _cross_nb(acc_f, fast, acc_s, slow, low)
    return near


@njit(cache=True, nogil=True)
def _sma_pair_start_nb(x, fast, slow):  # pragma: no cover - compiled
    """The two running sums of sma_nb at event slow - 1 (over all of x if shorter)."""
    acc_f = 0.0
    acc_s = 0.0
    for i in range(min(slow, x.shape[0])):
        acc_f += x[i] - x[i - fast] if i >= fast else x[i]
        acc_s += x[i]
    return acc_f, acc_s


@njit(cache=True, nogil=True, inline="always")
def _cross_nb(acc_f, fast, acc_s, slow, low):  # pragma: no cover - compiled
    """1 if acc_f / fast > acc_s / slow, low if below, 0 if equal, on the rounded averages
    (as sma_nb rounds them)."""
    f = acc_f / fast
    s = acc_s / slow
    return 1 if f > s else (low if f < s else 0)


@njit(cache=True, nogil=True)
def band_signal_nb(x, lower, upper, exit_lo, exit_hi, revert, short):  # pragma: no cover - compiled
    """Enter on a band break and hold until the exit level is crossed.

    revert=True (mean reversion): long below `lower` until x >= exit_lo, short above
    `upper` until x <= exit_hi. revert=False (breakout): long above `upper` until
    x <= exit_hi, short below `lower` until x >= exit_lo. All inputs float64[n].
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.int8)
    pos = 0.0
    for i in range(n):
        v = x[i]
        lo = lower[i]
        hi = upper[i]
        if not (v == v and lo == lo and hi == hi):
            pos = 0.0
        elif revert:
            if pos > 0.0 and v >= exit_lo[i]:
                pos = 0.0
            elif pos < 0.0 and v <= exit_hi[i]:
                pos = 0.0
            if pos == 0.0:
                if v < lo:
                    pos = 1.0
                elif v > hi and short:
                    pos = -1.0
        else:
            if pos > 0.0 and v <= exit_hi[i]:
                pos = 0.0
            elif pos < 0.0 and v >= exit_lo[i]:
                pos = 0.0
            if pos == 0.0:
                if v > hi:
                    pos = 1.0
                elif v < lo and short:
                    pos = -1.0
        out[i] = pos
    return out


@njit(cache=True, nogil=True)
def book_imbalance_nb(bid_sz, ask_sz, levels):  # pragma: no cover - compiled
    """Depth imbalance I = (B - A) / (B + A) over the top `levels` (B, A: summed sizes;
    0 when both are empty). bid_sz, ask_sz: float64[n, L] (NaN-padded). Returns float64[n]."""
    n = bid_sz.shape[0]
    m = min(levels, bid_sz.shape[1])
    out = np.empty(n)
    for i in range(n):
        b = 0.0
        a = 0.0
        for k in range(m):
            sb = bid_sz[i, k]
            sa = ask_sz[i, k]
            if sb == sb:
                b += sb
            if sa == sa:
                a += sa
        tot = a + b
        out[i] = (b - a) / tot if tot > 0.0 else 0.0
    return out


@njit(cache=True, nogil=True)
def imbalance_signal_nb(imb, threshold, short):  # pragma: no cover - compiled
    """Enter long when imb > threshold (short when imb < -threshold and `short`); exit when
    imb crosses back through 0. imb: float64[n]. Returns int8[n]."""
    n = imb.shape[0]
    out = np.empty(n, dtype=np.int8)
    pos = 0.0
    for i in range(n):
        x = imb[i]
        if pos > 0.0 and x <= 0.0:
            pos = 0.0
        elif pos < 0.0 and x >= 0.0:
            pos = 0.0
        if pos == 0.0:
            if x > threshold:
                pos = 1.0
            elif x < -threshold and short:
                pos = -1.0
        out[i] = pos
    return out


@njit(cache=True, nogil=True)
def book_imbalance_signal_nb(
    bid_sz, ask_sz, levels, threshold, short
):  # pragma: no cover - compiled
    """`imbalance_signal_nb` of `book_imbalance_nb` in one call. Returns int8[n]."""
    return imbalance_signal_nb(book_imbalance_nb(bid_sz, ask_sz, levels), threshold, short)


@njit(cache=True, nogil=True)
def threshold_signal_nb(x, threshold, fade):  # pragma: no cover - compiled
    """-1 while x > threshold, 1 while x < -threshold, 0 otherwise (signs swapped if not
    fade); NaN counts as 0. For funding carry: short a perp whose longs pay."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.int8)
    s = -1.0 if fade else 1.0
    for i in range(n):
        v = x[i]
        if v > threshold:
            out[i] = s
        elif v < -threshold:
            out[i] = -s
        else:
            out[i] = 0.0
    return out


@njit(cache=True, nogil=True)
def cascade_signal_nb(
    sell_notional, buy_notional, window, threshold, hold, fade
):  # pragma: no cover - compiled
    """Trade after a liquidation cascade.

    sell_notional, buy_notional: float64[n] notional of forced sells (longs liquidated) and
    forced buys in each event. When the sum over the last `window` events of one side passes
    `threshold` (quote currency), take a position for `hold` events: with `fade`, against
    the forced flow (long after forced selling), else with it.
    """
    n = sell_notional.shape[0]
    out = np.zeros(n, dtype=np.int8)
    s_sum = 0.0
    b_sum = 0.0
    left = 0
    pos = 0.0
    for i in range(n):
        s_sum += sell_notional[i]
        b_sum += buy_notional[i]
        if i >= window:
            s_sum -= sell_notional[i - window]
            b_sum -= buy_notional[i - window]
        if s_sum >= threshold and s_sum >= b_sum:
            pos = 1.0 if fade else -1.0
            left = hold
        elif b_sum >= threshold:
            pos = -1.0 if fade else 1.0
            left = hold
        if left > 0:
            out[i] = pos
            left -= 1
        else:
            out[i] = 0.0
    return out
