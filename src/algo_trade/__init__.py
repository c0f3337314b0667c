"""algo-trade: collect, store, backtest and sweep crypto-perpetual strategies.

>>> import algo_trade
>>> store = algo_trade.open_store("./algo-trade-data")  # doctest: +SKIP
"""

from algo_trade.errors import AlgoTradeError, ConfigError, DataError, ExchangeError, StoreError
from algo_trade.store.base import Store, open_store

__all__ = [
    "AlgoTradeError",
    "ConfigError",
    "DataError",
    "ExchangeError",
    "Store",
    "StoreError",
    "open_store",
]
__version__ = "0.1.0"
