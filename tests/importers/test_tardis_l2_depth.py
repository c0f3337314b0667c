"""Tardis incremental_book_L2 -> `depth`: the MIT sample made from the hftbacktest capture
(tests/data/make/tardis_l2_from_capture.py), exact counts, idempotence, bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from algo_trade.importers import ImportOptions, run_import
from tests.importers.conftest import stored
from tests.importers.helpers import DATA

L2 = "tardis_binance-futures_incremental_book_L2_BTCUSDT_hftbacktest.csv.gz"
HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


def csv_rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == HEADER
    return [x.split(",") for x in lines[1:]]


def write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([HEADER] + [",".join(r) for r in rows]) + "\n")
    return path


def test_every_row_becomes_a_depth_row_with_both_clocks(lake):
    rows = csv_rows(DATA / L2)
    summary = run_import(lake, "tardis", [DATA / L2], ImportOptions())
    assert summary.rows()["depth"] == len(rows) == 17_949
    assert not summary.files[0].rejected
    got = stored(lake, "depth", "binance", "BTC-USDT-PERP").to_pydict()
    snap_rows = [r for r in rows if r[4] == "true"]
    assert sum(f & 1 for f in got["flags"]) == len(snap_rows) == 2_000
    # One snapshot run: one (ts, seq) for all of its rows.
    assert {(t, s) for t, s, f in zip(got["ts"], got["seq"], got["flags"], strict=True) if f} == {
        (int(snap_rows[0][2]) * 1000, -1)
    }
    want = sorted(
        (int(r[2]) * 1000, int(r[3]) * 1000, 1 if r[5] == "bid" else -1, float(r[6]), float(r[7]))
        for r in rows
    )
    mine = sorted(
        zip(got["ts"], got["ts_local"], got["side"], got["price"], got["qty"], strict=True)
    )
    assert mine == want
    again = run_import(lake, "tardis", [DATA / L2], ImportOptions())
    assert again.rows().get("depth", 0) == 0
    assert again.files[0].duplicates >= len(rows)


def test_same_rows_as_the_raw_capture_import(lake, tmp_path):
    """The sample re-lays the capture slice: importing either gives the same updates."""
    from algo_trade.store.lake import LakeStore

    run_import(lake, "tardis", [DATA / L2], ImportOptions())
    cap = LakeStore(tmp_path / "cap", fsync=False)
    run_import(
        cap, "capture", [DATA / "binance_usdm_btcusdt_20230404_head3000.gz"], ImportOptions()
    )
    a = stored(lake, "depth", "binance", "BTC-USDT-PERP").to_pydict()
    b = stored(cap, "depth", "binance", "BTC-USDT-PERP").to_pydict()
    cols = ("ts", "ts_local", "side", "price", "qty", "flags")
    assert sorted(zip(*(a[c] for c in cols), strict=True)) == sorted(
        zip(*(b[c] for c in cols), strict=True)
    )


def test_bad_input_is_counted_per_reason(lake, tmp_path):
    rows = csv_rows(DATA / L2)
    snap = [r for r in rows if r[4] == "true"]
    diffs = [r for r in rows if r[4] == "false"]
    # 1. diffs with no snapshot before them: nothing valid.
    only_diffs = write(tmp_path / "binance-futures_incremental_book_L2_a.csv", diffs)
    s = run_import(lake, "tardis", [only_diffs], ImportOptions())
    assert s.rows().get("depth", 0) == 0
    reason = "depth diff with no valid snapshot before it (replay would invent a book)"
    assert s.files[0].rejected == {reason: len(diffs)}
    # 2. a crossed snapshot (a bid above the best ask): the run and the diffs after it.
    best_ask = min(float(r[6]) for r in snap if r[5] == "ask")
    crossed = [list(r) for r in snap]
    bid = next(r for r in crossed if r[5] == "bid")
    bid[6] = f"{best_ask + 1:.2f}"
    path = write(tmp_path / "binance-futures_incremental_book_L2_b.csv", crossed + diffs[:50])
    s = run_import(lake, "tardis", [path], ImportOptions())
    assert s.files[0].rejected == {
        "depth snapshot with crossed levels (best bid >= best ask)": len(snap),
        reason: 50,
        "crossed book (best bid >= best ask)": 1,  # the book row sampled from it
    }
    # 3. receipt time going back: that row only.
    back = [list(r) for r in snap + diffs[:50]]
    back[-1][3] = str(int(back[-2][3]) - 1_000)
    path = write(tmp_path / "binance-futures_incremental_book_L2_c.csv", back)
    s = run_import(lake, "tardis", [path], ImportOptions())
    rej = s.files[0].rejected
    assert rej.pop("non-monotonic ts_local (receipt time went back within the batch)") == 1
    # The book is unknown after a rejected diff: later rows of that last message go too.
    last_msg = sum(1 for r in back if r[2] == back[-1][2])
    assert set(rej) <= {reason} and rej.get(reason, 0) < last_msg
    assert s.rows()["depth"] == len(back) - 1 - rej.get(reason, 0)


@pytest.mark.parametrize("nothing_valid", [True, False])
def test_cli_exit_2_one_line_when_nothing_valid_remains(tmp_path, capsys, nothing_valid):
    from tests.importers.test_cli_import import run

    rows = csv_rows(DATA / L2)
    diffs = [r for r in rows if r[4] == "false"]
    path = write(
        tmp_path / "binance-futures_incremental_book_L2_d.csv", diffs if nothing_valid else rows
    )
    code, out, err = run(["import", "tardis", str(path), "--home", str(tmp_path / "h")], capsys)
    if nothing_valid:
        assert code == 2
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(lines) == 1 and "nothing valid" in lines[0] and "Traceback" not in err
    else:
        assert code == 0, err
