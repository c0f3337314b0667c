"""Sweeps in events mode: each trial is ``backtest(source, strategy, params, mode="events")``
(the event-driven engine, `engine/events.py`), run on this process's threads.

The source must be readable once per trial: a list of chunks (`engine.events.from_arrays`)
or a function returning a fresh stream (``lambda: data.events.from_store(home, ...)``),
which keeps memory at one day's chunk per running trial. A row holds the events engine's
own stats (the numbers ``backtest(..., mode="events").stats`` gives) and, from the one
stats layer, the return and drawdown metrics of its equity records (`Run.from_equity`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algo_trade.engine import metrics as M
from algo_trade.errors import ConfigError


def source_factory(data: object) -> Callable[[], Any]:
    """A function giving a fresh event stream per trial."""
    if callable(data):
        return data  # type: ignore[return-value]
    if isinstance(data, (list, tuple)):
        return lambda: data
    raise ConfigError(
        "an events sweep reads its source once per trial: give a list of chunks "
        "(engine.events.from_arrays) or a function returning a fresh source, e.g. "
        "lambda: algo_trade.data.events.from_store(home, exchange, symbol, start, end)"
    )


def trial_spec(strategy: Any, settings: Mapping[str, Any]) -> Any:
    """The strategy whose parameters the trials set: an order-level one, or a target
    strategy traded from `targets_from`."""
    from algo_trade.strategies import get as get_strategy
    from algo_trade.strategies import orderlevel

    if orderlevel.is_order_strategy(strategy):
        return orderlevel.get(strategy)
    if settings.get("targets_from") is None:
        raise ConfigError(
            f"strategy {strategy!r} returns target positions: an events sweep needs targets_from=<MarketData> "
            "or an order-level strategy such as grid_mm"
        )
    return get_strategy(strategy)


def init_cash(settings: Mapping[str, Any]) -> float:
    from algo_trade.engine.events import EventSettings

    cfg = EventSettings.build(**{k: v for k, v in settings.items() if k != "targets_from"})
    return float(cfg.init_cash)


def evaluate(source: Callable[[], Any], strategy: Any, params: Mapping[str, Any],
             settings: Mapping[str, Any]) -> tuple[dict[str, float], np.ndarray, np.ndarray]:  # fmt: skip
    """One events backtest: (row, equity records, their ts in ns)."""
    from algo_trade.engine.api import backtest

    res = backtest(source(), strategy, dict(params), mode="events", **dict(settings))
    rec = res.records_array
    eq = np.asarray(rec["equity"], dtype=np.float64)
    ts = np.asarray(rec["ts"], dtype=np.int64)
    s = res.stats
    run = M.Run.from_equity(ts, eq, init_cash(settings), orders=int(s.get("fills", 0)),
                            fees=float(s.get("fees", 0.0)), liquidations=int(s.get("liquidations", 0)),
                            funding_paid=-float(s.get("funding_pnl", 0.0)))  # fmt: skip
    row = {
        **M.compute(run),
        **{k: v for k, v in s.items() if isinstance(v, (int, float, np.number))},
    }
    return row, eq, ts


def run_batch(source: Callable[[], Any], strategy: Any, params: Mapping[str, np.ndarray],
              settings: Mapping[str, Any], n_blocks: int) -> dict[str, np.ndarray]:  # fmt: skip
    from algo_trade.sweep.kernels import block_sums_nb

    names = list(params)
    m = len(params[names[0]]) if names else 0
    rows = []
    s1 = np.zeros((m, n_blocks))
    s2 = np.zeros((m, n_blocks))
    cash = init_cash(settings)
    for j in range(m):
        p = {
            k: params[k][j].item() if hasattr(params[k][j], "item") else params[k][j] for k in names
        }
        row, eq, _ = evaluate(source, strategy, p, settings)
        rows.append(row)
        if n_blocks > 0 and len(eq) >= n_blocks:
            s1[j], s2[j] = block_sums_nb(eq, cash, n_blocks)
    out: dict[str, np.ndarray] = {}
    for k in rows[0] if rows else []:
        vals = [r.get(k, np.nan) for r in rows]
        out[k] = np.asarray(
            vals, dtype=np.int64 if all(isinstance(v, int) for v in vals) else np.float64
        )
    out["_s1"], out["_s2"] = s1, s2
    return out


def settings_dict(settings: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly settings for the spec (targets_from named by its size only)."""
    from algo_trade.engine.events import EventSettings

    cfg = EventSettings.build(**{k: v for k, v in settings.items() if k != "targets_from"})
    out = dataclasses.asdict(cfg)
    if settings.get("targets_from") is not None:
        out["targets_from"] = f"{len(settings['targets_from'])} events"
    return out
