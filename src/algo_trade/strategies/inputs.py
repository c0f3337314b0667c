"""`Inputs`: what a strategy function sees: columnar arrays on one timeline plus a cache.

Columns (all NumPy, length n, aligned on the run's events): ``ts`` (int64 ns UTC), ``open``,
``high``, ``low``, ``close`` (in book mode: the mid), ``volume``, book levels ``bid_px``,
``bid_sz``, ``ask_px``, ``ask_sz`` (float64[n, L]), ``funding_rate`` (latest known rate,
forward-filled), ``liq_sell_notional``, ``liq_buy_notional``, ``trade_buy_qty``,
``trade_sell_qty``, when the data has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algo_trade.errors import DataError
from algo_trade.strategies import indicators as ind


class Inputs:
    """Read-only columns plus indicators computed once per distinct (function, column, args)."""

    def __init__(
        self,
        columns: Mapping[str, np.ndarray],
        mode: str = "bars",
        ts_unit_ns: int = 1,
        cache: Any = None,
    ) -> None:
        """cache: an object with ``get_or_compute(key, compute)`` shared by many runs on the
        same data (a sweep's bounded indicator cache); default: a dict for this run only."""
        self._cols = dict(columns)
        self.mode = mode
        self._ts_unit_ns = ts_unit_ns
        self._cache: dict[tuple, np.ndarray] = {}
        self._shared = cache
        self.computed = 0  # indicators actually computed (tests check the cache)

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "ts" and self._ts_unit_ns != 1:  # converted on first use only
            self._cols["ts"] = self._cols["ts"] * self._ts_unit_ns
            self._ts_unit_ns = 1
        try:
            return self._cols[name]
        except KeyError:
            raise DataError(
                f"the strategy needs column {name!r}, which this data does not have "
                f"(it has {', '.join(sorted(self._cols))})"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._cols

    def __len__(self) -> int:
        return len(self._cols["ts"])

    def indicator(self, fn: Callable[..., np.ndarray], column: str, *args: Any) -> np.ndarray:
        """fn(self[column], *args), cached for this run."""
        key = (getattr(fn, "__qualname__", id(fn)), column, args)
        if self._shared is not None:
            return self._shared.get_or_compute(key, lambda: self._compute(fn, column, args))
        out = self._cache.get(key)
        if out is None:
            out = self._compute(fn, column, args)
            self._cache[key] = out
        return out

    def cached(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """compute(), kept under `key` for this run (and, in a sweep, for every run on the
        same data): for indicators of several columns or of the book."""
        key = ("cached", *key)
        if self._shared is not None:
            return self._shared.get_or_compute(key, lambda: self._store(compute()))
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = self._store(compute())
        return out

    def _store(self, out: np.ndarray) -> np.ndarray:
        out.setflags(write=False)
        self.computed += 1
        return out

    def _compute(self, fn: Callable[..., np.ndarray], column: str, args: tuple) -> np.ndarray:
        out = fn(np.ascontiguousarray(self[column], dtype=np.float64), *args)
        out.setflags(write=False)
        self.computed += 1
        return out

    def sma(self, column: str, window: int) -> np.ndarray:
        return self.indicator(ind.sma_nb, column, int(window))

    def ema(self, column: str, span: int) -> np.ndarray:
        return self.indicator(ind.ema_nb, column, int(span))

    def rsi(self, column: str, window: int) -> np.ndarray:
        return self.indicator(ind.rsi_nb, column, int(window))

    def std(self, column: str, window: int) -> np.ndarray:
        return self.indicator(ind.rolling_std_nb, column, int(window))
