"""PostgreSQL store against a real server: the shared contract, plus what only a server has.

The server is a throwaway cluster started by `tests.pg` (or ALGO_TRADE_TEST_DB).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import psycopg
import psycopg.sql
import pyarrow as pa
import pytest

from algo_trade.cli.main import main
from algo_trade.errors import DataError, StoreError
from algo_trade.store import pgcopy
from algo_trade.store.base import read_table
from algo_trade.store.postgres import InitOptions, PostgresStore, migrate
from tests.conftest import SEC, T0, make_books, make_trades
from tests.pg import PASSWORD, create_database
from tests.store.contract import DAY, StoreContract

pytestmark = pytest.mark.integration
BTC = "BTC-USDT-PERP"


@pytest.fixture
def pg(pg_db):  # noqa: F811
    store = PostgresStore(pg_db)
    yield store
    store.close()


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def store(self, pg_db):  # noqa: F811
        store = PostgresStore(pg_db)
        yield store
        store.close()


def _count(url: str, sql: str, params=()) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


# ---------------------------------------------------------------------- schema and migrations
def test_migrations_are_idempotent_and_recorded(pg_db):  # noqa: F811
    with psycopg.connect(pg_db) as conn:
        first = migrate(conn)
        second = migrate(conn)
        assert first.applied == [1, 2, 3] and second.applied == []
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 3
    store = PostgresStore(pg_db)  # opening a current schema changes nothing either
    store.close()
    assert _count(pg_db, "SELECT count(*) FROM schema_version") == 3


def test_plain_postgres_says_which_timescale_features_are_off(pg, pg_db):  # noqa: F811
    if pg.backend == "timescaledb":
        pytest.skip("this server has TimescaleDB")
    (note,) = pg.init_report.notes
    assert "TimescaleDB" in note and "compression" in note and "hypertables" in note
    # Same tables and indexes as with TimescaleDB: the key and the (symbol, exchange, ts) index.
    with psycopg.connect(pg_db) as conn:
        idx = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trade'"
            ).fetchall()
        )
    assert "(symbol, exchange, ts)" in idx["trade_symbol_exchange_ts"]
    assert "UNIQUE" in idx["trade_key"]


def test_newer_schema_is_refused(pg_db):  # noqa: F811
    PostgresStore(pg_db).close()
    with psycopg.connect(pg_db) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (99, 'future')")
    with pytest.raises(StoreError, match="version 99, newer than this algo-trade knows"):
        PostgresStore(pg_db)


def test_a_foreign_table_in_the_way_is_refused(pg_db):  # noqa: F811
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE TABLE book (id int)")
    with pytest.raises(
        StoreError, match="table book already exists and was not created by algo-trade"
    ):
        PostgresStore(pg_db)
    assert (
        _count(pg_db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'trade'")
        == 0
    )


def test_daily_partitions_are_created_ahead(pg, pg_db):  # noqa: F811
    if pg.backend != "partitions":
        pytest.skip("TimescaleDB manages chunks itself")
    pg.write("book", make_books(100, start_ns=T0 + DAY - 50 * SEC, depth=2))  # spans two days
    with psycopg.connect(pg_db) as conn:
        names = sorted(
            r[0]
            for r in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'book'::regclass"
            )
        )
    assert names == ["book_p20240101_000000", "book_p20240102_000000", "book_p20240103_000000"]
    parts = {t["table"]: t for t in pg.table_stats()}["book"]
    assert parts["parts"] == 3 and parts["bytes_after"] > 0


# ---------------------------------------------------------------------- writes
def test_same_batch_twice_is_stored_once_on_both_paths(pg, pg_db):  # noqa: F811
    books = make_books(5_000, depth=20)
    assert pg.write("book", books).written == 5_000  # direct COPY: nothing stored in range
    # Overlapping batch: goes through staging + ON CONFLICT DO NOTHING.
    more = make_books(5_000, start_ns=T0 + 2_500 * SEC, depth=20, seed=0)
    res = pg.write("book", pa.concat_tables([books.slice(2_500), more.slice(2_500)]))
    assert (res.written, res.duplicates) == (2_500, 2_500)
    assert _count(pg_db, "SELECT count(*) FROM book") == 7_500
    # A batch holding the same key twice (direct COPY fails on the key, staging stores it once).
    fresh = make_books(10, start_ns=T0 + 5 * DAY, depth=20)
    res = pg.write("book", pa.concat_tables([fresh, fresh]))
    assert (res.written, res.duplicates) == (10, 10)
    stats = {s.symbol: s for s in pg.stats()}
    assert stats[BTC].rows == 7_510


def test_concurrent_writers_of_the_same_batch_store_it_once(pg, pg_db):  # noqa: F811
    trades = make_trades(20_000)
    results = []

    def run():
        results.append(pg.write("trade", trades))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.written for r in results) == 20_000
    assert sum(r.duplicates for r in results) == 40_000
    assert _count(pg_db, "SELECT count(DISTINCT trade_id) FROM trade") == 20_000
    assert _count(pg_db, "SELECT count(*) FROM trade") == 20_000


def test_write_async_from_an_event_loop(pg):
    import asyncio

    async def main():
        return await asyncio.gather(
            pg.write_async("trade", make_trades(1_000)),
            pg.write_async("trade", make_trades(1_000, start_ns=T0 + DAY, id0=5_000)),
        )

    results = asyncio.run(main())
    assert [r.written for r in results] == [1_000, 1_000]
    assert read_table(pg, "trade", "sim", BTC, T0, T0 + 2 * DAY).num_rows == 2_000


def test_book_depth_is_fixed_per_dataset(pg):
    pg.write("book", make_books(10, depth=2))
    with pytest.raises(DataError, match="levels"):
        pg.write("book", make_books(10, start_ns=T0 + DAY, depth=3))


def test_connection_dropped_mid_copy_leaves_no_partial_batch(pg, pg_db):  # noqa: F811
    pg.write("book", make_books(1_000, depth=20))
    big = make_books(400_000, start_ns=T0 + DAY, depth=20, seed=5)
    errors: list[Exception] = []

    def write():
        try:
            pg.write("book", big)
        except StoreError as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    killed = 0
    with psycopg.connect(pg_db, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while writer.is_alive() and not killed and time.monotonic() < deadline:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'COPY book%%' AND state = 'active' AND datname = current_database()"
            ).fetchone()[0]
    writer.join()
    assert killed == 1, "the COPY finished before it could be interrupted"
    assert len(errors) == 1 and "nothing of this batch was stored" in str(errors[0])
    assert PASSWORD not in str(errors[0])
    assert _count(pg_db, "SELECT count(*) FROM book") == 1_000
    assert {s.symbol: s.rows for s in pg.stats()} == {BTC: 1_000}
    # The pool replaced the dead connection: the store keeps working.
    assert pg.write("book", big.slice(0, 1_000)).written == 1_000


def test_names_and_values_are_never_sql(pg, pg_db):  # noqa: F811
    evil = "x'; DROP TABLE book; --"
    # One naming rule for both stores: the name is refused as data, before any SQL.
    r = pg.write("book", make_books(20, depth=2, exchange=evil))
    assert r.written == 0 and sum(r.rejected.values()) == 20
    assert pg.write("book", make_books(20, depth=2)).written == 20
    assert ("book", "sim", BTC) in pg.symbols()
    with pytest.raises(StoreError, match="no book data"):
        list(pg.scan("book", evil, BTC, T0, T0 + DAY))
    with pytest.raises(StoreError, match="no book data"):
        list(pg.scan("book", "sim", evil, T0, T0 + DAY))
    with pytest.raises(StoreError, match="no trade data"):
        pg.latest("trade", evil, "x' OR '1'='1", 5)
    assert _count(pg_db, "SELECT count(*) FROM book") == 20


def test_nullable_columns_roundtrip_as_nulls(pg):
    t = make_trades(3)
    from algo_trade.schema import FUNDING, label_array

    funding = pa.table(
        {
            "ts": pa.array([T0, T0 + SEC, T0 + 2 * SEC]),
            "exchange": label_array("sim", 3),
            "symbol": label_array(BTC, 3),
            "rate": pa.array([0.0001, -0.0002, 0.00005]),
            "interval_h": pa.array([8.0, 8.0, 8.0]),
            "mark_px": pa.array([60_000.5, None, 60_001.0]),
            "index_px": pa.array([60_000.0, 60_000.25, None]),
            "next_ts": pa.array([T0 + 8 * 3600 * SEC, None, T0 + 8 * 3600 * SEC]),
            "settled": pa.array([True, False, False]),
        },
        schema=FUNDING,
    )
    assert pg.write("funding", funding).written == 3
    got = read_table(pg, "funding", "sim", BTC, T0, T0 + DAY)
    for name in ("rate", "mark_px", "index_px", "next_ts", "settled"):
        assert got.column(name).to_pylist() == funding.column(name).to_pylist(), name
    del t


# ---------------------------------------------------------------------- reads
def test_large_scans_stream_in_bounded_batches(pg, monkeypatch):
    import algo_trade.store.postgres.read as pgmod

    books = make_books(50_000, depth=20, step_ns=SEC // 2)
    pg.write("book", books)
    monkeypatch.setattr(pgmod, "SCAN_BLOCK_ROWS", 1_000)
    monkeypatch.setattr(pgmod, "SCAN_BATCH_BYTES", 1 << 16)
    for descending in (False, True):
        sizes, ts, ask = [], [], []
        for batch in pg.scan("book", "sim", BTC, T0, T0 + DAY, descending=descending):
            sizes.append(batch.num_rows)
            ts.append(batch.column("ts").to_numpy())
            ask.append(batch.column("ask_sz_19").to_numpy())
        assert len(sizes) == 50 and max(sizes) == 1_000
        step = -1 if descending else 1
        np.testing.assert_array_equal(np.concatenate(ts), books.column("ts").to_numpy()[::step])
        np.testing.assert_array_equal(
            np.concatenate(ask), books.column("ask_sz_19").to_numpy()[::step]
        )
    only_ts = [
        b.column("ts").to_numpy() for b in pg.scan("book", "sim", BTC, T0, T0 + DAY, columns=["ts"])
    ]
    np.testing.assert_array_equal(np.concatenate(only_ts), books.column("ts").to_numpy())
    trades = make_trades(20_000)
    pg.write("trade", trades)
    sizes = [b.num_rows for b in pg.scan("trade", "sim", BTC, T0, T0 + DAY)]
    assert len(sizes) > 5 and sum(sizes) == 20_000 and max(sizes) < 5_000  # 64 kB a batch


def test_abandoned_scan_leaves_the_store_usable(pg):
    pg.write("book", make_books(30_000, depth=20))
    it = pg.scan("book", "sim", BTC, T0, T0 + DAY)
    next(it)
    it.close()  # stops mid-COPY
    for _ in range(10):  # more scans than the pool has connections
        assert read_table(pg, "book", "sim", BTC, T0, T0 + 10 * SEC).num_rows == 10


def test_column_subset_and_descending_limit_on_books(pg):
    books = make_books(1_000, depth=20)
    pg.write("book", books)
    got = read_table(
        pg, "book", "sim", BTC, T0, T0 + DAY, columns=["ts", "ask_sz_19", "symbol"], limit=5
    )
    assert got.column_names == ["ts", "ask_sz_19", "symbol"]
    np.testing.assert_array_equal(
        got.column("ask_sz_19").to_numpy(), books.column("ask_sz_19").to_numpy()[:5]
    )
    last = pg.latest("book", "sim", BTC, 2)
    assert last.column("ts").to_pylist() == [T0 + 998 * SEC, T0 + 999 * SEC]


def test_a_book_row_changed_outside_is_a_clear_error(pg, pg_db):  # noqa: F811
    pg.write("book", make_books(10, depth=2))
    with psycopg.connect(pg_db) as conn:
        conn.execute("UPDATE book SET levels = '\\x00'::bytea WHERE ts = %s", (T0 + 3 * SEC,))
    with pytest.raises(StoreError, match="changed outside algo-trade"):
        read_table(pg, "book", "sim", BTC, T0, T0 + DAY)


def test_a_packed_row_with_a_foreign_header_is_a_clear_error(pg, pg_db):  # noqa: F811
    pg.write("book", make_books(10, depth=2))
    with psycopg.connect(pg_db) as conn:  # same length, scale byte out of range
        conn.execute("UPDATE book SET levels = set_byte(levels, 0, 200) WHERE ts = %s", (T0 + SEC,))
    with pytest.raises(StoreError, match="changed outside algo-trade"):
        read_table(pg, "book", "sim", BTC, T0, T0 + DAY)


def test_sql_function_reads_a_book_level(pg, pg_db):  # noqa: F811
    books = make_books(3, depth=4)
    books = books.set_column(
        books.schema.get_field_index("ask_sz_3"), "ask_sz_3", pa.array([0.001, np.nan, 5e-324])
    )
    px = books.column("ask_px_3").to_numpy().copy()
    px[1] = np.nan  # a NaN-padded level
    books = books.set_column(books.schema.get_field_index("ask_px_3"), "ask_px_3", pa.array(px))
    pg.write("book", books)
    with psycopg.connect(pg_db) as conn:
        rows = conn.execute(
            "SELECT algo_trade_level(levels, 0), algo_trade_level(levels, 15) FROM book ORDER BY ts"
        ).fetchall()
    assert [r[0] for r in rows] == books.column("bid_px_0").to_pylist()
    assert rows[0][1] == 0.001 and np.isnan(rows[1][1]) and rows[2][1] == 5e-324  # denormal


def _odd_books(depth: int = 3) -> pa.Table:
    """Books whose rows mostly pack, and rows that must stay raw float64 (noted per row)."""
    books = make_books(8, depth=depth)
    odd = np.frombuffer(np.int64(0x7FF8000000000001).tobytes(), np.float64)[0]  # a NaN payload
    sz = books.column("bid_sz_1").to_numpy().copy()
    sz[1], sz[2], sz[3], sz[4], sz[5] = -0.0, 5e-324, 1 / 3, 1e12, 2.5e14  # inf: rejected
    books = books.set_column(books.schema.get_field_index("bid_sz_1"), "bid_sz_1", pa.array(sz))
    for name in ("ask_px_2", "ask_sz_2"):  # NaN-padded last level: numpy NaN packs, others not
        v = books.column(name).to_numpy().copy()
        v[6], v[7] = np.nan, odd
        books = books.set_column(books.schema.get_field_index(name), name, pa.array(v))
    return books


ODD_RAW_ROWS = [1, 2, 3, 5, 7]  # -0.0, denormal, 1/3, 2.5e14 (1e12 now packs: int64), NaN payload


def _bits(t: pa.Table, names: list[str]) -> np.ndarray:
    return np.stack([t.column(c).to_numpy() for c in names]).view(np.int64)


def test_book_levels_pack_exactly_or_stay_raw():
    from algo_trade.schema import book_columns

    rng = np.random.default_rng(3)
    n, d = 5_000, 4
    px = rng.integers(1, 2 * 10**8, (2 * d, n)) / 10.0 ** rng.integers(0, 5, (1, n))
    px[:, ::7] = rng.integers(1, 10**6, (2 * d, len(range(0, n, 7)))) / 10**8  # 8 decimals
    sz = rng.integers(0, 10**6, (2 * d, n)) / 10.0 ** rng.integers(0, 7, (1, n))
    cols = np.concatenate([px[:d], sz[:d], px[d:], sz[d:]])  # bid_px, bid_sz, ask_px, ask_sz
    cols[3 * d - 1, 10] = cols[4 * d - 1, 10] = np.nan  # padded level
    cols[d, 20] = 0.1 + 0.2  # not a short decimal: this row stays raw
    col = pgcopy.pack_levels(cols, d)
    lengths = np.diff(col.offs)
    assert set(lengths[np.arange(n) != 20]) == {pgcopy.packed_width(d)} and lengths[20] == 32 * d
    blob = col.data[: col.offs[-1]]
    out, bad = pgcopy.unpack_levels(blob, lengths, n, d)
    assert bad == -1 and (out.view(np.int64) == cols.view(np.int64)).all()
    # Pages of one layout decode without per-row lengths.
    raw = np.ascontiguousarray(cols.T).view(np.uint8).reshape(-1)
    out, bad = pgcopy.unpack_levels(raw, None, n, d)
    assert bad == -1 and (out.view(np.int64) == cols.view(np.int64)).all()
    sel = np.arange(n) != 20
    packed = pgcopy.pack_levels(np.ascontiguousarray(cols[:, sel]), d)
    out, bad = pgcopy.unpack_levels(packed.data[: packed.offs[-1]], None, n - 1, d)
    assert bad == -1 and (out.view(np.int64) == cols[:, sel].view(np.int64)).all()
    # Edge values survive bit for bit, in the raw layout.
    books = _odd_books()
    names = book_columns(3)
    edge = np.stack([books.column(c).to_numpy() for c in names])
    col = pgcopy.pack_levels(edge, 3)
    lengths = np.diff(col.offs)
    assert [i for i in range(8) if lengths[i] == 32 * 3] == [1, 2, 3, 4, 5, 7]  # int32: 1e12 raw
    out, bad = pgcopy.unpack_levels(col.data[: col.offs[-1]], lengths, 8, 3)
    assert bad == -1 and (out.view(np.int64) == edge.view(np.int64)).all()


def test_packed_and_raw_book_rows_read_back_bit_for_bit(pg, pg_db):  # noqa: F811
    from algo_trade.schema import book_columns

    books = _odd_books()
    pg.write("book", books)
    with psycopg.connect(pg_db) as conn:
        lengths = [r[0] for r in conn.execute("SELECT length(levels) FROM book ORDER BY ts")]
        k = 4 * 3
        got = conn.execute(
            "SELECT array_agg(algo_trade_level(levels, i) ORDER BY i) FROM book,"
            " generate_series(0, %s) i GROUP BY ts ORDER BY ts",
            (k - 1,),
        ).fetchall()
    assert [i for i, n in enumerate(lengths) if n == 32 * 3] == ODD_RAW_ROWS
    assert all(n % 32 for i, n in enumerate(lengths) if i not in ODD_RAW_ROWS)  # compact
    names = book_columns(3)
    want = _bits(books, names)
    back = read_table(pg, "book", "sim", BTC, T0, T0 + DAY)
    assert (_bits(back, names) == want).all()
    # SQL reads the same values from both layouts (NaN payloads aside: SQL has one NaN).
    sql = np.array([r[0] for r in got], dtype=np.float64).T
    nan = np.isnan(want.view(np.float64))
    assert (np.isnan(sql) == nan).all()
    assert (sql.view(np.int64)[~nan] == want[~nan]).all()


@pytest.mark.parametrize("old_version", [1, 2])
def test_older_database_migrates_and_reads_old_rows(pg_db, monkeypatch, old_version):  # noqa: F811
    """A database written by schema 1 (raw float64 levels) or 2 (packed int32 levels) keeps
    its rows readable after migrating; new rows use the compact layout."""
    from algo_trade.schema import book_columns
    from algo_trade.store.postgres import schema as pg_schema
    from algo_trade.store.postgres import write as pg_write

    old = make_books(300, depth=4)
    old_encoder = {
        1: lambda cols, depth: pgcopy.packed_column(list(cols)),
        2: pgcopy.pack_levels,
    }[old_version]
    with monkeypatch.context() as m:  # the code as it was at that schema
        m.setattr(pg_schema, "SCHEMA_VERSION", old_version)
        m.setattr(pg_write, "encode_levels", old_encoder)
        store = PostgresStore(pg_db)
        store.write("book", old)
        store.close()
    assert _count(pg_db, "SELECT max(version) FROM schema_version") == old_version
    width = {1: 128, 2: 68}[old_version]
    assert _count(pg_db, f"SELECT count(*) FROM book WHERE length(levels) = {width}") == 300
    store = PostgresStore(pg_db)  # applies the missing migrations
    try:
        assert store.init_report.applied == list(range(old_version + 1, 4))
        new = make_books(300, start_ns=T0 + 300 * SEC, depth=4, seed=1)
        store.write("book", new)
        assert (
            _count(
                pg_db,
                "SELECT count(*) FROM book WHERE get_byte(levels, 0) = 160"
                " AND length(levels) %% 32 <> 0 AND length(levels) < 68",
            )
            == 300
        )
        names = book_columns(4)
        back = read_table(store, "book", "sim", BTC, T0, T0 + DAY)  # one page, two layouts
        assert (_bits(back, names) == _bits(pa.concat_tables([old, new]), names)).all()
        with psycopg.connect(pg_db) as conn:
            vals = conn.execute(
                "SELECT algo_trade_level(levels, 4), algo_trade_level(levels, 15) FROM book"
                " WHERE ts IN (%s, %s) ORDER BY ts",
                (T0, T0 + 300 * SEC),
            ).fetchall()
        assert vals == [
            (old.column("bid_sz_0")[0].as_py(), old.column("ask_sz_3")[0].as_py()),
            (new.column("bid_sz_0")[0].as_py(), new.column("ask_sz_3")[0].as_py()),
        ]
        assert store.write("trade", make_trades(10)).written == 10  # ts_local column added
        assert (
            read_table(store, "trade", "sim", BTC, T0, T0 + DAY).column("ts_local").null_count == 10
        )
    finally:
        store.close()


def test_pgcopy_roundtrips_every_field_type():
    n = 5
    cols = [
        pgcopy.fixed_column(pgcopy.I8, np.array([0, -1, 2**62, -(2**63), 7])),
        pgcopy.fixed_column(pgcopy.F8, np.array([0.5, -0.0, np.inf, np.nan, 1e-310])),
        pgcopy.fixed_column(
            pgcopy.I2, np.array([1, -1, 0, 1, -1], dtype=np.int8), np.array([1, 1, 0, 1, 1], bool)
        ),
        pgcopy.fixed_column(pgcopy.BOOL, np.array([True, False, True, True, False])),
        pgcopy.text_column(pa.array(["a", None, "", "ünï", "x'; --"])),
        pgcopy.packed_column([np.arange(n) + 0.5, -np.arange(n, dtype=float)]),
    ]
    buf = pgcopy.encode(cols, n)
    batch, done = pgcopy.decode(buf, [c.code for c in cols], list("abcdef"), True)
    assert done
    assert batch.column(0).to_pylist() == [0, -1, 2**62, -(2**63), 7]
    f = batch.column(1).to_numpy()
    assert f[0] == 0.5 and np.signbit(f[1]) and np.isinf(f[2]) and np.isnan(f[3]) and f[4] == 1e-310
    assert batch.column(2).to_pylist() == [1, -1, None, 1, -1]
    assert batch.column(3).to_pylist() == [True, False, True, True, False]
    assert batch.column(4).to_pylist() == ["a", None, "", "ünï", "x'; --"]
    assert batch.column(5).to_pylist()[1] == np.array([1.5, -1.0], dtype="<f8").tobytes()


# ---------------------------------------------------------------------- bad input
def test_connection_problems_are_one_line_without_the_password(pg_url, pg_db):  # noqa: F811
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(pg_url)
    bad = [
        (
            f"postgresql://{d['user']}:{PASSWORD}@127.0.0.1:1/{d['dbname']}",
            "cannot reach PostgreSQL",
        ),
        (
            f"postgresql://{d['user']}:wrong-{PASSWORD}@{d['host']}:{d['port']}/{d['dbname']}",
            "refused the login",
        ),
        (
            f"postgresql://{d['user']}:{PASSWORD}@{d['host']}:{d['port']}/no_such_db",
            "does not exist",
        ),
        (f"postgresql://{d['user']}:{PASSWORD}@{d['host']}:notaport/x", "PostgreSQL"),
    ]
    for url, message in bad:
        with pytest.raises(StoreError) as exc:
            PostgresStore(url)
        text = str(exc.value)
        assert message in text and PASSWORD not in text and "\n" not in text, text


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_cli_bad_server_exits_2_with_one_line(capsys, pg_url):  # noqa: F811
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(pg_url)
    url = f"postgresql://{d['user']}:wrong-{PASSWORD}@{d['host']}:{d['port']}/{d['dbname']}"
    code, out, err = run_cli(["db", "stats", "--db", url], capsys)
    assert code == 2
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and "refused the login" in lines[0] and PASSWORD not in out + err


# ---------------------------------------------------------------------- CLI
def test_cli_init_generate_stats_copy_both_ways(pg_db, tmp_path, capsys, monkeypatch):  # noqa: F811
    code, out, _ = run_cli(
        ["db", "init", "--db", pg_db, "--compress-after", "3d", "--json"], capsys
    )
    assert code == 0
    info = json.loads(out)
    assert info["applied"] == [1, 2, 3] and info["version"] == 3
    code, out, _ = run_cli(["db", "init", "--db", pg_db], capsys)
    assert code == 0 and "already up to date" in out and PASSWORD not in out
    # ALGO_TRADE_DB selects the database for every command.
    monkeypatch.setenv("ALGO_TRADE_DB", pg_db)
    code, out, _ = run_cli(
        ["generate", "--symbols", BTC, "--days", "0.02", "--depth", "5", "--seed", "1", "--json"],
        capsys,
    )
    assert code == 0 and PASSWORD not in out
    written = json.loads(out)["written"]
    code, out, _ = run_cli(["db", "stats", "--json"], capsys)
    assert code == 0
    stats = json.loads(out)
    rows = {(r["kind"], r["symbol"]): r["rows"] for r in stats["datasets"]}
    assert rows[("book", BTC)] == written["book"]
    assert {t["table"] for t in stats["tables"]} == {
        "book",
        "funding",
        "liquidation",
        "trade",
        "bar",
        "depth",
    }
    code, out, _ = run_cli(["db", "compress", "--json"], capsys)
    assert code == 0 and "compressed_chunks" in json.loads(out)
    monkeypatch.delenv("ALGO_TRADE_DB")
    # PostgreSQL -> lake -> a second database; then again: nothing new stored.
    lake = str(tmp_path / "lake")
    args = ["--start", "2024-01-01", "--end", "2024-01-02", "--json"]
    code, out, _ = run_cli(["db", "copy", "--from", pg_db, "--to", lake, *args], capsys)
    assert code == 0
    copied = {r["kind"]: r["copied"] for r in json.loads(out)}
    assert copied["book"] == written["book"]
    other = create_database(pg_db)
    code, out, _ = run_cli(["db", "copy", "--from", lake, "--to", other, *args], capsys)
    assert {r["kind"]: r["copied"] for r in json.loads(out)} == copied
    code, out, _ = run_cli(["db", "copy", "--from", lake, "--to", other, *args], capsys)
    again = json.loads(out)
    assert all(r["copied"] == 0 for r in again)
    assert {r["kind"]: r["already_there"] for r in again} == copied
    a, b = PostgresStore(pg_db), PostgresStore(other)
    try:
        ta = read_table(a, "book", "sim", BTC, T0, T0 + DAY)
        tb = read_table(b, "book", "sim", BTC, T0, T0 + DAY)
        assert ta.equals(tb)
    finally:
        a.close()
        b.close()
        with psycopg.connect(pg_db, autocommit=True) as conn:
            name = psycopg.sql.Identifier(other.rpartition("/")[2])
            conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))


def test_cli_schema_problems_exit_2_with_one_line(capsys, pg_db):  # noqa: F811
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE TABLE trade (id int)")
    code, out, err = run_cli(["db", "init", "--db", pg_db], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1 and "table trade already exists" in lines[0]
    with psycopg.connect(pg_db) as conn:
        conn.execute("DROP TABLE trade")
    assert run_cli(["db", "init", "--db", pg_db], capsys)[0] == 0
    with psycopg.connect(pg_db) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (7, 'future')")
    code, out, err = run_cli(["db", "stats", "--db", pg_db], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1 and "newer than this algo-trade knows" in lines[0]
    assert PASSWORD not in out + err


def test_cli_init_refuses_a_lake(capsys, tmp_path):
    code, out, err = run_cli(["db", "init", "--db", str(tmp_path)], capsys)
    assert code == 2 and "postgresql://" in out + err


# ---------------------------------------------------------------------- TimescaleDB
def test_timescale_hypertables_compression_and_policies(ts_db):  # noqa: F811
    pg_db = ts_db
    store = PostgresStore(pg_db, init=InitOptions(compress_after_ns=DAY, retain_ns=400 * DAY))
    try:
        assert store.backend == "timescaledb"
        with psycopg.connect(pg_db) as conn:
            hyper = {
                r[0]
                for r in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables"
                )
            }
            jobs = {
                r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs")
            }
        assert hyper == {"book", "funding", "liquidation", "trade", "bar", "depth"}
        assert {"policy_compression", "policy_retention"} <= jobs
        store.write("book", make_books(2_000, depth=20))
        report = store.compress(older_than_ns=1)
        assert report["per_table"]["book"] >= 1
        tables = {t["table"]: t for t in store.table_stats()}
        assert tables["book"]["compressed_parts"] >= 1 and tables["book"]["ratio"] > 1
        assert read_table(store, "book", "sim", BTC, T0, T0 + DAY).num_rows == 2_000
        assert store.write("book", make_books(2_000, depth=20)).duplicates == 2_000
    finally:
        store.close()
