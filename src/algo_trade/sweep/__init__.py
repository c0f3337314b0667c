"""Parameter sweeps: grids, a memory-mapped data cache, an indicator cache, executors,
walk-forward and overfitting statistics. See docs/sweeps.md."""

from algo_trade.sweep.api import SweepResult, sweep
from algo_trade.sweep.cache import CachedData, cache_entries, clear_cache, load_cached, open_cached
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
