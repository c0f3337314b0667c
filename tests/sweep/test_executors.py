"""Executors: local threads, a process pool and a real Dask LocalCluster give the same numbers,
and workers map the cache files by path instead of receiving arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algo_trade.data.cache import load_cached
from algo_trade.errors import ConfigError
from algo_trade.sweep.api import sweep

from .conftest import EXCHANGE, SYMBOL

GRID = {"fast": "5:30:5", "slow": "40:140:20"}  # 36 combinations, all fast < slow


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(
        a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True
    )


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=40)  # fmt: skip
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def _mapped_file(entry) -> tuple[str, str | None]:
    close = entry["bar"]["close"]
    return type(close).__name__, getattr(close, "filename", None)


@pytest.mark.integration
def test_dask_local_cluster_equals_local_and_maps_the_cache(bar_lake, dask_client):
    home = bar_lake.home
    entry = load_cached(bar_lake, ["bar"], EXCHANGE, SYMBOL, "2021-12-31", "2022-02-02", home)
    local = sweep(entry, "sma_cross", GRID, where="fast < slow", executor="local", workers=2)
    dask = sweep(entry, "sma_cross", GRID, where="fast < slow", executor="dask", client=dask_client)
    assert len(local.results) == 36
    _same(local.results, dask.results)
    assert dask.pbo == local.pbo and dask.dsr == local.dsr
    # each worker process maps the entry's own files: what a task receives is the path
    workers = list(dask_client.scheduler_info()["workers"])
    seen = [
        dask_client.submit(_mapped_file, entry, workers=[w], pure=False).result() for w in workers
    ]
    assert seen == [("memmap", entry["bar"]["close"].filename)] * len(workers)


@pytest.mark.integration
def test_dask_with_in_memory_bars_publishes_them_to_the_shared_cache(
    short_bars, tmp_path, dask_client
):
    local = sweep(short_bars, "sma_cross", GRID, executor="local")
    dask = sweep(short_bars, "sma_cross", GRID, executor="dask", client=dask_client, home=tmp_path)
    _same(local.results, dask.results)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")][
        0
    ].startswith("mem")
    with pytest.raises(ConfigError, match="home="):
        sweep(short_bars, "sma_cross", GRID, executor="dask", client=dask_client)


@pytest.mark.integration
def test_process_pool_equals_local(bar_lake):
    entry = load_cached(
        bar_lake, ["bar"], EXCHANGE, SYMBOL, "2021-12-31", "2022-02-02", bar_lake.home
    )
    local = sweep(entry, "sma_cross", GRID, where="fast < slow", executor="local", workers=1)
    procs = sweep(entry, "sma_cross", GRID, where="fast < slow", executor="process", workers=2)
    _same(local.results, procs.results)


def test_thread_count_does_not_change_results(short_bars):
    one = sweep(short_bars, "sma_cross", GRID, workers=1)
    two = sweep(short_bars, "sma_cross", GRID, workers=2)
    _same(one.results, two.results)


def test_unreachable_cluster_is_a_config_error(short_bars, tmp_path):
    with pytest.raises(ConfigError, match="cannot reach the Dask cluster at tcp://127.0.0.1:1"):
        sweep(
            short_bars,
            "sma_cross",
            GRID,
            executor="dask",
            cluster="tcp://127.0.0.1:1",
            home=tmp_path,
        )


def test_results_stream_as_batches_finish(short_bars, tmp_path):
    seen: list[int] = []
    res = sweep(
        short_bars,
        "sma_cross",
        GRID,
        where="fast < slow",
        home=tmp_path,
        on_batch=lambda i, n: seen.append(n),
    )
    assert sum(seen) == len(res.results) == 36 and len(seen) > 1
    parts = sorted((res.path / "results.parquet").glob("part-*.parquet"))
    assert len(parts) == len(seen)
    on_disk = pd.read_parquet(res.path / "results.parquet")
    assert sorted(on_disk["combo"]) == list(range(36))
    np.testing.assert_allclose(
        on_disk.sort_values("combo")["sharpe"].to_numpy(), res.results["sharpe"].to_numpy()
    )


@pytest.mark.integration
def test_a_lost_dask_worker_does_not_lose_or_change_results(short_bars, tmp_path):
    import os
    import signal

    from distributed import Client, LocalCluster

    grid = {"fast": "2:30", "slow": "40:200:10"}  # 29 x 17 = 493 combinations, many tasks
    local = sweep(short_bars, "sma_cross", grid)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=50) as lc, Client(lc) as client:  # fmt: skip
        victim = sorted(client.scheduler_info()["workers"])[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        killed = []

        def kill_once(i, n):
            if not killed:  # the first batch is back: take a worker down while the rest run
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        res = sweep(short_bars, "sma_cross", grid, executor="dask", client=client, home=tmp_path,
                    on_batch=kill_once)  # fmt: skip
        client.wait_for_workers(2, timeout=60)
        assert (
            pid not in client.run(os.getpid).values()
        )  # that worker is gone (its nanny made a new one)
    assert killed
    _same(local.results, res.results)
