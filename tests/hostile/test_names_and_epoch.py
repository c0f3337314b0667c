"""Hostile input, store classes: rows before 1970, names checked before anything is
written (one naming rule for both stores), non-finite prices refused at import."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.errors import DataError
from algo_trade.schema import check_exchange, check_symbol, validate
from algo_trade.store.lake import LakeStore
from tests.conftest import make_trades
from tests.hostile.probe import cli, inproc, refused, snapshot

DAY = 86_400 * 10**9


def test_rows_before_1970_are_stored_read_and_not_written_twice(tmp_path, capsys):
    home = str(tmp_path / "h")
    argv = ["generate", "--home", home, "--symbols", "BTC-USDT-PERP", "--days", "0.02",
            "--start", "1969-12-31T23:50", "--book-interval", "10s", "--depth", "3", "--json"]  # fmt: skip
    r = inproc(argv, capsys)
    assert r.code == 0
    written = json.loads(r.out)["written"]
    assert written["book"] == 172  # 1728 s / 10 s, crossing midnight 1970-01-01
    r = inproc(["db", "stats", "--home", home, "--json"], capsys)
    rows = {(s["kind"], s["symbol"]): s for s in json.loads(r.out)}
    book = rows[("book", "BTC-USDT-PERP")]
    assert book["rows"] == 172 and book["first"].startswith("1969-12-31T23:50")
    again = inproc(argv, capsys)
    assert again.code == 0 and json.loads(again.out)["written"].get("book", 0) == 0
    store = LakeStore(home)
    t = pa.Table.from_batches(
        list(store.scan("book", "sim", "BTC-USDT-PERP", -600 * 10**9, 600 * 10**9))
    )
    ts = t.column("ts").to_numpy()
    assert t.num_rows == 120 and ts[0] == -600 * 10**9 and np.all(np.diff(ts) == 10**10)


def test_pre_1970_file_names_round_trip(tmp_path):
    store = LakeStore(tmp_path)
    trades = make_trades(10, start_ns=-DAY - 5 * 10**9)  # 1969-12-30T23:59:55 .. crosses a day
    assert store.write("trade", trades).written == 10
    assert store.write("trade", trades).written == 0  # stored keys are seen
    back = pa.Table.from_batches(list(store.scan("trade", "sim", "BTC-USDT-PERP", -2 * DAY, 0)))
    assert back.column("trade_id").to_pylist() == [str(i) for i in range(1, 11)]
    assert store.compact()["days"] == 0
    assert sum(s.rows for s in store.stats()) == 10


@pytest.mark.parametrize("name", ["BTC-USDT-PERP\n", "BTC-USDT-PERP\r", " BTC-USDT-PERP", ""])
def test_symbol_rule_has_no_trailing_newline_hole(name):
    with pytest.raises(DataError):
        check_symbol(name)


@pytest.mark.parametrize("name", ["Binance", "binance\n", "bin ance", "bin\x00", "", "a" * 33])
def test_exchange_rule(name):
    with pytest.raises(DataError):
        check_exchange(name)


def test_validate_rejects_bad_exchange_and_symbol_rows():
    t = make_trades(4)
    t = t.set_column(1, "exchange", pa.array(["sim", "Binance", "sim", "sim"]).dictionary_encode())
    t = t.set_column(
        2,
        "symbol",
        pa.array(
            ["BTC-USDT-PERP", "BTC-USDT-PERP", "BTC-USDT-PERP\n", "BTC-USDT-PERP"]
        ).dictionary_encode(),
    )
    v = validate("trade", t)
    assert v.table.num_rows == 2 and v.n_rejected == 2


def test_store_write_refuses_names_before_writing(tmp_path, pg_url):
    """Both stores apply the same rule: the row with a bad name is rejected, not stored."""
    from algo_trade.store.postgres import PostgresStore

    t = make_trades(3)
    t = t.set_column(1, "exchange", pa.array(["sim", "Sim", "sim"]).dictionary_encode())
    for store in (LakeStore(tmp_path), PostgresStore(pg_url)):
        try:
            r = store.write("trade", t)
            assert r.written == 2 and sum(r.rejected.values()) == 1
            assert [x[1] for x in store.symbols("trade")] == ["sim"]
        finally:
            store.close()


def _mixed_csv(path, n_good: int, n_bad: int) -> None:
    t = 1_704_067_200
    lines = ["timestamp,exchange,symbol,open,high,low,close,volume"]
    for i in range(n_good + n_bad):
        ex = "binance" if i < n_good else "Binance"
        lines.append(f"{t + 60 * i},{ex},BTC-USDT-PERP,100,101,99,100.5,3")
    path.write_text("\n".join(lines) + "\n")


def test_import_strict_bad_exchange_writes_nothing(tmp_path):
    csv = tmp_path / "mixed.csv"
    _mixed_csv(csv, 3000, 5)
    home = tmp_path / "h"
    r = cli(["import", "ohlcv", str(csv), "--home", str(home), "--strict",
             "--map", "exchange=exchange,symbol=symbol"])  # fmt: skip
    refused(r, "mixed.csv:3002", "exchange name")
    assert not any(p.endswith(".parquet") for p in snapshot(home))


def test_import_bad_exchange_rows_reported_not_aborted(tmp_path, capsys):
    csv = tmp_path / "mixed.csv"
    _mixed_csv(csv, 50, 3)
    r = inproc(["import", "ohlcv", str(csv), "--home", str(tmp_path / "h"), "--json",
                "--map", "exchange=exchange,symbol=symbol"], capsys)  # fmt: skip
    assert r.code == 0
    got = json.loads(r.out)
    assert got["written"] == {"bar": 50}
    assert (
        list(got["rejected"].values()) == [3] and "mixed.csv:52" in got["files"][0]["bad_rows"][0]
    )


@pytest.mark.parametrize("option", [["--exchange", "Binance"], ["--exchange", "bin ance"]])
def test_import_exchange_option_checked_first(tmp_path, capsys, option):
    csv = tmp_path / "a.csv"
    _mixed_csv(csv, 3, 0)
    home = tmp_path / "h"
    refused(inproc(["import", "ohlcv", str(csv), "--home", str(home), *option], capsys), "exchange")
    assert snapshot(home) == {}


def test_non_finite_and_huge_prices_rejected_at_import(tmp_path, capsys):
    csv = tmp_path / "p.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{1_704_067_200 + 60 * i},100,101,99,100.5,3" for i in range(5)]
    lines += ["1704067600,inf,inf,99,100.5,3", "1704067660,1e308,1e308,99,100.5,3",
              "1704067720,100,101,99,100.5,inf"]  # fmt: skip
    csv.write_text("\n".join(lines) + "\n")
    r = inproc(["import", "ohlcv", str(csv), "--home", str(tmp_path / "h"), "--json",
                "--exchange", "x", "--symbol", "BTC-USDT-PERP"], capsys)  # fmt: skip
    got = json.loads(r.out)
    assert r.code == 0 and got["written"] == {"bar": 5}
    assert got["rejected"] == {"infinite or absurdly large value (above 1e15)": 3}


@pytest.mark.parametrize("kind", ["trade", "book"])
def test_validate_rejects_inf_in_every_kind(kind):
    from tests.conftest import make_books

    t = make_trades(3) if kind == "trade" else make_books(3, depth=2)
    col = "price" if kind == "trade" else "ask_sz_1"
    i = t.schema.get_field_index(col)
    vals = t.column(col).to_numpy().copy()
    vals[1] = np.inf
    v = validate(kind, t.set_column(i, col, pa.array(vals)))
    assert v.table.num_rows == 2 and v.n_rejected == 1
