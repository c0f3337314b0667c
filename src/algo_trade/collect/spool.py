"""Write-ahead spool: every accepted batch is on disk (fsynced) until the store has it.

Segments are Arrow IPC files ``<seq>-<kind>.arrow`` in one directory. A segment appears
atomically (written under a temporary name, fsynced, renamed, directory fsynced) and is
deleted only after the store acknowledged its rows. On start the remaining segments are
replayed first, in order; with idempotent store writes a segment written twice (a crash
between the store write and the delete) is stored once.

Group commit: `GroupCommitter` runs the appends on one thread in rounds. Everything
handed over while a round's fsyncs run goes into the next round together (one directory
fsync per round, however many venues and kinds), and a submission is acknowledged (its
future resolves) only once its round is durable. With the collector handing over a
flush every `durable_window_s / 3`, a row received is fsynced within ~the window.

One collector owns a spool directory at a time (an exclusive file lock).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from algo_trade.errors import ConfigError
from algo_trade.fileio import fsync_path

_NAME = re.compile(r"^(\d{12})-([a-z]+)\.arrow$")


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
        return self.append_group([(kind, table)])[0]

    def append_group(self, items: list[tuple[str, pa.Table]]) -> list[Path]:
        """Append several segments as one durable step: every file written and fsynced,
        then renamed, then one directory fsync. Returns their paths, in order."""
        tmps = []
        for kind, table in items:
            self._seq += 1
            name = f"{self._seq:012d}-{kind}.arrow"
            tmp = self.root / f".tmp-{name}"
            with open(tmp, "wb") as f:
                with ipc.new_file(f, table.schema) as w:
                    w.write_table(table)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            tmps.append((tmp, self.root / name))
        for tmp, final in tmps:
            os.replace(tmp, final)
        if self.fsync and tmps:
            fsync_path(self.root)
        return [final for _, final in tmps]

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


class GroupCommitter:
    """Runs ``commit(payloads)`` on one thread, in rounds that take every payload
    submitted so far; each `submit` returns a future resolved when its round returned
    (or failed: the exception is set on every future of that round)."""

    def __init__(self, commit: Callable[[list], None], name: str = "collect-spool") -> None:
        self._commit = commit
        self._pending: list[tuple[object, Future]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.rounds = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, payload: object) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("spool committer is closed")
            self._pending.append((payload, fut))
            self._cond.notify()
        return fut

    def close(self) -> None:
        """Commit what was submitted, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, []
            try:
                self._commit([p for p, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            self.rounds += 1
            for _, fut in batch:
                fut.set_result(None)
