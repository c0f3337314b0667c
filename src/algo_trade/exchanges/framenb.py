"""Numba kernels that read fields straight out of raw JSON frames (bytes), many at once.

Kernel rules (as in every ``*_nb`` module): plain arrays in and out, no objects, no I/O.
Venue kernels (`binancenb`) use these to parse a whole block of frames in one call
instead of decoding each frame into Python objects: a depth diff's 30 levels become 30
rows of three arrays without 90 Python floats in between.

They read the shapes venues actually send: ``"key":value`` with optional spaces after
the colon, numbers as plain decimals, quoted (``"27500.10"``) or not. A decimal is
``mantissa / 10**decimals``: both are exact doubles (mantissa below 2**53, at most 22
decimals), so one IEEE division gives the correctly rounded value, bit for bit what
``float(text)`` gives. Anything else (exponents, longer mantissas) makes the reader fail and
the caller hands the frame to the venue's general parser, so a kernel never guesses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

POW10 = np.array([10.0**i for i in range(23)])
# A depth row flag beside schema.DEPTH_SNAPSHOT (1) that block parsers use for "the book
# was lost here" (a sequence gap): it tells the book sampler to stop until the next
# snapshot run, and such rows are never stored.
LOST_FLAG = 128
QUOTE, COLON, COMMA, LBRACK, RBRACK, SPACE = 34, 58, 44, 91, 93, 32


def pattern(text: str) -> np.ndarray:
    """A byte pattern for `find_nb` (e.g. ``pattern('"E":')``)."""
    return np.frombuffer(text.encode(), dtype=np.uint8).copy()


@njit(cache=True, nogil=True)
def find_nb(buf, lo, hi, pat):  # pragma: no cover - compiled
    """First position of pat (uint8[k]) in buf[lo:hi], or -1."""
    k = pat.shape[0]
    first = pat[0]
    i = lo
    end = hi - k
    while i <= end:
        if buf[i] == first:
            ok = True
            for j in range(1, k):
                if buf[i + j] != pat[j]:
                    ok = False
                    break
            if ok:
                return i
        i += 1
    return -1


@njit(cache=True, nogil=True)
def skip_ws_nb(buf, i, hi):  # pragma: no cover - compiled
    while i < hi and (buf[i] == SPACE or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
        i += 1
    return i


@njit(cache=True, nogil=True)
def value_nb(buf, lo, hi, key):  # pragma: no cover - compiled
    """Position of the value after key (a pattern such as ``"E":``), spaces skipped; -1."""
    p = find_nb(buf, lo, hi, key)
    if p < 0:
        return -1
    return skip_ws_nb(buf, p + key.shape[0], hi)


@njit(cache=True, nogil=True)
def value_from_nb(buf, start, lo, hi, key):  # pragma: no cover - compiled
    """`value_nb` searching from `start` first (fields usually come in the venue's
    order, so each search starts where the previous value ended), then from lo."""
    if start > lo:
        p = value_nb(buf, start, hi, key)
        if p >= 0:
            return p
    return value_nb(buf, lo, hi, key)


@njit(cache=True, nogil=True)
def int_nb(buf, i, hi):  # pragma: no cover - compiled
    """(value, end) of an integer at i (optionally quoted, optionally negative); end -1."""
    if i < 0 or i >= hi:
        return 0, -1
    quoted = buf[i] == QUOTE
    if quoted:
        i += 1
    neg = False
    if i < hi and buf[i] == 45:
        neg = True
        i += 1
    start = i
    v = 0
    while i < hi and 48 <= buf[i] <= 57:
        v = v * 10 + (buf[i] - 48)
        i += 1
    if i == start or i - start > 18:
        return 0, -1
    if quoted:
        if i >= hi or buf[i] != QUOTE:
            return 0, -1
        i += 1
    return (-v if neg else v), i


@njit(cache=True, nogil=True)
def dec_nb(buf, i, hi, pow10):  # pragma: no cover - compiled
    """(value, end) of a plain decimal at i (optionally quoted); end -1 if not one."""
    if i < 0 or i >= hi:
        return 0.0, -1
    quoted = buf[i] == QUOTE
    if quoted:
        i += 1
    neg = False
    if i < hi and buf[i] == 45:
        neg = True
        i += 1
    start = i
    mant = 0
    while i < hi and 48 <= buf[i] <= 57:
        mant = mant * 10 + (buf[i] - 48)
        i += 1
    n_int = i - start
    decimals = 0
    if i < hi and buf[i] == 46:
        i += 1
        f0 = i
        while i < hi and 48 <= buf[i] <= 57:
            mant = mant * 10 + (buf[i] - 48)
            i += 1
        decimals = i - f0
    # 18 digits cannot overflow int64; below 2**53 the mantissa is an exact double.
    if n_int + decimals == 0 or n_int + decimals > 18 or decimals > 22 or mant > 9007199254740992:
        return 0.0, -1
    if quoted:
        if i >= hi or buf[i] != QUOTE:
            return 0.0, -1
        i += 1
    elif i < hi and (buf[i] == 101 or buf[i] == 69):  # an exponent: not ours
        return 0.0, -1
    v = mant / pow10[decimals]
    return (-v if neg else v), i


@njit(cache=True, nogil=True)
def str_nb(buf, i, hi):  # pragma: no cover - compiled
    """(start, end) of the characters of a quoted string at i (no escapes); (-1, -1)."""
    if i < 0 or i >= hi or buf[i] != QUOTE:
        return -1, -1
    s = i + 1
    j = s
    while j < hi and buf[j] != QUOTE:
        if buf[j] == 92:  # a backslash escape: not a venue symbol or event name
            return -1, -1
        j += 1
    if j >= hi:
        return -1, -1
    return s, j


@njit(cache=True, nogil=True)
def equals_nb(buf, s, e, pat):  # pragma: no cover - compiled
    """buf[s:e] == pat."""
    if e - s != pat.shape[0]:
        return False
    for j in range(e - s):
        if buf[s + j] != pat[j]:
            return False
    return True


@njit(cache=True, nogil=True)
def match_symbol_nb(buf, s, e, names, offsets):  # pragma: no cover - compiled
    """Index of buf[s:e] among names (concatenated bytes, offsets int64[n+1]), or -1."""
    n = offsets.shape[0] - 1
    for k in range(n):
        a = offsets[k]
        b = offsets[k + 1]
        if b - a != e - s:
            continue
        same = True
        for j in range(b - a):
            if buf[s + j] != names[a + j]:
                same = False
                break
        if same:
            return k
    return -1


@njit(cache=True, nogil=True)
def levels_nb(buf, i, hi, side, pow10, out_px, out_qty, out_side, k):  # pragma: no cover
    """Read ``[[price, size, ...], ...]`` at i into out_*[k:]; returns (new k, end) or
    (k, -1) when it is not such a list or out is full. Extra fields in a level are skipped."""
    if i < 0 or i >= hi or buf[i] != LBRACK:
        return k, -1
    i = skip_ws_nb(buf, i + 1, hi)
    cap = out_px.shape[0]
    while i < hi:
        if buf[i] == RBRACK:
            return k, i + 1
        if buf[i] != LBRACK or k >= cap:
            return k, -1
        i = skip_ws_nb(buf, i + 1, hi)
        px, i = dec_nb(buf, i, hi, pow10)
        if i < 0:
            return k, -1
        i = skip_ws_nb(buf, i, hi)
        if i >= hi or buf[i] != COMMA:
            return k, -1
        i = skip_ws_nb(buf, i + 1, hi)
        qty, i = dec_nb(buf, i, hi, pow10)
        if i < 0:
            return k, -1
        depth = 0  # skip anything else in this level up to its closing bracket
        while i < hi:
            c = buf[i]
            if c == LBRACK:
                depth += 1
            elif c == RBRACK:
                if depth == 0:
                    break
                depth -= 1
            i += 1
        if i >= hi:
            return k, -1
        out_px[k] = px
        out_qty[k] = qty
        out_side[k] = side
        k += 1
        i = skip_ws_nb(buf, i + 1, hi)
        if i < hi and buf[i] == COMMA:
            i = skip_ws_nb(buf, i + 1, hi)
    return k, -1
