"""The numeric CSV kernel, checked against pyarrow's parser on real and edge-case lines."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.csv as pv

from algo_trade.importers import csvnb
from tests.realdata import realdata


def pyarrow_parse(block: bytes, names: list[str]):
    return pv.read_csv(io.BytesIO(block), read_options=pv.ReadOptions(column_names=names))


def test_real_book_snapshot_bit_for_bit():
    raw = realdata("tardis_binance-futures_book_snapshot_25_BTCUSDT.csv").read_bytes()
    header, _, body = raw.partition(b"\n")
    names = header.decode().split(",")
    got = csvnb.parse_numeric(body, 2, 2, len(names) - 4, body.count(b"\n"))
    assert got is not None
    texts, ints, floats = got
    ref = pyarrow_parse(body, names)
    assert texts == [b"binance-futures", b"BTCUSDT"]
    np.testing.assert_array_equal(ints[0], ref.column("timestamp").to_numpy())
    np.testing.assert_array_equal(ints[1], ref.column("local_timestamp").to_numpy())
    for j, name in enumerate(names[4:]):
        assert np.array_equal(floats[j], ref.column(name).to_numpy()), name  # exact bits


def test_edge_values_and_fallbacks():
    block = b"x,Y,1,-0.5,\r\nx,Y,2,123456789012345,0.000001\n"
    texts, ints, floats = csvnb.parse_numeric(block, 2, 1, 2, 2)
    assert ints[0].tolist() == [1, 2]
    assert floats[0].tolist() == [-0.5, 123456789012345.0]
    assert np.isnan(floats[1][0]) and floats[1][1] == 1e-6
    # Lines the kernel leaves to pyarrow: exponents, 16+ digits, other text, quotes,
    # a missing field, a non-digit.
    for line in (
        b"x,Y,1,1e-3,2\n",
        b"x,Y,1,1234567890123456,2\n",
        b"x,Y,1,1,2\nz,Y,2,1,2\n",
        b'"x",Y,1,1,2\n',
        b"x,Y,1,1\n",
        b"x,Y,1,1,2a\n",
    ):
        rows = line.count(b"\n")
        assert csvnb.parse_numeric(line, 2, 1, 2, rows) is None, line
