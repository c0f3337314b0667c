"""Lossless scaled-integer encoding of decimal prices and sizes for Parquet.

Exchange prices and sizes are decimals (tick and lot multiples). Stored as float64
they compress poorly; stored as ``round(x * 10**k)`` int64 with Parquet's
DELTA_BINARY_PACKED encoding they take ~1-2 bytes a value and decode 4x faster.
The encoding is exact: ``n / 10**k`` (one correctly rounded division) gives back the
very double that was parsed from the decimal. Columns where no k <= MAX_SCALE is
exact stay float64. NaN is stored as null.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

MAX_SCALE = 10
_LIMIT = float(2**53)


@njit(cache=True, nogil=True)
def encode_nb(x, scale):  # pragma: no cover - compiled
    """x: float64[n]; scale: 10**k. Returns (int64[n], valid bool[n], exact bool).

    No early exit: a branch-free loop lets LLVM vectorize it (rint, mul, div).
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.int64)
    valid = np.empty(n, dtype=np.bool_)
    bad = False
    for i in range(n):
        v = x[i]
        ok = v == v
        y = np.rint(v * scale) if ok else 0.0
        bad |= ok and (abs(y) >= 9007199254740992.0 or y / scale != v)
        out[i] = np.int64(y)
        valid[i] = ok
    return out, valid, not bad


@njit(cache=True, nogil=True)
def decode_nb(data, bits, offset, has_bits, scale, out):  # pragma: no cover - compiled
    """data: int64[n]; bits: uint8 validity bitmap (Arrow, LSB first) at bit `offset`."""
    n = out.shape[0]
    for i in range(n):
        if has_bits:
            j = i + offset
            if not (bits[j >> 3] >> (j & 7)) & 1:
                out[i] = np.nan
                continue
        out[i] = data[i] / scale
    return out


def encode_group(columns: list[np.ndarray]) -> tuple[int, list[pa.Array]] | None:
    """Encode columns that share one scale (e.g. all book prices).

    Returns (k, int64 arrays) for the smallest exact k, or None to keep float64.
    """
    sample = np.concatenate([c[:512] for c in columns])
    sample = sample[~np.isnan(sample)]
    for k in range(MAX_SCALE + 1):
        p = 10.0**k
        y = np.rint(sample * p)
        if not (np.all(np.abs(y) < _LIMIT) and np.all(y / p == sample)):
            continue
        # The sample passed; encode everything (one compiled pass a column).
        arrays = []
        for c in columns:
            ints, valid, exact = encode_nb(np.ascontiguousarray(c, dtype=np.float64), p)
            if not exact:
                break
            arrays.append(_int_array(ints, valid))
        else:
            return k, arrays
    return None


def _int_array(ints: np.ndarray, valid: np.ndarray) -> pa.Array:
    if valid.all():
        return pa.array(ints)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), len(ints), [bitmap, pa.py_buffer(ints)])


def decode_column(arr: pa.Array | pa.ChunkedArray, k: int) -> np.ndarray:
    """int64 Arrow array scaled by 10**k -> float64 NumPy array with NaN for nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    out = np.empty(n, dtype=np.float64)
    validity, data = arr.buffers()
    ints = np.frombuffer(data, dtype=np.int64, count=n, offset=arr.offset * 8)
    if validity is None or arr.null_count == 0:
        np.divide(ints, 10.0**k, out=out)
        return out
    bits = np.frombuffer(validity, dtype=np.uint8)
    return decode_nb(ints, bits, arr.offset, True, 10.0**k, out)
