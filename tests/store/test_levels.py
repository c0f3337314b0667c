"""The compact book-levels layout (schema 3) against hand-made rows and every older layout."""

from __future__ import annotations

import numpy as np
import pytest

from algo_trade.store import pgcopy
from algo_trade.store.postgres import levels


def _roundtrip(cols: np.ndarray, d: int) -> np.ndarray:
    col = levels.encode_levels(cols, d)
    lengths = np.diff(col.offs)
    out, bad = levels.decode_levels(col.data[: col.offs[-1]], lengths, d)
    assert bad == -1
    assert (out.view(np.int64) == cols.view(np.int64)).all()
    return lengths


def test_a_row_by_hand():
    # d = 2: bid 100.5 x 3, 100.3 x 0.25; ask 100.6 x 1, 100.9 x 12
    cols = np.array([[100.5], [100.3], [3.0], [0.25], [100.6], [100.9], [1.0], [12.0]])
    col = levels.encode_levels(cols, 2)
    row = bytes(col.data[: col.offs[-1]])
    # marker, scales (price 1, size 2), d, counts, zigzag(1005) = 2010 and zigzag(1006) = 2012
    assert row[:5] == bytes([0xA0, 0x12, 2, 2, 2])
    assert row[5:9] == bytes([0xDA, 0x0F, 0xDC, 0x0F])
    # bit runs (LSB first): bid gap zz(2)=4 in 3 bits; bid sizes 300, 25 in 9 bits;
    # ask gap zz(3)=6 in 3 bits; ask sizes 100, 1200 in 11 bits.
    bits = "".join(
        format(v, f"0{w}b")[::-1]
        for v, w in [
            (3, 6),
            (4, 3),
            (9, 6),
            (300, 9),
            (25, 9),
            (3, 6),
            (6, 3),
            (11, 6),
            (100, 11),
            (1200, 11),
        ]
    )
    bits += "0" * (-len(bits) % 8)
    want = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))
    assert row[9:] == want
    _roundtrip(cols, 2)


def test_random_decimals_nan_padding_and_odd_rows():
    rng = np.random.default_rng(7)
    for d in (1, 3, 20, 200):
        n = 400
        scale_p = rng.integers(0, 9, n)
        best = rng.integers(1, 10**7, n)
        gaps = rng.integers(1, 50, (n, d))
        bid = (best[:, None] - np.cumsum(gaps, axis=1) + gaps[:, :1]) / 10.0 ** scale_p[:, None]
        ask = (best[:, None] + np.cumsum(gaps, axis=1)) / 10.0 ** scale_p[:, None]
        sz = rng.integers(0, 10**9, (n, 2 * d)) / 10.0 ** rng.integers(0, 12, (n, 1))
        cols = np.concatenate([bid.T, sz[:, :d].T, ask.T, sz[:, d:].T])
        cols[:, 5] = cols[:, 5][::-1].copy()  # unsorted levels: negative gaps
        cols[d - 1, 7] = cols[2 * d - 1, 7] = np.nan  # a trailing empty bid level
        cols[3 * d - 1, 8] = cols[4 * d - 1, 8] = np.nan
        cols[d, 9] = 1 / 3  # not a decimal: raw
        cols[0, 11] = np.nan  # a hole that is not NaN padding: raw
        cols[d, 12] = -0.0  # raw
        cols[d, 13] = 2.0**60  # mantissa too large: raw
        lengths = _roundtrip(cols, d)
        raw = np.flatnonzero(lengths == 32 * d).tolist()
        assert set(raw) >= {9, 12, 13} and (d == 1 or 11 in raw)
        assert 7 not in raw and 8 not in raw
        assert (lengths[lengths != 32 * d] % 32 != 0).all()  # raw iff a multiple of 32
        assert (lengths[lengths != 32 * d] != 16 * d + 4).all()


def test_pages_mixing_all_layouts_and_malformed_rows():
    d = 3
    rng = np.random.default_rng(1)
    cols = np.round(rng.uniform(1, 1000, (4 * d, 9)), 2)
    raw = np.ascontiguousarray(cols[:, :3].T).view(np.uint8).reshape(-1)
    packed = pgcopy.pack_levels(cols[:, 3:6], d)
    compact = levels.encode_levels(cols[:, 6:], d)
    blob = np.concatenate([raw, packed.data[: packed.offs[-1]], compact.data[: compact.offs[-1]]])
    lengths = np.concatenate([[32 * d] * 3, np.diff(packed.offs), np.diff(compact.offs)])
    out, bad = levels.decode_levels(blob, lengths, d)
    assert bad == -1 and (out.view(np.int64) == cols.view(np.int64)).all()
    broken = blob.copy()
    broken[int(lengths[:6].sum())] = 0x55  # row 6 no longer starts with the marker
    assert levels.decode_levels(broken, lengths, d)[1] == 6
    short = lengths.copy()
    short[8] -= 3  # row 8 cut short
    assert levels.decode_levels(blob[:-3], short, d)[1] == 8
    assert levels.decode_levels(blob, lengths, d + 1)[1] == 0  # another depth


@pytest.mark.integration
def test_sql_reads_compact_rows(pg_db):  # noqa: F811
    import psycopg

    from algo_trade.store.base import read_table
    from algo_trade.store.postgres import PostgresStore
    from tests.conftest import T0, make_books

    books = make_books(50, depth=20)
    with PostgresStore(pg_db) as store:
        store.write("book", books)
        back = read_table(store, "book", "sim", "BTC-USDT-PERP", T0, T0 + 10**15)
    with psycopg.connect(pg_db) as conn:
        got = conn.execute(
            "SELECT algo_trade_levels_compact(levels) FROM book ORDER BY ts"
        ).fetchall()
    names = [f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "sz") for i in range(20)]
    want = np.stack([back.column(c).to_numpy() for c in names]).T
    assert (np.array([r[0] for r in got]) == want).all()
