"""Write-ahead spool: every accepted batch is on disk (fsynced) until the store has it.

Segments are Arrow IPC files ``<seq>-<kind>.arrow`` in one directory. A segment appears
atomically (written under a temporary name, fsynced, renamed, directory fsynced) and is
deleted only after the store acknowledged its rows. On start the remaining segments are
replayed first, in order; with idempotent store writes a segment written twice (a crash
between the store write and the delete) is stored once.

One collector owns a spool directory at a time (an exclusive file lock).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from algo_trade.errors import ConfigError

_NAME = re.compile(r"^(\d{12})-([a-z]+)\.arrow$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Arrow IPC segments under `root`; `append` is durable when it returns."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the spool's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another collector is using the spool {self.root}") from None
        for tmp in self.root.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)  # a crash mid-append: that batch was never accepted
        seqs = [int(m.group(1)) for p in self.root.iterdir() if (m := _NAME.match(p.name))]
        self._seq = max(seqs, default=0)

    def append(self, kind: str, table: pa.Table) -> Path:
        self._seq += 1
        name = f"{self._seq:012d}-{kind}.arrow"
        tmp = self.root / f".tmp-{name}"
        with open(tmp, "wb") as f:
            with ipc.new_file(f, table.schema) as w:
                w.write_table(table)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.root / name)
        if self.fsync:
            _fsync_dir(self.root)
        return self.root / name

    def pending(self) -> list[tuple[Path, str]]:
        """(path, kind) of every segment not yet acknowledged, oldest first."""
        out = []
        for p in sorted(self.root.iterdir()):
            m = _NAME.match(p.name)
            if m:
                out.append((p, m.group(2)))
        return out

    @staticmethod
    def read(path: Path) -> pa.Table:
        with ipc.open_file(pa.memory_map(str(path))) as r:
            return r.read_all()

    def ack(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        try:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            self._lock.close()
