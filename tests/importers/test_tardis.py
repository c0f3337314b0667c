"""Tardis CSV import on the real samples in tests/data (checked against the csv module)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from algo_trade.errors import DataError
from algo_trade.importers import ImportOptions, booknb, run_import
from algo_trade.importers.reader import StrictStop
from tests.importers.conftest import stored
from tests.importers.helpers import DATA, copy_data
from tests.realdata import data_path

BOOK25 = "tardis_binance-futures_book_snapshot_25_BTCUSDT.csv"
BOOK5 = "tardis_binance-futures_book_snapshot_5_BTCUSDT.csv"
QUOTES = "tardis_binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"
TRADES = "tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
DERIBIT_L2 = "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv"


def rows_of(name: str) -> list[dict]:
    opener = gzip.open if name.endswith(".gz") else open
    with opener(data_path(DATA, name), "rt") as fh:
        return list(csv.DictReader(fh))


def last_per_ts(rows: list[dict]) -> dict[int, dict]:
    """The importer keeps the last book row of equal timestamps."""
    out: dict[int, dict] = {}
    for r in rows:
        out[int(r["timestamp"]) * 1000] = r
    return out


@pytest.mark.parametrize(("name", "levels"), [(BOOK25, 25), (BOOK5, 5)])
def test_book_snapshots_import_every_level(lake, name, levels):
    summary = run_import(lake, "tardis", [data_path(DATA, name)], ImportOptions())
    expected = last_per_ts(rows_of(name))
    book = stored(lake, "book", "binance", "BTC-USDT-PERP")
    assert summary.rows() == {"book": len(expected)} and book.num_rows == len(expected) == 10
    assert summary.files[0].dataset == f"book_snapshot_{levels}"
    assert [c for c in book.column_names if c.startswith("bid_px_")][-1] == f"bid_px_{levels - 1}"
    assert book.column("ts").to_pylist() == sorted(expected)
    for k, ts in enumerate(sorted(expected)):
        row = expected[ts]
        for i in range(levels):
            assert book.column(f"bid_px_{i}")[k].as_py() == float(row[f"bids[{i}].price"])
            assert book.column(f"bid_sz_{i}")[k].as_py() == float(row[f"bids[{i}].amount"])
            assert book.column(f"ask_px_{i}")[k].as_py() == float(row[f"asks[{i}].price"])
            assert book.column(f"ask_sz_{i}")[k].as_py() == float(row[f"asks[{i}].amount"])
    # A spot check by eye against the file's first line.
    assert book.column("ask_px_0")[0].as_py() == 11657.08
    assert book.column("bid_px_0")[0].as_py() == 11657.07


def test_quotes_become_top_of_book(lake):
    summary = run_import(lake, "tardis", [data_path(DATA, QUOTES)], ImportOptions())
    ref = last_per_ts(rows_of(QUOTES))
    good = {
        ts: r
        for ts, r in ref.items()
        if r["bid_price"] and r["ask_price"] and float(r["bid_price"]) < float(r["ask_price"])
    }
    book = stored(lake, "book", "binance", "BTC-USDT-PERP")
    assert book.num_rows == len(good) == summary.rows()["book"]
    assert sum(summary.files[0].rejected.values()) == len(ref) - len(good)
    ts = book.column("ts").to_pylist()
    for k in (0, len(ts) // 2, len(ts) - 1):
        r = good[ts[k]]
        assert book.column("bid_px_0")[k].as_py() == float(r["bid_price"])
        assert book.column("bid_sz_0")[k].as_py() == float(r["bid_amount"])
        assert book.column("ask_px_0")[k].as_py() == float(r["ask_price"])
        assert book.column("ask_sz_0")[k].as_py() == float(r["ask_amount"])


def test_trades_exact_rows_and_values(lake):
    summary = run_import(lake, "tardis", [data_path(DATA, TRADES)], ImportOptions())
    ref = rows_of(TRADES)
    trades = stored(lake, "trade", "binance", "BTC-USDT-PERP")
    assert len(ref) == 9999 and trades.num_rows == 9999 == summary.rows()["trade"]
    by_id = {r["id"]: r for r in ref}
    got = trades.to_pylist()
    for t in got[:50] + got[-50:]:
        r = by_id[t["trade_id"]]
        assert t["ts"] == int(r["timestamp"]) * 1000
        assert t["price"] == float(r["price"]) and t["qty"] == float(r["amount"])
        assert t["side"] == (1 if r["side"] == "buy" else -1)
    sides = np.array(trades.column("side").to_pylist())
    assert (sides == 1).sum() == sum(r["side"] == "buy" for r in ref)


def test_reimport_stores_nothing_twice(lake):
    paths = [data_path(DATA, BOOK25), data_path(DATA, TRADES)]
    first = run_import(lake, "tardis", paths, ImportOptions())
    second = run_import(lake, "tardis", paths, ImportOptions())
    assert sum(second.rows().values()) == 0
    assert sum(f.duplicates for f in second.files) == sum(first.rows().values())
    assert stored(lake, "trade", "binance", "BTC-USDT-PERP").num_rows == 9999


def test_time_range_filter(lake):
    ref = rows_of(TRADES)
    cut = int(ref[5000]["timestamp"]) * 1000
    run_import(lake, "tardis", [data_path(DATA, TRADES)], ImportOptions(start_ns=cut))
    ts = stored(lake, "trade", "binance", "BTC-USDT-PERP").column("ts").to_numpy()
    assert len(ts) == sum(int(r["timestamp"]) * 1000 >= cut for r in ref) and ts.min() >= cut


def _with_bad_line(tmp_path: Path, line_no: int) -> Path:
    """A copy of the trades file with a non-numeric price on line `line_no` (header = 1)."""
    with gzip.open(data_path(DATA, TRADES), "rt") as fh:
        lines = fh.read().splitlines()
    parts = lines[line_no - 1].split(",")
    parts[6] = "12o34.5"
    lines[line_no - 1] = ",".join(parts)
    path = tmp_path / "bad" / "binance-futures_trades_BTCUSDT_bad.csv.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_bad_row_reported_with_file_and_line_then_skipped(lake, tmp_path):
    path = _with_bad_line(tmp_path, 4321)
    summary = run_import(lake, "tardis", [path], ImportOptions())
    report = summary.files[0]
    assert report.rejected == {"column 'price': not a valid double": 1}
    assert [(s.file, s.line) for s in report.samples] == [(str(path), 4321)]
    assert "12o34.5" in report.samples[0].reason
    assert stored(lake, "trade", "binance", "BTC-USDT-PERP").num_rows == 9998


def test_strict_stops_and_writes_nothing_from_the_file(lake, tmp_path):
    path = _with_bad_line(tmp_path, 9000)
    with pytest.raises(StrictStop, match=rf"{path.name}:9000: column 'price'"):
        run_import(lake, "tardis", [path], ImportOptions(strict=True))
    assert lake.symbols() == []


def test_truncated_gzip_names_the_file(lake, tmp_path):
    path = copy_data(TRADES, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    summary = run_import(lake, "tardis", [path], ImportOptions())
    assert summary.files[0].error is not None
    assert str(path) in summary.files[0].error and "truncated" in summary.files[0].error
    # Blocks read whole before the damage are kept (none in a file this small); a good
    # copy later adds only the rest.
    kept = summary.rows().get("trade", 0)
    again = run_import(lake, "tardis", [data_path(DATA, TRADES)], ImportOptions())
    assert again.rows()["trade"] == 9999 - kept and again.files[0].duplicates == kept
    from algo_trade.store.lake import LakeStore

    strict_store = LakeStore(tmp_path / "strict", fsync=False)
    with pytest.raises(DataError, match="truncated"):
        run_import(strict_store, "tardis", [path], ImportOptions(strict=True))
    assert strict_store.symbols() == []


def test_unknown_header_and_mixed_symbols(lake, tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n")
    summary = run_import(lake, "tardis", [odd], ImportOptions())
    assert "unknown header" in summary.files[0].error and str(odd) in summary.files[0].error
    with pytest.raises(DataError, match=r"holds symbol\(s\) BTC-USDT-PERP, but --symbol says ETH"):
        run_import(
            lake,
            "tardis",
            [data_path(DATA, TRADES)],
            ImportOptions(symbol="ETH-USDT-PERP", strict=True),
        )


# ---------------------------------------------------------------- incremental_book_L2


def test_deribit_incremental_l2_rebuilds_the_file_book():
    """The sample is one snapshot of 15 ask levels: the rebuilt book holds exactly them."""
    rows = rows_of(DERIBIT_L2)
    ts = np.array([int(r["timestamp"]) * 1000 for r in rows], np.int64)
    px = np.array([float(r["price"]) for r in rows])
    sz = np.array([float(r["amount"]) for r in rows])
    is_bid = np.array([r["side"] == "bid" for r in rows])
    is_snap = np.array([r["is_snapshot"] == "true" for r in rows])
    state, bids, asks = booknb.new_state()
    out_ts = np.empty(8, np.int64)
    out_lv = np.empty((8, 4 * 20))
    booknb.replay_l2_nb(ts, is_snap, is_bid, px, sz, 0, state, bids, asks, 10**9, out_ts, out_lv)
    assert booknb.final_row_nb(state, bids, asks, out_ts, out_lv) == 1
    assert out_ts[0] == (ts[0] // 10**9 + 1) * 10**9
    order = np.argsort(px)
    np.testing.assert_array_equal(out_lv[0, 40:55], px[order])  # ask prices, best first
    np.testing.assert_array_equal(out_lv[0, 60:75], sz[order])
    assert np.isnan(out_lv[0, :40]).all()  # no bids in the sample


def test_deribit_one_sided_book_is_reported_not_stored(lake):
    summary = run_import(lake, "tardis", [data_path(DATA, DERIBIT_L2)], ImportOptions())
    assert summary.rows().get("book", 0) == 0
    assert summary.files[0].rejected == {"missing best bid or ask": 1}


def _capture_as_incremental_l2(path: Path) -> Path:
    """The REST snapshot and depth diffs of the Binance capture slice, re-laid as Tardis
    incremental_book_L2 rows (as Tardis publishes Binance futures depth): the snapshot at
    its T with is_snapshot=true, then every diff from the one that bridges it, at its E."""
    rows = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    snap = None
    diffs = []
    with gzip.open(data_path(DATA, "binance_usdm_btcusdt_20240808_head12000.gz"), "rt") as fh:
        for line in fh:
            recv, raw = line.split(" ", 1)
            obj = json.loads(raw)
            if "lastUpdateId" in obj:
                snap = (obj, int(recv) // 1000)
            elif obj["data"].get("e") == "depthUpdate":
                diffs.append((obj["data"], int(recv) // 1000))
    assert snap is not None
    obj, local_us = snap
    last_id = obj["lastUpdateId"]
    for side, key in (("bid", "bids"), ("ask", "asks")):
        for p, q in obj[key]:
            rows.append(f"binance-futures,BTCUSDT,{obj['T'] * 1000},{local_us},true,{side},{p},{q}")
    first = next(i for i, (d, _) in enumerate(diffs) if d["U"] <= last_id <= d["u"])
    for d, local_us in diffs[first:]:
        for side, key in (("bid", "b"), ("ask", "a")):
            for p, q in d[key]:
                rows.append(
                    f"binance-futures,BTCUSDT,{d['E'] * 1000},{local_us},false,{side},{p},{q}"
                )
    path.write_text("\n".join(rows) + "\n")
    return path


def test_incremental_l2_matches_the_collectors_book_builder(tmp_path):
    """The same real snapshot + diffs, rebuilt by the Tardis importer's kernel and by the
    collector's Binance Normalizer: the 20-level books agree at every common grid time."""
    from algo_trade.store.lake import LakeStore

    l2 = _capture_as_incremental_l2(tmp_path / "binance-futures_incremental_book_L2_BTCUSDT.csv")
    a = LakeStore(tmp_path / "a", fsync=False)
    b = LakeStore(tmp_path / "b", fsync=False)
    run_import(a, "tardis", [l2], ImportOptions(depth=20))
    run_import(
        b,
        "capture",
        [data_path(DATA, "binance_usdm_btcusdt_20240808_head12000.gz")],
        ImportOptions(book_interval_ns=10**9),
    )
    ours = stored(a, "book", "binance", "BTC-USDT-PERP")
    theirs = stored(b, "book", "binance", "BTC-USDT-PERP")
    common = sorted(set(ours.column("ts").to_pylist()) & set(theirs.column("ts").to_pylist()))
    assert len(common) >= 30
    for name in [c for c in ours.column_names if c.startswith(("bid_", "ask_"))]:
        x = dict(zip(ours.column("ts").to_pylist(), ours.column(name).to_pylist(), strict=True))
        y = dict(zip(theirs.column("ts").to_pylist(), theirs.column(name).to_pylist(), strict=True))
        assert [x[t] for t in common] == [y[t] for t in common], name


