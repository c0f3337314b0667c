"""Operating the collector: where metrics listen, what the logs say as things happen,
and what the status calls a book that has no snapshot. Real replay servers, real lake."""

from __future__ import annotations

import asyncio
import logging

from algo_trade.collect.pipeline import Collector
from algo_trade.collect.status import stream_state
from algo_trade.store.lake import LakeStore
from tests.collect.harness import binance_server, config, drive
from tests.collect.test_cli_collect import free_port


class _Lines(logging.Handler):
    """The collector's log records as text (its own handler: the CLI may have turned off
    propagation to the root logger in an earlier in-process test)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _capture_log() -> tuple[logging.Logger, _Lines]:
    logger = logging.getLogger("algo_trade.collect")
    h = _Lines()
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    return logger, h


def test_metrics_bind_loopback_unless_told_otherwise(tmp_path):
    async def main(**kw):
        srv = binance_server(speed=None)
        await srv.start()
        cfg = config(tmp_path, {"binance": srv}, streams=("trade",), metrics_port=free_port(), **kw)
        col = Collector(cfg, LakeStore(tmp_path))
        addr = []

        def done() -> bool:
            if col.metrics is not None and not addr:
                addr.append(col.metrics.server.server_address[0])
            return bool(addr)

        await drive(col, done, read_all=False)
        await srv.stop()
        return addr[0]

    assert asyncio.run(main()) == "127.0.0.1"
    assert asyncio.run(main(metrics_host="0.0.0.0")) == "0.0.0.0"


def test_failed_connects_with_their_delay_and_resyncs_are_logged(tmp_path):
    srv = binance_server(speed=5)
    srv.faults.refuse_s = 1.0
    depth = [i for i, (_, k, _) in enumerate(srv.frames) if k == "btcusdt@depth"]
    srv.faults.skip = {depth[400]}  # a sequence gap: the book resyncs
    logger, h = _capture_log()

    async def main():
        await srv.start()
        cfg = config(tmp_path, {"binance": srv}, streams=("book", "trade"))
        col = Collector(cfg, LakeStore(tmp_path))
        summary = await drive(col, lambda: srv.done({"btcusdt@depth", "btcusdt@trade"}))
        await srv.stop()
        return summary

    try:
        summary = asyncio.run(main())
    finally:
        logger.removeHandler(h)
    failed = [x for x in h.lines if x.startswith("connect binance book failed (attempt ")]
    assert srv.refused >= 2 and len(failed) >= 1, h.lines
    assert "HTTP 503" in failed[0] or "503" in failed[0], failed[0]
    assert "retrying in " in failed[0] and failed[0].endswith(" s")
    resyncs = [x for x in h.lines if x.startswith("resync binance book")]
    assert summary["resyncs"] == 1 and len(resyncs) == 1, h.lines
    assert "BTC-USDT-PERP sequence gap pu" in resyncs[0]


def test_status_says_waiting_for_snapshot_until_the_book_has_one(tmp_path):
    srv = binance_server(speed=2)
    snaps = dict(srv.snapshots)
    srv.snapshots.clear()  # the depth endpoint answers 400: no snapshot yet
    seen: list[str] = []

    async def main():
        await srv.start()
        cfg = config(tmp_path, {"binance": srv}, streams=("book", "trade"))
        col = Collector(cfg, LakeStore(tmp_path))

        def state() -> str:
            rows = {r["stream"]: r for r in col.rows()}
            return stream_state(rows["book"]) if "book" in rows else ""

        def done() -> bool:
            s = state()
            if not seen or seen[-1] != s:
                seen.append(s)
            if s == "waiting for snapshot" and not srv.snapshots:
                srv.snapshots.update(snaps)  # the venue answers again
            return s == "up"

        await drive(col, done, read_all=False)
        await srv.stop()

    asyncio.run(main())
    assert "waiting for snapshot" in seen and seen[-1] == "up", seen
    assert seen.index("waiting for snapshot") < seen.index("up")
