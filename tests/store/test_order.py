"""One total order for every read (ts, then the kind's key), in the lake and in PostgreSQL,
plain or TimescaleDB, compressed or not: the same backtest gives the same result on all."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.schema import FUNDING, label_array
from algo_trade.store.base import read_table
from algo_trade.store.order import total_order
from algo_trade.store.postgres import InitOptions, PostgresStore
from tests.conftest import SEC, T0, make_trades
from tests.store.contract import DAY

BTC = "BTC-USDT-PERP"


def _funding(ts: list[int], settled: list[bool], rate: list[float]) -> pa.Table:
    n = len(ts)
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "exchange": label_array("sim", n),
            "symbol": label_array(BTC, n),
            "rate": pa.array(rate),
            "interval_h": pa.array([8.0] * n),
            "mark_px": pa.array([60_000.0] * n),
            "index_px": pa.array([60_000.0] * n),
            "next_ts": pa.array([T0 + 8 * 3600 * SEC] * n),
            "settled": pa.array(settled),
        },
        schema=FUNDING,
    )


def _trades_sharing_ts() -> pa.Table:
    """Five trades at two timestamps, written in an order that is not the read order."""
    t = make_trades(5)
    ts = pa.array([T0 + SEC, T0, T0 + SEC, T0, T0 + SEC], pa.int64())
    ids = pa.array(["100", "7", "9", "12", "10"])
    return t.set_column(0, "ts", ts).set_column(
        t.schema.get_field_index("trade_id"), "trade_id", ids
    )


def _check_reads(store) -> None:
    # Settled and predicted at the same ts, written settled first and in two batches.
    store.write("funding", _funding([T0, T0 + SEC], [True, False], [0.0003, 0.0001]))
    store.write("funding", _funding([T0], [False], [0.0002]))
    got = read_table(store, "funding", "sim", BTC, T0, T0 + DAY)
    assert got.column("settled").to_pylist() == [False, True, False]
    assert got.column("rate").to_pylist() == [0.0002, 0.0003, 0.0001]
    store.write("trade", _trades_sharing_ts())
    got = read_table(store, "trade", "sim", BTC, T0, T0 + DAY)
    # ts first; then ids as numbers (7 < 12, 9 < 10 < 100), not as text ("10" < "9").
    assert got.column("trade_id").to_pylist() == ["7", "12", "9", "10", "100"]
    back = pa.Table.from_batches(
        list(store.scan("trade", "sim", BTC, T0, T0 + DAY, descending=True))
    )
    assert back.column("trade_id").to_pylist() == ["100", "10", "9", "12", "7"]
    top = store.latest("trade", "sim", BTC, 2)
    assert top.column("trade_id").to_pylist() == ["10", "100"]


def test_total_order_permutation_sorts_only_ties():
    t = _trades_sharing_ts()
    order = total_order("trade", t)
    assert t.take(pa.array(order)).column("trade_id").to_pylist() == ["7", "12", "9", "10", "100"]
    assert total_order("trade", t.take(pa.array(order))) is None
    assert total_order("bar", t.slice(0, 1)) is None


def test_lake_reads_in_total_order(lake):
    _check_reads(lake)


@pytest.mark.integration
def test_plain_postgres_reads_in_total_order(pg_db):
    with PostgresStore(pg_db, init=InitOptions(timescale=False)) as store:
        _check_reads(store)


@pytest.mark.integration
def test_compressed_timescaledb_reads_in_total_order(ts_db):
    with PostgresStore(ts_db) as store:
        assert store.backend == "timescaledb"
        _check_reads(store)
        done = store.compress(older_than_ns=0)
        assert done["compressed_chunks"] >= 2  # funding and trade
        _check_reads(store)  # the writes are all duplicates now; reads come from compressed chunks


def _carry(store) -> tuple[float, int, list]:
    import algo_trade

    md = algo_trade.load(store, "sim", BTC, "2024-01-01", "2024-01-03", kinds=("bar", "funding"))
    res = algo_trade.backtest(md, "funding_carry", {"threshold_bps": 0.5})
    return (
        float(res.stats["final_equity"]),
        int(res.stats["trades"]),
        res.fills.to_numpy().tolist(),
    )


def _fill(store, tables: list[tuple[str, pa.Table]]) -> None:
    for kind, table in tables:
        # Funding written newest first: the store, not the writer, decides the read order.
        if kind == "funding":
            table = table.take(pa.array(np.arange(table.num_rows - 1, -1, -1)))
        store.write(kind, table)


@pytest.fixture(scope="module")
def market() -> list[tuple[str, pa.Table]]:
    from algo_trade.simulator import simulate

    out = [
        (kind, t)
        for kind, _sym, t in simulate([BTC], days=2, seed=11, start="2024-01-01")
        if kind in ("bar", "funding") and t.num_rows
    ]
    funding = pa.concat_tables([t for k, t in out if k == "funding"])
    ts = funding.column("ts").to_numpy()
    assert (np.diff(ts) == 0).any(), "the test needs settled/predicted pairs sharing a ts"
    return out


@pytest.mark.integration
def test_funding_carry_equal_on_lake_and_plain_postgres(market, lake, pg_db):
    _fill(lake, market)
    want = _carry(lake)
    assert want[1] >= 1
    with PostgresStore(pg_db, init=InitOptions(timescale=False)) as plain:
        _fill(plain, market)
        assert _carry(plain) == want


@pytest.mark.integration
def test_funding_carry_equal_on_lake_and_compressed_timescaledb(market, lake, ts_db):
    _fill(lake, market)
    want = _carry(lake)
    with PostgresStore(ts_db) as tsdb:
        _fill(tsdb, market)
        assert _carry(tsdb) == want
        assert tsdb.compress(older_than_ns=0)["compressed_chunks"] > 0
        assert _carry(tsdb) == want
