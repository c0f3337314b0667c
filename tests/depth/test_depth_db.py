"""`db stats`, `db coverage`, `db compact` and `db copy` know `depth` (lake side)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.cli.main import main
from algo_trade.data.depth_books import books_from_depth
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore
from tests.depth.capture import Replay, depth_table, read_lines
from tests.depth.test_book_from_depth import CAPTURES, SYM


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_db_commands_know_depth(tmp_path, capsys):
    rows = Replay().feed(read_lines(CAPTURES[0])).rows
    src, dst = tmp_path / "src", tmp_path / "dst"
    lake = LakeStore(src, fsync=False)
    t = depth_table(rows, "binance", SYM)
    half = t.num_rows // 2
    lake.write("depth", t.slice(0, half))  # two writes: two files, compacted below
    lake.write("depth", t.slice(half))
    code, out, err = run(["db", "stats", "--home", str(src), "--json"], capsys)
    assert code == 0, err
    (st,) = [r for r in json.loads(out) if r["kind"] == "depth"]
    assert st["rows"] == len(rows) and st["parts"] == 2 and st["bytes_per_row"] < 12
    first, last = rows[0][0], max(r[0] for r in rows)
    code, out, err = run(["db", "coverage", "--home", str(src), "--exchange", "binance",
                          "--symbol", SYM, "--start", str(first), "--end", str(last + 1),
                          "--json"], capsys)  # fmt: skip
    assert code == 0, err
    cov = [r for r in json.loads(out) if r["stream"] == "depth"]
    assert sum(r["rows"] for r in cov) == len(rows)
    before = read_table(lake, "depth", "binance", SYM, first, last + 1)
    code, out, err = run(["db", "compact", "--home", str(src), "--json"], capsys)
    assert code == 0, err
    after = read_table(LakeStore(src), "depth", "binance", SYM, first, last + 1)
    assert after.equals(before)  # same rows, same read order, one file per day
    # A copy window starting mid-stream carries the snapshot run it needs.
    mid = int(np.sort(t.column("ts").to_numpy())[len(rows) * 2 // 3])
    code, out, err = run(["db", "copy", "--from", str(src), "--to", str(dst), "--start",
                          str(mid), "--end", str(last + 1), "--json"], capsys)  # fmt: skip
    assert code == 0, err
    (rep,) = [r for r in json.loads(out) if r["kind"] == "depth"]
    assert rep["rejected"] == 0 and rep["copied"] > 0
    copy = LakeStore(dst)
    a = pa.concat_tables(list(books_from_depth(lake, "binance", SYM, mid, last, 10_000_000)))
    b = pa.concat_tables(list(books_from_depth(copy, "binance", SYM, mid, last, 10_000_000)))
    assert a.num_rows > 100 and a.equals(b)
    code, out, err = run(["db", "copy", "--from", str(src), "--to", str(dst), "--start",
                          str(mid), "--end", str(last + 1), "--json"], capsys)  # fmt: skip
    (again,) = [r for r in json.loads(out) if r["kind"] == "depth"]
    assert again["copied"] == 0 and again["already_there"] == rep["copied"]
