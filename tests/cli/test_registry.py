"""Every command module is registered by name in cli/main.py: a module with a register()
that main does not call would be a command that silently disappears."""

from __future__ import annotations

import ast
from pathlib import Path

import typer.main

from algo_trade.cli.main import app

CLI = Path(__file__).resolve().parents[2] / "src" / "algo_trade" / "cli"


def test_every_module_with_register_is_registered():
    modules = {
        p.stem
        for p in CLI.glob("*.py")
        if any(
            isinstance(n, ast.FunctionDef) and n.name == "register"
            for n in ast.parse(p.read_text()).body
        )
    }
    main = ast.parse((CLI / "main.py").read_text())
    called = {
        elt.id
        for node in ast.walk(main)
        if isinstance(node, ast.For)
        for elt in getattr(node.iter, "elts", [])
    }
    assert modules and modules == called


def test_commands():
    names = set(typer.main.get_command(app).commands)
    assert {"demo", "generate", "db", "backtest", "sweep", "collect", "import", "cache"} <= names
