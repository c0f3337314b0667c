"""The sweep's public names (the work is in `data`, `runner`, `search`, `results`).

>>> import algo_trade
>>> res = algo_trade.sweep(bars, "sma_cross", grid={"fast": "5:50:5", "slow": "20:200:20"},
...                        where="fast < slow", metric="sharpe")  # doctest: +SKIP
>>> res.best  # doctest: +SKIP
"""

from __future__ import annotations

from algo_trade.sweep.results import SweepResult, remove_sweep
from algo_trade.sweep.runner import DEFAULT_BLOCKS, evaluate, run_batch, sweep

__all__ = ["DEFAULT_BLOCKS", "SweepResult", "evaluate", "remove_sweep", "run_batch", "sweep"]
