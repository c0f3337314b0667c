"""Importing into PostgreSQL (a real server started by tests/pg.py), through the CLI."""

from __future__ import annotations

import json

import pytest

from algo_trade.cli.main import main
from algo_trade.store.base import open_store
from tests.importers.conftest import stored
from tests.importers.helpers import DATA
from tests.realdata import realdata

pytestmark = pytest.mark.integration


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_capture_and_tardis_into_postgres_idempotent(pg_db, capsys):  # noqa: F811
    files = [
        str(DATA / "binance_usdm_btcusdt_20230404.dat.gz"),
        str(DATA / "binance_usdm_btcusdt_20230405_head6000.gz"),
    ]
    argv = ["import", "capture", *files, "--book-interval", "1s", "--db", pg_db, "--json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    first = json.loads(out)
    assert first["written"]["funding"] > 0 and first["written"]["book"] > 0
    code, out, _ = run(argv, capsys)
    again = json.loads(out)
    assert sum(again["written"].values()) == 0
    assert again["duplicates"] == sum(first["written"].values())
    code, out, _ = run(
        [
            "import",
            "tardis",
            str(realdata("tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv.gz")),
            "--db",
            pg_db,
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["written"] == {"trade": 9999}
    store = open_store(pg_db)
    try:
        settled = [
            f
            for f in stored(store, "funding", "binance", "BTC-USDT-PERP").to_pylist()
            if f["settled"]
        ]
        assert [f["ts"] for f in settled] == [1680652800000 * 1_000_000]
        assert (
            stored(store, "trade", "binance", "BTC-USDT-PERP").num_rows
            == 9999 + first["written"]["trade"]
        )
    finally:
        store.close()
