from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.errors import StoreError
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore
from tests.conftest import SEC, T0, make_books
from tests.store.contract import DAY, StoreContract


class TestLakeContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return LakeStore(tmp_path / "home")


def test_files_are_partitioned_and_prices_stored_as_scaled_ints(lake):
    lake.write("book", make_books(100, depth=2))
    day_dir = lake.root / "book" / "sim" / "BTC-USDT-PERP" / "2024-01-01"
    files = [f for f in os.listdir(day_dir) if f.endswith(".parquet")]
    assert len(files) == 1
    import pyarrow.parquet as pq

    schema = pq.read_schema(day_dir / files[0])
    assert schema.field("bid_px_0").type == pa.int64()  # exact decimal encoding
    assert "symbol" not in schema.names  # it is in the path


def test_depth_is_fixed_per_dataset(lake):
    lake.write("book", make_books(10, depth=2))
    with pytest.raises(Exception, match="levels"):
        lake.write("book", make_books(10, start_ns=T0 + DAY, depth=3))


def test_home_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="cannot create the data home"):
        LakeStore(f)


_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from algo_trade.store.lake import LakeStore
    from tests.conftest import make_books, SEC, T0
    store = LakeStore({home!r}, fsync=False)
    for i in range({n}):
        store.write("book", make_books(1000, start_ns=T0 + i * 1000 * SEC, depth=20, seed=i))
        print(i, flush=True)
    {tail}
    """
)


def _spawn_writer(home, n, tail=""):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = _WRITER.format(root=root, home=str(home), n=n, tail=tail)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root
    )


@pytest.mark.integration
def test_reader_scans_while_another_process_writes(tmp_path):
    home = tmp_path / "home"
    LakeStore(home)
    writer = _spawn_writer(home, 40)
    reader = LakeStore(home)
    seen = []
    try:
        while writer.poll() is None:
            try:
                t = read_table(reader, "book", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
            except StoreError:  # dataset not created yet
                continue
            ts = t.column("ts").to_numpy()
            # Whatever a reader sees is whole files: complete batches of 1000 rows, in order, no gaps.
            assert t.num_rows % 1000 == 0
            assert np.array_equal(ts, T0 + np.arange(len(ts), dtype=np.int64) * SEC)
            seen.append(t.num_rows)
    finally:
        writer.wait(timeout=60)
        writer.stdout.close()
    assert writer.returncode == 0
    assert read_table(reader, "book", "sim", "BTC-USDT-PERP", T0, T0 + DAY).num_rows == 40_000
    assert len(seen) > 1


@pytest.mark.integration
def test_killed_writer_leaves_no_visible_partial_file(tmp_path):
    home = tmp_path / "home"
    # The writer stores 3 batches, then is killed in the middle of writing a huge one.
    tail = (
        "big = make_books(2_000_000, start_ns=T0 + 3000 * SEC, depth=20, seed=9)\n"
        "print('big', flush=True)\n"
        "store.write('book', big)\n"
    )
    writer = _spawn_writer(home, 3, tail)
    lines = []
    for line in writer.stdout:
        lines.append(line.strip())
        if line.strip() == "big":
            break
    # Wait until its temporary file exists, then kill -9 while it is being written.
    day_dir = home / "lake" / "book" / "sim" / "BTC-USDT-PERP" / "2024-01-01"
    deadline = time.time() + 60
    saw_tmp = False
    while time.time() < deadline and not saw_tmp:
        saw_tmp = any(n.startswith(".tmp-") for n in os.listdir(day_dir))
        time.sleep(0.002)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    store = LakeStore(home)
    t = read_table(store, "book", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
    assert t.num_rows == 3_000  # only the completed batches are visible
    assert saw_tmp
    report = store.compact()
    assert report["temp_removed"] >= 1  # one per file being written in parallel
    assert not any(n.startswith(".tmp-") for n in os.listdir(day_dir))


def test_footer_cache_is_bounded_by_bytes(tmp_path, monkeypatch):
    """Parsed footers are kept by size, not count: with a cap of about three footers,
    reading many files keeps at most the cap, the newest ones, and scans stay correct."""
    from algo_trade.store import lake

    assert isinstance(lake._file_info, lake._FooterCache)  # the store's reads go through it
    store = LakeStore(tmp_path)
    books = [make_books(100, start_ns=T0 + d * DAY, seed=d) for d in range(8)]
    for t in books:  # a day each: a file each
        store.write("book", t)
    files = sorted(str(p) for p in (tmp_path / "lake").rglob("*.parquet"))
    assert len(files) >= 8
    one = lake._read_file_info(files[0]).metadata.serialized_size
    cache = lake._FooterCache(lake._read_file_info, max_bytes=3 * one + one // 2)
    monkeypatch.setattr(lake, "_file_info", cache)
    for f in files:
        assert cache(f).path == f
    info = cache.cache_info()
    assert info.nbytes <= cache.max_bytes and 1 <= info.currsize <= 4
    assert cache(files[-1]) is cache(files[-1])  # the newest is still held
    got = sum(b.num_rows for b in store.scan("book", "sim", "BTC-USDT-PERP", T0, T0 + 9 * DAY))
    assert got == 800
    assert cache.cache_info().nbytes <= cache.max_bytes
