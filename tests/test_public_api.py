"""The public API is small and `__all__` names all of it (httpx-style completeness check)."""

from __future__ import annotations

import algo_trade


def test_all_is_complete_and_importable():
    public = {n for n in dir(algo_trade) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(algo_trade, n)).__name__ == "module"}
    assert set(algo_trade.__all__) == public - modules - {"annotations"}
    for name in algo_trade.__all__:
        assert getattr(algo_trade, name) is not None


def test_error_tree_has_one_base():
    for name in ("DataError", "ConfigError", "StoreError", "ExchangeError"):
        assert issubclass(getattr(algo_trade, name), algo_trade.AlgoTradeError)


def test_cli_start_up_does_not_import_the_engine():
    """`algo-trade --help` or `db stats` must not pay for pandas, the engine and sweeps at start-up."""
    import subprocess
    import sys

    code = "import sys, algo_trade.cli.main; print(sorted(m for m in ('pandas', 'algo_trade.engine.api', 'algo_trade.sweep.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_exports_resolve_to_the_real_objects():
    from algo_trade.engine.api import backtest
    from algo_trade.sweep.api import SweepResult

    assert algo_trade.backtest is backtest and algo_trade.SweepResult is SweepResult
    assert callable(algo_trade.sweep) and type(algo_trade.sweep).__name__ == "_CallableModule"
