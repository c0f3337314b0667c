"""Run the CLI the way a user does and check the hostile-input contract: exit 2, exactly
one line on stderr, no traceback, the store exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from algo_trade.cli.main import main


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cli(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> Ran:
    """The CLI in a fresh process (what a user runs)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ALGO_TRADE_")}
    full.update({"COLUMNS": "200", **(env or {})})
    p = subprocess.run(
        [sys.executable, "-c", "from algo_trade.cli.main import main; main()", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )
    return Ran(p.returncode, p.stdout, p.stderr)


def inproc(argv: list[str], capsys) -> Ran:
    """The CLI in this process (cheaper; an uncaught exception fails the test as a bug)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return Ran(exc.value.code, out, err)


def snapshot(home: str | Path) -> dict[str, tuple[int, int]]:
    """Every file under home (but lock files) with its size and mtime."""
    out = {}
    for root, _dirs, files in os.walk(home):
        for name in files:
            if name in (".lock", ".readers"):
                continue
            p = os.path.join(root, name)
            st = os.stat(p)
            out[os.path.relpath(p, home)] = (st.st_size, st.st_mtime_ns)
    return out


def refused(r: Ran, *needles: str) -> str:
    """Exit 2 with exactly one non-empty stderr line and no traceback; returns the line."""
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert r.code == 2, (r.code, r.err[-2000:])
    assert "Traceback" not in r.err, r.err
    assert len(lines) == 1 and len(r.err.splitlines()) == 1, r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
