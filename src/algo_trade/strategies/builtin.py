"""The built-in strategies (registered on import). Each is a thin wrapper: cached
indicators from `Inputs`, then one numba signal kernel from `strategies.indicators`."""

from __future__ import annotations

import numpy as np

from algo_trade.strategies import Param, register
from algo_trade.strategies import indicators as ind
from algo_trade.strategies.inputs import Inputs

_WINDOW = 1_000_000  # upper bound of any window, in events


def _fast_below_slow(p: dict) -> str | None:
    if p["fast"] >= p["slow"]:
        return f"fast ({p['fast']}) must be smaller than slow ({p['slow']})"
    return None


_CROSS = {
    "fast": Param(int, 10, 1, _WINDOW, "fast moving-average window (events)"),
    "slow": Param(int, 50, 2, _WINDOW, "slow moving-average window (events)"),
    "short": Param(bool, False, doc="go short (-1) while fast < slow instead of flat"),
}


@register("sma_cross", _CROSS, doc="1 while SMA(fast) > SMA(slow) of closes, else 0 (-1 with short)",
          check=_fast_below_slow)  # fmt: skip
def sma_cross(data: Inputs, fast: int, slow: int, short: bool) -> np.ndarray:
    # one fused pass: the same bits as cross_signal_nb over the two cached averages
    close = np.ascontiguousarray(data["close"], dtype=np.float64)
    return ind.sma_cross_nb(close, fast, slow, short)


@register("ema_cross", {**_CROSS, "fast": Param(int, 12, 1, _WINDOW), "slow": Param(int, 26, 2, _WINDOW)},
          doc="1 while EMA(fast) > EMA(slow) of closes, else 0 (-1 with short)", check=_fast_below_slow)  # fmt: skip
def ema_cross(data: Inputs, fast: int, slow: int, short: bool) -> np.ndarray:
    return ind.cross_signal_nb(data.ema("close", fast), data.ema("close", slow), short)


def _rsi_levels(p: dict) -> str | None:
    if not p["lower"] < p["exit"] < p["upper"]:
        return f"need lower < exit < upper, got {p['lower']}, {p['exit']}, {p['upper']}"
    return None


@register(
    "rsi_reversion",
    {
        "window": Param(int, 14, 2, _WINDOW, "RSI window"),
        "lower": Param(float, 30.0, 0.0, 100.0, "buy below this RSI"),
        "upper": Param(float, 70.0, 0.0, 100.0, "short above this RSI (with short)"),
        "exit": Param(float, 50.0, 0.0, 100.0, "close when RSI crosses back to this level"),
        "short": Param(bool, False),
    },
    doc="long when RSI < lower until RSI >= exit; short when RSI > upper until RSI <= exit",
    check=_rsi_levels,
)
def rsi_reversion(
    data: Inputs, window: int, lower: float, upper: float, exit: float, short: bool
) -> np.ndarray:
    r = data.rsi("close", window)
    n = len(r)
    # constant levels as zero-stride views: no per-run arrays (a sweep runs this many times)
    lo, hi, ex = (np.broadcast_to(np.float64(v), n) for v in (lower, upper, exit))
    return ind.band_signal_nb(r, lo, hi, ex, ex, True, short)


@register(
    "bollinger_breakout",
    {
        "window": Param(int, 20, 2, _WINDOW, "moving-average and deviation window"),
        "k": Param(float, 2.0, 0.0, 100.0, "band width in standard deviations"),
        "short": Param(bool, False),
    },
    doc="long when close breaks above SMA + k*std until it falls back to the SMA (short mirrored)",
)
def bollinger_breakout(data: Inputs, window: int, k: float, short: bool) -> np.ndarray:
    mid = data.sma("close", window)
    sd = data.std("close", window)
    return ind.band_signal_nb(data["close"], mid - k * sd, mid + k * sd, mid, mid, False, short)


@register(
    "book_imbalance",
    {
        "levels": Param(int, 5, 1, 1000, "book levels summed per side"),
        "threshold": Param(float, 0.3, 0.0, 1.0, "enter when |imbalance| passes this"),
        "short": Param(bool, True, doc="also go short on ask-heavy books"),
    },
    needs=("book",),
    doc="long when bid depth dominates ((B-A)/(B+A) > threshold), short mirrored; exit at 0",
)
def book_imbalance(data: Inputs, levels: int, threshold: float, short: bool) -> np.ndarray:
    # the imbalance depends on `levels` only: cached, so a sweep over thresholds reads the
    # book once per levels value
    imb = data.cached(("book_imbalance", levels),
                      lambda: ind.book_imbalance_nb(data["bid_sz"], data["ask_sz"], levels))  # fmt: skip
    return ind.imbalance_signal_nb(imb, threshold, short)


@register(
    "funding_carry",
    {
        "threshold_bps": Param(
            float, 1.0, 0.0, 10_000.0, "funding rate (bp per interval) to act on"
        ),
    },
    needs=("funding",),
    doc="short while the latest funding rate > threshold (longs pay), long while < -threshold",
)
def funding_carry(data: Inputs, threshold_bps: float) -> np.ndarray:
    return ind.threshold_signal_nb(data["funding_rate"], threshold_bps * 1e-4, True)


@register(
    "liquidation_cascade",
    {
        "window": Param(int, 60, 1, _WINDOW, "events summed"),
        "threshold": Param(
            float, 1_000_000.0, 0.0, None, "liquidated notional (quote) that triggers"
        ),
        "hold": Param(int, 30, 1, _WINDOW, "events to hold the position"),
        "fade": Param(bool, True, doc="trade against the forced flow (else with it)"),
    },
    needs=("liquidation",),
    doc="after forced selling (longs liquidated) over window passes threshold, go long for hold events",
)
def liquidation_cascade(
    data: Inputs, window: int, threshold: float, hold: int, fade: bool
) -> np.ndarray:
    return ind.cascade_signal_nb(data["liq_sell_notional"], data["liq_buy_notional"], window,
                                 threshold, hold, fade)  # fmt: skip
