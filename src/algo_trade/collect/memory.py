"""Memory the collector's allocators hold free goes back to the operating system.

glibc raises its mmap threshold the first time a large buffer is freed, so later large
buffers (Parquet and IPC writes, frame batches) come from its heaps, where freed holes
stay resident: ~15 MB of RSS over the first minutes of a run. `release_free_memory`
(malloc_trim + Arrow's pool, ~1 ms a call) returns them; the collector calls it every
TRIM_INTERVAL_S.
"""

from __future__ import annotations

import pyarrow as pa

TRIM_INTERVAL_S = 30.0


def _load_malloc_trim():  # noqa: ANN202 - a ctypes function or None
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Hand back to the OS what glibc malloc and Arrow's memory pool hold free."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
