"""The order-level strategy API: numba functions a strategy calls on its context.

A strategy is ``@njit(cache=True) def my_strategy(ctx, p)``: `ctx` is opaque (read and act
on it only through these functions, so the same code can run against a paper or live
context later), `p` its parameters (a NamedTuple). It owns the loop::

    from numba import njit
    from algo_trade.engine import orderapi as oa

    @njit(cache=True)
    def join_best(ctx, p):
        oa.set_wake(ctx, p.every_ms * 1_000_000, True)   # every N ms and on each fill
        while oa.wait(ctx):                               # False: the engine needs control
            if oa.open_orders(ctx) == 0 and oa.position(ctx) == 0.0:
                oa.submit(ctx, oa.BUY, oa.best_bid(ctx), p.qty, oa.LIMIT, oa.POST_ONLY, False)

`wait` returns False when the engine takes control back (end of a chunk of data, a full
ledger, an error); the engine then calls the strategy again, so code before the loop runs
once per call and lasting state belongs in `user(ctx)` (a float64 array). Everything the
strategy sees is as of its local clock: its book and funding as received (feed latency),
its orders and position as answered by the exchange (response latency).
Semantics: docs/engine.md ("Events mode").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from algo_trade.engine import events_nb as E
from algo_trade.engine.orders import (  # noqa: F401  (re-exported for strategies)
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    FOK,
    FREE,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
    PENDING,
    POST_ONLY,
    REJECTED,
    SELL,
)

__all__ = [
    "BUY", "SELL", "MARKET", "LIMIT", "GTC", "IOC", "FOK", "POST_ONLY",
    "FREE", "PENDING", "OPEN", "FILLED", "CANCELED", "EXPIRED", "REJECTED",
    "wait", "set_wake", "now", "tick_size", "lot_size", "round_down", "round_up",
    "best_bid", "best_ask", "mid", "best_bid_qty", "best_ask_qty", "bid_level", "ask_level",
    "qty_at", "last_trade", "position", "cash", "equity", "funding_rate", "mark_price",
    "max_orders", "open_orders", "order_status", "order_side", "order_price", "order_leaves",
    "order_filled", "is_live", "submit", "cancel", "modify", "cancel_all", "user", "signal",
]  # fmt: skip


@njit(cache=True, nogil=True)
def wait(ctx):  # pragma: no cover - compiled
    """Run until the next wake-up: True to act, False to return to the engine."""
    return E.step_nb(ctx)


@njit(cache=True, nogil=True)
def set_wake(ctx, every_ns, on_fill):  # pragma: no cover - compiled
    """Wake every `every_ns` of local time (0: on every input event) and, with on_fill,
    whenever a fill (or a liquidation) reaches the strategy. Keeps the timer's phase when
    called again with the same interval."""
    st = ctx.st
    every = np.int64(every_ns)
    st[E.I_WAKE_FILL] = 1 if on_fill else 0
    st[E.I_WAKE_EVENT] = 1 if every <= 0 else 0
    if every > 0:
        if st[E.I_WAKE_EVERY] != every or st[E.I_NEXT_WAKE] == E.BIG:
            st[E.I_NEXT_WAKE] = st[E.I_LNOW] + every
    else:
        st[E.I_NEXT_WAKE] = E.BIG
    st[E.I_WAKE_EVERY] = max(every, 0)


@njit(cache=True, nogil=True)
def now(ctx):  # pragma: no cover - compiled
    """Local time, ns since the epoch."""
    return ctx.st[E.I_LNOW]


@njit(cache=True, nogil=True)
def tick_size(ctx):  # pragma: no cover - compiled
    return ctx.fs[E.F_TICK]


@njit(cache=True, nogil=True)
def lot_size(ctx):  # pragma: no cover - compiled
    return ctx.fs[E.F_LOT]


@njit(cache=True, nogil=True)
def round_down(ctx, price):  # pragma: no cover - compiled
    """The grid price at or below `price` (for bids)."""
    tk = ctx.fs[E.F_TICK]
    return np.floor(price / tk + 1e-9) * tk


@njit(cache=True, nogil=True)
def round_up(ctx, price):  # pragma: no cover - compiled
    """The grid price at or above `price` (for asks)."""
    tk = ctx.fs[E.F_TICK]
    return np.ceil(price / tk - 1e-9) * tk


@njit(cache=True, nogil=True)
def best_bid(ctx):  # pragma: no cover - compiled
    """Best bid of the strategy's book (NaN: empty)."""
    k = ctx.st[E.I_LBB]
    if k < 0:
        return np.nan
    return (k + ctx.st[E.I_BASE]) * ctx.fs[E.F_TICK]


@njit(cache=True, nogil=True)
def best_ask(ctx):  # pragma: no cover - compiled
    k = ctx.st[E.I_LBA]
    if k >= ctx.lask.shape[0]:
        return np.nan
    return (k + ctx.st[E.I_BASE]) * ctx.fs[E.F_TICK]


@njit(cache=True, nogil=True)
def mid(ctx):  # pragma: no cover - compiled
    return 0.5 * (best_bid(ctx) + best_ask(ctx))


@njit(cache=True, nogil=True)
def best_bid_qty(ctx):  # pragma: no cover - compiled
    k = ctx.st[E.I_LBB]
    return ctx.lbid[k] if k >= 0 else 0.0


@njit(cache=True, nogil=True)
def best_ask_qty(ctx):  # pragma: no cover - compiled
    k = ctx.st[E.I_LBA]
    return ctx.lask[k] if k < ctx.lask.shape[0] else 0.0


