"""Numba kernel: parse plain numeric CSV lines (the shape of Tardis book snapshots) fast.

Kernel rules (as in every ``*_nb`` module): plain arrays in and out, no objects, no I/O.
A line is ``text,...,text,int,...,int,float,...,float``: the text fields must repeat the
first line's bytes (one exchange and symbol per block), integers are plain digits, and
floats are plain decimals (``-12.5``, ``3``, empty = NaN) with at most 15 significant
digits. A value is ``mantissa / 10**decimals``: both are exact doubles, so one IEEE
division gives the correctly rounded value, bit for bit what a full parser gives. Any
other line (exponents, quotes, other text, a wrong field count) stops the kernel and the
caller parses the block with pyarrow instead, so the kernel never guesses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK, FALLBACK = 0, 1
_POW10 = np.array([10.0**i for i in range(23)])


@njit(cache=True, nogil=True)
def parse_numeric_nb(buf, n_text, n_int, pow10, text_ref, out_int, out_f):  # pragma: no cover
    """Parse whole lines of `buf`.

    buf: uint8[n] bytes ending with a newline; n_text, n_int: count of leading text and
    integer fields; pow10: float64[23] powers of ten; text_ref: int64[n_text, 2] filled
    with (offset, length) of the first line's text fields; out_int: int64[n_int, rows];
    out_f: float64[n_float, rows] (rows >= lines in buf). Returns (lines parsed, status):
    status OK, or FALLBACK at the first line the kernel does not handle.
    """
    n = buf.shape[0]
    n_float = out_f.shape[0]
    n_num = n_int + n_float
    pos = 0
    row = 0
    while pos < n:
        if row >= out_f.shape[1]:
            return row, FALLBACK
        for f in range(n_text):
            if row == 0:
                text_ref[f, 0] = pos
                while pos < n and buf[pos] != 44 and buf[pos] != 10 and buf[pos] != 34:
                    pos += 1
                text_ref[f, 1] = pos - text_ref[f, 0]
            else:
                start = text_ref[f, 0]
                for j in range(text_ref[f, 1]):
                    if pos + j >= n or buf[pos + j] != buf[start + j]:
                        return row, FALLBACK
                pos += text_ref[f, 1]
            if pos >= n or buf[pos] != 44:
                return row, FALLBACK
            pos += 1
        for f in range(n_num):
            neg = False
            if pos < n and buf[pos] == 45:
                neg = True
                pos += 1
            mant = 0
            digits = 0
            frac = 0
            dot = False
            while pos < n:
                c = buf[pos]
                if 48 <= c <= 57:
                    if digits < 19:
                        mant = mant * 10 + (c - 48)
                    digits += 1
                    if dot:
                        frac += 1
                elif c == 46 and not dot and f >= n_int:
                    dot = True
                else:
                    break
                pos += 1
            if digits > 15 and f >= n_int or digits > 18:
                return row, FALLBACK
            if pos >= n:
                return row, FALLBACK
            c = buf[pos]
            if f == n_num - 1:
                if c == 13 and pos + 1 < n:
                    pos += 1
                    c = buf[pos]
                if c != 10:
                    return row, FALLBACK
            elif c != 44:
                return row, FALLBACK
            pos += 1
            if f < n_int:
                if digits == 0:
                    return row, FALLBACK
                out_int[f, row] = -mant if neg else mant
            elif digits == 0:
                if neg or dot:
                    return row, FALLBACK
                out_f[f - n_int, row] = np.nan
            else:
                v = mant / pow10[frac]
                out_f[f - n_int, row] = -v if neg else v
        row += 1
    return row, OK


def parse_numeric(
    block: bytes, n_text: int, n_int: int, n_float: int, rows: int
) -> tuple[list[bytes], np.ndarray, np.ndarray] | None:
    """(text values of the first line, int64[n_int, rows], float64[n_float, rows]) of a
    block of `rows` lines, or None when some line needs the full parser."""
    buf = np.frombuffer(block, dtype=np.uint8)
    text_ref = np.zeros((max(n_text, 1), 2), dtype=np.int64)
    out_int = np.empty((n_int, rows), dtype=np.int64)
    out_f = np.empty((n_float, rows), dtype=np.float64)
    done, status = parse_numeric_nb(buf, n_text, n_int, _POW10, text_ref, out_int, out_f)
    if status != OK or done != rows:
        return None
    texts = [block[int(a) : int(a) + int(b)] for a, b in text_ref[:n_text]]
    return texts, out_int, out_f
