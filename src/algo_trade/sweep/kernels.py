"""Numba kernels of the sweep itself (the backtests are the engine's own kernels).

Rules (as in `engine/kernels.py`): arrays in and out, no objects, no I/O, `_nb` suffix,
`cache=True`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def block_sums_nb(equity, init_cash, n_blocks):  # pragma: no cover - compiled
    """Per-block sums of the per-event returns and of their squares, for CSCV (PBO).

    equity: float64[n] a run's equity per event; returns are the engine's
    (r_i = equity_i / equity_{i-1} - 1, equity_{-1} = init_cash, 0 when the previous equity
    is not positive); event t is in block t * n_blocks // n. Returns (s1, s2) float64[n_blocks].
    """
    n = equity.shape[0]
    s1 = np.zeros(n_blocks)
    s2 = np.zeros(n_blocks)
    prev = init_cash
    t = 0
    for b in range(n_blocks):
        # block b holds the events t with t * n_blocks // n == b: up to ceil((b + 1) n / B)
        end = ((b + 1) * n + n_blocks - 1) // n_blocks
        a1 = 0.0
        a2 = 0.0
        while t < end:
            e = equity[t]
            r = e / prev - 1.0 if prev > 0.0 else 0.0
            prev = e
            a1 += r
            a2 += r * r
            t += 1
        s1[b] = a1
        s2[b] = a2
    return s1, s2


@njit(cache=True, nogil=True)
def returns_nb(equity, init_cash):  # pragma: no cover - compiled
    """Per-event returns of an equity curve, as the engine defines them."""
    n = equity.shape[0]
    out = np.empty(n)
    prev = init_cash
    for t in range(n):
        e = equity[t]
        out[t] = e / prev - 1.0 if prev > 0.0 else 0.0
        prev = e
    return out
