"""The collector's writer thread: spooled batches -> store, in order, retried until stored."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from algo_trade.collect.spool import Spool

log = logging.getLogger("algo_trade.collect")


class Samples:
    """The newest `size` int64 samples in one pre-allocated array: 8 bytes a sample for
    the whole run (a deque of Python ints grew to ~36 bytes a sample, ~15 MB for the two
    lag windows once full, an hour or more into a run). One thread appends, others read."""

    def __init__(self, size: int) -> None:
        self._a = np.zeros(size, dtype=np.int64)
        self._n = 0

    def append(self, value: int) -> None:
        self._a[self._n % len(self._a)] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, len(self._a))

    def values(self) -> np.ndarray:
        """A copy of the samples held (oldest-first order is not kept)."""
        return self._a[: len(self)].copy()


LAG_SAMPLES = 200_000  # per lag figure: the newest batches (~1.5 h at full rate)


@dataclass
class SpooledBatch:
    path: Path
    kind: str
    exchange: str
    rows: int
    first_recv_ns: int
    table: pa.Table | None
    venue_ts_ns: int = 0  # newest exchange time in the batch (0: unknown)


class Writer(threading.Thread):
    """Writes spooled batches to the store in order, retrying until the store has them.

    Consecutive batches of one kind are written together (fewer, larger files), up to
    max_rows_per_write (at 500k one catch-up write could take seconds; 50k keeps each
    write short at the same throughput). Stats are plain attributes read by the status
    task (ints: no lock needed under the GIL).
    """

    KEEP_IN_MEMORY = 512  # batches held in RAM; older ones are re-read from the spool

    def __init__(
        self, store, spool: Spool, max_rows_per_write: int = 50_000, linger_s: float = 0.0
    ) -> None:
        super().__init__(name="collect-writer", daemon=True)
        self.store = store
        self.spool = spool
        self.max_rows = max_rows_per_write
        # Batches reach the spool every ~33 ms (a third of the durable window); the store gets them
        # once the oldest waited linger_s (or max_rows are ready): fewer, larger files.
        self.linger_ns = int(linger_s * 1e9)
        self.backlog: collections.deque[SpooledBatch] = collections.deque()
        self.backlog_rows = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.written: dict[tuple[str, str], int] = {}
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.store_errors = 0
        self.store_down_since: float | None = None
        self.last_error = ""
        # ns from the oldest row's receipt to the store having it, one per spooled batch
        self.lags_ns = Samples(LAG_SAMPLES)
        # ns from the oldest row's receipt to its batch being fsynced in the spool
        self.spool_lags_ns = Samples(LAG_SAMPLES)
        # exchange -> ns from the exchange's event time to durable, newest batch
        self.venue_lag_ns: dict[str, int] = {}

    def put(self, item: SpooledBatch) -> None:
        with self.cond:
            if len(self.backlog) >= self.KEEP_IN_MEMORY:
                item.table = None
            self.backlog.append(item)
            self.backlog_rows += item.rows
            self.cond.notify()

    def load_spool(self) -> int:
        """Queue the segments a previous run left behind; returns their rows."""
        n = 0
        for path, kind in self.spool.pending():
            try:
                t = Spool.read(path)
            except (OSError, pa.ArrowInvalid) as exc:
                log.error("unreadable spool segment %s (%s); kept for inspection", path, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            ex = t.column("exchange").chunk(0).dictionary[0].as_py() if t.num_rows else "?"
            self.put(SpooledBatch(path, kind, ex, t.num_rows, time.time_ns(), t))
            n += t.num_rows
        return n

    def run(self) -> None:
        backoff = 0.2
        while True:
            with self.cond:
                while not self.backlog and not self.stopping:
                    self.cond.wait(0.5)
                if not self.backlog and self.stopping:
                    return
                # The oldest batch's kind, with every later batch of that kind: kinds
                # interleave in the backlog, and one store write per kind costs far less
                # than one per flush (each write is a file and an fsync).
                first = self.backlog[0]
                batch = []
                rows = 0
                for it in self.backlog:
                    if it.kind != first.kind:
                        continue
                    if batch and rows + it.rows > self.max_rows:
                        break
                    batch.append(it)
                    rows += it.rows
                wait_ns = self.linger_ns - (time.time_ns() - first.first_recv_ns)
                if wait_ns > 0 and rows < self.max_rows and not self.stopping:
                    self.cond.wait(wait_ns / 1e9)
                    continue
            try:
                tables = [it.table if it.table is not None else Spool.read(it.path) for it in batch]
                table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                res = self.store.write(first.kind, table)
            except Exception as exc:  # noqa: BLE001 - any store failure is retried, never fatal
                self.store_errors += 1
                if self.store_down_since is None:
                    self.store_down_since = time.monotonic()
                    log.warning("store write failed, keeping batches in the spool: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                if self.stopping and self._deadline_passed():
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self.store_down_since is not None:
                log.info("store is back after %.1f s", time.monotonic() - self.store_down_since)
            self.store_down_since = None
            backoff = 0.2
            now = time.time_ns()
            for it in batch:
                self.spool.ack(it.path)
                key = (it.exchange, it.kind)
                self.written[key] = self.written.get(key, 0) + it.rows
                self.lags_ns.append(now - it.first_recv_ns)
                if it.venue_ts_ns:
                    self.venue_lag_ns[it.exchange] = now - it.venue_ts_ns
            self.duplicates += res.duplicates
            for k, v in res.rejected.items():
                self.rejected[k] = self.rejected.get(k, 0) + v
                log.warning("store rejected %d %s rows: %s", v, first.kind, k)
            with self.cond:
                done = {id(it) for it in batch}
                self.backlog = collections.deque(it for it in self.backlog if id(it) not in done)
                self.backlog_rows -= rows
                self.cond.notify_all()

    _deadline = 0.0

    def _deadline_passed(self) -> bool:
        return time.monotonic() >= self._deadline

    def stop(self, timeout_s: float) -> int:
        """Finish what the store accepts within timeout_s; returns rows left in the spool."""
        self._deadline = time.monotonic() + timeout_s
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join(timeout_s + 1.0)
        return self.backlog_rows
