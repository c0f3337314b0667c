"""Raw capture import: real Binance USD-M and Hyperliquid websocket captures, replayed
through the collector's own Normalizers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from algo_trade.errors import DataError
from algo_trade.importers import ImportOptions, run_import
from algo_trade.importers.reader import StrictStop
from tests.importers.conftest import stored
from tests.importers.helpers import DATA, copy_data

USDM_2024 = "binance_usdm_btcusdt_20240808_head12000.gz"
USDM_0404 = "binance_usdm_btcusdt_20230404.dat.gz"
USDM_0405 = "binance_usdm_btcusdt_20230405_head6000.gz"
SETTLE_NS = 1680652800000 * 1_000_000  # 2023-04-05 00:00 UTC
BOOKS = ImportOptions(book_interval_ns=10**9)  # sampled books are asked for (none by default)


def messages(name: str) -> list[dict]:
    out = []
    with gzip.open(DATA / name, "rt") as fh:
        for line in fh:
            out.append(json.loads(line.split(" ", 1)[1]))
    return out


def test_binance_2024_books_trades(lake):
    summary = run_import(lake, "capture", [DATA / USDM_2024], BOOKS)
    msgs = messages(USDM_2024)
    trade_msgs = [m["data"] for m in msgs if m.get("data", {}).get("e") == "trade"]
    trades = stored(lake, "trade", "binance", "BTC-USDT-PERP")
    assert trades.num_rows == len(trade_msgs) == summary.rows()["trade"]
    assert sorted(trades.column("trade_id").to_pylist()) == sorted(str(d["t"]) for d in trade_msgs)
    first = trades.to_pylist()[0]
    d0 = min(trade_msgs, key=lambda d: (d["T"], d["t"]))
    assert first["ts"] == d0["T"] * 1_000_000 and first["price"] == float(d0["p"])
    assert first["side"] == (-1 if d0["m"] else 1)
    book = stored(lake, "book", "binance", "BTC-USDT-PERP")
    ts = book.column("ts").to_pylist()
    snap = next(m for m in msgs if "lastUpdateId" in m)
    last_diff_ms = max(m["data"]["E"] for m in msgs if m.get("data", {}).get("e") == "depthUpdate")
    # One row per second of the grid from the first second after the snapshot to the last diff.
    assert ts[0] == (snap["T"] // 1000 + 1) * 10**9
    assert ts == list(range(ts[0], (last_diff_ms // 1000) * 10**9 + 1, 10**9))
    assert summary.files[0].dataset == "binance BTC-USDT-PERP"
    assert not summary.files[0].rejected


def test_binance_2023_files_continue_and_keep_the_settlement(lake, tmp_path):
    folder = tmp_path / "raw"
    copy_data(USDM_0404, folder)
    copy_data(USDM_0405, folder)
    summary = run_import(lake, "capture", [folder], BOOKS)
    assert [Path(f.path).name for f in summary.files] == [USDM_0404, USDM_0405]
    funding = stored(lake, "funding", "binance", "BTC-USDT-PERP").to_pylist()
    marks = [
        m["data"]
        for name in (USDM_0404, USDM_0405)
        for m in messages(name)
        if m.get("data", {}).get("e") == "markPriceUpdate"
    ]
    assert len([f for f in funding if not f["settled"]]) == len(marks)
    settled = [f for f in funding if f["settled"]]
    last_rate = [float(d["r"]) for d in marks if d["T"] == SETTLE_NS // 1_000_000][-1]
    assert [(f["ts"], f["rate"], f["interval_h"]) for f in settled] == [(SETTLE_NS, last_rate, 8.0)]
    # The book built from 04-04's snapshot goes on through 04-05 (that file has none).
    book_ts = stored(lake, "book", "binance", "BTC-USDT-PERP").column("ts").to_pylist()
    assert min(book_ts) < SETTLE_NS < max(book_ts)
    assert SETTLE_NS in book_ts
    assert book_ts == list(range(book_ts[0], book_ts[-1] + 1, 10**9))
    assert summary.files[1].written.get("book", 0) > 0
    trades = stored(lake, "trade", "binance", "BTC-USDT-PERP")
    n_trades = sum(
        1
        for name in (USDM_0404, USDM_0405)
        for m in messages(name)
        if m.get("data", {}).get("e") == "trade"
    )
    assert trades.num_rows == n_trades


def test_reimport_is_idempotent(lake):
    paths = [DATA / USDM_0404, DATA / USDM_0405]
    first = run_import(lake, "capture", paths, ImportOptions())
    second = run_import(lake, "capture", paths, ImportOptions())
    assert sum(second.rows().values()) == 0
    assert sum(f.duplicates for f in second.files) == sum(first.rows().values())


def test_hyperliquid_capture(lake):
    summary = run_import(lake, "capture", [DATA / "hyperliquid_btc_20250126.gz"], BOOKS)
    msgs = messages("hyperliquid_btc_20250126.gz")
    n_trades = sum(len(m["data"]) for m in msgs if m["channel"] == "trades")
    assert summary.rows()["trade"] == n_trades
    book = stored(lake, "book", "hyperliquid", "BTC-USDC-PERP")
    assert book.num_rows == summary.rows()["book"] > 0
    # Each row holds the last full l2Book message with venue time before the grid time.
    books = [m["data"] for m in msgs if m["channel"] == "l2Book"]
    for row in book.to_pylist():
        last = [b for b in books if b["time"] * 1_000_000 < row["ts"]][-1]
        assert row["bid_px_0"] == float(last["levels"][0][0]["px"])
        assert row["ask_px_0"] == float(last["levels"][1][0]["px"])


def test_bad_line_reported_and_strict_stops(lake, tmp_path):
    path = tmp_path / "binance" / "2023-04-04.gz"
    path.parent.mkdir()
    with gzip.open(DATA / USDM_0404, "rt") as src, gzip.open(path, "wt") as dst:
        for i, line in enumerate(src, start=1):
            if i == 40:
                dst.write("1680652700000000 {not json\n")
            elif i == 41:
                dst.write("no timestamp here\n")
            else:
                dst.write(line)
    summary = run_import(lake, "capture", [path], ImportOptions())
    report = summary.files[0]
    assert [(s.line, s.reason) for s in report.samples] == [
        (40, "message the venue parser cannot use"),
        (41, "line is not '<receive time> <raw message>'"),
    ]
    assert summary.rows()["trade"] > 0
    strict_home = tmp_path / "strict"
    from algo_trade.store.lake import LakeStore

    strict_store = LakeStore(strict_home, fsync=False)
    with pytest.raises(StrictStop, match=r"2023-04-04.gz:40: message the venue parser"):
        run_import(strict_store, "capture", [path], ImportOptions(strict=True))
    assert strict_store.symbols() == []


def test_truncated_capture_names_the_file(lake, tmp_path):
    path = copy_data(USDM_0404, tmp_path)
    path.write_bytes(path.read_bytes()[:-5000])
    summary = run_import(lake, "capture", [path], ImportOptions())
    assert "truncated" in summary.files[0].error and str(path) in summary.files[0].error
    with pytest.raises(DataError, match="truncated"):
        run_import(lake, "capture", [path], ImportOptions(strict=True))


def test_symbol_and_venue_checks(lake, tmp_path):
    with pytest.raises(DataError, match="holds BTC-USDT-PERP, but --symbol says ETH-USDT-PERP"):
        run_import(
            lake, "capture", [DATA / USDM_0404], ImportOptions(symbol="ETH-USDT-PERP", strict=True)
        )
    # Hyperliquid stores USDC perps: BTC-USDT-PERP names the same coin.
    s = run_import(
        lake,
        "capture",
        [DATA / "hyperliquid_btc_20250126.gz"],
        ImportOptions(symbol="BTC-USDT-PERP"),
    )
    assert s.files[0].error is None and s.rows()["trade"] > 0
    odd = tmp_path / "odd.gz"
    with gzip.open(odd, "wt") as fh:
        fh.write("just some text\nmore text\n")
    s = run_import(lake, "capture", [odd], ImportOptions())
    assert "unknown format" in s.files[0].error and str(odd) in s.files[0].error
    coinm = DATA / "binance_coinm_btcusd_perp_20240808_head20.gz"
    s = run_import(lake, "capture", [coinm], ImportOptions())
    assert "BTCUSD_PERP" in s.files[0].error and str(coinm) in s.files[0].error


def test_bybit_capture_two_symbols(lake):
    """The real Bybit v5 linear recording (orderbook, tickers, publicTrade for BTC and ETH)."""
    name = "bybit_v5_linear_btc_eth.jsonl.gz"
    summary = run_import(lake, "capture", [DATA / name], BOOKS)
    assert summary.files[0].dataset == "bybit BTC-USDT-PERP,ETH-USDT-PERP"
    trades = {}
    for m in messages(name):
        if str(m.get("topic", "")).startswith("publicTrade."):
            for t in m["data"]:
                trades.setdefault(t["s"], set()).add(str(t["i"]))
    for venue, ours in (("BTCUSDT", "BTC-USDT-PERP"), ("ETHUSDT", "ETH-USDT-PERP")):
        got = stored(lake, "trade", "bybit", ours).column("trade_id").to_pylist()
        assert sorted(got) == sorted(trades[venue])
        book = stored(lake, "book", "bybit", ours)
        assert book.num_rows > 0
        assert all(
            b < a
            for b, a in zip(
                book.column("bid_px_0").to_pylist(),
                book.column("ask_px_0").to_pylist(),
                strict=True,
            )
        )
    assert summary.rows()["funding"] > 0
