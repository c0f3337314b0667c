"""algo-trade: collect, store, backtest and sweep crypto-perpetual strategies.

>>> import algo_trade
>>> store = algo_trade.open_store("./algo-trade-data")  # doctest: +SKIP
"""

from algo_trade.errors import AlgoTradeError, ConfigError, DataError, ExchangeError, StoreError
from algo_trade.store.base import Store, open_store

# Loaded on first use (PEP 562): the engine and sweeps pull in numba and pandas, which a
# CLI command such as `db stats` or `--help` should not pay for at start-up.
_LAZY = {
    "load": "algo_trade.data.load",
    "MarketData": "algo_trade.data.market",
    "Result": "algo_trade.engine.api",
    "backtest": "algo_trade.engine.api",
    "SweepResult": "algo_trade.sweep",
}


def __getattr__(name: str):
    import importlib

    if name == "sweep":
        # the sweep package itself is callable: algo_trade.sweep(...) runs a sweep
        return importlib.import_module("algo_trade.sweep")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'algo_trade' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AlgoTradeError",
    "ConfigError",
    "DataError",
    "ExchangeError",
    "MarketData",
    "Result",
    "Store",
    "StoreError",
    "SweepResult",
    "backtest",
    "load",
    "open_store",
    "sweep",
]
__version__ = "0.1.0"
