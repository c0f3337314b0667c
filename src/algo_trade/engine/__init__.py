"""The backtest engine: numba kernels (`kernels`) and the pandas-facing API (`api`)."""

from algo_trade.engine.api import Result, Settings, backtest

__all__ = ["Result", "Settings", "backtest"]
