"""Binance public-data import (data.binance.vision layout, values from real captures/dumps)."""

from __future__ import annotations

import pytest

from algo_trade.errors import DataError
from algo_trade.importers import ImportOptions, run_import
from tests.importers import vision_files as vf
from tests.importers.conftest import stored

MIN_NS = 60 * 10**9


def test_trades_with_checksum(lake, tmp_path):
    path = vf.write_zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "trades", vf.trade_rows())
    summary = run_import(lake, "binance-vision", [tmp_path], ImportOptions())
    msgs = vf.capture_messages("trade")
    trades = stored(lake, "trade", "binance", "BTC-USDT-PERP")
    assert trades.num_rows == len(msgs) == summary.rows()["trade"]
    assert summary.files[0].notes == ["checksum verified"] and summary.files[0].path == str(path)
    by_id = {str(d["t"]): d for d in msgs}
    for t in trades.to_pylist()[:100]:
        d = by_id[t["trade_id"]]
        assert t["ts"] == d["T"] * 1_000_000 and t["price"] == float(d["p"])
        assert t["qty"] == float(d["q"]) and t["side"] == (-1 if d["m"] else 1)


def test_agg_trades_headerless_share_ids_with_the_live_stream(lake, tmp_path):
    vf.write_zip(
        tmp_path / "BTCUSDT-aggTrades-2024-08-08.zip",
        "aggTrades",
        vf.agg_trade_rows(),
        header=False,
    )
    run_import(lake, "binance-vision", [tmp_path], ImportOptions())
    ids = stored(lake, "trade", "binance", "BTC-USDT-PERP").column("trade_id").to_pylist()
    assert sorted(ids) == sorted(f"a{d['t']}" for d in vf.capture_messages("trade"))


def test_book_ticker_is_top_of_book(lake, tmp_path):
    vf.write_zip(
        tmp_path / "BTCUSDT-bookTicker-2024-08-08.zip", "bookTicker", vf.book_ticker_rows()
    )
    summary = run_import(lake, "binance-vision", [tmp_path], ImportOptions())
    last: dict[int, dict] = {}
    for d in vf.capture_messages("bookTicker"):
        last[d["T"] * 1_000_000] = d  # the last update of each millisecond is kept
    book = stored(lake, "book", "binance", "BTC-USDT-PERP")
    assert book.num_rows == len(last) == summary.rows()["book"]
    assert [c for c in book.column_names if c.endswith("_0")] == [
        "bid_px_0",
        "bid_sz_0",
        "ask_px_0",
        "ask_sz_0",
    ]
    for row in book.to_pylist()[::500]:
        d = last[row["ts"]]
        assert (row["bid_px_0"], row["bid_sz_0"], row["ask_px_0"], row["ask_sz_0"]) == (
            float(d["b"]),
            float(d["B"]),
            float(d["a"]),
            float(d["A"]),
        )


def test_funding_rate_settlements(lake, tmp_path):
    rows = vf.funding_rows()
    dec_1 = 1638316800000  # monthly files, as Binance publishes them
    nov = [r for r in rows if int(r.split(",")[0]) < dec_1]
    dec = [r for r in rows if int(r.split(",")[0]) >= dec_1]
    vf.write_zip(tmp_path / "XRPUSDT-fundingRate-2021-11.zip", "fundingRate", nov)
    vf.write_zip(tmp_path / "XRPUSDT-fundingRate-2021-12.zip", "fundingRate", dec)
    summary = run_import(lake, "binance-vision", [tmp_path], ImportOptions())
    assert [f.written["funding"] for f in summary.files] == [len(nov), len(dec)]
    funding = stored(lake, "funding", "binance", "XRP-USDT-PERP").to_pylist()
    assert len(funding) == len(rows) == 91
    assert all(f["settled"] and f["interval_h"] == 8.0 for f in funding)
    # calc_time's few ms of jitter are rounded to the minute: 00:00, 08:00, 16:00 UTC.
    assert all(f["ts"] % (8 * 3600 * 10**9) == 0 and f["next_ts"] == f["ts"] for f in funding)
    for f, line in zip(funding, rows, strict=True):
        ms, _h, rate = line.split(",")
        assert abs(f["ts"] - int(ms) * 1_000_000) < MIN_NS // 2 and f["rate"] == float(rate)
    assert min(f["rate"] for f in funding) < -0.002  # the 2021-12-04 crash is in there


@pytest.mark.parametrize("header", [True, False])
def test_klines_with_or_without_header(lake, tmp_path, header):
    rows = vf.kline_rows()
    vf.write_zip(tmp_path / "XRPUSDT-klines-1h-2021-11.zip", "klines", rows, header=header)
    summary = run_import(lake, "binance-vision", [tmp_path], ImportOptions())
    bars = stored(lake, "bar", "binance", "XRP-USDT-PERP").to_pylist()
    assert len(bars) == len(rows) == 100 and summary.files[0].dataset == "klines_1h"
    for bar, line in zip(bars, rows, strict=True):
        t, o, h, lo, c, v = line.split(",")[:6]
        assert bar["ts"] == int(t) * 1_000_000
        assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == tuple(
            map(float, (o, h, lo, c, v))
        )


def test_checksum_mismatch_and_truncated_zip(lake, tmp_path):
    path = vf.write_zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "trades", vf.trade_rows())
    (tmp_path / (path.name + ".CHECKSUM")).write_text("0" * 64 + f"  {path.name}\n")
    s = run_import(lake, "binance-vision", [path], ImportOptions())
    assert "SHA-256 does not match" in s.files[0].error and str(path) in s.files[0].error
    assert lake.symbols() == []
    (tmp_path / (path.name + ".CHECKSUM")).unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    s = run_import(lake, "binance-vision", [path], ImportOptions())
    assert str(path) in s.files[0].error and "zip" in s.files[0].error
    assert lake.symbols() == []


def test_book_depth_is_refused_clearly(lake, tmp_path):
    # bookDepth's documented layout: timestamp,percentage,depth,notional (bands, not levels).
    path = tmp_path / "BTCUSDT-bookDepth-2024-08-08.csv"
    path.write_text("timestamp,percentage,depth,notional\n")
    s = run_import(lake, "binance-vision", [path], ImportOptions())
    assert "percentage band" in s.files[0].error and "not price levels" in s.files[0].error


def test_symbol_checks(lake, tmp_path):
    path = vf.write_zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "trades", vf.trade_rows()[:10])
    with pytest.raises(DataError, match="holds BTC-USDT-PERP .* but --symbol says ETH-USDT-PERP"):
        run_import(
            lake, "binance-vision", [path], ImportOptions(symbol="ETH-USDT-PERP", strict=True)
        )
    unnamed = tmp_path / "trades.csv"
    unnamed.write_text(vf.HEADERS["trades"] + "\n" + "\n".join(vf.trade_rows()[:10]) + "\n")
    s = run_import(lake, "binance-vision", [unnamed], ImportOptions())
    assert "give --symbol" in s.files[0].error
    s = run_import(lake, "binance-vision", [unnamed], ImportOptions(symbol="BTC-USDT-PERP"))
    assert s.rows() == {"trade": 10}
