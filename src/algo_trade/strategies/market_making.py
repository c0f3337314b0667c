"""Built-in order-level strategies: a grid market maker, an Avellaneda-Stoikov/GLFT-style
market maker with inventory skew, and `follow_target` (a target-position signal traded with
market orders). Parameters are NamedTuples (defaults) with ranges; all are sweepable.
Docs: docs/engine.md ("Built-in order-level strategies").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from algo_trade.engine import orderapi as oa
from algo_trade.strategies import Param
from algo_trade.strategies.orderlevel import register


class GridParams(NamedTuple):
    levels: int = 5  # orders per side
    step_ticks: int = 10  # distance between grid prices, ticks
    half_spread_ticks: int = 10  # distance of the first level from the mid, ticks
    qty: float = 0.001  # per order
    max_position: float = 0.01  # no more bids above it (asks below minus it)
    every_ms: float = 100.0  # requote interval


@njit(cache=True, nogil=True)
def _quote_side(ctx, side, prices, n, qty):  # pragma: no cover - compiled
    """Keep exactly one live order at each of prices[:n] on `side`: cancel the others,
    post (post-only) the missing ones."""
    tk = oa.tick_size(ctx)
    for h in range(oa.max_orders(ctx)):
        if not oa.is_live(ctx, h) or oa.order_side(ctx, h) != side:
            continue
        p = oa.order_price(ctx, h)
        keep = False
        for j in range(n):
            if abs(prices[j] - p) < 0.5 * tk:
                keep = True
                prices[j] = np.nan  # already quoted
                break
        if not keep:
            oa.cancel(ctx, h)
    for j in range(n):
        if prices[j] == prices[j]:
            oa.submit(ctx, side, prices[j], qty, oa.LIMIT, oa.POST_ONLY, False)


@register(
    "grid_mm",
    GridParams,
    params={
        "levels": Param(int, 5, 1, 50, "orders per side"),
        "step_ticks": Param(int, 10, 1, 100_000, "grid spacing, ticks"),
        "half_spread_ticks": Param(int, 10, 0, 100_000, "first level's distance from the mid"),
        "qty": Param(float, 0.001, 1e-12, None, "quantity per order"),
        "max_position": Param(float, 0.01, 0.0, None, "stop adding on a side beyond it"),
        "every_ms": Param(float, 100.0, 0.0, None, "requote interval (0: every event)"),
    },
)
@njit(cache=True, nogil=True)
def grid_mm(ctx, p):  # pragma: no cover - compiled
    """Grid market maker: post-only bids and asks on a fixed price grid around the mid."""
    oa.set_wake(ctx, np.int64(p.every_ms * 1e6), False)
    tk = oa.tick_size(ctx)
    bids = np.empty(p.levels)
    asks = np.empty(p.levels)
    step = p.step_ticks * tk
    while oa.wait(ctx):
        bb = oa.best_bid(ctx)
        ba = oa.best_ask(ctx)
        if not (bb == bb and ba == ba):
            continue
        m = 0.5 * (bb + ba)
        b0 = np.floor((m - p.half_spread_ticks * tk) / step + 1e-9) * step
        a0 = np.ceil((m + p.half_spread_ticks * tk) / step - 1e-9) * step
        pos = oa.position(ctx)
        nb = p.levels if pos < p.max_position else 0
        na = p.levels if pos > -p.max_position else 0
        for j in range(p.levels):
            bids[j] = oa.round_down(ctx, min(b0 - j * step, bb))
            asks[j] = oa.round_up(ctx, max(a0 + j * step, ba))
        _quote_side(ctx, oa.BUY, bids, nb, p.qty)
        _quote_side(ctx, oa.SELL, asks, na, p.qty)


class GlftParams(NamedTuple):
    gamma: float = 0.1  # risk aversion (per unit of inventory in `qty` lots)
    kappa: float = 1.0  # order-arrival decay per tick of distance from the mid
    horizon_s: float = 60.0  # inventory horizon tau of the reservation price
    vol_halflife_s: float = 60.0  # EWMA half-life of the mid's variance
    qty: float = 0.001
    max_position: float = 0.01
    min_half_spread_ticks: int = 1
    every_ms: float = 100.0


@register(
    "glft_mm",
    GlftParams,
    params={
        "gamma": Param(float, 0.1, 1e-9, None, "risk aversion"),
        "kappa": Param(float, 1.0, 1e-9, None, "fill-intensity decay per tick"),
        "horizon_s": Param(float, 60.0, 0.0, None, "inventory horizon, s"),
        "vol_halflife_s": Param(float, 60.0, 1e-3, None, "volatility EWMA half-life, s"),
        "qty": Param(float, 0.001, 1e-12, None, "quantity per quote"),
        "max_position": Param(float, 0.01, 0.0, None, "no quote adding beyond it"),
        "min_half_spread_ticks": Param(int, 1, 1, 100_000, "narrowest half spread"),
        "every_ms": Param(float, 100.0, 0.0, None, "requote interval"),
    },
)
@njit(cache=True, nogil=True)
def glft_mm(ctx, p):  # pragma: no cover - compiled
    """Avellaneda-Stoikov/GLFT market maker: one bid and one ask around a reservation price
    skewed against the inventory; half spread from risk aversion, volatility and the
    fill-intensity decay."""
    oa.set_wake(ctx, np.int64(p.every_ms * 1e6), False)
    tk = oa.tick_size(ctx)
    u = oa.user(
        ctx
    )  # u[0]: last mid, u[1]: variance of the mid per second (ticks^2), u[2]: last time
    bid = np.empty(1)
    ask = np.empty(1)
    while oa.wait(ctx):
        bb = oa.best_bid(ctx)
        ba = oa.best_ask(ctx)
        if not (bb == bb and ba == ba):
            continue
        m = 0.5 * (bb + ba)
        t = oa.now(ctx)
        if u[2] > 0.0:
            dt = (t - u[2]) * 1e-9
            if dt > 0.0:
                d = (m - u[0]) / tk
                w = 1.0 - 0.5 ** (dt / p.vol_halflife_s)
                u[1] += w * (d * d / dt - u[1])
        u[0] = m
        u[2] = float(t)
        var = u[1]  # ticks^2 per second
        q = oa.position(ctx) / p.qty  # inventory in quote lots
        # reservation price and optimal half spread (Avellaneda-Stoikov), in ticks
        skew = q * p.gamma * var * p.horizon_s
        half = 0.5 * p.gamma * var * p.horizon_s + np.log(1.0 + p.gamma / p.kappa) / p.gamma
        half = max(half, float(p.min_half_spread_ticks))
        r = m - skew * tk
        bid[0] = oa.round_down(ctx, min(r - half * tk, bb))
        ask[0] = oa.round_up(ctx, max(r + half * tk, ba))
        pos = oa.position(ctx)
        _quote_side(ctx, oa.BUY, bid, 1 if pos < p.max_position else 0, p.qty)
        _quote_side(ctx, oa.SELL, ask, 1 if pos > -p.max_position else 0, p.qty)


class TargetParams(NamedTuple):
    scale: float = 1.0  # target 1 = notional of scale x equity
    min_qty: float = 0.0  # trade only differences larger than this
    every_ms: float = 0.0  # 0: look at the signal on every event


@register(
    "follow_target",
    TargetParams,
    params={
        "scale": Param(float, 1.0, 0.0, None, "notional per unit of target, x equity"),
        "min_qty": Param(float, 0.0, 0.0, None, "smallest traded difference"),
        "every_ms": Param(float, 0.0, 0.0, None, "check interval (0: every event)"),
    },
)
@njit(cache=True, nogil=True)
def follow_target(ctx, p):  # pragma: no cover - compiled
    """Trade a target-position signal (fraction of equity, from a target strategy) with
    market orders through the events engine's matching; one order in flight at a time."""
    oa.set_wake(ctx, np.int64(p.every_ms * 1e6), True)
    lot = oa.lot_size(ctx)
    last = np.nan
    while oa.wait(ctx):
        tgt = oa.signal(ctx)
        if tgt != tgt or oa.open_orders(ctx) > 0:
            continue
        m = oa.mid(ctx)
        if not (m > 0.0):
            continue
        if tgt == last and oa.position(ctx) != 0.0:
            continue
        want = tgt * p.scale * oa.equity(ctx) / m
        dq = want - oa.position(ctx)
        if lot > 0.0:
            dq = np.trunc(dq / lot) * lot
        if abs(dq) <= max(p.min_qty, 1e-12):
            last = tgt
            continue
        oa.submit(ctx, oa.BUY if dq > 0 else oa.SELL, 0.0, abs(dq), oa.MARKET, oa.IOC, False)
        last = tgt
