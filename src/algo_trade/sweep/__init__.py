"""Parameter sweeps of any strategy on the engine's own kernels: grids, random and Optuna
search, an indicator cache, executors, walk-forward and overfitting statistics (the data
cache they map is `algo_trade.data.cache`). See docs/sweeps.md.

The package itself is callable, so ``algo_trade.sweep(data, "sma_cross", grid=...)`` runs
`sweep` however the names were imported (``import algo_trade.sweep.grid`` binds the
package, never the function, to ``algo_trade.sweep``).
"""

import inspect as _inspect
import sys as _sys
import types as _types

from algo_trade.data.cache import CachedData, cache_entries, clear_cache, load_cached, open_cached
from algo_trade.sweep.api import SweepResult, sweep
from algo_trade.sweep.grid import Constraint, Grid, parse_axis

__all__ = [
    "CachedData",
    "Constraint",
    "Grid",
    "SweepResult",
    "cache_entries",
    "clear_cache",
    "load_cached",
    "open_cached",
    "parse_axis",
    "sweep",
]


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs) -> SweepResult:
        return sweep(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
__signature__ = _inspect.signature(sweep)  # what help() and inspect show for the call
