"""The store contract: every store passes these tests unchanged.

A backend's test module subclasses `StoreContract` and provides a `store` fixture
returning an empty store.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.errors import AlgoTradeError
from algo_trade.store.base import read_table
from tests.conftest import SEC, T0, make_books, make_trades

DAY = 86_400 * SEC


class StoreContract:
    @pytest.fixture
    def store(self):  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def test_write_then_scan_roundtrips_exact_values(self, store):
        books = make_books(3_000, depth=5)
        res = store.write("book", books)
        assert res.written == 3_000 and res.duplicates == 0
        got = read_table(store, "book", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        assert got.num_rows == 3_000
        for c in ("ts", "bid_px_0", "ask_px_4", "bid_sz_3", "ask_sz_0"):
            np.testing.assert_array_equal(got.column(c).to_numpy(), books.column(c).to_numpy())
        assert got.column("symbol").to_pylist()[:1] == ["BTC-USDT-PERP"]

    def test_scan_is_half_open_and_ordered(self, store):
        store.write("book", make_books(100, depth=2))
        got = read_table(store, "book", "sim", "BTC-USDT-PERP", T0 + 10 * SEC, T0 + 20 * SEC)
        ts = got.column("ts").to_numpy()
        assert ts[0] == T0 + 10 * SEC and ts[-1] == T0 + 19 * SEC and len(ts) == 10
        assert np.all(np.diff(ts) > 0)

    def test_limit_descending_and_columns(self, store):
        store.write("book", make_books(500, depth=2))
        batches = list(
            store.scan(
                "book",
                "sim",
                "BTC-USDT-PERP",
                T0,
                T0 + DAY,
                columns=["ts", "bid_px_0"],
                limit=7,
                descending=True,
            )
        )
        t = pa.Table.from_batches(batches)
        assert t.column_names == ["ts", "bid_px_0"]
        assert t.column("ts").to_pylist() == [T0 + (499 - i) * SEC for i in range(7)]

    def test_latest_returns_newest_oldest_first(self, store):
        store.write("trade", make_trades(50))
        t = store.latest("trade", "sim", "BTC-USDT-PERP", 3)
        assert t.column("ts").to_pylist() == [T0 + 47 * SEC, T0 + 48 * SEC, T0 + 49 * SEC]

    def test_unbounded_or_reversed_read_is_refused(self, store):
        store.write("trade", make_trades(5))
        with pytest.raises(AlgoTradeError, match="time range"):
            list(store.scan("trade", "sim", "BTC-USDT-PERP", None, None))
        with pytest.raises(AlgoTradeError, match="after start"):
            list(store.scan("trade", "sim", "BTC-USDT-PERP", T0 + SEC, T0))

    def test_unknown_kind_and_symbol_are_clear_errors(self, store):
        with pytest.raises(AlgoTradeError, match="unknown kind"):
            store.write("candles", make_trades(1))
        store.write("trade", make_trades(5))
        with pytest.raises(AlgoTradeError, match="no trade data"):
            list(store.scan("trade", "sim", "DOGE-USDT-PERP", T0, T0 + DAY))

    def test_writes_are_idempotent(self, store):
        trades = make_trades(1_000)
        assert store.write("trade", trades).written == 1_000
        again = store.write("trade", trades)
        assert again.written == 0 and again.duplicates == 1_000
        # Overlapping batch: only the new half is stored.
        more = store.write("trade", make_trades(1_000, start_ns=T0 + 500 * SEC, id0=501))
        assert more.written == 500 and more.duplicates == 500
        got = read_table(store, "trade", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        assert got.num_rows == 1_500
        assert len(set(got.column("trade_id").to_pylist())) == 1_500

    def test_batches_spanning_days_and_symbols(self, store):
        a = make_books(300, start_ns=T0 + DAY - 100 * SEC, depth=3)
        b = make_books(50, depth=3, symbol="ETH-USDT-PERP")
        assert store.write("book", pa.concat_tables([a, b])).written == 350
        kinds = set(store.symbols("book"))
        assert kinds == {("book", "sim", "BTC-USDT-PERP"), ("book", "sim", "ETH-USDT-PERP")}
        got = read_table(store, "book", "sim", "BTC-USDT-PERP", T0, T0 + 3 * DAY)
        assert got.num_rows == 300
        stats = {(s.kind, s.symbol): s for s in store.stats()}
        s = stats[("book", "BTC-USDT-PERP")]
        assert s.rows == 300 and s.first_ts == T0 + DAY - 100 * SEC and s.bytes > 0

    def test_invalid_rows_are_rejected_with_reasons(self, store):
        books = make_books(10, depth=2)
        bid = books.column("bid_px_0").to_numpy().copy()
        bid[3] = books.column("ask_px_0").to_numpy()[3] + 1  # crossed
        sz = books.column("ask_sz_1").to_numpy().copy()
        sz[5] = -1.0
        books = books.set_column(
            books.schema.get_field_index("bid_px_0"), "bid_px_0", pa.array(bid)
        )
        books = books.set_column(books.schema.get_field_index("ask_sz_1"), "ask_sz_1", pa.array(sz))
        res = store.write("book", books)
        assert res.written == 8
        assert res.rejected == {
            "crossed book (best bid >= best ask)": 1,
            "negative or zero price, or negative size": 1,
        }

    def test_nan_padded_levels_roundtrip(self, store):
        books = make_books(20, depth=3)
        for side in ("bid", "ask"):
            for what in ("px", "sz"):
                name = f"{side}_{what}_2"
                v = books.column(name).to_numpy().copy()
                v[::2] = np.nan
                books = books.set_column(books.schema.get_field_index(name), name, pa.array(v))
        store.write("book", books)
        got = read_table(store, "book", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        np.testing.assert_array_equal(
            got.column("bid_px_2").to_numpy(), books.column("bid_px_2").to_numpy()
        )

    def test_values_that_are_not_decimals_survive(self, store):
        t = make_trades(100)
        price = np.linspace(1.0, 2.0, 100) * np.pi  # not decimal: stored as raw floats
        t = t.set_column(t.schema.get_field_index("price"), "price", pa.array(price))
        store.write("trade", t)
        got = read_table(store, "trade", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        np.testing.assert_array_equal(got.column("price").to_numpy(), price)

    def test_compact_keeps_every_distinct_row_once(self, store):
        for i in range(5):
            store.write("trade", make_trades(200, start_ns=T0 + i * 100 * SEC, id0=1 + i * 100))
        before = read_table(store, "trade", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        store.compact()
        after = read_table(store, "trade", "sim", "BTC-USDT-PERP", T0, T0 + DAY)
        assert after.num_rows == before.num_rows == 600
        assert sorted(after.column("trade_id").to_pylist(), key=int) == [
            str(i) for i in range(1, 601)
        ]
        assert np.all(np.diff(after.column("ts").to_numpy()) >= 0)

    def test_version_changes_when_data_changes(self, store):
        store.write("trade", make_trades(10))
        v1 = store.version("trade", "sim", "BTC-USDT-PERP")
        assert store.version("trade", "sim", "BTC-USDT-PERP") == v1
        store.write("trade", make_trades(10, start_ns=T0 + 100 * SEC, id0=100))
        assert store.version("trade", "sim", "BTC-USDT-PERP") != v1

    def test_every_kind_roundtrips(self, store):
        from algo_trade.simulator import simulate

        seen = set()
        for kind, _sym, table in simulate(
            ["BTC-USDT-PERP"], days=0.2, depth=4, seed=3, chunk_ns=10**15
        ):
            if table.num_rows == 0:
                continue
            seen.add(kind)
            res = store.write(kind, table)
            assert res.written == table.num_rows, (kind, res)
            got = read_table(store, kind, "sim", "BTC-USDT-PERP", T0, T0 + DAY)
            assert got.num_rows == table.num_rows
            for name in table.column_names:
                if name in ("exchange", "symbol"):
                    assert got.column(name).to_pylist() == table.column(name).to_pylist()
                else:
                    assert got.column(name).equals(table.column(name)), (kind, name)
        assert seen == {"book", "trade", "funding", "liquidation", "bar"}
