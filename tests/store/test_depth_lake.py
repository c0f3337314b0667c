"""The `depth` kind in the lake, and trade/liquidation files from before `ts_local` existed."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from algo_trade.schema import DEPTH, DEPTH_SNAPSHOT, validate
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore
from tests.conftest import SEC, T0, make_trades

SYM = "BTC-USDT-PERP"


def depth_table(rows: list[tuple]) -> pa.Table:
    """rows: (ts, ts_local, side, price, qty, seq, flags)."""
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "ts": pa.array(cols[0], pa.int64()),
            "ts_local": pa.array(cols[1], pa.int64()),
            "exchange": pa.array(["binance"] * n),
            "symbol": pa.array([SYM] * n),
            "side": pa.array(cols[2], pa.int8()),
            "price": pa.array(cols[3], pa.float64()),
            "qty": pa.array(cols[4], pa.float64()),
            "seq": pa.array(cols[5], pa.int64()),
            "flags": pa.array(cols[6], pa.uint8()),
        }
    )


S = DEPTH_SNAPSHOT
SNAP = [  # a snapshot run at (T0, seq 10), rows deliberately not in read order
    (T0, T0 + 5, 1, 100.0, 1.0, 10, S),
    (T0, T0 + 5, -1, 101.0, 2.0, 10, S),
    (T0, T0 + 5, 1, 99.5, 3.0, 10, S),
    (T0, T0 + 5, -1, 101.5, 4.0, 10, S),
]
DIFFS = [
    (T0 + SEC, T0 + SEC + 7, 1, 100.0, 0.0, 11, 0),
    (T0 + SEC, T0 + SEC + 7, -1, 100.5, 1.5, 11, 0),
    (T0 + 2 * SEC, T0 + 2 * SEC + 3, 1, 100.25, 2.0, 12, 0),
]


def test_depth_round_trip_in_read_order_and_idempotent(tmp_path):
    lake = LakeStore(tmp_path / "home", fsync=False)
    r = lake.write("depth", depth_table(SNAP + DIFFS))
    assert (r.written, r.duplicates, r.rejected) == (7, 0, {})
    got = read_table(lake, "depth", "binance", SYM, T0, T0 + 10 * SEC)
    assert got.schema.names == DEPTH.names
    assert got.column("side").to_pylist()[:4] == [-1, -1, 1, 1]  # asks before bids in a run
    assert got.column("price").to_pylist() == [101.0, 101.5, 99.5, 100.0, 100.5, 100.0, 100.25]
    assert got.column("flags").to_pylist() == [S] * 4 + [0] * 3
    assert got.column("ts_local").to_pylist()[-1] == T0 + 2 * SEC + 3
    again = lake.write("depth", depth_table(SNAP + DIFFS))
    assert (again.written, again.duplicates) == (0, 7)
    # Overlapping files (before compaction) still read in order; compaction keeps it.
    lake.write("depth", depth_table([(T0 + SEC, T0 + SEC + 7, 1, 99.0, 1.0, 11, 0)]))
    merged = read_table(lake, "depth", "binance", SYM, T0, T0 + 10 * SEC)
    assert merged.column("price").to_pylist()[4:7] == [100.5, 99.0, 100.0]
    lake.compact()
    assert read_table(lake, "depth", "binance", SYM, T0, T0 + 10 * SEC).equals(merged)
    (st,) = [s for s in lake.stats() if s.kind == "depth"]
    assert st.rows == 8


def test_diffs_continue_a_stored_stream_but_not_a_missing_one(tmp_path):
    lake = LakeStore(tmp_path / "home", fsync=False)
    lone = lake.write("depth", depth_table(DIFFS))
    assert lone.written == 0
    assert lone.rejected == {
        "depth diff with no valid snapshot before it (replay would invent a book)": 3
    }
    assert lake.symbols("depth") == []  # nothing half-written
    lake.write("depth", depth_table(SNAP))
    later = lake.write("depth", depth_table(DIFFS))  # the snapshot is stored: diffs continue it
    assert (later.written, later.rejected) == (3, {})


def test_bad_depth_rows_are_counted_per_reason():
    crossed = [
        (T0, T0, 1, 101.0, 1.0, 1, S),
        (T0, T0, -1, 100.0, 1.0, 1, S),
    ]
    after_crossed = [(T0 + 1, T0 + 1, 1, 99.0, 1.0, 2, 0)]
    good = [(T0 + 2, T0 + 2, 1, 99.0, 1.0, 3, S), (T0 + 2, T0 + 2, -1, 99.5, 1.0, 3, S)]
    nan_row = [(T0 + 3, T0 + 3, 1, float("nan"), 1.0, 4, 0)]
    after_nan = [(T0 + 4, T0 + 4, 1, 98.0, 1.0, 5, 0)]
    back = [(T0 + 5, T0 + 6, 1, 98.5, 1.0, 6, S), (T0 + 5, T0 + 6, -1, 99.0, 1.0, 6, S)]
    went_back = [(T0 + 6, T0 + 1, 1, 98.0, 2.0, 7, 0)]
    v = validate(
        "depth",
        depth_table(crossed + after_crossed + good + nan_row + after_nan + back + went_back),
    )
    assert v.rejected == {
        "depth snapshot with crossed levels (best bid >= best ask)": 2,
        "depth diff with no valid snapshot before it (replay would invent a book)": 2,
        "non-finite price or qty": 1,
        "non-monotonic ts_local (receipt time went back within the batch)": 1,
    }
    assert v.table.num_rows == 4
    assert v.table.column("seq").to_pylist() == [3, 3, 6, 6]


def test_old_trade_files_without_ts_local_read_as_null(tmp_path):
    """A lake written before ts_local existed: its files open and read, nothing rewritten."""
    lake = LakeStore(tmp_path / "home", fsync=False)
    lake.write("trade", make_trades(50))
    day_dir = lake.root / "trade" / "sim" / "BTC-USDT-PERP" / "2024-01-01"
    (name,) = [f for f in os.listdir(day_dir) if f.endswith(".parquet")]
    # Make it an old-schema file: same encoding and metadata, no ts_local column.
    old = pq.read_table(day_dir / name)
    old = old.drop_columns(["ts_local"])
    pq.write_table(old, day_dir / name, row_group_size=8192)
    assert "ts_local" not in pq.read_schema(day_dir / name).names
    before = os.stat(day_dir / name).st_mtime_ns
    got = read_table(lake, "trade", "sim", "BTC-USDT-PERP", T0, T0 + 10_000 * SEC)
    assert got.num_rows == 50
    assert got.column("ts_local").null_count == 50
    assert got.schema.field("ts_local").type == pa.int64()
    # New rows with a receipt time land beside the old file; both read together.
    new = make_trades(10, start_ns=T0 + 3 * SEC, id0=1000)
    new = new.append_column("ts_local", pa.array(new["ts"].to_numpy() + 5))
    assert lake.write("trade", new).written == 10
    both = read_table(lake, "trade", "sim", "BTC-USDT-PERP", T0, T0 + 10_000 * SEC)
    assert both.num_rows == 60
    assert both.column("ts_local").null_count == 50
    assert os.stat(day_dir / name).st_mtime_ns == before  # the old file was not rewritten
    ts = both.column("ts").to_numpy()
    assert np.all(np.diff(ts) >= 0)


def test_trade_table_without_ts_local_column_is_accepted():
    t = make_trades(5)
    assert "ts_local" not in t.column_names
    v = validate("trade", t)
    assert v.table.num_rows == 5 and v.table.column("ts_local").null_count == 5
