"""Live collection: exchange connections -> Normalizers -> write-ahead spool -> store.

See `pipeline.Collector` for the moving parts and docs/collector.md for the user's view.
"""

from algo_trade.extras import require

require("collect")  # the collector is nothing without its network and metrics libraries

from algo_trade.collect.config import CollectConfig  # noqa: E402
from algo_trade.collect.pipeline import Collector, run_collector  # noqa: E402

__all__ = ["CollectConfig", "Collector", "run_collector"]
