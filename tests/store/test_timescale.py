"""TimescaleDB for real, and the state where it is installed but not preloaded.

`ts_db` skips (with the reason) where no test server preloads TimescaleDB, as in CI;
`unloaded_db` skips where TimescaleDB is not installed (the main server then is plain
PostgreSQL, which the rest of the suite covers).
"""

from __future__ import annotations

import json

import psycopg
import pyarrow as pa
import pytest

from algo_trade.cli.main import main
from algo_trade.errors import ConfigError, StoreError
from algo_trade.schema import DEPTH, DEPTH_SNAPSHOT, label_array
from algo_trade.store.base import read_table
from algo_trade.store.postgres import InitOptions, PostgresStore, migrate
from tests.conftest import SEC, T0, make_books, make_trades
from tests.store.contract import DAY, StoreContract

pytestmark = pytest.mark.integration
BTC = "BTC-USDT-PERP"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def _one(url: str, sql: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


# ---------------------------------------------------------------------- installed, not preloaded
class TestNotPreloadedContract(StoreContract):
    """The whole store contract where CREATE EXTENSION timescaledb would be FATAL."""

    @pytest.fixture
    def store(self, unloaded_db):
        store = PostgresStore(unloaded_db)
        assert store.backend == "partitions"
        yield store
        store.close()


def test_not_preloaded_falls_back_with_the_way_to_enable_it(unloaded_db, capsys):
    code, out, err = run_cli(["db", "init", "--db", unloaded_db], capsys)
    assert code == 0, err
    assert "(partitions)" in out and "not preloaded" in out
    assert "shared_preload_libraries = 'timescaledb'" in out and "restart PostgreSQL" in out
    # The session survived the check: the schema is there and works.
    with PostgresStore(unloaded_db) as store:
        assert store.write("trade", make_trades(100)).written == 100
        assert read_table(store, "trade", "sim", BTC, T0, T0 + DAY).num_rows == 100
    assert _one(unloaded_db, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 0


def test_timescale_database_on_a_server_without_preload_is_one_clear_error(unloaded_db, capsys):
    PostgresStore(unloaded_db).close()
    with psycopg.connect(unloaded_db) as conn:  # as if made where TimescaleDB was preloaded
        conn.execute("UPDATE algo_trade_settings SET value = 'timescaledb' WHERE key = 'backend'")
    with pytest.raises(StoreError, match="does not preload it.*shared_preload_libraries"):
        PostgresStore(unloaded_db)
    code, out, err = run_cli(["db", "stats", "--db", unloaded_db], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1 and "shared_preload_libraries" in lines[0]


# ---------------------------------------------------------------------- TimescaleDB
def test_no_default_ts_index_on_any_hypertable(ts_db):
    PostgresStore(ts_db).close()
    with psycopg.connect(ts_db) as conn:
        idx = conn.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN"
            " ('book', 'funding', 'liquidation', 'trade', 'bar', 'depth') ORDER BY 1, 2"
        ).fetchall()
    assert [name for _, name in idx if name.endswith("_ts_idx")] == []
    assert ("book", "book_key") in idx and ("depth", "depth_key") in idx


def test_compress_reports_already_compressed_chunks_apart(ts_db, capsys):
    with PostgresStore(ts_db) as store:
        store.write("book", make_books(100, depth=5, start_ns=T0))
        store.write("book", make_books(100, depth=5, start_ns=T0 + 2 * DAY))
        store.write("trade", make_trades(50))
    code, out, _ = run_cli(["db", "compress", "--db", ts_db, "--older-than", "1m"], capsys)
    assert code == 0 and "compressed 3 chunks (book 2, trade 1); 0 were already compressed" in out
    code, out, _ = run_cli(["db", "compress", "--db", ts_db, "--older-than", "1m"], capsys)
    assert code == 0 and "compressed 0 chunks; 3 were already compressed" in out
    # New rows into a compressed chunk: merged on the next run, and said so.
    with PostgresStore(ts_db) as store:
        assert (
            store.write("trade", make_trades(10, start_ns=T0 + 3_600 * SEC, id0=900)).written == 10
        )
        report = store.compress(older_than_ns=60 * SEC)
        assert report["recompressed"] == 1 and report["already_compressed"] == 2
        assert report["compressed_chunks"] == 0
        assert read_table(store, "trade", "sim", BTC, T0, T0 + DAY).num_rows == 60


def test_reinit_keeps_a_users_retention_policy(ts_db, capsys):
    PostgresStore(ts_db).close()
    with psycopg.connect(ts_db, autocommit=True) as conn:
        conn.execute("SELECT add_retention_policy('trade', drop_after => %s::bigint)", (30 * DAY,))
    code, out, _ = run_cli(["db", "init", "--db", ts_db], capsys)
    assert code == 0 and "kept the retention policies in place (trade: drop after 30d)" in out
    jobs = "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
    assert _one(ts_db, jobs) == 1
    code, out, _ = run_cli(["db", "init", "--db", ts_db, "--retain", "365d"], capsys)
    assert code == 0 and _one(ts_db, jobs) == 6  # one per table, replacing the user's
    code, out, _ = run_cli(["db", "init", "--db", ts_db, "--retain", "off"], capsys)
    assert code == 0 and _one(ts_db, jobs) == 0


@pytest.mark.parametrize("bad", ["500ms", "30s", "1000000d", "400d"])
def test_chunk_interval_is_validated_before_anything_is_written(pg_db, capsys, bad):
    code, out, err = run_cli(["db", "init", "--db", pg_db, "--chunk-interval", bad], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1 and "between 1m and 366d" in lines[0]
    assert _one(pg_db, "SELECT to_regclass('schema_version') IS NULL")
    with pytest.raises(ConfigError, match="between 1m and 366d"):
        InitOptions(chunk_interval_ns=500 * 10**6)


def test_chunk_interval_changes_on_timescaledb(ts_db, capsys):
    code, _, _ = run_cli(["db", "init", "--db", ts_db, "--chunk-interval", "2h"], capsys)
    assert code == 0
    code, _, _ = run_cli(["db", "init", "--db", ts_db, "--chunk-interval", "6h"], capsys)
    assert code == 0
    with PostgresStore(ts_db) as store:
        assert store.interval_ns == 6 * 3_600 * SEC
        store.write("trade", make_trades(100, step_ns=600 * SEC))  # 16.5 h of trades
    sizes = "SELECT DISTINCT range_end_integer - range_start_integer FROM timescaledb_information.chunks WHERE hypertable_name = 'trade'"
    assert _one(ts_db, sizes) == 6 * 3_600 * SEC


def test_chunk_interval_on_plain_postgres_changes_until_partitions_exist(pg_db, capsys):
    opts = InitOptions(chunk_interval_ns=2 * 3_600 * SEC, timescale=False)
    with psycopg.connect(pg_db) as conn:
        migrate(conn, opts)
        migrate(conn, InitOptions(chunk_interval_ns=3_600 * SEC), reconfigure=True)  # no data yet
    with PostgresStore(pg_db) as store:
        assert store.interval_ns == 3_600 * SEC
        store.write("trade", make_trades(10))
    code, out, err = run_cli(["db", "init", "--db", pg_db, "--chunk-interval", "1d"], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "cannot change --chunk-interval to 1d" in lines[0] and "partitions of 1h" in lines[0]
    assert _one(
        pg_db, "SELECT value FROM algo_trade_settings WHERE key = 'chunk_interval_ns'"
    ) == str(3_600 * SEC)


def _depth_rows(n_levels: int = 5) -> pa.Table:
    """A snapshot run of 2 x n_levels rows, then two diffs (one deletes a level)."""
    rows = []
    for side in (1, -1):
        for i in range(n_levels):
            rows.append((T0, 1, side, 100.0 - side * (i + 1) * 0.5, 1.0 + i, 10, DEPTH_SNAPSHOT))
    rows.append((T0 + SEC, 2, 1, 99.5, 0.0, 11, 0))
    rows.append((T0 + SEC, 3, -1, 100.5, 4.0, 11, 0))
    n = len(rows)
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "ts": pa.array(cols[0], pa.int64()),
            # one message, one receipt time
            "ts_local": pa.array([t + 5_000_000 for t in cols[0]], pa.int64()),
            "exchange": label_array("sim", n),
            "symbol": label_array(BTC, n),
            "side": pa.array(cols[2], pa.int8()),
            "price": pa.array(cols[3]),
            "qty": pa.array(cols[4]),
            "seq": pa.array(cols[5], pa.int64()),
            "flags": pa.array(cols[6], pa.uint8()),
        },
        schema=DEPTH,
    )


@pytest.mark.parametrize("timescale", [False, True])
def test_depth_roundtrips_dedups_and_compresses(pg_db, ts_db_or_skip, timescale):
    url = ts_db_or_skip if timescale else pg_db
    rows = _depth_rows()
    with PostgresStore(url, init=InitOptions(timescale=timescale)) as store:
        assert store.backend == ("timescaledb" if timescale else "partitions")
        # the snapshot's rows in another order than the read order (receipt order kept)
        order = [*range(9, -1, -1), 10, 11]
        res = store.write("depth", rows.take(pa.array(order)))
        assert res.written == rows.num_rows
        assert store.write("depth", rows).duplicates == rows.num_rows
        got = read_table(store, "depth", "sim", BTC, T0, T0 + DAY)
        want = read_table(store, "depth", "sim", BTC, T0, T0 + DAY)
        assert got.equals(want)
        # read order: ts, seq, snapshot rows first, side (asks first), price
        assert got.column("side").to_pylist()[:2] == [-1, -1]
        assert got.column("seq").to_pylist()[-2:] == [11, 11]
        for name in ("ts", "ts_local", "qty", "flags"):
            assert sorted(got.column(name).to_pylist()) == sorted(rows.column(name).to_pylist())
        stats = {(s.kind, s.symbol): s.rows for s in store.stats()}
        assert stats[("depth", BTC)] == rows.num_rows
        if timescale:
            assert store.compress(older_than_ns=60 * SEC)["per_table"]["depth"] == 1
            assert read_table(store, "depth", "sim", BTC, T0, T0 + DAY).equals(got)


@pytest.fixture
def ts_db_or_skip(request):
    """ts_db only for the TimescaleDB case of a parametrized test."""
    if request.node.callspec.params.get("timescale"):
        return request.getfixturevalue("ts_db")
    return None


def test_copy_depth_lake_to_postgres_and_back(pg_db, tmp_path, capsys):
    from algo_trade.store.lake import LakeStore

    lake = LakeStore(tmp_path / "a")
    lake.write("depth", _depth_rows())
    args = ["--start", "2024-01-01", "--end", "2024-01-02", "--json"]
    code, out, err = run_cli(
        ["db", "copy", "--from", str(tmp_path / "a"), "--to", pg_db, *args], capsys
    )
    assert code == 0, err
    assert {r["kind"]: r["copied"] for r in json.loads(out)} == {"depth": 12}
    other = str(tmp_path / "b")
    code, out, _ = run_cli(["db", "copy", "--from", pg_db, "--to", other, *args], capsys)
    assert {r["kind"]: r["copied"] for r in json.loads(out)} == {"depth": 12}
    a = read_table(LakeStore(tmp_path / "a"), "depth", "sim", BTC, T0, T0 + DAY)
    b = read_table(LakeStore(tmp_path / "b"), "depth", "sim", BTC, T0, T0 + DAY)
    assert a.equals(b)


def test_coverage_counts_depth_rows_stored_in_postgres(pg_db, tmp_path):
    from algo_trade.collect.coverage import coverage

    with PostgresStore(pg_db) as store:
        store.write("depth", _depth_rows())
        rows = coverage(store, tmp_path, "sim", BTC, T0, T0 + 3_600 * SEC)
    assert [(r["stream"], r["rows"]) for r in rows if r["stream"] == "depth"] == [("depth", 12)]


def test_copy_keeps_depth_messages_received_out_of_exchange_order(pg_db, tmp_path):
    from algo_trade.store.lake import LakeStore
    from algo_trade.store.transfer import copy_between

    rows = _depth_rows()
    ts = rows.column("ts").to_numpy().copy()
    seq = rows.column("seq").to_numpy().copy()
    tl = rows.column("ts_local").to_numpy().copy()
    # Two diff messages whose receipt order disagrees with the exchange's clock: the one
    # stamped T0 + 1 s arrived after the one stamped T0 + 2 s.
    ts[11], seq[11] = T0 + 2 * SEC, 12
    tl[10], tl[11] = T0 + 5 * SEC, T0 + 4 * SEC
    rows = rows.set_column(0, "ts", pa.array(ts)).set_column(1, "ts_local", pa.array(tl))
    rows = rows.set_column(rows.schema.get_field_index("seq"), "seq", pa.array(seq))
    lake = LakeStore(tmp_path / "a")
    received = rows.take(pa.array([*range(10), 11, 10]))  # as the collector got them
    assert lake.write("depth", received).written == 12
    with PostgresStore(pg_db) as store:
        report = copy_between(lake, store, T0, T0 + DAY)
        assert [(r["kind"], r["copied"], r["rejected"]) for r in report] == [("depth", 12, 0)]
        back = read_table(store, "depth", "sim", BTC, T0, T0 + DAY)
    assert back.equals(read_table(lake, "depth", "sim", BTC, T0, T0 + DAY))
