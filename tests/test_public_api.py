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
