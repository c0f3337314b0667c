"""Live collection: exchange connections -> Normalizers -> write-ahead spool -> store.

See `pipeline.Collector` for the moving parts and docs/collector.md for the user's view.
"""

from algo_trade.collect.config import CollectConfig
from algo_trade.collect.pipeline import Collector, run_collector

__all__ = ["CollectConfig", "Collector", "run_collector"]
