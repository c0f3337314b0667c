"""Hostile input: every size and interval option is bounded before work starts (no run
past its bound, no memory blow-up), --where cannot make the evaluator hang or crash, and
long runs answer SIGTERM and Ctrl-C with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from algo_trade.errors import ConfigError
from algo_trade.sweep.grid import Constraint, Grid
from tests.hostile.probe import inproc, refused, snapshot

RANGE = ["--symbol", "BTC-USDT-PERP", "--start", "2024-01-01", "--end", "2024-01-02"]
SW = ["sweep", "--strategy", "sma_cross", *RANGE, "--grid", "fast=5,10", "--grid", "slow=20"]
COLLECT = ["collect", "--exchange", "binance", "--symbols", "BTC-USDT-PERP", "--duration", "5s"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([*COLLECT, "--book-interval", "1ns"], "--book-interval"),
        ([*COLLECT, "--book-interval", "100us"], "--book-interval"),
        ([*COLLECT, "--depth", "100000"], "--depth"),
        ([*COLLECT, "--metrics-port", "-1"], "--metrics-port"),
        ([*COLLECT, "--metrics-port", "70000"], "--metrics-port"),
        ([*COLLECT, "--metrics-port", "-5"], "--metrics-port"),
        ([*COLLECT, "--spool", "/etc/hostname"], "--spool"),
        ([*COLLECT, "--record-raw", "/etc/hostname"], "--record-raw"),
        (["import", "ohlcv", "/etc/hostname", "--depth", "20000"], "--depth"),
        (["import", "tardis", "/etc/hostname", "--book-interval", "1ns"], "--book-interval"),
        ([*SW[:-4], "--grid", "fast=log:1:1000:100000000", "--grid", "slow=20"], "1,000,000"),
        ([*SW[:-4], "--grid", "fast=1:100000000"], "1,000,000"),
        ([*SW, "--seed", "-1"], "--seed"),
        ([*SW, "--top", "-5"], "--top"),
        ([*SW, "--workers", "0"], "--workers"),
        ([*SW, "--workers", "-3"], "--workers"),
        ([*SW, "--where", "(" * 5000 + "fast" + ")" * 5000], "characters"),
        ([*SW, "--where", "+".join(["fast"] * 190) + ">0"], "terms"),
    ],
)
def test_bounded_before_any_work(home_copy, capsys, argv, needle):
    before = snapshot(home_copy)
    refused(inproc([*argv, "--home", str(home_copy)], capsys), needle)
    assert snapshot(home_copy) == before


def test_metrics_port_in_use_refused_before_connecting(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = inproc([*COLLECT, "--home", str(tmp_path / "h"), "--metrics-port", str(port)], capsys)
        refused(r, "in use")
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize(
    "where, kept",
    [
        ("fast < 9**9**9**9", [5, 10]),  # inf at once, not hours of big-int arithmetic
        ("fast ** -1 < 0.15", [10]),  # int ** negative int: 0.2, 0.1
        ("fast / 0 > 1", [5, 10]),
        ("(slow - 20) ** 0.5 >= 0", [5, 10]),
    ],
)
def test_where_arithmetic_is_bounded_and_total(where, kept):
    t0 = time.monotonic()
    got = Grid({"fast": [5, 10], "slow": [20]}, where=where).combinations()
    assert got["fast"].tolist() == kept and time.monotonic() - t0 < 5


def test_where_scalar_division_by_zero_is_one_error():
    with pytest.raises(ConfigError, match="cannot be evaluated"):
        Grid({"fast": [5]}, where="fast > 1 // 0").combinations()


@pytest.mark.parametrize(
    "text", ["(" * 100_000 + "fast" + ")" * 100_000, " + ".join(["fast"] * 20_000) + " > 0"]
)
def test_where_huge_expressions_refused(text):
    with pytest.raises(ConfigError):
        Constraint.parse(text)


def test_random_search_on_a_huge_grid_samples_without_building_it():
    g = Grid({"fast": range(1, 10_001), "slow": range(1, 10_001), "x": [1, 2, 3]},
             where="fast < slow", random=10, seed=3)  # fmt: skip
    got = g.combinations()
    assert len(got) == 10 and (got["fast"] < got["slow"]).all()
    assert got.equals(g.combinations())  # seeded: the same sample again


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_long_run_answers_signals(tmp_path, sig, code, line):
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from algo_trade.cli.main import main; main()",
            "generate",
            "--home",
            str(tmp_path / "h"),
            "--days",
            "60",
            "--depth",
            "5",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "h" / "lake").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until it is working (a condition, not a fixed time)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code and err.strip().splitlines() == [err.strip()] and line in err
