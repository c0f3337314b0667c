"""Named constants and structured dtypes of the events engine (orders, messages, ledger).

Plain module-level ints so numba folds them as compile-time constants; the NamedTuples
group them for readers (``OrdType.LIMIT``) and are usable from numba too. Semantics:
docs/engine.md ("Events mode").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# --- sides
BUY, SELL = 1, -1

# --- order types and time in force
MARKET, LIMIT = 0, 1
GTC, IOC, FOK, POST_ONLY = 0, 1, 2, 3
N_TYPES, N_TIFS = 2, 4


class OrdType(NamedTuple):
    MARKET: int = MARKET
    LIMIT: int = LIMIT


class Tif(NamedTuple):
    GTC: int = GTC
    IOC: int = IOC
    FOK: int = FOK
    POST_ONLY: int = POST_ONLY


# --- order status (the exchange's view in `xstatus`, the strategy's in `status`)
FREE, PENDING, OPEN, FILLED, CANCELED, EXPIRED, REJECTED = range(7)
STATUS_NAMES = ("free", "pending", "open", "filled", "canceled", "expired", "rejected")

# --- reasons an order or request was refused (order field `reason`)
(
    R_NONE,
    R_POST_ONLY,
    R_REDUCE_ONLY,
    R_MARGIN,
    R_LATENCY,
    R_NO_LIQUIDITY,
    R_NOT_OPEN,
    R_LIQUIDATED,
) = range(8)
REASON_NAMES = (
    "",
    "post-only order would cross",
    "reduce-only order would not reduce",
    "not enough margin",
    "no latency known at that time",
    "no liquidity within the limit (IOC/FOK/market)",
    "order not open at the exchange",
    "canceled by a liquidation",
)

# --- queue models
Q_RISK_AVERSE, Q_POWER, Q_LOG = 0, 1, 2
QUEUE_MODELS = {"risk_averse": Q_RISK_AVERSE, "power": Q_POWER, "log": Q_LOG}

# --- input events (one merged stream per chunk)
EV_DEPTH, EV_TRADE, EV_FUNDING, EV_MARK = 0, 1, 2, 3
FLAG_SNAPSHOT = 1  # the row belongs to a full-book snapshot run
FLAG_SNAP_START = 2  # first row of a snapshot run: the book is cleared before it

# --- messages between strategy and exchange (requests) and back (responses)
REQ_NEW, REQ_CANCEL, REQ_MODIFY = 0, 1, 2
RSP_ACK, RSP_FILL, RSP_DONE, RSP_CANCEL_REJECT, RSP_MODIFIED, RSP_MODIFY_REJECT, RSP_LIQ = range(7)

# --- ledger kinds
LG_MAKER, LG_TAKER, LG_LIQUIDATION, LG_FUNDING = 0, 1, 2, 3
LEDGER_KINDS = ("maker", "taker", "liquidation", "funding")

# --- errors that stop a run (state I_ERR); the API turns them into one line
E_NONE, E_OFF_TICK, E_BAD_TYPE, E_BAD_QTY, E_BAD_SLOT, E_QUEUE_FULL, E_BAD_PRICE = range(7)
ERROR_NAMES = (
    "",
    "order price {arg} is not a multiple of the tick size {tick}: round it with round_to_tick()",
    "unknown order type or time in force ({arg}): use orders.MARKET/LIMIT and GTC/IOC/FOK/POST_ONLY",
    "order quantity {arg} must be positive and a multiple of the lot size {lot}",
    "order handle {arg} is not an open order of this strategy",
    "more than {arg} messages in flight: raise max_messages or send fewer orders",
    "order price {arg} must be positive and finite",
)

ORDER = np.dtype(
    [
        ("oid", np.int64),  # id, unique in the run
        ("side", np.int8),  # BUY / SELL
        ("otype", np.int8),
        ("tif", np.int8),
        ("reduce_only", np.int8),
        ("status", np.int8),  # as the strategy knows it (updated when responses arrive)
        ("xstatus", np.int8),  # at the exchange
        ("reason", np.int8),  # R_* when rejected/expired
        ("tick", np.int64),  # price in ticks (absolute)
        ("qty", np.float64),  # total quantity (exchange)
        ("leaves", np.float64),  # open quantity at the exchange
        ("filled", np.float64),  # filled at the exchange
        ("lleaves", np.float64),  # open quantity as the strategy knows it
        ("lfilled", np.float64),
        ("ltick", np.int64),  # price as the strategy knows it
        ("front", np.float64),  # market quantity ahead in the queue
        ("cum_trade", np.float64),  # traded at the price since the last level change
        ("seq", np.int64),  # FIFO rank among own orders at one price
        ("inflight", np.int32),  # requests + responses not yet delivered
        ("t_submit", np.int64),
        ("t_exch", np.int64),  # last change at the exchange
    ]
)

MSG = np.dtype(
    [
        ("t", np.int64),  # delivery time
        ("kind", np.int8),
        ("slot", np.int32),
        ("tick", np.int64),
        ("qty", np.float64),
        ("px", np.float64),
        ("dcash", np.float64),  # fills: cash change (signed notional and fee)
        ("status", np.int8),
        ("reason", np.int8),
    ]
)

LEDGER = np.dtype(
    [
        ("ts", np.int64),  # exchange time
        ("kind", np.int8),  # LG_*
        ("oid", np.int64),  # -1 for funding and liquidation
        ("qty", np.float64),  # signed fill quantity (0 for funding)
        ("px", np.float64),  # fill price, or the funding mark
        ("fee", np.float64),  # fee paid (< 0: rebate), or the funding payment (> 0 paid)
        ("rate", np.float64),  # funding rate (NaN for fills)
        ("pos", np.float64),  # position after
        ("cash", np.float64),  # cash after
        ("realized", np.float64),  # realized PnL after
        ("mid", np.float64),  # the exchange book's mid at that moment (spread capture)
    ]
)

RECORD = np.dtype(
    [
        ("ts", np.int64),
        ("mid", np.float64),  # exchange book mid
        ("mark", np.float64),  # liquidation price reference (mark price where known)
        ("pos", np.float64),
        ("cash", np.float64),
        ("equity", np.float64),  # cash + pos * mid
        ("avg", np.float64),
        ("realized", np.float64),
        ("fees", np.float64),
        ("funding", np.float64),
        ("bid_quote", np.float64),  # best own resting bid at the exchange (NaN: none)
        ("ask_quote", np.float64),
    ]
)
