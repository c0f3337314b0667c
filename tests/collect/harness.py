"""Real replay servers + the real collector, wired for the end-to-end tests.

Servers serve the real captures of tests/data on 127.0.0.1; the collector writes into a
real lake. `ServerThread` runs servers on their own event loop so a collector
subprocess (the CLI) can be started, killed and restarted against them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pyarrow as pa

from algo_trade.collect.config import CollectConfig
from algo_trade.collect.pipeline import Collector
from algo_trade.exchanges.adapter import VenueSettings
from algo_trade.testing.replay import Faults, ReplayServer, force_order, load_capture
from tests.collect.refs import DATA
from tests.realdata import hyperliquid_main_dex_ctxs

BIN = DATA / "binance_usdm_btcusdt_20230404_head3000.gz"  # µs receive times
BYBIT = DATA / "bybit_v5_linear_btc_eth.jsonl.gz"
HL = DATA / "hyperliquid_btc_20250126.gz"
FAR_PAST, FAR_FUTURE = "2000-01-01", "2100-01-01"


def binance_frames(liquidations: int = 0) -> list[tuple[int, str]]:
    """The real Binance capture; with `liquidations`, documented-format forceOrder frames
    are interleaved (no real capture exists)."""
    frames = load_capture(BIN, ts_scale=1000)
    if liquidations:
        step = len(frames) // (liquidations + 1)
        out = []
        for i, (ts, raw) in enumerate(frames):
            out.append((ts, raw))
            k = i // step
            if i % step == step - 1 and k < liquidations:
                side = "SELL" if k % 2 else "BUY"
                out.append(
                    (
                        ts,
                        force_order(
                            "BTCUSDT", side, f"{28000 + k}.5", f"0.{k + 1:03d}", ts // 1_000_000
                        ),
                    )
                )
        frames = out
    return frames


_SERVERS: list[ReplayServer] = []  # every server the factories made (drive finds its own)


def _made(server: ReplayServer) -> ReplayServer:
    _SERVERS.append(server)
    del _SERVERS[:-16]  # a test's servers are among the newest
    return server


def binance_server(speed: float | None = None, faults: Faults | None = None, **kw) -> ReplayServer:
    return _made(
        ReplayServer(
            "binance",
            binance_frames(kw.pop("liquidations", 0)),
            rest={
                "/fapi/v1/exchangeInfo": (
                    DATA / "binance_exchangeinfo_20210722_subset.json"
                ).read_bytes()
            },
            speed=speed,
            faults=faults,
            **kw,
        )
    )


def hl_rest() -> dict[str, bytes]:
    meta = json.loads((DATA / "hyperliquid_meta_2023.json").read_text())
    ctxs = hyperliquid_main_dex_ctxs()
    return {
        "/info:meta": json.dumps(meta).encode(),
        "/info:metaAndAssetCtxs": json.dumps([meta, ctxs]).encode(),
    }


def bybit_server(speed: float | None = None, faults: Faults | None = None, **kw) -> ReplayServer:
    return _made(
        ReplayServer(
            "bybit",
            load_capture(BYBIT),
            rest={
                "/v5/market/instruments-info": (
                    DATA / "bybit_instruments_linear_20260809_subset.json"
                ).read_bytes()
            },
            speed=speed,
            faults=faults,
            **kw,
        )
    )


def hl_server(speed: float | None = None, faults: Faults | None = None, **kw) -> ReplayServer:
    return _made(
        ReplayServer(
            "hyperliquid", load_capture(HL), rest=hl_rest(), speed=speed, faults=faults, **kw
        )
    )


def sent_frames(server: ReplayServer, key: str) -> list[str]:
    """The frames of subscription `key` the server passed to clients, sent ones only."""
    n = server.n
    out = []
    for i in range(min(server.cursor.get(key, 0), n * server.loops)):
        _, k, raw = server.frames[i % n]
        if k == key and i not in server.faults.skip:
            out.append(raw)
    return out


def config(
    tmp: Path, servers: dict[str, ReplayServer], poll_s: float | None = None, **kw
) -> CollectConfig:
    """A collector config pointing each venue at its replay server (REST polls every
    `poll_s`, default: the adapter's)."""
    venues = {ex: VenueSettings(s.ws_url, s.rest_url, poll_s) for ex, s in servers.items()}
    base = dict(
        exchanges=tuple(servers),
        symbols=("BTC-USDT-PERP",),
        streams=("book", "funding", "trade"),
        home=tmp,
        venues=venues,
        flush_interval_s=0.2,
        backoff_min_s=0.05,
        backoff_max_s=0.5,
        fsync=False,
    )
    base.update(kw)
    return CollectConfig(**base)


async def drive(col: Collector, done, timeout_s: float = 60.0, read_all: bool = True) -> dict:
    """Run `col` until `done()` holds, then (with read_all) until the collector has read
    every websocket frame its replay servers sent, and stop it: stopping flushes what was
    read, so nothing sent is left behind, however loaded the machine (a condition, not a
    quiet window)."""
    task = asyncio.get_running_loop().create_task(col.run())
    t0 = time.monotonic()

    def check_time() -> None:
        if time.monotonic() - t0 > timeout_s:
            col.stop()
            raise AssertionError(f"not done after {timeout_s} s: {col.summary()}")

    while not done():
        if task.done():
            return task.result()
        check_time()
        await asyncio.sleep(0.05)
    if read_all:
        urls = {v.ws_url for v in col.cfg.venues.values()}
        # The newest server per URL: a stopped server of an earlier test may have had
        # the same (reused) port.
        servers = list({s.ws_url: s for s in _SERVERS if s.port and s.ws_url in urls}.values())
        while sum(v.frames_in for v in col.venues) < sum(s.frames_out for s in servers):
            if task.done():
                return task.result()
            try:
                check_time()
            except AssertionError:
                await asyncio.gather(task, return_exceptions=True)
                raise
            await asyncio.sleep(0.02)
    col.stop()
    return await task


def scan_all(store, kind: str, exchange: str, symbol: str) -> pa.Table:
    from algo_trade.errors import DataError

    try:
        batches = list(store.scan(kind, exchange, symbol, FAR_PAST, FAR_FUTURE))
    except DataError:
        return pa.table({})
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


class ServerThread:
    """Replay servers on a private event loop in a thread (for collector subprocesses)."""

    def __init__(self, *servers: ReplayServer) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        for s in self.servers:
            self.call(s.start())
        return self

    def call(self, coro):  # noqa: ANN001, ANN201 - runs a coroutine on the servers' loop
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def __exit__(self, *exc) -> None:
        for s in self.servers:
            self.call(s.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
