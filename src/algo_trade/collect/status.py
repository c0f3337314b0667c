"""Visibility: the live rich status table and the Prometheus endpoint (same numbers)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from algo_trade.exchanges.adapter import feed_of  # depth counts its book feed's messages

if TYPE_CHECKING:
    from algo_trade.collect.pipeline import Collector


class _Metrics:
    """Reads the collector's plain counters at scrape time (nothing on the hot path)."""

    def __init__(self, col: Collector) -> None:
        self.col = col

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        col = self.col
        msgs = CounterMetricFamily(
            "algo_trade_collect_messages", "Messages received", labels=["exchange", "stream"]
        )
        rows = CounterMetricFamily(
            "algo_trade_collect_rows_written",
            "Rows durable in the store",
            labels=["exchange", "kind"],
        )
        rec = CounterMetricFamily(
            "algo_trade_collect_reconnects", "Reconnects", labels=["exchange", "stream"]
        )
        res = CounterMetricFamily(
            "algo_trade_collect_resyncs", "Book resyncs after a sequence gap", labels=["exchange"]
        )
        bad = CounterMetricFamily(
            "algo_trade_collect_malformed", "Malformed messages skipped", labels=["exchange"]
        )
        backfilled = CounterMetricFamily(
            "algo_trade_collect_backfilled_trades",
            "Missed trade ids fetched back from the venue's REST history",
            labels=["exchange"],
        )
        holes = GaugeMetricFamily(
            "algo_trade_collect_backfill_pending",
            "Missed trade ranges not fetched back yet",
            labels=["exchange"],
        )
        errs = CounterMetricFamily(
            "algo_trade_collect_store_errors", "Failed store writes (retried)"
        )
        queue = GaugeMetricFamily(
            "algo_trade_collect_queue_depth", "Messages waiting in the queue", labels=["exchange"]
        )
        spool = GaugeMetricFamily(
            "algo_trade_collect_spooled_rows", "Rows in the spool not yet in the store"
        )
        lag = GaugeMetricFamily(
            "algo_trade_collect_lag_seconds",
            "Receipt to durable in the store lag",
            labels=["quantile"],
        )
        spool_lag = GaugeMetricFamily(
            "algo_trade_collect_spool_lag_seconds",
            "Receipt to durable (fsynced) in the write-ahead spool lag",
            labels=["quantile"],
        )
        ex_lag = GaugeMetricFamily(
            "algo_trade_collect_exchange_lag_seconds",
            "Exchange event time to durable, newest batch",
            labels=["exchange"],
        )
        for v in col.venues:
            c = v.norm.counters
            for st in v.streams:
                msgs.add_metric([v.exchange, st], c.by_stream.get(feed_of(st), 0))
                rec.add_metric([v.exchange, st], v.reconnects.get(st, 0))
            res.add_metric([v.exchange], c.resyncs)
            bad.add_metric([v.exchange], c.malformed)
            queue.add_metric([v.exchange], v.queue.qsize())
            if v.norm.backfills_trades:
                backfilled.add_metric([v.exchange], getattr(v.norm, "backfilled_ids", 0))
                pending = sum(len(h) for h in getattr(v.norm, "holes", {}).values())
                holes.add_metric([v.exchange], pending)
            ex = col.exchange_lag_s(v.exchange)
            if ex is not None:
                ex_lag.add_metric([v.exchange], ex)
        for (ex, kind), n in col.writer.written.items():
            rows.add_metric([ex, kind], n)
        errs.add_metric([], col.writer.store_errors)
        spool.add_metric([], col.writer.backlog_rows)
        q = col.lag_quantiles()
        for name in ("p50", "p99"):
            for family, prefix in ((lag, "lag"), (spool_lag, "spool_lag")):
                val = q[f"{prefix}_{name}_s"]
                if val is not None:
                    family.add_metric([name], val)
        yield from (
            msgs,
            rows,
            rec,
            res,
            bad,
            backfilled,
            holes,
            errs,
            queue,
            spool,
            lag,
            spool_lag,
            ex_lag,
        )


class MetricsServer:
    def __init__(self, server, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics(col: Collector, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve /metrics on `addr`:`port` in a thread. Loopback by default: the numbers name
    what is collected and from where, so reaching them from elsewhere is a choice
    (``--metrics-host 0.0.0.0``), not an accident."""
    from prometheus_client import ProcessCollector, start_http_server

    registry = CollectorRegistry()
    registry.register(_Metrics(col))
    # process_resident_memory_bytes, CPU seconds, open fds: memory over a week-long run
    # is watched here (docs/collector.md, "Memory over long runs").
    ProcessCollector(registry=registry)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)


def stream_state(row: dict) -> str:
    """One status row's state: backpressure, reconnecting, waiting for snapshot, or up.

    A connected book stream whose book has no snapshot yet (or lost it to a sequence gap
    and waits for a new one) stores nothing: calling it "up" hid exactly that."""
    if row["backpressure"]:
        return "backpressure"
    if not row["connected"]:
        return "reconnecting"
    if row.get("waiting_snapshot"):
        return "waiting for snapshot"
    return "up"


def status_table(col: Collector, rates: dict):  # noqa: ANN201 - rich Table
    from rich.table import Table

    w = col.writer
    q = col.lag_quantiles()
    p99 = q["lag_p99_s"]
    store = "store DOWN (retrying)" if w.store_down_since is not None else "store ok"
    title = (
        f"algo-trade collect · {time.monotonic() - col.started:,.0f} s · {store} · "
        f"spooled rows {w.backlog_rows:,} · lag p99 {'-' if p99 is None else f'{p99:.2f} s'}"
    )
    t = Table(title=title)
    for c in (
        "exchange",
        "stream",
        "msgs/s",
        "messages",
        "rows written",
        "queue",
        "reconnects",
        "resyncs",
        "malformed",
        "lag s",
        "state",
    ):
        t.add_column(c, justify="left" if c in ("exchange", "stream", "state") else "right")
    for r in col.rows():
        state = stream_state(r)
        t.add_row(
            r["exchange"],
            r["stream"],
            f"{rates.get((r['exchange'], r['stream']), 0.0):,.0f}",
            f"{r['messages']:,}",
            f"{r['rows_written']:,}",
            f"{r['queue']:,}",
            str(r["reconnects"]),
            str(r["resyncs"]),
            str(r["malformed"]),
            "-" if r["exchange_lag_s"] is None else f"{r['exchange_lag_s']:,.2f}",
            state,
        )
    return t


async def live_status(col: Collector, interval_s: float = 1.0) -> None:
    """Refresh a rich table every interval until cancelled."""
    from rich.live import Live

    prev: dict = {}
    prev_t = time.monotonic()
    rates: dict = {}
    with Live(status_table(col, rates), refresh_per_second=2, transient=False) as live:
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            cur = {(r["exchange"], r["stream"]): r["messages"] for r in col.rows()}
            dt = max(now - prev_t, 1e-9)
            rates = {k: (v - prev.get(k, 0)) / dt for k, v in cur.items()}
            prev, prev_t = cur, now
            live.update(status_table(col, rates))
