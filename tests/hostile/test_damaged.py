"""Damaged lake files (truncated, zero-byte, garbage, wrong schema, a stray temporary):
backtest, sweep, db stats and db compact name the file and how to set it aside, in one
line; `db check` lists them and --quarantine moves them so reads go on."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile.probe import cli, inproc, refused, snapshot

RANGE = ["--symbol", "BTC-USDT-PERP", "--start", "2024-01-01", "--end", "2024-01-02"]


def _bar_files(home):
    day = home / "lake" / "bar" / "sim" / "BTC-USDT-PERP" / "2024-01-01"
    return day, sorted(p for p in day.iterdir() if p.suffix == ".parquet")


def _damage(home, how: str):
    from algo_trade.schema import label_array
    from algo_trade.store.lake import LakeStore

    late = 1_704_150_000 * 10**9  # 2024-01-01T23:00: a second file in the day to compact
    one = {"ts": pa.array([late]), "exchange": label_array("sim", 1),
           "symbol": label_array("BTC-USDT-PERP", 1)}  # fmt: skip
    one.update({c: pa.array([100.0]) for c in ("open", "high", "low", "close", "volume")})
    assert LakeStore(home).write("bar", pa.table(one)).written == 1
    day, files = _bar_files(home)
    victim = files[0]
    if how == "truncated":
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        victim.write_bytes(b"")
    elif how == "garbage":
        victim.write_bytes(os.urandom(4096))
    elif how == "wrong-schema":
        pq.write_table(pa.table({"x": [1, 2]}), victim)
    return victim


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "garbage", "wrong-schema"])
def test_damaged_file_named_everywhere_then_quarantined(home_copy, capsys, how):
    victim = _damage(home_copy, how)
    home = str(home_copy)
    before = snapshot(home_copy)
    probes = [
        ["backtest", "--strategy", "sma_cross", *RANGE, "--home", home],
        [
            "sweep",
            "--strategy",
            "sma_cross",
            *RANGE,
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=20",
            "--home",
            home,
            "--json",
        ],  # fmt: skip
        ["db", "stats", "--home", home],
        ["db", "compact", "--home", home],
    ]
    for argv in probes:
        line = refused(inproc(argv, capsys), str(victim), "db check")
        assert "quarantine" in line
    r = inproc(["db", "check", "--home", home, "--json"], capsys)
    assert r.code == 1 and [x["path"] for x in json.loads(r.out)] == [str(victim)]
    after = {k: v for k, v in snapshot(home_copy).items() if not k.startswith("cache/")}
    assert after == {k: v for k, v in before.items() if not k.startswith("cache/")}
    r = inproc(["db", "check", "--home", home, "--quarantine", "--json"], capsys)
    assert r.code == 0 and json.loads(r.out)[0]["moved_to"].startswith(f"{home}/quarantine/")
    assert not victim.exists()
    r = inproc(["db", "stats", "--home", home, "--json"], capsys)
    assert r.code == 0
    assert inproc(["db", "check", "--home", home], capsys).code == 0


def test_stray_temporary_and_foreign_names(home_copy, capsys):
    day, _ = _bar_files(home_copy)
    (day / ".tmp-garbage").write_bytes(b"x")
    (day / ".tmp-999999999-x.parquet").write_bytes(b"x")  # a writer that is long gone
    (day / "notes.txt").write_text("hi")
    home = str(home_copy)
    assert inproc(["db", "stats", "--home", home], capsys).code == 0  # reads ignore them
    r = inproc(["db", "compact", "--home", home, "--json"], capsys)
    assert r.code == 0 and json.loads(r.out)["temp_removed"] == 1
    r = inproc(["db", "check", "--home", home, "--json"], capsys)
    assert r.code == 1
    assert sorted(os.path.basename(x["path"]) for x in json.loads(r.out)) == [
        ".tmp-garbage",
        "notes.txt",
    ]


def test_damaged_file_subprocess_one_line(home_copy):
    victim = _damage(home_copy, "garbage")
    refused(cli(["db", "stats", "--home", str(home_copy)]), str(victim))
