"""algo-trade: collect, store, backtest and sweep crypto-perpetual strategies.

>>> import algo_trade
>>> store = algo_trade.open_store("./algo-trade-data")  # doctest: +SKIP
"""

# `sweep` is the sweep package, which is callable: algo_trade.sweep(...) runs the sweep
# function whatever else imports its submodules (see algo_trade/sweep/__init__.py).
from algo_trade import sweep
from algo_trade.data.load import load
from algo_trade.data.market import MarketData
from algo_trade.engine.api import Result, backtest
from algo_trade.errors import AlgoTradeError, ConfigError, DataError, ExchangeError, StoreError
from algo_trade.store.base import Store, open_store
from algo_trade.sweep import SweepResult

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
