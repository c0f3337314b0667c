"""A small simulated lake shared by the hostile-input tests (read-only use), and real
small filesystems (tmpfs) for full-disk and read-only probes where mounting is allowed."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager

import pytest

from algo_trade.simulator import generate
from algo_trade.store.lake import LakeStore
from algo_trade.timeutil import NS_PER_S


@pytest.fixture(scope="session")
def market(tmp_path_factory):
    """A lake with 0.1 day (2024-01-01 from 00:00) of one simulated perp, 10 s books."""
    home = tmp_path_factory.mktemp("market")
    generate(LakeStore(home), ["BTC-USDT-PERP"], 0.1, 10 * NS_PER_S, 5, 7, "2024-01-01")
    return home


@pytest.fixture
def home_copy(market, tmp_path):
    """A private copy of the market lake, for probes that could change it."""
    dst = tmp_path / "home"
    shutil.copytree(market, dst)
    return dst


@contextmanager
def tmpfs(path, size: str, read_only: bool = False):
    """A real tmpfs of `size` mounted at `path` (skips the test where mounting is not
    allowed, e.g. without root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)  # fmt: skip
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
