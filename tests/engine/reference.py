"""Slow, obviously-correct Python references for the engine kernels (no numba, no sharing).

They follow docs/engine.md line by line: a plain loop over events, sizing solved by
fixed-point iteration instead of the kernel's closed form.
"""

from __future__ import annotations

import math

import numpy as np


def size_notional(equity: float, n0: float, k: float, cost: float) -> float:
    """Notional n1 with n1 = k * (equity - cost * |n1 - n0|) (all-in: notional + fee = equity)."""
    n1 = k * equity
    for _ in range(200):
        n1 = k * (equity - cost * abs(n1 - n0))
    return n1


def bars(open_, high, low, close, target, *, fill_at="next", fee_bps=0.0, slippage_bps=0.0,
         leverage=1.0, mm=0.0, liq_fee_bps=0.0, init_cash=10_000.0, fund_rate=None,
         fund_mark=None):  # fmt: skip
    """Returns dict: equity, qty, cash per bar; fills [(i, dq, px, fee, kind)]; liquidations."""
    n = len(close)
    fee = fee_bps * 1e-4
    slip = slippage_bps * 1e-4
    cash, qty, last = init_cash, 0.0, 0.0
    fills = []
    out = {"equity": [], "qty": [], "cash": []}

    def trade(i, t, px):
        nonlocal cash, qty
        eq = cash + qty * px
        if eq <= 0:
            q1 = 0.0
        else:
            q1 = size_notional(eq, qty * px, t * leverage, fee + slip) / px
        dq = q1 - qty
        closes = qty != 0 and (q1 == 0 or (qty > 0) != (q1 > 0))
        if dq == 0 and (qty != 0 or t == 0):
            return  # already at the target: no order
        if not closes and (dq == 0 or abs(dq) * px <= 1e-12 * abs(eq)):
            fills.append((i, 0.0, math.nan, 0.0, "dust"))  # the dust rule: booked, not traded
            return
        fpx = px * (1 + slip) if dq > 0 else px * (1 - slip)
        f = abs(dq) * fpx * fee
        cash -= dq * fpx + f
        qty = q1
        fills.append((i, dq, fpx, f, "taker"))

    def clip(x):
        return 0.0 if x != x else min(max(x, -1.0), 1.0)

    for i in range(n):
        if fill_at == "next" and i > 0 and clip(target[i - 1]) != last:
            last = clip(target[i - 1])
            trade(i, last, open_[i])
        if fund_rate is not None and not math.isnan(fund_rate[i]) and qty != 0:
            mark = (
                fund_mark[i] if fund_mark is not None and not math.isnan(fund_mark[i]) else open_[i]
            )
            cash -= qty * mark * fund_rate[i]
        if qty != 0 and mm > 0:
            # equity at price P: cash + qty * P; maintenance: mm * |qty| * P
            p_liq = -cash / (qty * (1 - mm)) if qty > 0 else -cash / (qty * (1 + mm))
            if (qty > 0 and low[i] <= p_liq) or (qty < 0 and high[i] >= p_liq):
                f = abs(qty) * p_liq * liq_fee_bps * 1e-4
                cash += qty * p_liq - f
                fills.append((i, -qty, p_liq, f, "liquidation"))
                qty = 0.0
        if fill_at == "close" and clip(target[i]) != last:
            last = clip(target[i])
            trade(i, last, close[i])
        out["equity"].append(cash + qty * close[i])
        out["qty"].append(qty)
        out["cash"].append(cash)
    res = {k: np.array(v) for k, v in out.items()}
    res["fills"] = fills
    return res


def walk(levels: list[tuple[float, float]], qty: float) -> tuple[float, float]:
    """(filled, vwap) of a market order for qty against [(price, size), ...] best first."""
    left, cost = qty, 0.0
    for px, sz in levels:
        take = min(left, sz)
        cost += take * px
        left -= take
        if left <= 0:
            break
    filled = qty - left
    return filled, cost / filled
