"""Generic OHLCV import: real bar files in three time layouts, CSV and Parquet."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest

from algo_trade.errors import ConfigError, DataError
from algo_trade.importers import ImportOptions, run_import
from algo_trade.importers.ohlcv import parse_mapping
from tests.importers.conftest import stored
from tests.importers.helpers import DATA
from tests.realdata import data_path

FTX = "ftx_btc-perp_20211231-20220201_1m.csv.gz"
MONTHLY = "backtesting_py_BTCUSD_monthly.csv"
XRP_1H = "freqtrade_XRP_USDT_USDT-1h-futures.csv"


def ns(text: str, tz: str = "UTC") -> int:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz) if tz != "UTC" else UTC)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def test_ftx_minute_bars_found_by_name(lake):
    opts = ImportOptions(exchange="ftx", symbol="BTC-USD-PERP")
    summary = run_import(lake, "ohlcv", [data_path(DATA, FTX)], opts)
    with gzip.open(data_path(DATA, FTX), "rt") as fh:
        ref = list(csv.DictReader(fh))
    bars = stored(lake, "bar", "ftx", "BTC-USD-PERP")
    assert bars.num_rows == len(ref) == 45_031 == summary.rows()["bar"]
    got = bars.to_pylist()
    for k in (0, 20_000, len(ref) - 1):
        r, b = ref[k], got[k]
        assert b["ts"] == ns(r["timestamp"])
        assert (b["open"], b["high"], b["low"], b["close"], b["volume"]) == tuple(
            float(r[c]) for c in ("open", "high", "low", "close", "volume")
        )


def test_unnamed_date_column_and_capitalised_names(lake):
    run_import(
        lake, "ohlcv", [data_path(DATA, MONTHLY)], ImportOptions(exchange="x", symbol="BTC-USD")
    )
    with open(data_path(DATA, MONTHLY)) as fh:
        ref = list(csv.reader(fh))[1:]
    bars = stored(lake, "bar", "x", "BTC-USD").to_pylist()
    assert len(bars) == len(ref) == 156
    assert bars[0]["ts"] == ns(ref[0][0]) and bars[0]["close"] == float(ref[0][4])


def test_offsets_kept_and_tz_applied_to_naive_times(lake, tmp_path):
    run_import(
        lake,
        "ohlcv",
        [data_path(DATA, XRP_1H)],
        ImportOptions(exchange="a", symbol="XRP-USDT-PERP"),
    )
    with open(data_path(DATA, XRP_1H)) as fh:
        ref = list(csv.DictReader(fh))
    bars = stored(lake, "bar", "a", "XRP-USDT-PERP").to_pylist()
    assert [b["ts"] for b in bars] == [ns(r["date"]) for r in ref]
    # The same times without their offset, read as Berlin time (UTC+1 in November).
    naive = tmp_path / "naive.csv"
    naive.write_text(
        "Date,O,H,L,C\n"
        + "".join(
            f"{r['date'][:19]},{r['open']},{r['high']},{r['low']},{r['close']}\n" for r in ref
        )
    )
    opts = ImportOptions(
        exchange="b",
        symbol="XRP-USDT-PERP",
        tz="Europe/Berlin",
        mapping=parse_mapping("ts=Date,open=O,high=H,low=L,close=C"),
    )
    run_import(lake, "ohlcv", [naive], opts)
    berlin = stored(lake, "bar", "b", "XRP-USDT-PERP").to_pylist()
    assert [b["ts"] for b in berlin] == [ns(r["date"]) - 3600 * 10**9 for r in ref]
    assert all(b["volume"] != b["volume"] for b in berlin)  # no volume column: NaN


def test_parquet_and_epoch_units(lake, tmp_path):
    table = pv.read_csv(data_path(DATA, FTX))
    pq.write_table(table.slice(0, 1000), tmp_path / "ftx.parquet")
    run_import(
        lake,
        "ohlcv",
        [tmp_path / "ftx.parquet"],
        ImportOptions(exchange="p", symbol="BTC-USD-PERP"),
    )
    from_parquet = stored(lake, "bar", "p", "BTC-USD-PERP")
    assert from_parquet.num_rows == 1000
    secs = tmp_path / "secs.csv"
    rows = from_parquet.to_pylist()[:10]
    secs.write_text(
        "t,open,high,low,close,volume\n"
        + "".join(
            f"{r['ts'] // 10**9},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']}\n"
            for r in rows
        )
    )
    for unit in ("auto", "s"):
        opts = ImportOptions(
            exchange=f"s{unit}", symbol="BTC-USD-PERP", ts_unit=unit, mapping={"ts": "t"}
        )
        run_import(lake, "ohlcv", [secs], opts)
        got = stored(lake, "bar", f"s{unit}", "BTC-USD-PERP").to_pylist()
        assert [g["ts"] for g in got] == [r["ts"] for r in rows]


def test_bad_time_row_reported_with_its_line(lake, tmp_path):
    path = tmp_path / "bars.csv"
    with open(data_path(DATA, XRP_1H)) as fh:
        lines = fh.read().splitlines()
    lines[7] = "yesterday" + lines[7][len(lines[7].split(",")[0]) :]
    path.write_text("\n".join(lines) + "\n")
    s = run_import(lake, "ohlcv", [path], ImportOptions(exchange="a", symbol="XRP-USDT-PERP"))
    assert [(b.line, b.reason) for b in s.files[0].samples] == [(8, "column 'date': not a time")]
    assert s.rows()["bar"] == len(lines) - 2


def test_mapping_errors_say_what_to_do(lake):
    with pytest.raises(ConfigError, match="FIELD=COLUMN"):
        parse_mapping("when=Date")
    opts = ImportOptions(
        exchange="a", symbol="XRP-USDT-PERP", mapping={"close": "Price"}, strict=True
    )
    with pytest.raises(DataError, match=r"--map close=Price: no such column \(columns: date, open"):
        run_import(lake, "ohlcv", [data_path(DATA, XRP_1H)], opts)
    with pytest.raises(ConfigError, match="--symbol"):
        run_import(
            lake, "ohlcv", [data_path(DATA, XRP_1H)], ImportOptions(exchange="a", strict=True)
        )
