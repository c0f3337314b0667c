"""Imports flow one way: the engine and strategies never import stores, exchanges,
the collector or asyncio (STYLE.md rule 10)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "algo_trade"
FORBIDDEN = ("algo_trade.store", "algo_trade.exchanges", "algo_trade.collect", "asyncio")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_and_strategies_import_no_io_layers():
    files = [
        *(SRC / "engine").glob("*.py"),
        *(SRC / "strategies").glob("*.py"),
        SRC / "data" / "market.py",
    ]
    assert len(files) >= 6
    for f in files:
        bad = [m for m in imported(f) if m.startswith(FORBIDDEN)]
        assert not bad, f"{f.name} imports {bad}"


def test_kernels_import_only_numpy_and_numba():
    mods = imported(SRC / "engine" / "kernels.py")
    assert mods <= {"__future__", "numpy", "numba"}
