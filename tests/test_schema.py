from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.errors import DataError
from algo_trade.schema import (
    KINDS,
    book_columns,
    book_depth,
    book_schema,
    check_symbol,
    make_symbol,
    schema_for,
    validate,
)
from tests.conftest import make_books, make_trades


def test_book_schema_has_fixed_depth_best_first():
    s = book_schema(3)
    assert s.names[:3] == ["ts", "exchange", "symbol"]
    assert book_columns(2) == [
        "bid_px_0",
        "bid_px_1",
        "bid_sz_0",
        "bid_sz_1",
        "ask_px_0",
        "ask_px_1",
        "ask_sz_0",
        "ask_sz_1",
    ]
    assert book_depth(s) == 3
    assert s.field("ts").type == pa.int64()


def test_every_kind_has_a_schema():
    for kind in KINDS:
        assert schema_for(kind).field("ts").type == pa.int64()
    with pytest.raises(DataError, match="unknown kind 'tick'"):
        schema_for("tick")


def test_symbol_rule():
    assert make_symbol("btc", "usdt") == "BTC-USDT-PERP"
    assert make_symbol("eth", "usd", "") == "ETH-USD"
    assert check_symbol("BTC-USD-240628") == "BTC-USD-240628"
    for bad in ("BTCUSDT", "btc-usdt-perp", "BTC/USDT", "BTC-USDT-SWAP"):
        with pytest.raises(DataError, match="BASE-QUOTE-PERP"):
            check_symbol(bad)


def _set(t: pa.Table, name: str, values) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, pa.array(values))


def test_book_rules_count_each_reason():
    t = make_books(8, depth=2)
    ask0 = t.column("ask_px_0").to_numpy()
    bid = t.column("bid_px_0").to_numpy().copy()
    bid[0] = ask0[0]  # bid == ask: crossed
    bid[1] = np.nan  # missing best bid
    t = _set(t, "bid_px_0", bid)
    sz = t.column("bid_sz_1").to_numpy().copy()
    sz[2] = np.nan  # price without size
    t = _set(t, "bid_sz_1", sz)
    px = t.column("ask_px_1").to_numpy().copy()
    px[3] = -5.0  # negative price
    t = _set(t, "ask_px_1", px)
    v = validate("book", t)
    assert v.table.num_rows == 4
    assert v.rejected == {
        "missing best bid or ask": 1,
        "crossed book (best bid >= best ask)": 1,
        "negative or zero price, or negative size": 1,
        "level with a price but no size (or the reverse)": 1,
    }
    assert v.n_rejected == 4


def test_nan_and_null_timestamps_are_rejected():
    t = make_trades(4)
    ts = t.column("ts").to_numpy().astype(np.float64)
    ts[1] = np.nan
    t = t.set_column(0, "ts", pa.array(ts))
    v = validate("trade", t)
    assert v.rejected == {"missing ts": 1}
    assert v.table.column("ts").type == pa.int64()
    assert v.table.num_rows == 3


def test_wrong_types_and_missing_columns_are_errors():
    t = make_trades(3)
    with pytest.raises(DataError, match="missing columns trade_id"):
        validate("trade", t.drop_columns(["trade_id"]))
    bad = t.set_column(t.schema.get_field_index("price"), "price", pa.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="column 'price' has type string"):
        validate("trade", bad)


def test_trade_rules():
    t = make_trades(5)
    t = _set(t, "qty", [1.0, 0.0, 1.0, 1.0, 1.0])
    t = _set(t, "side", np.array([1, 1, 0, -1, 1], dtype=np.int8))
    v = validate("trade", t)
    assert v.rejected == {
        "negative or zero price or qty": 1,
        "side must be 1 (buy) or -1 (sell)": 1,
    }


def test_unnormalized_symbol_rejected():
    t = make_trades(3, symbol="BTC-USDT-PERP")
    t = t.set_column(2, "symbol", pa.array(["BTC-USDT-PERP", "btcusdt", "BTC-USDT-PERP"]))
    v = validate("trade", t)
    assert v.rejected == {"symbol not normalized (BASE-QUOTE-PERP)": 1}


def test_bar_rules():
    n = 3
    t = pa.table(
        {
            "ts": [1, 2, 3],
            "exchange": ["x"] * n,
            "symbol": ["BTC-USDT-PERP"] * n,
            "open": [10.0, 10.0, 10.0],
            "high": [11.0, 9.0, 11.0],
            "low": [9.0, 9.0, 9.0],
            "close": [10.5, 10.0, 10.0],
            "volume": [1.0, 1.0, -1.0],
        }
    )
    v = validate("bar", t)
    assert v.table.column("ts").to_pylist() == [1]
    assert v.rejected == {
        "inconsistent OHLC (high below open/close or low above)": 1,
        "negative or zero price, or negative volume": 1,
    }