@njit(cache=True, nogil=True)
def bid_level(ctx, n):  # pragma: no cover - compiled
    """(price, qty) of the n-th non-empty bid level from the best (0 = best); (NaN, 0)
    when the book has fewer levels."""
    k = ctx.st[E.I_LBB]
    seen = 0
    while k >= 0:
        if ctx.lbid[k] > 0.0:
            if seen == n:
                return (k + ctx.st[E.I_BASE]) * ctx.fs[E.F_TICK], ctx.lbid[k]
            seen += 1
        k -= 1
    return np.nan, 0.0


@njit(cache=True, nogil=True)
def ask_level(ctx, n):  # pragma: no cover - compiled
    k = ctx.st[E.I_LBA]
    r = ctx.lask.shape[0]
    seen = 0
    while k < r:
        if ctx.lask[k] > 0.0:
            if seen == n:
                return (k + ctx.st[E.I_BASE]) * ctx.fs[E.F_TICK], ctx.lask[k]
            seen += 1
        k += 1
    return np.nan, 0.0


@njit(cache=True, nogil=True)
def qty_at(ctx, side, price):  # pragma: no cover - compiled
    """Displayed quantity at `price` on `side` of the strategy's book."""
    rel = np.int64(np.round(price / ctx.fs[E.F_TICK])) - ctx.st[E.I_BASE]
    if rel < 0 or rel >= ctx.lbid.shape[0]:
        return 0.0
    return ctx.lbid[rel] if side == BUY else ctx.lask[rel]


@njit(cache=True, nogil=True)
def last_trade(ctx):  # pragma: no cover - compiled
    return ctx.fs[E.F_LTRADE]


@njit(cache=True, nogil=True)
def position(ctx):  # pragma: no cover - compiled
    """Position as the fills received so far say (signed, base currency)."""
    return ctx.fs[E.F_LPOS]


@njit(cache=True, nogil=True)
def cash(ctx):  # pragma: no cover - compiled
    return ctx.fs[E.F_LCASH]


@njit(cache=True, nogil=True)
def equity(ctx):  # pragma: no cover - compiled
    """Cash + position x the strategy's mid (cash where it has no mid)."""
    q = ctx.fs[E.F_LPOS]
    m = ctx.fs[E.F_LMID]
    if q == 0.0 or m != m:
        return ctx.fs[E.F_LCASH]
    return ctx.fs[E.F_LCASH] + q * m


@njit(cache=True, nogil=True)
def funding_rate(ctx):  # pragma: no cover - compiled
    """The latest funding rate received (settled or predicted; NaN: none yet)."""
    return ctx.fs[E.F_LRATE]


@njit(cache=True, nogil=True)
def mark_price(ctx):  # pragma: no cover - compiled
    return ctx.fs[E.F_LMARK]


@njit(cache=True, nogil=True)
def max_orders(ctx):  # pragma: no cover - compiled
    """Handles run from 0 to max_orders(ctx) - 1 (slots used so far)."""
    return ctx.st[E.I_HI_SLOT]


@njit(cache=True, nogil=True)
def is_live(ctx, h):  # pragma: no cover - compiled
    """Sent and not known to be done (pending or open)."""
    s = ctx.orders[h].status
    return s == PENDING or s == OPEN


@njit(cache=True, nogil=True)
def open_orders(ctx):  # pragma: no cover - compiled
    n = 0
    for h in range(ctx.st[E.I_HI_SLOT]):
        if is_live(ctx, h):
            n += 1
    return n


@njit(cache=True, nogil=True)
def order_status(ctx, h):  # pragma: no cover - compiled
    return ctx.orders[h].status


@njit(cache=True, nogil=True)
def order_side(ctx, h):  # pragma: no cover - compiled
    return ctx.orders[h].side


@njit(cache=True, nogil=True)
def order_price(ctx, h):  # pragma: no cover - compiled
    return ctx.orders[h].ltick * ctx.fs[E.F_TICK]


@njit(cache=True, nogil=True)
def order_leaves(ctx, h):  # pragma: no cover - compiled
    return ctx.orders[h].lleaves


@njit(cache=True, nogil=True)
def order_filled(ctx, h):  # pragma: no cover - compiled
    return ctx.orders[h].lfilled


@njit(cache=True, nogil=True)
def submit(ctx, side, price, qty, otype, tif, reduce_only):  # pragma: no cover - compiled
    """New order: side BUY/SELL, price on the tick grid (ignored for MARKET), qty > 0,
    otype MARKET/LIMIT, tif GTC/IOC/FOK/POST_ONLY, reduce_only. Returns its handle, or -1
    when the order table is full. Off-grid prices and unknown types stop the run."""
    return E.submit_nb(ctx, side, price, qty, otype, tif, reduce_only)


@njit(cache=True, nogil=True)
def cancel(ctx, h):  # pragma: no cover - compiled
    return E.cancel_nb(ctx, h)


@njit(cache=True, nogil=True)
def modify(ctx, h, price, qty):  # pragma: no cover - compiled
    return E.modify_nb(ctx, h, price, qty)


@njit(cache=True, nogil=True)
def cancel_all(ctx):  # pragma: no cover - compiled
    n = 0
    for h in range(ctx.st[E.I_HI_SLOT]):
        if is_live(ctx, h) and E.cancel_nb(ctx, h):
            n += 1
    return n


@njit(cache=True, nogil=True)
def user(ctx):  # pragma: no cover - compiled
    """The strategy's own float64 array, kept across calls (size: settings.user_slots)."""
    return ctx.user


@njit(cache=True, nogil=True)
def signal(ctx):  # pragma: no cover - compiled
    """The latest value of the run's signal series at local time (NaN: none yet)."""
    ts = ctx.sig_ts
    if ts.shape[0] == 0:
        return np.nan
    k = np.searchsorted(ts, ctx.st[E.I_LNOW], side="right")
    return ctx.sig_val[k - 1] if k > 0 else np.nan
