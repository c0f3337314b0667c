"""Compaction while others read, and a compaction killed with SIGKILL at its two critical
points: readers never hit a vanished file and nothing is ever counted twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from algo_trade.store.lake import LakeStore
from tests.conftest import T0, make_trades

DAY = 86_400 * 10**9
SYM = "BTC-USDT-PERP"


def _lake(home, batches: int, per: int = 50) -> LakeStore:
    store = LakeStore(home, fsync=False)
    for i in range(batches):
        store.write("trade", make_trades(per, start_ns=T0 + i * per * 10**9, id0=1 + i * per))
    return store


def _rows(store) -> int:
    return sum(b.num_rows for b in store.scan("trade", "sim", SYM, T0, T0 + DAY))


READER = textwrap.dedent(
    """
    import os, sys
    from algo_trade.store.lake import LakeStore
    home, stop = sys.argv[1], sys.argv[2]
    store = LakeStore(home)
    counts, errors = [], 0
    while not os.path.exists(stop) or len(counts) < 5:
        try:
            n = 0
            for b in store.scan("trade", "sim", "BTC-USDT-PERP", {t0}, {t0} + 86_400 * 10**9):
                n += b.num_rows
            counts.append(n)
            counts.append(sum(s.rows for s in store.stats()))
        except Exception as exc:
            errors += 1
            print("ERROR", type(exc).__name__, exc, flush=True)
    print("COUNTS", " ".join(map(str, counts)), flush=True)
    """
).format(t0=T0)


def test_readers_never_see_a_vanished_file_or_a_double_count(tmp_path):
    home = tmp_path / "h"
    store = _lake(home, 30)
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(home), str(stop)], stdout=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    written = 30 * 50
    for i in range(30, 45):  # new rows and a compaction, over and over, while both read
        store.write("trade", make_trades(50, start_ns=T0 + i * 50 * 10**9, id0=1 + i * 50))
        written += 50
        report = store.compact()
        assert report["days"] == 1
    stop.touch()
    for p in readers:
        out, _ = p.communicate(timeout=300)
        assert "ERROR" not in out, out
        counts = [int(x) for x in out.split("COUNTS")[1].split()]
        assert counts and all(1500 <= c <= written for c in counts), counts
        assert all(c % 50 == 0 for c in counts)  # whole batches: never a file counted twice
    assert _rows(store) == written == sum(s.rows for s in store.stats())


KILL_AT = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from algo_trade.store.lake import LakeStore
    home, point = sys.argv[1], sys.argv[2]
    if point == "before-sources-removed":
        real = pathlib.Path.unlink
        def unlink(self, *a, **k):
            if self.name.endswith(".parquet"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, *a, **k)
        pathlib.Path.unlink = unlink
    else:  # before the merged file has its name
        real = os.replace
        def replace(src, dst, *a, **k):
            if str(dst).endswith(".parquet"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *a, **k)
        os.replace = replace
    LakeStore(home).compact()
    """
)


@pytest.mark.parametrize("point", ["before-sources-removed", "before-merged-named"])
def test_kill_9_mid_compact_never_double_counts(tmp_path, point):
    home = tmp_path / "h"
    store = _lake(home, 12)
    p = subprocess.run([sys.executable, "-c", KILL_AT, str(home), point], capture_output=True)
    assert p.returncode == -9, p.stderr
    day = next((home / "lake" / "trade" / "sim" / SYM).iterdir())
    names = os.listdir(day)
    assert ".compact.json" in names  # the crash left a compaction in flight
    assert _rows(store) == 600 and sum(s.rows for s in store.stats()) == 600
    t = pa.Table.from_batches(list(store.scan("trade", "sim", SYM, T0, T0 + DAY)))
    assert len(set(t.column("trade_id").to_pylist())) == 600
    store.compact()  # finishes (or rolls back and redoes) the interrupted compaction
    parquet = [n for n in os.listdir(day) if n.endswith(".parquet")]
    assert len(parquet) == 1 and ".compact.json" not in os.listdir(day)
    assert _rows(store) == 600 and sum(s.rows for s in store.stats()) == 600
