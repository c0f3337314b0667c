"""Long-run memory: what the collector keeps per message, batch or file stays bounded.

A collector runs for weeks, so whatever it keeps per message, batch or written file
must be capped by a fixed size, not by the run's length (see docs/collector.md, "Memory over
long runs").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest

from algo_trade.collect import memory
from algo_trade.collect.pipeline import Collector
from algo_trade.collect.writer import Samples, Writer
from algo_trade.exchanges.binance import Normalizer
from algo_trade.store import lake
from algo_trade.store.lake import LakeStore
from algo_trade.testing.replay import ReplayServer, load_capture
from tests.collect.harness import (
    BIN,
    FAR_FUTURE,
    FAR_PAST,
    binance_server,
    config,
    drive,
    scan_all,
)
from tests.collect.refs import capture_lines

SYM = "BTC-USDT-PERP"


def _flushes(every: int = 400) -> list[dict]:
    """The real Binance capture through the Normalizer, drained every `every` messages
    (as the collector's flushes do): a list of {kind: table}."""
    n = Normalizer([SYM], depth=20)
    out = []
    for i, (ts, raw) in enumerate(capture_lines("binance_usdm_btcusdt_20230404.dat.gz", 1000)):
        n.feed(ts, raw)
        if i % every == every - 1:
            out.append(n.drain())
    out.append(n.drain())
    return [t for t in out if t]


def test_store_writes_keep_no_file_footers(tmp_path):
    """Writes read the keys of stored files they overlap (idempotence) without keeping
    their footers: a cached 20-level book footer is ~150 KB, and before this a
    collector's memory grew by one per overlapping write (up to 4,096 of them)."""
    flushes = _flushes()
    kinds = {k for f in flushes for k in f}
    assert {"book", "trade", "funding"} <= kinds
    store = LakeStore(tmp_path)
    cached0 = lake._file_info.cache_info().currsize
    rows = dups = 0
    for f in flushes:
        for kind, t in f.items():
            r = store.write(kind, t)
            rows += t.num_rows
            dups += r.duplicates
    files = len(list((tmp_path / "lake").rglob("*.parquet")))
    assert files >= 3 * 10
    # The same batches again (a spool replayed after a crash): every write overlaps
    # stored files and reads their keys, every row is found and skipped.
    again = 0
    for f in flushes:
        for kind, t in f.items():
            again += store.write(kind, t).duplicates
    assert again == rows
    assert len(list((tmp_path / "lake").rglob("*.parquet"))) == files
    assert lake._file_info.cache_info().currsize == cached0
    # Reads still cache footers (a scan opens each file once per process).
    books = scan_all(store, "book", "binance", SYM)
    assert books.num_rows > 0
    assert lake._file_info.cache_info().currsize > cached0
    assert dups == 0
    assert list(store.scan("trade", "binance", SYM, FAR_PAST, FAR_FUTURE))


def test_normalizer_state_stays_bounded_over_many_loops():
    """Five loops of the real capture (times, update ids and trade ids moved forward each
    loop, as the benchmark's replay server does): books, buffers, events and counters
    keep the size they had after the first loop."""
    srv = ReplayServer("binance", load_capture(BIN, ts_scale=1000), shift_loops=True)
    snapshot = next(raw for _, raw in load_capture(BIN, ts_scale=1000) if "lastUpdateId" in raw)
    n = Normalizer([SYM], depth=20)
    n.feed(srv.frames[0][0], snapshot)
    sizes = []
    rows = 0
    for loop in range(5):
        for i, (ts, _key, raw) in enumerate(srv.frames):
            n.feed(ts + loop * srv._span_ns, srv.shift.frame(i, loop) if loop else raw)
            if i % 500 == 499:
                rows += sum(t.num_rows for t in n.drain().values())
                n.drain_events()
        rows += sum(t.num_rows for t in n.drain().values())
        n.drain_events()
        book = n.books[SYM]
        assert book.synced and n.counters.resyncs == 0 and n.counters.malformed == 0
        sizes.append((len(book.bids), len(book.asks)))
        assert n.pending_rows() == 0 and not n._events and not n._open
        assert not n._buf[SYM] and set(n.counters.by_stream) <= {
            "book",
            "trade",
            "funding",
            "ignored",
            "snapshot",
        }
    assert n.counters.messages >= 5 * len(srv.frames) and rows > 5 * 500
    first_bids, first_asks = sizes[0]
    assert all(b <= first_bids * 1.2 and a <= first_asks * 1.2 for b, a in sizes)


def test_lag_samples_are_a_fixed_window():
    s = Samples(1000)
    nbytes = s._a.nbytes
    for v in range(3500):
        s.append(v)
    assert len(s) == 1000
    assert s._a.nbytes == nbytes == 8000
    assert sorted(s.values().tolist()) == list(range(2500, 3500))
    # A window of 200k batches holds 1.6 MB however long the run.
    w = Writer(store=None, spool=None)
    assert w.lags_ns._a.nbytes == w.spool_lags_ns._a.nbytes == 200_000 * 8
    assert len(w.lags_ns) == 0 and w.lags_ns.values().dtype == np.int64


_FRAGMENT = """
import ctypes, sys
from algo_trade.collect import memory

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1])

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
# What glibc does after the first large free: large buffers come from its heap, not mmap.
libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
bufs = [libc.malloc(512 << 10) for _ in range(160)]  # 80 MB, touched
for b in bufs:
    ctypes.memset(b, 1, 512 << 10)
for b in bufs[:-1:2]:
    libc.free(b)  # holes between live buffers: free, but still resident
before = rss_kb()
memory.release_free_memory()
print(before, rss_kb())
"""


@pytest.mark.skipif(memory._MALLOC_TRIM is None, reason="glibc only (malloc_trim)")
def test_release_free_memory_returns_freed_heap_to_the_os():
    """Freed holes in glibc's heap stay resident until trimmed; the collector trims every
    `trim_interval_s`. A fresh interpreter: the allocator setting must not leak out."""
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after = int(out[0]), int(out[1])
    # 80 buffers of 512 KB (40 MB) were freed between live ones: most of it goes back.
    assert before - after > 30 * 1024


def test_collector_trims_memory_while_running(tmp_path):
    """The trim task runs during collection (here every 0.2 s instead of 30 s)."""

    async def main():
        srv = binance_server(speed=20)
        await srv.start()
        col = Collector(
            config(tmp_path, {"binance": srv}, trim_interval_s=0.2), LakeStore(tmp_path)
        )
        summary = await drive(col, lambda: col.memory_trims >= 3 and col.writer.written)
        await srv.stop()
        return col, summary

    col, summary = asyncio.run(main())
    assert col.memory_trims >= 3
    assert summary["rows_written"] > 0 and summary["left_in_spool"] == 0
