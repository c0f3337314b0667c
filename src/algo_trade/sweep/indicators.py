"""Indicator cache: each distinct indicator (kind, input column, window) is computed once.

A sweep over fast=5..50 x slow=20..200 needs 20 moving averages, not 180. The cache keeps
computed arrays keyed by (name, input, window, data identity) and evicts the least
recently used when the total size passes ``max_bytes``; an array in use by a running
batch is held by that batch, so eviction never invalidates work in progress.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from algo_trade.strategies.indicators import ema_nb, sma_nb  # the engine's own definitions

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB


_FUNCS = {"sma": sma_nb, "ema": ema_nb}


class IndicatorCache:
    """LRU cache of indicator arrays with a memory bound; counts computations (for tests)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._busy: dict[Hashable, threading.Event] = {}
        self.computed = 0
        self.hits = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(
        self, data_id: Hashable, name: str, column: str, x: np.ndarray, window: int
    ) -> np.ndarray:
        key = (data_id, name, column, int(window))
        with self._lock:
            arr = self._hit_locked(key)
            if arr is not None:
                return arr
        arr = _FUNCS[name](np.asarray(x, dtype=np.float64), int(window))
        arr.setflags(write=False)
        with self._lock:
            self._put_locked(key, arr)
        return arr

    def _hit_locked(self, key: Hashable) -> np.ndarray | None:
        """The cached array (now the most recently used), or None; the lock is held."""
        arr = self._items.get(key)
        if arr is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return arr

    def _put_locked(self, key: Hashable, arr: np.ndarray) -> None:
        """Keep `arr` (unless a racing thread stored the key first), then evict the least
        recently used down to `max_bytes`; the lock is held."""
        if key not in self._items:
            self._items[key] = arr
            self._bytes += arr.nbytes
            self.computed += 1
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def get_or_compute(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The array under `key`, computed by `compute()` on a miss. A thread that misses a
        key another thread is computing waits for it: each key is computed once."""
        while True:
            with self._lock:
                arr = self._hit_locked(key)
                if arr is not None:
                    return arr
                busy = self._busy.get(key)
                if busy is None:
                    busy = self._busy[key] = threading.Event()
                    break
            busy.wait()  # computed by another thread: look again
        try:
            arr = compute()
            with self._lock:
                self._put_locked(key, arr)
        finally:
            with self._lock:
                self._busy.pop(key).set()
        return arr

    def scoped(self, data_id: Hashable) -> _Scoped:
        """This cache seen by one data set's runs (keys prefixed with its identity)."""
        return _Scoped(self, data_id)

    def matrix(
        self, data_id: Hashable, name: str, column: str, x: np.ndarray, windows: Sequence[int]
    ) -> np.ndarray:
        """Stack indicators for `windows` into a (len(windows), n) float64 matrix."""
        out = np.empty((len(windows), len(x)), dtype=np.float64)
        for i, w in enumerate(windows):
            out[i] = self.get(data_id, name, column, x, w)
        return out

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class _Scoped:
    """An `IndicatorCache` with keys prefixed by a data identity (what `Inputs` is given)."""

    def __init__(self, cache: IndicatorCache, data_id: Hashable) -> None:
        self.cache, self.data_id = cache, data_id

    def get_or_compute(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        return self.cache.get_or_compute((self.data_id, key), compute)


# One cache per process: batches of the same sweep running in this process (threads or a
# Dask worker's tasks) share it.
_PROCESS_CACHE: IndicatorCache | None = None


def process_cache(max_bytes: int = DEFAULT_MAX_BYTES) -> IndicatorCache:
    global _PROCESS_CACHE
    if _PROCESS_CACHE is None:
        _PROCESS_CACHE = IndicatorCache(max_bytes)
    _PROCESS_CACHE.max_bytes = int(max_bytes)
    return _PROCESS_CACHE
