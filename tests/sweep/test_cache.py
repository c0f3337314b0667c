"""Memory-mapped data cache: one store read, rebuilt on a new data version, shared across processes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from algo_trade.data.cache import cache_entries, clear_cache, load_cached, open_cached
from algo_trade.errors import DataError
from algo_trade.sweep.api import sweep

from .conftest import EXCHANGE, SYMBOL, bar_table

START, END = "2021-12-31", "2022-02-02"


class CountingStore:
    """The real store, with its scans counted (and logged to a file, across processes)."""

    def __init__(self, inner, log: Path | None = None) -> None:
        self.inner = inner
        self.scans = 0
        self.log = log

    def scan(self, *args, **kwargs):
        self.scans += 1
        if self.log is not None:
            with open(self.log, "a") as fh:
                fh.write(f"{args[0]}\n")
        return self.inner.scan(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_second_load_maps_the_entry_without_reading_the_store(bar_lake, ftx_bars):
    home = bar_lake.home
    store = CountingStore(bar_lake)
    a = load_cached(store, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    assert store.scans == 1
    b = load_cached(store, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    assert store.scans == 1  # a hit: no store read
    assert a.path == b.path and a.path.parent == home / "cache"
    close = b["bar"]["close"]
    assert isinstance(close, np.memmap) and not close.flags.writeable
    np.testing.assert_array_equal(close, ftx_bars["close"].to_numpy()[:10_000])
    np.testing.assert_array_equal(b["bar"]["ts"], ftx_bars["ts"].to_numpy()[:10_000])
    # a sweep on the entry gives what a sweep on the same bars in memory gives
    grid = {"fast": "5:15:5", "slow": "20:40:20"}
    r1 = sweep(b, "sma_cross", grid).results
    r2 = sweep(ftx_bars.iloc[:10_000], "sma_cross", grid).results
    cols = [c for c in r1.columns if c != "combo"]
    np.testing.assert_allclose(r1[cols].to_numpy(float), r2[cols].to_numpy(float), rtol=1e-12)
    # a different range is a different entry
    load_cached(store, ["bar"], EXCHANGE, SYMBOL, START, "2022-01-02", home)
    assert store.scans == 2
    assert len(cache_entries(home)) == 2


def test_new_data_in_the_lake_rebuilds_the_entry(bar_lake, ftx_bars):
    home = bar_lake.home
    store = CountingStore(bar_lake)
    old = load_cached(store, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    assert old.meta["rows"]["bar"] == 10_000
    bar_lake.write("bar", bar_table(ftx_bars.iloc[10_000:12_000]))
    new = load_cached(store, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    assert store.scans == 2  # stale: rebuilt from the store, not reused
    assert new.path != old.path and new.meta["version"] != old.meta["version"]
    assert new.meta["rows"]["bar"] == 12_000
    np.testing.assert_array_equal(new["bar"]["close"], ftx_bars["close"].to_numpy()[:12_000])
    assert not old.path.exists()  # the stale entry is removed ...
    assert (
        old["bar"]["close"][0] == ftx_bars["close"].iloc[0]
    )  # ... while a mapping of it still reads
    assert [e["entry"] for e in cache_entries(home)] == [new.path.name]


def test_ls_and_clear(bar_lake):
    home = bar_lake.home
    load_cached(bar_lake, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    (row,) = cache_entries(home)
    assert row["symbol"] == SYMBOL and row["rows"] == 10_000 and row["MB"] > 0
    rep = clear_cache(home)
    assert rep["removed"] == 1 and rep["bytes"] > 0
    assert cache_entries(home) == []


def test_no_data_is_a_data_error_and_leaves_nothing_behind(bar_lake):
    home = bar_lake.home
    with pytest.raises(DataError, match="no bar data"):
        load_cached(bar_lake, ["bar"], EXCHANGE, SYMBOL, "2023-01-01", "2023-02-01", home)
    assert cache_entries(home) == []
    assert not [p for p in (home / "cache").iterdir() if p.name.startswith(".tmp")]


def test_pickling_sends_the_path_and_the_receiver_maps_the_same_files(bar_lake):
    home = bar_lake.home
    entry = load_cached(bar_lake, ["bar"], EXCHANGE, SYMBOL, START, END, home)
    blob = pickle.dumps(entry)
    assert len(blob) < 1000  # 10,000 bars x 6 columns would be 480 kB
    again = pickle.loads(blob)
    assert again["bar"]["close"].filename == entry["bar"]["close"].filename
    assert Path(again["bar"]["close"].filename).parent.parent == entry.path


def test_concurrent_processes_build_once_and_share(bar_lake, tmp_path):
    home = bar_lake.home
    log = tmp_path / "scans.log"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from algo_trade.store.lake import LakeStore
        from algo_trade.data.cache import load_cached
        from algo_trade.sweep.api import sweep
        from tests.sweep.test_cache import CountingStore

        class SlowStore(CountingStore):
            def scan(self, *a, **k):
                time.sleep(1.0)  # widen the race: both processes ask while one builds
                return super().scan(*a, **k)

        store = SlowStore(LakeStore({str(home)!r}), log={str(log)!r})
        d = load_cached(store, ["bar"], {EXCHANGE!r}, {SYMBOL!r}, {START!r}, {END!r}, {str(home)!r})
        r = sweep(d, "sma_cross", {{"fast": "5:20:5", "slow": "30:60:30"}})
        print(json.dumps({{"path": str(d.path), "sharpe": r.results["sharpe"].tolist()}}))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]  # same entry, same numbers
    assert log.read_text().splitlines() == ["bar"]  # the store was read once between them
    assert len(cache_entries(home)) == 1
    assert open_cached(outs[0]["path"]).meta["rows"]["bar"] == 10_000
