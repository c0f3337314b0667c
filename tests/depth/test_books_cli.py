"""`algo-trade db books --from-depth`: books from the lake or a depth file, to the store or
a Parquet file; bad depth input is counted per reason, and nothing valid exits 2."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from algo_trade.cli.main import main
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore
from tests.depth.capture import Replay, depth_table, read_lines
from tests.depth.test_book_from_depth import CAPTURES, SYM, kernel_books


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def rows():
    return Replay().feed(read_lines(CAPTURES[0])).rows


def test_books_to_a_file_and_to_the_store(tmp_path, capsys, rows):
    home = tmp_path / "home"
    LakeStore(home, fsync=False).write("depth", depth_table(rows, "binance", SYM))
    first, last = rows[0][0], max(r[0] for r in rows)
    common = ["db", "books", "--from-depth", "--exchange", "binance", "--symbol", SYM,
              "--start", str(first), "--end", str(last + 1), "--home", str(home)]  # fmt: skip
    out = tmp_path / "books.parquet"
    code, text, err = run([*common, "--interval", "100ms", "--out", str(out)], capsys)
    assert code == 0, err
    got = pq.read_table(out)
    ts, books = kernel_books(rows, interval_ns=100_000_000)
    assert np.array_equal(got.column("ts").to_numpy(), ts)
    assert np.array_equal(got.column("bid_px_7").to_numpy(), books[:, 0, 7], equal_nan=True)
    assert f"{len(ts):,} book rows" in text
    code, text, err = run([*common, "--json"], capsys)  # every update, into the store
    assert code == 0, err
    stored = read_table(LakeStore(home), "book", "binance", SYM, first, last + 1)
    ts_all, books_all = kernel_books(rows)
    last_of_ts = np.r_[ts_all[1:] != ts_all[:-1], True]
    assert np.array_equal(stored.column("ts").to_numpy(), ts_all[last_of_ts])
    assert np.array_equal(
        stored.column("ask_sz_19").to_numpy(), books_all[last_of_ts, 3, 19], equal_nan=True
    )


def test_depth_file_with_nothing_valid_exits_2_with_one_line(tmp_path, capsys, rows):
    diffs = [r for r in rows if not r[6]][:500]  # the diffs, without their snapshot
    path = tmp_path / "diffs.parquet"
    pq.write_table(depth_table(diffs, "binance", SYM), path)
    out = tmp_path / "books.parquet"
    code, text, err = run(["db", "books", "--from-depth", "--exchange", "binance", "--symbol",
                           SYM, "--start", "2023-04-04", "--end", "2023-04-06", "--depth-file",
                           str(path), "--out", str(out)], capsys)  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nothing valid" in lines[0] and "no valid snapshot" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".books*"))


def test_depth_file_bad_rows_are_counted_and_the_rest_used(tmp_path, capsys, rows):
    t = depth_table(rows[:20000], "binance", SYM)
    # A crossed snapshot run in front (rejected whole; the real one follows) and a NaN
    # size in the diffs (it leaves the book unknown until the next run: here there is
    # none, so the diffs after it go too, counted).
    ts0 = rows[0][0] - 10**9
    bad = depth_table([(ts0, ts0, 1, 101.0, 1.0, 1, 1), (ts0, ts0, -1, 100.0, 1.0, 1, 1)],
                      "binance", SYM)  # fmt: skip
    qty = t.column("qty").to_numpy().copy()
    qty[15000] = np.nan
    t = t.set_column(t.schema.get_field_index("qty"), "qty", pa.array(qty))
    path = tmp_path / "depth.parquet"
    pq.write_table(pa.concat_tables([bad, t]), path)
    code, text, err = run(["db", "books", "--from-depth", "--exchange", "binance", "--symbol",
                           SYM, "--start", "2023-04-04", "--end", "2023-04-06", "--depth-file",
                           str(path), "--out", str(tmp_path / "b.parquet"), "--json"],
                          capsys)  # fmt: skip
    assert code == 0, err
    import json

    report = json.loads(text)
    assert report["rejected"]["depth snapshot with crossed levels (best bid >= best ask)"] == 2
    assert report["rejected"]["non-finite price or qty"] == 1
    n_after = report["rejected"][
        "depth diff with no valid snapshot before it (replay would invent a book)"
    ]
    assert n_after > 0 and report["depth_rows"] == 20000 - 1 - n_after
    books = pq.read_table(tmp_path / "b.parquet")
    assert books.num_rows > 0 and books.column("ts").to_numpy()[0] >= rows[0][0]