# ---------------------------------------------------------------- derivative_ticker


def _mark_price_as_derivative_ticker(path: Path) -> tuple[Path, list[dict]]:
    """The real markPrice@1s messages that cross the 2023-04-05 00:00 settlement, re-laid
    as Tardis derivative_ticker rows (Tardis takes these fields from the same stream)."""
    msgs = []
    rows = [
        "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
        "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
    ]
    with gzip.open(data_path(DATA, "binance_usdm_btcusdt_markprice_20230404_05.gz"), "rt") as fh:
        for line in fh:
            recv, raw = line.split(" ", 1)
            d = json.loads(raw)["data"]
            msgs.append(d)
            rows.append(
                f"binance-futures,BTCUSDT,{d['E'] * 1000},{recv.strip()},{d['T'] * 1000},"
                f"{d['r']},,,,{d['i']},{d['p']}"
            )
    path.write_text("\n".join(rows) + "\n")
    return path, msgs


def test_derivative_ticker_funding_and_the_settlement(lake, tmp_path):
    path, msgs = _mark_price_as_derivative_ticker(
        tmp_path / "binance-futures_derivative_ticker.csv"
    )
    run_import(lake, "tardis", [path], ImportOptions())
    funding = stored(lake, "funding", "binance", "BTC-USDT-PERP").to_pylist()
    predicted = [f for f in funding if not f["settled"]]
    settled = [f for f in funding if f["settled"]]
    assert len(predicted) == len(msgs)
    settle_ms = 1680652800000
    last_rate = [float(m["r"]) for m in msgs if m["T"] == settle_ms][-1]
    assert [(f["ts"], f["rate"]) for f in settled] == [(settle_ms * 1_000_000, last_rate)]
    # The next funding time moved 8 h: the interval is read from the file from then on.
    assert settled[0]["interval_h"] == 8.0 and predicted[-1]["interval_h"] == 8.0
    p0 = predicted[0]
    assert p0["mark_px"] == float(msgs[0]["p"]) and p0["index_px"] == float(msgs[0]["i"])
    assert p0["next_ts"] == msgs[0]["T"] * 1_000_000


def test_liquidations_share_the_trades_header_and_are_told_by_name(lake, tmp_path):
    """Tardis liquidations files have the trades header; the file name says which it is."""
    path = tmp_path / "binance-futures_liquidations_BTCUSDT_2020-02-22.csv.gz"
    path.write_bytes((data_path(DATA, TRADES)).read_bytes())
    summary = run_import(lake, "tardis", [path], ImportOptions())
    assert summary.files[0].dataset == "liquidations"
    ref = {
        (
            int(r["timestamp"]) * 1000,
            1 if r["side"] == "buy" else -1,
            float(r["price"]),
            float(r["amount"]),
        )
        for r in rows_of(TRADES)
    }
    got = stored(lake, "liquidation", "binance", "BTC-USDT-PERP").to_pylist()
    assert {(g["ts"], g["side"], g["price"], g["qty"]) for g in got} == ref and len(got) == len(ref)
