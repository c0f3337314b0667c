"""Hostile input files and names: a non-UTF-8 cell, a UTF-8 BOM header, times outside
int64 ns in a CSV, an unknown --tz, a non-UTF-8 --home, malformed names for db coverage."""

from __future__ import annotations

import json
import os

import pytest

from tests.hostile.probe import cli, inproc, refused, snapshot

IMPORT = ["import", "ohlcv", "--exchange", "x", "--symbol", "BTC-USDT-PERP", "--json"]
HEAD = b"timestamp,open,high,low,close,volume\n"


def _import(tmp_path, capsys, body: bytes, *extra: str):
    f = tmp_path / "in.csv"
    f.write_bytes(body)
    r = inproc([*IMPORT, str(f), "--home", str(tmp_path / "h"), *extra], capsys)
    return r, (json.loads(r.out) if r.code == 0 else None)


def test_non_utf8_cell_is_a_bad_row_with_its_line(tmp_path, capsys):
    body = HEAD + b"1704067200,100,101,99,100.5,3\n1704067260,10\xff0,101,99,100.5,3\n"
    body += b"1704067320,100,101,99,100.5,3\n"
    r, got = _import(tmp_path, capsys, body)
    assert r.code == 0 and got["written"] == {"bar": 2}
    assert got["files"][0]["bad_rows"][0].endswith(
        "in.csv:3: column 'open': not a valid double: '10\ufffd0'"
    )


def test_utf8_bom_header_is_recognised(tmp_path, capsys):
    r, got = _import(tmp_path, capsys, b"\xef\xbb\xbf" + HEAD + b"1704067200,100,101,99,100.5,3\n")
    assert r.code == 0 and got["written"] == {"bar": 1}


def test_times_outside_int64_ns_are_bad_rows(tmp_path, capsys):
    body = HEAD + b"9999-12-31,100,101,99,100.5,3\n0001-01-01,100,101,99,100.5,3\n"
    body += b"2024-01-01T00:10,100,101,99,100.5,3\n"
    r, got = _import(tmp_path, capsys, body)
    assert r.code == 0 and got["written"] == {"bar": 1}
    assert got["rejected"] == {"column 'timestamp': not a time": 2}
    body = HEAD + b"99999999999999999999,100,101,99,100.5,3\n1704067200,100,101,99,100.5,3\n"
    r, got = _import(tmp_path, capsys, body, "--ts-unit", "s")
    assert r.code == 0 and got["written"] == {"bar": 1}


def test_unknown_tz_refused_before_anything(tmp_path, capsys):
    f = tmp_path / "in.csv"
    f.write_bytes(HEAD + b"2024-01-01T00:00,100,101,99,100.5,3\n")
    home = tmp_path / "h"
    refused(inproc([*IMPORT, str(f), "--home", str(home), "--tz", "Mars/Olympus"], capsys), "--tz")
    assert not home.exists()


def test_non_utf8_home(tmp_path):
    home = os.fsdecode(os.fsencode(str(tmp_path)) + b"/h\xff\xfe")
    for argv in (["generate", "--days", "0.01"], ["db", "stats"]):
        line = refused(cli([*argv, "--home", home]), "not a UTF-8 path")
        assert "\\udcff" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--exchange", "Binance", "--symbol", "BTC-USDT-PERP"], "exchange"),
        (["--exchange", "binance", "--symbol", "BTC-USDT-PERP\n"], "symbol"),
    ],  # fmt: skip
)
def test_db_coverage_malformed_names(home_copy, capsys, extra, needle):
    before = snapshot(home_copy)
    r = inproc(["db", "coverage", "--home", str(home_copy), *extra,
                "--start", "2024-01-01", "--end", "2024-01-02"], capsys)  # fmt: skip
    refused(r, needle)
    assert snapshot(home_copy) == before
