"""The data cache on the PostgreSQL store (a real server started by the test suite):
one read, then mapped; new rows in the database rebuild the entry."""

from __future__ import annotations

import numpy as np
import pytest

from algo_trade.data.cache import cache_entries, load_cached
from algo_trade.store.postgres import PostgresStore
from algo_trade.sweep.api import sweep
from tests.pg import PASSWORD

from .conftest import EXCHANGE, SYMBOL, bar_table
from .test_cache import CountingStore


@pytest.mark.integration
def test_postgres_entry_is_read_once_and_rebuilt_on_new_rows(pg_db, ftx_bars, tmp_path):  # noqa: F811
    inner = PostgresStore(pg_db)
    try:
        inner.write("bar", bar_table(ftx_bars.iloc[:5000]))
        store = CountingStore(inner)
        a = load_cached(store, ["bar"], EXCHANGE, SYMBOL, "2021-12-31", "2022-02-02", tmp_path)
        b = load_cached(store, ["bar"], EXCHANGE, SYMBOL, "2021-12-31", "2022-02-02", tmp_path)
        assert store.scans == 1 and a.path == b.path
        np.testing.assert_array_equal(b["bar"]["close"], ftx_bars["close"].to_numpy()[:5000])
        assert PASSWORD not in (a.path / "meta.json").read_text()  # the URL is kept redacted
        inner.write("bar", bar_table(ftx_bars.iloc[5000:7000]))
        c = load_cached(store, ["bar"], EXCHANGE, SYMBOL, "2021-12-31", "2022-02-02", tmp_path)
        assert store.scans == 2 and c.path != a.path and c.meta["rows"]["bar"] == 7000
        assert [e["entry"] for e in cache_entries(tmp_path)] == [c.path.name]
        from_db = sweep(c, "sma_cross", {"fast": [5, 10], "slow": [30, 60]}).results
        in_memory = sweep(
            ftx_bars.iloc[:7000], "sma_cross", {"fast": [5, 10], "slow": [30, 60]}
        ).results
        np.testing.assert_array_equal(from_db["sharpe"].to_numpy(), in_memory["sharpe"].to_numpy())
    finally:
        inner.close()
