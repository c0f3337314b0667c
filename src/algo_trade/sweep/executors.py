"""Executors: where the batches of a sweep run.

- ``local`` (default): this process, ``workers`` threads (all cores by default). The
  engine's kernels release the GIL (``nogil=True``), so threads run trials in parallel
  while sharing the data and one indicator cache.
- ``process``: a pool of spawned processes; each maps the cache files by path. Kept for
  comparison (see benchmarks/bench_sweep.py): threads win here because they share one
  indicator cache.
- ``dask``: dask.distributed, an existing cluster (``cluster="tcp://host:8786"``) or a
  LocalCluster started for the run. Tasks carry the cache entry's path, never arrays.

Every executor yields ``(batch_index, result_dict)`` as batches finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from algo_trade.errors import ConfigError
from algo_trade.extras import require

EXECUTORS = ("local", "process", "dask")


def _local(
    fn: Callable, batches: Sequence[tuple], workers: int | None
) -> Iterator[tuple[int, dict]]:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    n = max(1, min(int(workers or os.cpu_count() or 1), len(batches)))
    if n == 1:
        for i, args in enumerate(batches):
            yield i, fn(*args)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sweep") as pool:
        futs = {pool.submit(fn, *args): i for i, args in enumerate(batches)}
        pending = set(futs)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futs.__getitem__):
                    yield futs[f], f.result()
        finally:
            for f in pending:  # stopped early (an error, Ctrl-C): drop what has not started
                f.cancel()


def _one_thread(fn: Callable, *args):
    import numba

    numba.set_num_threads(1)
    return fn(*args)


def _process(
    fn: Callable, batches: Sequence[tuple], workers: int | None
) -> Iterator[tuple[int, dict]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
        futs = {pool.submit(_one_thread, fn, *args): i for i, args in enumerate(batches)}
        pending = set(futs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield futs[f], f.result()


def dask_client(cluster: str | None, workers: int | None):
    """A client on `cluster`, or on a LocalCluster started now; raises ConfigError if unreachable."""
    require("dask")
    from distributed import Client, LocalCluster

    if cluster:
        try:
            return Client(cluster, timeout="5s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask cluster at {cluster}: {exc}") from None
    lc = LocalCluster(
        n_workers=workers or min(2, os.cpu_count() or 1),
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    )
    return Client(lc), lc


def _dask(
    fn: Callable, batches: Sequence[tuple], workers: int | None, cluster: str | None, client=None
):
    from distributed import as_completed

    own = client is None
    lc = None
    if own:
        client, lc = dask_client(cluster, workers)
    try:
        futs = [client.submit(_one_thread, fn, *args, pure=False) for args in batches]
        index = {f.key: i for i, f in enumerate(futs)}
        for f in as_completed(futs):
            yield index[f.key], f.result()
    finally:
        if own:
            client.close()
            if lc is not None:
                lc.close()


def run_batches(
    fn: Callable,
    batches: Sequence[tuple],
    executor: str = "local",
    workers: int | None = None,
    cluster: str | None = None,
    client=None,
) -> Iterator[tuple[int, dict]]:
    """Run fn(*args) for each batch on the chosen executor, yielding results as they finish."""
    if executor == "local":
        return _local(fn, batches, workers)
    if executor == "process":
        return _process(fn, batches, workers)
    if executor == "dask":
        return _dask(fn, batches, workers, cluster, client)
    raise ConfigError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
