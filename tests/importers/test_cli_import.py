"""`algo-trade import`: exit codes, one-line errors, JSON summary, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from algo_trade.cli.main import main
from tests.importers.helpers import DATA, copy_data, write_tardis_book_csv
from tests.realdata import data_path

TRADES = "tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_import_json_summary_then_idempotent(tmp_path, capsys):
    folder = tmp_path / "in"
    copy_data(TRADES, folder)
    copy_data("tardis_binance-futures_book_snapshot_25_BTCUSDT.csv", folder / "sub")
    home = str(tmp_path / "h")
    code, out, _ = run(["import", "tardis", str(folder), "--home", home, "--json"], capsys)
    assert code == 0
    first = json.loads(out)
    assert first["written"] == {"trade": 9999, "book": 10} and first["rejected"] == {}
    assert first["first_ts"] == 1582329602111000000
    code, out, _ = run(["import", "tardis", str(folder), "--home", home, "--json"], capsys)
    again = json.loads(out)
    assert code == 0 and sum(again["written"].values()) == 0 and again["duplicates"] == 10009
    code, out, _ = run(["db", "stats", "--home", home, "--json"], capsys)
    assert code == 0 and "9999" in out.replace(",", "")


def test_human_summary_lists_rows_and_bad_rows(tmp_path, capsys):
    path = tmp_path / "binance-futures_trades_x.csv"
    path.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132\n"
        "binance-futures,BTCUSDT,1582329602116000,1582329602418420,42377945,buy,-9682,0.412\n"
    )
    code, out, err = run(["import", "tardis", str(path), "--home", str(tmp_path / "h")], capsys)
    assert code == 0
    assert "trade 1" in out and "negative or zero price or qty" in out
    assert f"{path}:3: negative or zero price or qty" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["import", "csv", "x"], "unknown format 'csv'"),
        (["import", "tardis", "/no/such/dir"], "/no/such/dir: no such file or directory"),
        (
            ["import", "tardis", str(data_path(DATA, TRADES)), "--symbol", "btc"],
            "does not follow the rule",
        ),
        (
            ["import", "tardis", str(data_path(DATA, TRADES)), "--book-interval", "soon"],
            "bad duration",
        ),
        (["import", "ohlcv", str(data_path(DATA, TRADES)), "--map", "when=Date"], "FIELD=COLUMN"),
        (
            [
                "import",
                "tardis",
                str(data_path(DATA, TRADES)),
                "--start",
                "2020-03-01",
                "--end",
                "2020-02-01",
            ],
            "--end (2020-02-01) must be after --start",
        ),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    code, _out, err = run([*argv, "--home", str(tmp_path / "h")], capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_file_exit_2_naming_it_and_strict_writes_nothing(tmp_path, capsys):
    path = copy_data(TRADES, tmp_path / "in")
    path.write_bytes(path.read_bytes()[:60_000])
    home = str(tmp_path / "h")
    code, out, err = run(["import", "tardis", str(path), "--home", home, "--json"], capsys)
    assert code == 2 and f"error: {path}: the file is truncated" in err
    assert "Traceback" not in err
    code, _out, err = run(["import", "tardis", str(path), "--home", home + "2", "--strict"], capsys)
    assert code == 2 and "truncated" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(["db", "stats", "--home", home + "2", "--json"], capsys)
    assert code == 0 and json.loads(out) in ([], {"datasets": []}) or "trade" not in out


MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from algo_trade.importers import ImportOptions, run_import
    from algo_trade.store.lake import LakeStore
    s = run_import(LakeStore(sys.argv[2], fsync=False), "tardis", [sys.argv[1]], ImportOptions())
    print(json.dumps({"rows": s.rows(), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


@pytest.mark.integration
def test_memory_is_bounded_by_blocks_not_file_size(tmp_path):
    """Peak RSS stops growing with the file: a ~200 MB CSV peaks about as high as one of
    ~80 MB (blocks in flight and one write batch, whatever the file size)."""
    mid = write_tardis_book_csv(tmp_path / "binance-futures_book_snapshot_25_mid.csv", 100_000)
    big = write_tardis_book_csv(
        tmp_path / "binance-futures_book_snapshot_25_big.csv", 250_000, seed=1
    )
    assert big.stat().st_size > 190 * 2**20
    out = {}
    for name, path in (("mid", mid), ("big", big)):
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path), str(tmp_path / f"h-{name}")],
            capture_output=True,
            text=True,
            check=True,
        )
        out[name] = json.loads(proc.stdout)
    assert out["big"]["rows"] == {"book": 250_000} and out["mid"]["rows"] == {"book": 100_000}
    grown_mb = (big.stat().st_size - mid.stat().st_size) / 2**20
    # Reading everything would add ~grown_mb (more once parsed); streaming adds noise only.
    assert out["big"]["rss_mb"] - out["mid"]["rss_mb"] < 0.5 * grown_mb, (out, grown_mb)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("tardis", TRADES),
        ("tardis", "tardis_binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"),
        ("capture", "binance_usdm_btcusdt_20230404.dat.gz"),
        ("capture", "binance_usdm_btcusdt_20240808_head12000.gz"),
        ("ohlcv", "ftx_btc-perp_20211231-20220201_1m.csv.gz"),
    ],
)
def test_corrupted_copy_of_each_file_fails_naming_it(tmp_path, capsys, fmt, name):
    """Bytes flipped in the middle of the compressed stream: one line, exit 2, no traceback."""
    path = copy_data(name, tmp_path / "in")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 400] = bytes(b ^ 0x5A for b in data[mid : mid + 400])
    path.write_bytes(bytes(data))
    extra = ["--exchange", "ftx", "--symbol", "BTC-USD-PERP"] if fmt == "ohlcv" else []
    argv = ["import", fmt, str(path), "--home", str(tmp_path / "h"), "--strict", *extra]
    code, _out, err = run(argv, capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(path) in err and ("corrupt" in err or "truncated" in err), err
