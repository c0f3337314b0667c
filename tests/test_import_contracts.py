"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and they can fail: a
library module that imports the CLI is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(not Path(LINT).exists(), reason="import-linter not installed")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd / "src"), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([LINT], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_contracts_kept():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.count("KEPT") >= 3 and "BROKEN" not in r.stdout


def test_a_library_module_importing_the_cli_breaks_a_contract(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "src" / "algo_trade" / "data" / "sneaky.py").write_text(
        "from algo_trade.cli.common import console\n"
    )
    r = _lint(tmp_path)
    assert r.returncode != 0 and "algo_trade.data.sneaky -> algo_trade.cli.common" in r.stdout
