"""Hostile input: bad settings and numbers (non-finite, huge, out of int64 ns, a range
shorter than one bar), output paths that cannot be written, a full disk, a read-only lake
and a module:function strategy that is no strategy. Each probe: exit 2, one line, no
traceback, the store as it was."""

from __future__ import annotations

import json
import shutil

import pytest

from algo_trade.store.lake import LakeStore
from algo_trade.timeutil import parse_time_ns
from tests.hostile.conftest import remount_read_only, tmpfs
from tests.hostile.probe import cli, inproc, refused, snapshot

RANGE = ["--symbol", "BTC-USDT-PERP", "--start", "2024-01-01", "--end", "2024-01-02"]
BT = ["backtest", "--strategy", "sma_cross", *RANGE]


def test_bare_year_and_int64_bounds():
    assert parse_time_ns("2024") == parse_time_ns("2024-01-01")
    assert parse_time_ns("1704067200000000000") == parse_time_ns("2024-01-01")
    for bad in ("9999-12-31", "0001-01-01", str(2**63)):
        with pytest.raises(Exception, match="int64"):
            parse_time_ns(bad)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["generate", "--days", "nan"], "finite"),
        (["generate", "--days", "inf"], "finite"),
        (["generate", "--days", "1e300"], "at most"),
        (["generate", "--days", "3000", "--book-interval", "1ms"], "snapshots"),
        (["generate", "--start", "9999-12-31"], "int64"),
        (["generate", "--start", "0001-01-01"], "int64"),
        (["generate", "--start", "2262-04-01", "--days", "30"], "int64"),
        (["demo", "--days", "nan"], "finite"),
        (["demo", "--days", "0.0001"], "--days"),
        ([*BT, "--init-cash", "nan"], "finite"),
        ([*BT, "--leverage", "inf"], "finite"),
        ([*BT, "--mode", "book", "--latency-ms", "1e300"], "latency_ms"),
        ([*BT, "--bar", "1000d"], "longer than the range"),
        (
            [
                "backtest",
                "--strategy",
                "sma_cross",
                "--symbol",
                "BTC-USDT-PERP",
                "--start",
                "2024-01-01T00:00",
                "--end",
                "2024-01-01T00:00:30",
            ],
            "at least two",
        ),  # fmt: skip
        ([*BT, "--start", "9999-12-31"], "int64"),
        (["backtest", "--strategy", "os:system", *RANGE], "not a Python function"),
        (["backtest", "--strategy", "subprocess:call", *RANGE], "market data first"),
        (["backtest", "--strategy", "json:dumps", *RANGE], "strategy"),
        ([*BT, "--report", "/"], "is a directory"),
        ([*BT, "--trades-out", "/tmp"], "must end in"),
        ([*BT, "--equity-out", "x.txt"], "must end in"),
        ([*BT, "--profile", "/"], "is a directory"),
    ],
)
def test_refused_in_one_line_store_unchanged(home_copy, capsys, argv, needle):
    before = snapshot(home_copy)
    refused(inproc([*argv, "--home", str(home_copy)], capsys), needle)
    assert snapshot(home_copy) == before


def test_start_2024_is_the_year(market, capsys):
    r = inproc(["backtest", "--strategy", "sma_cross", "--symbol", "BTC-USDT-PERP",
                "--start", "2024", "--end", "2025", "--home", str(market), "--json"], capsys)  # fmt: skip
    assert r.code == 0
    stats = json.loads(r.out)["stats"]
    assert stats["start"].startswith("2024-01-01") and stats["end"].startswith("2024-01-01")


def test_resampled_bars_stay_inside_the_range(market, capsys):
    r = inproc([*BT[:-4], "--start", "2024-01-01T00:30", "--end", "2024-01-01T02:00",
                "--bar", "1h", "--home", str(market), "--json"], capsys)  # fmt: skip
    assert r.code == 0
    assert json.loads(r.out)["stats"]["start"].startswith("2024-01-01T00:30")


def test_subprocess_probe_output_dir(market):
    """The same contract in a fresh process: one line, no traceback, nothing written."""
    before = snapshot(market)
    refused(cli([*BT, "--home", str(market), "--report", "/tmp"]), "directory")
    assert snapshot(market) == before


def test_full_disk_generate_and_report(tmp_path, market, capsys):
    """A real 1 MB filesystem: generate fills it and stops with one line; what was stored
    before stays readable; a report that does not fit leaves no partial file."""
    with tmpfs(tmp_path / "small", "1m") as small:
        home = small / "h"
        r = cli(["generate", "--home", str(home), "--symbols", "BTC-USDT-PERP", "--days", "2",
                 "--depth", "20"])  # fmt: skip
        line = refused(r, "disk is full")
        assert str(small) in line
        assert not [p for p in snapshot(home) if "/.tmp-" in p or p.startswith(".tmp-")]
        store = LakeStore(home)
        for st in store.stats():  # every file that is named is whole and readable
            assert st.rows > 0
        r = inproc([*BT, "--home", str(market), "--report", str(small / "r.html")], capsys)
        refused(r, "disk is full")
        assert not (small / "r.html").exists()


def test_read_only_lake_is_readable(tmp_path, market, capsys):
    with tmpfs(tmp_path / "ro", "64m") as ro:
        shutil.copytree(market, ro / "h")
        remount_read_only(ro)
        home = str(ro / "h")
        r = inproc(["db", "stats", "--home", home, "--json"], capsys)
        assert r.code == 0 and json.loads(r.out)
        r = inproc([*BT, "--home", home, "--json"], capsys)
        assert r.code == 0 and json.loads(r.out)["stats"]["trades"] >= 0
        refused(inproc(["db", "compact", "--home", home], capsys), "read-only")
        refused(inproc(["generate", "--home", home, "--days", "0.01"], capsys), "read-only")


def test_full_disk_import_keeps_whole_files_and_resumes(tmp_path):
    """An import that fills a real small filesystem stops in one line; every named file
    is whole; after space is freed (a bigger disk) the same import adds only the rest."""
    csv = tmp_path / "big.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{1_704_067_200 + 60 * i},{100 + i % 7},{102 + i % 7},{99},{101},{i % 5}"
              for i in range(120_000)]  # fmt: skip
    csv.write_text("\n".join(lines) + "\n")
    args = ["import", "ohlcv", str(csv), "--exchange", "x", "--symbol", "BTC-USDT-PERP"]
    with tmpfs(tmp_path / "small", "300k") as small:
        home = small / "h"
        refused(cli([*args, "--home", str(home)]), "disk is full")
        stored = sum(s.rows for s in LakeStore(home).stats())
        assert 0 < stored < 120_000
        shutil.copytree(home, tmp_path / "h2")
    r = cli([*args, "--home", str(tmp_path / "h2"), "--json"])
    assert r.code == 0 and json.loads(r.out)["written"] == {"bar": 120_000 - stored}
