"""The live collector: connections -> bounded queue -> Normalizer -> spool -> writer thread -> store.

Per exchange and stream one websocket task reads frames and puts ``(recv ns, frame)`` on
the exchange's bounded asyncio queue (``queue_size``); when the queue is full the task
waits, so TCP pushes back on the venue instead of memory growing. One consumer task per
exchange feeds the venue `Normalizer`, records raw frames, asks for REST snapshots
(Binance) or resubscriptions (Bybit), and flushes every ``flush_rows`` rows or
``flush_interval_s``: the drained tables are appended to the write-ahead `Spool`
(fsynced) and handed to the writer thread, which writes them to the store and deletes
the segment once the store has it. A store outage keeps segments in the spool (retried
with backoff); if the spool backlog passes ``max_spool_rows`` the consumers wait
(backpressure, shown in the status). Nothing is dropped.

Reconnects back off exponentially with jitter; a watchdog closes a connection that has
been silent for ``stale_s`` (a stall); every disconnect, stall and resync becomes a
data-quality event in ``<home>/events``.

The parts live one job per module: `config` (the run's settings), `venue` (one venue's
connections and consumer), `writer` (spool -> store thread), `memory` (returning freed
memory to the OS); this module assembles them into a `Collector`.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from algo_trade.collect.config import CollectConfig
from algo_trade.collect.downtime import Flush, Marks, RestartGaps, RunJournal
from algo_trade.collect.events import EventLog
from algo_trade.collect.memory import release_free_memory
from algo_trade.collect.spool import GroupCommitter, Spool
from algo_trade.collect.venue import SPARSE_STREAMS, Venue
from algo_trade.collect.writer import SpooledBatch, Writer
from algo_trade.errors import StoreError
from algo_trade.exchanges.adapter import feed_of
from algo_trade.exchanges.base import BOOK_KINDS

log = logging.getLogger("algo_trade.collect")

MAX_INFLIGHT_FLUSHES = 8
# GIL switch interval while collecting (CPython's default is 5 ms). The event loop parses
# without pause; each time the writer or spool thread drops the GIL (an fsync, a Parquet
# encode, many small Arrow calls) it waited up to 5 ms to get it back, dozens of times a
# write: 6 ms of CPU took ~45 ms (p99 ~300 ms) and writes queued behind each other, the
# tail of the receipt-to-store lag. At 1 ms the same writes take ~25 ms, p99 ~100 ms.
SWITCH_INTERVAL_S = 0.001


class Collector:
    """Runs every venue until stopped (signal, duration or `stop()`)."""

    def __init__(self, cfg: CollectConfig, store) -> None:
        cfg.validate()
        self.cfg = cfg
        self.store = store
        self.spool = Spool(cfg.spool_dir or Path(cfg.home) / "spool", fsync=cfg.fsync)
        self.events = EventLog(Path(cfg.home))
        self.writer = Writer(store, self.spool, linger_s=cfg.flush_interval_s)
        self.marks = Marks(self.spool.root, fsync=cfg.fsync)
        self.journal = RunJournal(self.spool.root, fsync=cfg.fsync)
        self.previous_run: str | None = None
        self.venues: list[Venue] = []
        self.started = time.monotonic()
        self.replayed_rows = 0
        self.left_in_spool = 0
        self._stop: asyncio.Event | None = None
        self.http = None
        self.ws_http = None
        self.failure: BaseException | None = None
        self.committer = GroupCommitter(self._commit_round)
        self._inflight: collections.deque[asyncio.Future] = collections.deque()
        self.metrics = None
        self.memory_trims = 0

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def sink(
        self,
        venue: Venue,
        tables: dict[str, pa.Table],
        events: list,
        first_recv_ns: int,
        venue_ts_ns: int = 0,
    ) -> None:
        """Spool a flush (fsynced) and hand it to the writer, off the event loop.

        Appends run in order on one spool thread while the consumer goes on parsing;
        at most MAX_INFLIGHT_FLUSHES wait there (an fsync must not stall the sockets)."""
        if not tables and not events:
            return
        w = self.writer
        if w.backlog_rows > self.cfg.max_spool_rows:
            venue.waiting_on_store = True
            while w.backlog_rows > self.cfg.max_spool_rows and not self._stop.is_set():
                await asyncio.sleep(0.1)
            venue.waiting_on_store = False

        if venue.restart_gaps is not None:
            events = events + venue.restart_gaps.close(tables)
        flush = Flush(
            venue.exchange, tables, events, first_recv_ns, venue_ts_ns, venue.norm.resume_state()
        )
        inflight = self._inflight
        inflight.append(asyncio.wrap_future(self.committer.submit(flush)))
        while inflight and inflight[0].done():
            inflight.popleft().result()  # a spool failure (disk full) is raised here
        while len(inflight) > MAX_INFLIGHT_FLUSHES:
            await inflight.popleft()

    def _commit_round(self, flushes: list[Flush]) -> None:
        """One group commit (spool thread): events, then every segment of every flush
        handed over since the last round as one durable step, then the marks; only then
        does the writer see the batches (a batch is acknowledged once durable)."""
        events = [e for fl in flushes for e in fl.events]
        if events:
            self.events.append(events)
        items = [(kind, t) for fl in flushes for kind, t in fl.tables.items()]
        paths = iter(self.spool.append_group(items))
        self.marks.update(flushes)
        now = time.time_ns()
        w = self.writer
        for fl in flushes:
            for kind, t in fl.tables.items():
                w.spool_lags_ns.append(now - fl.first_recv_ns)
                w.put(
                    SpooledBatch(
                        next(paths),
                        kind,
                        fl.exchange,
                        t.num_rows,
                        fl.first_recv_ns,
                        t,
                        fl.venue_ts_ns,
                    )
                )

    def _resume(self, v: Venue, prev: dict | None) -> None:
        """Pick up where the last run's durable data ends (see collect/downtime)."""
        m = self.marks.data.get(v.exchange)
        if not m:
            return
        v.norm.resume(m.get("state", {}))
        for it in list(self.writer.backlog):  # spooled after those marks were written
            if it.exchange == v.exchange and it.table is not None:
                v.norm.resume_rows(it.kind, it.table)
        if prev is None:
            return
        crashed = prev.get("event") == "start"
        reason = "collector down" if crashed else "collector stopped"
        detail = (
            f"the run started at {prev['ns']} ns (pid {prev.get('pid')}) ended without a "
            "clean stop (crash, kill -9, power cut)"
            if crashed
            else f"stopped at {prev['ns']} ns"
        )
        skip = frozenset({"trade"}) if v.norm.backfills_trades else frozenset()
        v.restart_gaps = RestartGaps(v.exchange, m, v.norm.symbols, v.streams, reason, detail, skip)

    async def drain_spooling(self) -> None:
        """Wait until every flush handed to the spool thread is on disk and queued."""
        while self._inflight:
            await self._inflight.popleft()

    async def _ticker(self) -> None:
        while True:
            # Every third of the durable window: a row waits at most that long to be
            # handed to the spool, leaving the rest of the window for its commit.
            await asyncio.sleep(min(self.cfg.flush_interval_s, self.cfg.durable_window_s / 3))
            for v in self.venues:
                v.flush_due = True
                if v.queue.empty():
                    try:
                        v.queue.put_nowait((-1, "tick", "", ""))
                    except asyncio.QueueFull:
                        pass

    async def _trim_memory(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.trim_interval_s)
            await asyncio.to_thread(release_free_memory)
            self.memory_trims += 1

    async def _watchdog(self) -> None:
        stale = self.cfg.stale_s
        while True:
            await asyncio.sleep(min(1.0, stale / 4))
            now = time.monotonic()
            for v in self.venues:
                for key, (_ws, reader) in list(v.sockets.items()):
                    feed = v.conns[key].feed
                    if feed in SPARSE_STREAMS:
                        continue  # silence is normal there; pings watch the link
                    if now - v.last_msg.get(key, now) > stale:
                        log.warning("%s %s silent for %.0f s: reconnecting", v.exchange, key, stale)
                        v.last_msg[key] = now
                        v.norm._events.append(_stall_event(v.exchange, feed, time.time_ns(), stale))
                        reader.cancel()  # the connection loop sees a stall and reconnects

    async def run(self) -> dict:
        import aiohttp

        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass
        self.replayed_rows = self.writer.load_spool()
        prev = self.journal.previous()
        self.previous_run = (
            None if prev is None else ("stopped" if prev["event"] == "stop" else "crashed")
        )
        if self.previous_run == "crashed":
            log.warning("the last run ended without a clean stop: recording its downtime")
        self.journal.start()
        if self.replayed_rows:
            log.info("replaying %d rows left in the spool by the last run", self.replayed_rows)
        # The store's one-time costs (the lake loads compiled kernels, ~0.5 s) are paid
        # before data arrives, not by the first batch: left to the first write they held
        # it (and the GIL) for 1.2 s, the p99 receipt-to-store lag of a 60-s run.
        warm_up = getattr(self.store, "warm_up", None)
        if warm_up is not None:
            await asyncio.to_thread(warm_up)
        self.writer.start()
        if self.cfg.metrics_port is not None:
            from algo_trade.collect.status import start_metrics

            self.metrics = start_metrics(self, self.cfg.metrics_port, self.cfg.metrics_host)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        # Websockets live for hours: no total timeout, only on connecting.
        self.ws_http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, connect=10)
        )
        # Everything loaded so far (modules, numba, pyarrow) lives for the whole run:
        # frozen, a full collection no longer walks it (gen-2 pauses, each a stall for
        # every task and the writer: 1.9 s a minute -> ~0.25 s). Unfrozen when the run ends.
        gc.collect()
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self.venues = [Venue(self, ex) for ex in self.cfg.exchanges]
            for v in self.venues:
                self._resume(v, prev)
                v.start()
            aux = [
                loop.create_task(self._ticker()),
                loop.create_task(self._watchdog()),
                loop.create_task(self._trim_memory()),
            ]
            try:
                await asyncio.wait_for(self._stop.wait(), self.cfg.duration_s)
            except TimeoutError:
                pass
            log.info("stopping: flushing queues and the spool")
            backfills = [t for v in self.venues for t in v.backfills]
            if backfills:  # trades being fetched back: worth a few seconds
                await asyncio.wait(backfills, timeout=self.cfg.shutdown_timeout_s / 2)
            for t in aux:
                t.cancel()
            for v in self.venues:
                v.stopping = True
                for t in v.tasks:
                    t.cancel()
            await asyncio.gather(*(t for v in self.venues for t in v.tasks), return_exceptions=True)
            for v in self.venues:
                if not v.consumer.done():
                    await v.queue.put((-1, "stop", "", ""))
            await asyncio.gather(*(v.consumer for v in self.venues), return_exceptions=True)
            try:
                await self.drain_spooling()
            except Exception as exc:  # noqa: BLE001 - reported below, after the cleanup
                self.failure = self.failure or exc
        finally:
            await self.http.close()
            await self.ws_http.close()
            # Every flush handed to the spool thread lands before the writer's last round.
            await asyncio.to_thread(self.committer.close)
            self.left_in_spool = await asyncio.to_thread(
                self.writer.stop, self.cfg.shutdown_timeout_s
            )
            self.journal.stop()
            self.spool.close()
            if self.metrics is not None:
                self.metrics.shutdown()
            gc.unfreeze()
            sys.setswitchinterval(switch_interval)
        if self.failure is not None:
            raise StoreError(
                f"collection stopped: the write-ahead spool {self.spool.root} failed "
                f"({self.failure}); fix it (e.g. free disk space) and start again: what "
                "was spooled is replayed"
            ) from None
        return self.summary()

    def _consumer_done(self, task: asyncio.Task) -> None:
        """A consumer ended by an error (the spool failed): stop everything, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        self.failure = self.failure or task.exception()
        log.error("collection stopping: %s", task.exception())
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------ numbers
    def rows(self) -> list[dict]:
        """One status row per (exchange, stream)."""
        out = []
        for v in self.venues:
            c = v.norm.counters
            for st in v.streams:
                out.append(
                    {
                        "exchange": v.exchange,
                        "stream": st,
                        "messages": c.by_stream.get(feed_of(st), 0),
                        "rows_written": self.writer.written.get((v.exchange, st), 0),
                        "queue": v.queue.qsize(),
                        "connected": v.connected.get(st, False),
                        "reconnects": v.reconnects.get(st, 0),
                        "resyncs": c.resyncs if st in BOOK_KINDS else 0,
                        "malformed": c.malformed,
                        "backpressure": v.waiting_on_store or v.queue.full(),
                        "waiting_snapshot": (
                            st in BOOK_KINDS
                            and v.connected.get(st, False)
                            and any(not b.synced for b in v.norm.books.values())
                        ),
                        "exchange_lag_s": self.exchange_lag_s(v.exchange),
                    }
                )
        return out

    def exchange_lag_s(self, exchange: str) -> float | None:
        """Exchange event time -> durable in the store, for the newest batch written."""
        lag = self.writer.venue_lag_ns.get(exchange)
        return None if lag is None else round(lag / 1e9, 3)

    def lag_quantiles(self) -> dict[str, float | None]:
        """p50/p99/max lag from local receipt (the batch's oldest row) to durable in the
        store (``lag_*``), and to durable in the write-ahead spool (``spool_lag_*``)."""
        out: dict[str, float | None] = {}
        for prefix, samples in (
            ("lag", self.writer.lags_ns),
            ("spool_lag", self.writer.spool_lags_ns),
        ):
            lags = samples.values()
            if not len(lags):
                out.update(
                    {f"{prefix}_p50_s": None, f"{prefix}_p99_s": None, f"{prefix}_max_s": None}
                )
                continue
            q = np.quantile(lags, [0.5, 0.99]) / 1e9
            out[f"{prefix}_p50_s"] = float(q[0])
            out[f"{prefix}_p99_s"] = float(q[1])
            out[f"{prefix}_max_s"] = float(lags.max() / 1e9)
        return out

    def summary(self) -> dict:
        w = self.writer
        msgs = sum(v.norm.counters.messages for v in self.venues)
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "messages": msgs,
            "malformed": sum(v.norm.counters.malformed for v in self.venues),
            "resyncs": sum(v.norm.counters.resyncs for v in self.venues),
            "reconnects": sum(v.reconnects_total for v in self.venues),
            "rows_written": sum(w.written.values()),
            "written": {f"{e}/{k}": n for (e, k), n in sorted(w.written.items())},
            "duplicates_skipped": w.duplicates,
            "rejected": dict(w.rejected),
            "store_errors": w.store_errors,
            "spooled_rows": w.backlog_rows,
            "replayed_from_spool": self.replayed_rows,
            "left_in_spool": self.left_in_spool,
            "previous_run": self.previous_run,
            "backfilled_trades": sum(getattr(v.norm, "backfilled", 0) for v in self.venues),
            "unfilled_trade_holes": sum(getattr(v.norm, "unfilled", 0) for v in self.venues),
            **self.lag_quantiles(),
            "streams": self.rows(),
        }


def _stall_event(exchange: str, stream: str, ts_ns: int, stale_s: float):
    from algo_trade.exchanges.base import Event

    return Event(
        exchange,
        "*",
        stream,
        ts_ns - int(stale_s * 1e9),
        ts_ns,
        "stall",
        f"no message for {stale_s:.0f} s",
    )


def run_collector(cfg: CollectConfig, store, status: bool = False) -> dict:
    """Run a collector until Ctrl-C, SIGTERM or cfg.duration_s; returns its summary."""

    async def main() -> dict:
        col = Collector(cfg, store)
        if status:
            from algo_trade.collect.status import live_status

            task = asyncio.get_running_loop().create_task(live_status(col))
            try:
                return await col.run()
            finally:
                task.cancel()
        return await col.run()

    return asyncio.run(main())
