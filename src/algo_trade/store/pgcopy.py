"""PostgreSQL binary COPY, encoded from and decoded into NumPy columns in bulk.

Format (PostgreSQL docs, "COPY ... BINARY"): an 11-byte signature, int32 flags, int32
header-extension length; then per tuple an int16 field count and per field an int32
byte length (-1 for NULL) followed by the value in network byte order; an int16 -1
trailer. Everything is big-endian.

Kernel rules: compiled functions take and return plain arrays, have an ``_nb`` suffix
and are ``cache=True, nogil=True`` (a writer thread encodes while another talks to the
server). Encoding walks columns, not rows: every column kernel writes its field into
every row at that row's cursor, so the buffer is built in one pass per column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no extension
TRAILER = b"\xff\xff"

# Field type codes shared by the encoder and decoder.
# RAW: k float64 columns packed into one bytea per row, little-endian (book levels).
I8, F8, I2, BOOL, TEXT, I4, F8ARR, RAW = 0, 1, 2, 3, 4, 5, 6, 7
WIDTH = {I8: 8, F8: 8, I2: 2, BOOL: 1, I4: 4, TEXT: -1, F8ARR: -1, RAW: -1}
FLOAT8_OID = 701


# ---------------------------------------------------------------------- encoding kernels
# Byte loads and stores are written out as one expression per width: LLVM merges them
# into a single unaligned load/store plus a byte swap.
@njit(cache=True, nogil=True, inline="always")
def _st4_nb(buf, p, v):  # pragma: no cover - compiled
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _st8_nb(buf, p, v):  # pragma: no cover - compiled
    buf[p] = (v >> 56) & 0xFF
    buf[p + 1] = (v >> 48) & 0xFF
    buf[p + 2] = (v >> 40) & 0xFF
    buf[p + 3] = (v >> 32) & 0xFF
    buf[p + 4] = (v >> 24) & 0xFF
    buf[p + 5] = (v >> 16) & 0xFF
    buf[p + 6] = (v >> 8) & 0xFF
    buf[p + 7] = v & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _ld4_nb(buf, p):  # pragma: no cover - compiled
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@njit(cache=True, nogil=True, inline="always")
def _ld8_nb(buf, p):  # pragma: no cover - compiled
    return (
        (np.int64(buf[p]) << 56)
        | (np.int64(buf[p + 1]) << 48)
        | (np.int64(buf[p + 2]) << 40)
        | (np.int64(buf[p + 3]) << 32)
        | (np.int64(buf[p + 4]) << 24)
        | (np.int64(buf[p + 5]) << 16)
        | (np.int64(buf[p + 6]) << 8)
        | np.int64(buf[p + 7])
    )


@njit(cache=True, nogil=True)
def _encode_rows_nb(
    buf, start, codes, slot, fixed, fvalid, tidx, tvalid, toffs, tdata, arrs, raw
):  # pragma: no cover - compiled
    """Write n tuples row by row from `start` (rows are contiguous, so writes stream).

    codes: int64[k] field type; slot: int64[k] column of `fixed` (n, f) int64 value bits,
    of `tidx`/`tvalid` (n, t) for TEXT, or of `arrs` (a, n, d) float64 for F8ARR; `raw`
    (n, 8k) uint8 holds the one RAW column's rows, already little-endian.
    fvalid: (n, f) bool (False: NULL). toffs/tdata: all text columns' strings, with
    indices in tidx already offset into toffs. Returns the end offset.
    """
    n = fixed.shape[0]
    k = codes.shape[0]
    p = start
    for i in range(n):
        buf[p] = (k >> 8) & 0xFF
        buf[p + 1] = k & 0xFF
        p += 2
        for j in range(k):
            c = codes[j]
            s = slot[j]
            if c == 4:  # TEXT
                if not tvalid[i, s]:
                    _st4_nb(buf, p, -1)
                    p += 4
                    continue
                a = toffs[tidx[i, s]]
                ln = toffs[tidx[i, s] + 1] - a
                _st4_nb(buf, p, ln)
                p += 4
                buf[p : p + ln] = tdata[a : a + ln]
                p += ln
            elif c == 7:  # RAW
                w = raw.shape[1]
                _st4_nb(buf, p, w)
                p += 4
                buf[p : p + w] = raw[i]
                p += w
            elif c == 6:  # F8ARR
                d = arrs.shape[2]
                _st4_nb(buf, p, 20 + 12 * d)
                _st4_nb(buf, p + 4, 1)  # ndim
                _st4_nb(buf, p + 8, 0)  # no NULL elements
                _st4_nb(buf, p + 12, 701)  # element type float8
                _st4_nb(buf, p + 16, d)
                _st4_nb(buf, p + 20, 1)  # lower bound
                p += 24
                row = arrs[s, i].view(np.int64)
                for e in range(d):
                    _st4_nb(buf, p, 8)
                    _st8_nb(buf, p + 4, row[e])
                    p += 12
            elif not fvalid[i, s]:
                _st4_nb(buf, p, -1)
                p += 4
            elif c == 0 or c == 1:  # I8, F8
                _st4_nb(buf, p, 8)
                _st8_nb(buf, p + 4, fixed[i, s])
                p += 12
            elif c == 5:  # I4
                _st4_nb(buf, p, 4)
                _st4_nb(buf, p + 4, fixed[i, s])
                p += 8
            elif c == 2:  # I2
                _st4_nb(buf, p, 2)
                v = fixed[i, s]
                buf[p + 4] = (v >> 8) & 0xFF
                buf[p + 5] = v & 0xFF
                p += 6
            else:  # BOOL
                _st4_nb(buf, p, 1)
                buf[p + 4] = 1 if fixed[i, s] != 0 else 0
                p += 5
    return p


class Column:
    """One column to encode: a type code and its NumPy data (see `encode`)."""

    __slots__ = ("code", "values", "valid", "offs", "data")

    def __init__(
        self,
        code: int,
        values: np.ndarray,
        valid: np.ndarray | None = None,
        offs: np.ndarray | None = None,
        data: np.ndarray | None = None,
    ) -> None:
        self.code = code
        self.values = (
            values  # fixed: the values; TEXT: int64 indices into offs; F8ARR: float64[n, d]
        )
        self.valid = valid
        self.offs = offs
        self.data = data

    def sizes(self, n: int) -> np.ndarray | int:
        """Bytes each row spends on this field (length word included)."""
        if self.code == TEXT:
            lens = np.diff(self.offs)[self.values] + 4
            if self.valid is not None:
                lens = np.where(self.valid, lens, 4)
            return lens
        if self.code == F8ARR:
            return 4 + 20 + 12 * self.values.shape[1]
        if self.code == RAW:
            return 4 + 8 * self.values.shape[0]
        w = 4 + WIDTH[self.code]
        if self.valid is not None:
            return np.where(self.valid, w, 4)
        return w


def text_column(arr: pa.Array | pa.ChunkedArray) -> Column:
    """A TEXT column from an Arrow string or dictionary<string> array, without a Python loop."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = None
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(arr.type):
        idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        offs, data = _string_buffers(arr.dictionary)
        return Column(TEXT, idx, valid, offs, data)
    offs, data = _string_buffers(arr)
    return Column(TEXT, np.arange(len(arr), dtype=np.int64), valid, offs, data)


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    _, obuf, dbuf = arr.buffers()
    offs = np.frombuffer(obuf, dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.zeros(1, np.uint8)
    return offs.astype(np.int64), data


def fixed_column(code: int, values: np.ndarray, valid: np.ndarray | None = None) -> Column:
    """I8/F8/I4/I2/BOOL column from a NumPy array (floats keep NaN; nulls via `valid`)."""
    if code == F8:
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    else:
        bits = np.ascontiguousarray(values).astype(np.int64)
    return Column(code, bits, valid)


def encode(columns: list[Column], n: int) -> np.ndarray:
    """A complete binary COPY buffer (header, n tuples, trailer) as uint8[]."""
    total = len(HEADER) + len(TRAILER) + 2 * n
    codes = np.array([c.code for c in columns], dtype=np.int64)
    slot = np.zeros(len(columns), dtype=np.int64)
    fixed_cols, fvalid_cols, text_cols, arr_cols = [], [], [], []
    raw = np.zeros((1, 1), dtype=np.uint8)
    for j, c in enumerate(columns):
        sz = c.sizes(n)
        total += int(sz.sum()) if isinstance(sz, np.ndarray) else sz * n
        if c.code == TEXT:
            slot[j] = len(text_cols)
            text_cols.append(c)
        elif c.code == RAW:
            cols_f8 = np.ascontiguousarray(c.values, dtype=np.float64)
            rows = np.empty((n, cols_f8.shape[0]), dtype="<f8")
            rows_from_columns_nb(cols_f8, rows)
            raw = rows.view(np.uint8)
        elif c.code == F8ARR:
            slot[j] = len(arr_cols)
            arr_cols.append(np.ascontiguousarray(c.values, dtype=np.float64))
        else:
            slot[j] = len(fixed_cols)
            fixed_cols.append(c.values)
            fvalid_cols.append(c.valid)
    # Row-major staging: the kernel then reads and writes sequentially.
    fixed = np.empty((n, max(1, len(fixed_cols))), dtype=np.int64)
    fvalid = np.ones((n, max(1, len(fixed_cols))), dtype=np.bool_)
    for j, (v, ok) in enumerate(zip(fixed_cols, fvalid_cols, strict=True)):
        fixed[:, j] = v
        if ok is not None:
            fvalid[:, j] = ok
    tidx = np.zeros((n, max(1, len(text_cols))), dtype=np.int64)
    tvalid = np.ones((n, max(1, len(text_cols))), dtype=np.bool_)
    offs_parts, data_parts = [], []
    o_base = d_base = 0
    for j, c in enumerate(text_cols):
        tidx[:, j] = c.values + o_base
        if c.valid is not None:
            tvalid[:, j] = c.valid
        offs_parts.append(c.offs[:-1] + d_base)
        data_parts.append(c.data[: int(c.offs[-1])])
        o_base += len(c.offs) - 1
        d_base += int(c.offs[-1])
    offs_parts.append(np.array([d_base], dtype=np.int64))
    toffs = np.concatenate(offs_parts).astype(np.int64)
    tdata = np.concatenate(data_parts) if data_parts else np.zeros(1, np.uint8)
    if not len(tdata):
        tdata = np.zeros(1, np.uint8)
    arrs = np.stack(arr_cols) if arr_cols else np.zeros((1, n, 1), dtype=np.float64)
    buf = np.empty(total, dtype=np.uint8)
    buf[: len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
    end = _encode_rows_nb(
        buf, len(HEADER), codes, slot, fixed, fvalid, tidx, tvalid, toffs, tdata, arrs, raw
    )
    assert end == total - 2, (end, total)
    buf[-2:] = 0xFF
    return buf


def packed_column(columns: list[np.ndarray]) -> Column:
    """A RAW column: these float64 columns (equal length) packed into one bytea per row."""
    return Column(RAW, np.stack([np.asarray(c, dtype=np.float64) for c in columns]))


TILE = 64  # rows per tile of the transposes: 64 rows x 8 bytes = 8 cache lines per column


@njit(cache=True, nogil=True)
def rows_from_columns_nb(cols, out):  # pragma: no cover - compiled
    """cols: float64[k, n] -> out: float64[n, k]. Tiled: a tile's rows stay in cache while
    each column's run of TILE values is read in one stream (measured ~4x a plain loop)."""
    k, n = cols.shape
    for i0 in range(0, n, TILE):
        i1 = min(i0 + TILE, n)
        for j in range(k):
            for i in range(i0, i1):
                out[i, j] = cols[j, i]


@njit(cache=True, nogil=True)
def columns_from_rows_nb(rows, out):  # pragma: no cover - compiled
    """rows: float64[n, k] -> out: float64[k, n], tiled like `rows_from_columns_nb`."""
    n, k = rows.shape
    for i0 in range(0, n, TILE):
        i1 = min(i0 + TILE, n)
        for j in range(k):
            for i in range(i0, i1):
                out[j, i] = rows[i, j]


# ---------------------------------------------------------------------- book levels
# A book row's levels (4 x depth float64: bid_px, bid_sz, ask_px, ask_sz, best first) go in
# one bytea, in one of two layouts told apart by length (32*d is 0 mod 16, 16*d + 4 is 4):
# - packed, 16*d + 4 bytes: byte 0 the price scale kp, byte 1 the size scale ks (0..9),
#   two zero bytes, then 4*d little-endian int32 m, each value being exactly m / 10**k
#   (INT32_MIN: NaN). Book prices and sizes are decimals on a tick/lot grid, so nearly
#   every row packs: half the bytes of float64, so half the heap and WAL per row.
# - raw, 32*d bytes: the float64 values little-endian, for rows that do not pack exactly
#   (a value that is not such a decimal, -0.0, infinities, a NaN other than the usual one).
# The encoder checks every value: decoding m / 10**k gives back the very same double.
PACK_MAX_SCALE = 9
POW10 = np.array([10.0**k for k in range(PACK_MAX_SCALE + 1)])  # exact doubles
INT32_NAN = -(2**31)
_NAN_BITS = 0x7FF8000000000000  # numpy's NaN; other NaN payloads keep the raw layout
_M_MAX = 2.0**31 - 1


def packed_width(depth: int) -> int:
    """Bytes of a packed row's levels."""
    return 16 * depth + 4


@njit(cache=True, nogil=True, inline="always")
def _pack_group_nb(row, bits, d, g, s, m):  # pragma: no cover - compiled
    """Whether the values of group g (0: prices, 1: sizes) of this row are exact at scale
    s; fills their int32 mantissas into m."""
    p = POW10[s]
    for h in range(2):
        base = (2 * h + g) * d
        for j in range(base, base + d):
            b = bits[j]
            if b == _NAN_BITS:
                m[j] = INT32_NAN
                continue
            v = row[j]
            r = np.floor(v * p + 0.5)
            if not (abs(r) <= _M_MAX):  # also NaN and infinities
                return False
            if r / p != v or (v == 0.0 and b != 0):  # inexact, or -0.0
                return False
            m[j] = np.int64(r)
    return True


@njit(cache=True, nogil=True)
def pack_levels_nb(rows, d, out, offs):  # pragma: no cover - compiled
    """rows: float64[n, 4d] -> out[offs[i]:offs[i+1]] holds row i's levels bytea (packed,
    else raw). `out` needs n * 32d bytes at most. Returns the number of raw rows.
    Scales are tried from the previous row's first, so a steady series costs one try."""
    n = rows.shape[0]
    k = 4 * d
    allbits = rows.view(np.int64)
    m = np.zeros(k, dtype=np.int64)
    sc = np.zeros(2, dtype=np.int64)
    raw = 0
    p = 0
    for i in range(n):
        row = rows[i]
        bits = allbits[i]
        offs[i] = p
        packed = True
        for g in range(2):
            if _pack_group_nb(row, bits, d, g, sc[g], m):
                continue
            found = False
            for s in range(PACK_MAX_SCALE + 1):
                if s != sc[g] and _pack_group_nb(row, bits, d, g, s, m):
                    sc[g] = s
                    found = True
                    break
            if not found:
                packed = False
                break
        if packed:
            out[p] = sc[0]
            out[p + 1] = sc[1]
            out[p + 2] = 0
            out[p + 3] = 0
            p += 4
            for j in range(k):
                v = m[j]
                out[p] = v & 0xFF
                out[p + 1] = (v >> 8) & 0xFF
                out[p + 2] = (v >> 16) & 0xFF
                out[p + 3] = (v >> 24) & 0xFF
                p += 4
        else:
            raw += 1
            for j in range(k):
                v = bits[j]
                for b in range(8):
                    out[p + b] = (v >> (8 * b)) & 0xFF
                p += 8
    offs[n] = p
    return raw


def pack_levels(columns: np.ndarray, depth: int) -> Column:
    """float64[4*depth, n] level columns -> a bytea column (packed rows, raw where needed)."""
    k, n = columns.shape
    rows = np.empty((n, k), dtype=np.float64)
    rows_from_columns_nb(np.ascontiguousarray(columns, dtype=np.float64), rows)
    out = np.empty(n * 8 * k, dtype=np.uint8)
    offs = np.empty(n + 1, dtype=np.int64)
    pack_levels_nb(rows, depth, out, offs)
    return Column(TEXT, np.arange(n, dtype=np.int64), None, offs, out)


@njit(cache=True, nogil=True)
def _mantissas_nb(m, out):  # pragma: no cover - compiled
    """m: int32[n, 4d + 1] packed rows (header word first) -> out: float64[4d, n] holding the
    mantissas, tiled like `columns_from_rows_nb`. Returns how many are INT32_NAN."""
    n = m.shape[0]
    k = out.shape[0]
    nans = 0
    for i0 in range(0, n, TILE):
        i1 = min(i0 + TILE, n)
        for j in range(k):
            for i in range(i0, i1):
                v = m[i, j + 1]
                out[j, i] = v
                nans += v == INT32_NAN
    return nans


@njit(cache=True, nogil=True)
def _scale_nb(out, div, d, nans):  # pragma: no cover - compiled
    """out[j, i] /= div[group of j, i] in place (vectorized); INT32_NAN mantissas -> NaN."""
    k, n = out.shape
    for j in range(k):
        dv = div[(j // d) % 2]
        o = out[j]
        if nans:
            for i in range(n):
                if o[i] == INT32_NAN:
                    o[i] = np.nan
        for i in range(n):
            o[i] = o[i] / dv[i]


@njit(cache=True, nogil=True)
def _unpack_mixed_nb(blob, offs, d, out, out_bits):  # pragma: no cover - compiled
    """Rows of both layouts (blob[offs[i]:offs[i+1]]) -> out: float64[4d, n] (out_bits:
    the same memory as int64). Returns -1, or the index of the first malformed row."""
    n = offs.shape[0] - 1
    k = 4 * d
    wp = 4 * k + 4
    wr = 8 * k
    for i in range(n):
        ln = offs[i + 1] - offs[i]
        if ln == wp:
            if blob[offs[i]] > PACK_MAX_SCALE or blob[offs[i] + 1] > PACK_MAX_SCALE:
                return i
        elif ln != wr:
            return i
    for i in range(n):
        p = offs[i]
        if offs[i + 1] - p == wp:
            for j in range(k):
                q = p + 4 + 4 * j
                v = (
                    np.int64(blob[q])
                    | (np.int64(blob[q + 1]) << 8)
                    | (np.int64(blob[q + 2]) << 16)
                    | (np.int64(blob[q + 3]) << 24)
                )
                if v >= 2**31:
                    v -= 2**32
                if v == INT32_NAN:
                    out[j, i] = np.nan
                else:
                    out[j, i] = np.float64(v) / POW10[blob[p + (j // d) % 2]]
        else:
            for j in range(k):
                q = p + 8 * j
                v = np.int64(0)
                for b in range(8):
                    v |= np.int64(blob[q + b]) << (8 * b)
                out_bits[j, i] = v
    return -1


def unpack_levels(
    blob: np.ndarray, lengths: np.ndarray | None, n: int, depth: int
) -> tuple[np.ndarray, int]:
    """n rows' levels bytea joined in `blob` (uint8) -> (float64[4*depth, n], -1 or the
    index of the first malformed row). `lengths` (per row) is needed only when the total
    size is not n times one layout's width (a mix: the two widths cannot add up to that)."""
    k = 4 * depth
    out = np.empty((k, n), dtype=np.float64)
    wp = packed_width(depth)
    if len(blob) == n * 8 * k:  # all raw
        columns_from_rows_nb(blob.view("<f8").reshape(n, k), out)
        return out, -1
    if len(blob) == n * wp:  # all packed
        m = blob.view("<i4").reshape(n, k + 1)
        head = blob.reshape(n, wp)
        kp, ks = head[:, 0], head[:, 1]
        wrong = (
            (kp > PACK_MAX_SCALE) | (ks > PACK_MAX_SCALE) | (head[:, 2] != 0) | (head[:, 3] != 0)
        )
        if wrong.any():  # not our layout (a row changed outside): name the first
            return out, int(np.flatnonzero(wrong)[0])
        nans = _mantissas_nb(m, out)
        _scale_nb(out, np.stack([POW10[kp], POW10[ks]]), depth, nans)
        return out, -1
    if lengths is None:
        return out, 0
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offs[1:])
    if offs[-1] != len(blob):
        return out, 0
    return out, int(_unpack_mixed_nb(blob, offs, depth, out, out.view(np.int64)))


# ---------------------------------------------------------------------- decoding kernels
@njit(cache=True, nogil=True)
def _count_nb(buf, start, widths):  # pragma: no cover - compiled
    """Walk tuples from `start`; returns (rows, var bytes per field, end offset, done)."""
    k = widths.shape[0]
    var = np.zeros(k, dtype=np.int64)
    p = start
    n = 0
    end = buf.shape[0]
    done = False
    while p + 2 <= end:
        nf = (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
        if nf == 0xFFFF:
            done = True
            p += 2
            break
        p += 2
        for j in range(k):
            ln = _ld4_nb(buf, p)
            p += 4
            if ln < 0x80000000:  # not NULL
                if widths[j] < 0:
                    var[j] += ln
                p += ln
        n += 1
    return n, var, p, done


@njit(cache=True, nogil=True)
def _decode_nb(
    buf, start, n, widths, fixed, valid, var_offs, var_base, var_data
):  # pragma: no cover - compiled
    """Fill fixed[j, i] (native int64 bits), valid[j, i], and var_offs[j, i] / var_data."""
    k = widths.shape[0]
    cur = var_base.copy()
    p = start
    for i in range(n):
        p += 2
        for j in range(k):
            ln = _ld4_nb(buf, p)
            p += 4
            w = widths[j]
            if ln >= 0x80000000:  # NULL
                valid[j, i] = False
                if w < 0:
                    var_offs[j, i + 1] = cur[j] - var_base[j]
                continue
            valid[j, i] = True
            if w < 0:
                for b in range(ln):
                    var_data[cur[j] + b] = buf[p + b]
                cur[j] += ln
                var_offs[j, i + 1] = cur[j] - var_base[j]
            elif ln == 8:
                fixed[j, i] = _ld8_nb(buf, p)
            elif ln == 4:
                fixed[j, i] = np.int64(np.int32(_ld4_nb(buf, p)))
            elif ln == 2:
                fixed[j, i] = np.int64(np.int16((np.int64(buf[p]) << 8) | np.int64(buf[p + 1])))
            else:
                fixed[j, i] = np.int64(buf[p])
            p += ln


def decode(
    buf: np.ndarray | bytes | bytearray | memoryview,
    codes: list[int],
    names: list[str],
    with_header: bool,
) -> tuple[pa.RecordBatch, bool]:
    """Binary COPY tuples -> an Arrow record batch (types by code). Returns (batch, saw_trailer).

    `buf` holds whole tuples (a header first when `with_header`); several COPY data
    messages joined are fine.
    """
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    start = 0
    if with_header:
        if bytes(arr[:11]) != SIGNATURE:
            raise ValueError("not a PostgreSQL binary COPY stream")
        ext = int.from_bytes(bytes(arr[15:19]), "big")
        start = 19 + ext
    widths = np.array([WIDTH[c] for c in codes], dtype=np.int64)
    n, var, _end, done = _count_nb(arr, start, widths)
    k = len(codes)
    fixed = np.zeros((k, n), dtype=np.int64)
    valid = np.ones((k, n), dtype=np.bool_)
    var_offs = np.zeros((k, n + 1), dtype=np.int64)
    var_base = np.concatenate(([0], np.cumsum(var)[:-1])).astype(np.int64)
    var_data = np.empty(int(var.sum()) or 1, dtype=np.uint8)
    _decode_nb(arr, start, n, widths, fixed, valid, var_offs, var_base, var_data)
    arrays = []
    for j, code in enumerate(codes):
        ok = valid[j]
        mask = None if ok.all() else pa.py_buffer(np.packbits(ok, bitorder="little"))
        if code == F8:
            vals = fixed[j].view(np.float64)
            arrays.append(pa.Array.from_buffers(pa.float64(), n, [mask, pa.py_buffer(vals)]))
        elif code == I8:
            arrays.append(pa.Array.from_buffers(pa.int64(), n, [mask, pa.py_buffer(fixed[j])]))
        elif code == I4:
            arrays.append(
                pa.Array.from_buffers(
                    pa.int32(), n, [mask, pa.py_buffer(fixed[j].astype(np.int32))]
                )
            )
        elif code == I2:
            # int2 in the database holds int8 values (trade side).
            arrays.append(
                pa.Array.from_buffers(pa.int8(), n, [mask, pa.py_buffer(fixed[j].astype(np.int8))])
            )
        elif code == BOOL:
            bits = pa.py_buffer(np.packbits(fixed[j].astype(np.bool_), bitorder="little"))
            arrays.append(pa.Array.from_buffers(pa.bool_(), n, [mask, bits]))
        elif code == RAW:
            a, b = var_base[j], var_base[j] + var[j]
            arrays.append(
                pa.Array.from_buffers(
                    pa.large_binary(),
                    n,
                    [mask, pa.py_buffer(var_offs[j].copy()), pa.py_buffer(var_data[a:b])],
                )
            )
        elif code == TEXT:
            a, b = var_base[j], var_base[j] + var[j]
            offs = var_offs[j]
            if var[j] < 2**31:
                arrays.append(
                    pa.Array.from_buffers(
                        pa.string(),
                        n,
                        [mask, pa.py_buffer(offs.astype(np.int32)), pa.py_buffer(var_data[a:b])],
                    )
                )
            else:
                arrays.append(
                    pa.Array.from_buffers(
                        pa.large_string(),
                        n,
                        [mask, pa.py_buffer(offs), pa.py_buffer(var_data[a:b])],
                    )
                )
        else:
            raise ValueError(f"cannot decode field type {code}")
    return pa.RecordBatch.from_arrays(arrays, names=names), done
