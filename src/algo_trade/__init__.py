"""algo-trade: collect, store, backtest and sweep crypto-perpetual strategies.

>>> import algo_trade
>>> store = algo_trade.open_store("./algo-trade-data")  # doctest: +SKIP
"""

from algo_trade.data.load import load
from algo_trade.data.market import MarketData
from algo_trade.engine.api import Result, backtest
from algo_trade.errors import AlgoTradeError, ConfigError, DataError, ExchangeError, StoreError
from algo_trade.store.base import Store, open_store

# Imported after the subpackage loads, so the name `algo_trade.sweep` is the function (the
# import system binds the subpackage first; this line rebinds it).
from algo_trade.sweep import SweepResult, sweep  # noqa: E402

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
