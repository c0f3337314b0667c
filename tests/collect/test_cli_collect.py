"""`algo-trade collect` as a user runs it: a real process against real replay servers,
stopped by SIGTERM or killed with -9 and restarted; bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algo_trade.cli.main import main
from algo_trade.collect.spool import Spool
from algo_trade.errors import StoreError
from algo_trade.store.lake import LakeStore
from tests.collect.harness import ServerThread, binance_server, hl_server, scan_all, sent_frames
from tests.collect.test_pipeline import assert_trades_equal, binance_trades_expected, indexes

SYM = "BTC-USDT-PERP"
CLI = [sys.executable, "-m", "algo_trade.cli.main"]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--exchange", "kraken"], "unknown exchange 'kraken'"),
        (["--streams", "book,quotes"], "unknown stream 'quotes'"),
        (["--exchange", "hyperliquid", "--streams", "liquidation"], "no public liquidation stream"),
        (["--symbols", "btc/usdt"], "BTC-USDT-PERP"),
        (["--exchange", "bybit", "--symbols", "BTC-USD-PERP"], "USDT or USDC"),
        (["--book-interval", "soon"], "soon"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, says):
    code, out, err = run_cli(["collect", "--home", str(tmp_path), *args], capsys)
    assert code == 2
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert not (tmp_path / "spool").exists()  # nothing started


def test_unlisted_symbol_and_unreachable_endpoint_exit_2(tmp_path, capsys):
    with ServerThread(binance_server(), hl_server()) as st:
        b, h = st.servers
        code, out, err = run_cli(
            [
                "collect",
                "--home",
                str(tmp_path),
                "--symbols",
                "XYZ-USDT-PERP",
                "--binance-ws-url",
                b.ws_url,
                "--binance-rest-url",
                b.rest_url,
            ],
            capsys,
        )
        assert (
            code == 2
            and "XYZ-USDT-PERP is not listed on binance" in err
            and len(err.splitlines()) == 1
        )
        code, out, err = run_cli(
            [
                "collect",
                "--home",
                str(tmp_path),
                "--exchange",
                "binance,hyperliquid",
                "--symbols",
                "ETH-USDT-PERP,SOL-USDT-PERP",
                "--binance-ws-url",
                b.ws_url,
                "--binance-rest-url",
                b.rest_url,
                "--hyperliquid-ws-url",
                h.ws_url,
                "--hyperliquid-rest-url",
                h.rest_url,
                "--duration",
                "0.1s",
                "--json",
            ],
            capsys,
        )
        assert code == 0, err  # listed on both venues (BTC/ETH/SOL), a short clean run
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    code, out, err = run_cli(
        ["collect", "--home", str(tmp_path), "--binance-rest-url", dead], capsys
    )
    assert (
        code == 2
        and "cannot reach binance at http://127.0.0.1:9" in err
        and len(err.splitlines()) == 1
    )


def _collect_proc(home: Path, srv, *extra: str, env: dict | None = None) -> subprocess.Popen:
    args = [
        *CLI,
        "collect",
        "--exchange",
        "binance",
        "--symbols",
        SYM,
        "--streams",
        "trade",
        "--home",
        str(home),
        "--no-status",
        "--json",
        "--log-level",
        "warning",
        "--binance-ws-url",
        srv.ws_url,
        *extra,
    ]
    e = dict(os.environ, ALGO_TRADE_BINANCE_REST_URL=srv.rest_url, **(env or {}))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


def _wait(cond, timeout_s: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port: int, line_start: str) -> float:
    """One value from a collector's /metrics (0 until it serves or shows the series)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


TRADES_READ = 'algo_trade_collect_messages_total{exchange="binance",stream="trade"}'


def _spooled_rows(spool: Path) -> int:
    n = 0
    for p in spool.glob("*.arrow"):
        if not p.name.startswith("."):  # .tmp-*: an append in progress
            n += Spool.read(p).num_rows
    return n


def test_sigterm_flushes_everything_and_exits_0(tmp_path):
    srv = binance_server()
    trades = indexes(srv, "btcusdt@trade")
    srv.faults.stall_at, srv.faults.stall_s = trades[300], 120.0  # then silence
    with ServerThread(srv):
        # Long flush settings: at SIGTERM the rows are in the spool, not in the store.
        port = free_port()
        p = _collect_proc(
            tmp_path,
            srv,
            "--flush-interval",
            "60s",
            "--flush-rows",
            "100000",
            "--metrics-port",
            str(port),
        )
        _wait(lambda: metric(port, TRADES_READ) == 300, 30, "300 trades read")
        # Durable within the 100 ms window (group commit), not yet in the store (60 s).
        _wait(lambda: _spooled_rows(tmp_path / "spool") == 300, 30, "300 trades spooled")
        with pytest.raises(StoreError, match="no trade data is stored yet"):
            scan_all(LakeStore(tmp_path), "trade", "binance", SYM)
        p.send_signal(signal.SIGTERM)
        # Exits on its own (a hang fails here); how fast is measured, not asserted.
        out, err = p.communicate(timeout=30)
        sent = sent_frames(srv, "btcusdt@trade")
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary["left_in_spool"] == 0
    assert len(sent) == 300
    assert_trades_equal(
        scan_all(LakeStore(tmp_path), "trade", "binance", SYM), binance_trades_expected(sent)
    )
    assert _spooled_rows(tmp_path / "spool") == 0


def test_kill_9_then_restart_replays_the_spool(tmp_path):
    """The store cannot take writes (its trade directory is blocked by a file), so
    accepted batches pile up in the spool; kill -9; unblock; the restart replays them."""
    srv = binance_server()
    trades = indexes(srv, "btcusdt@trade")
    srv.faults.stall_at, srv.faults.stall_s = trades[300], 120.0
    blocker = tmp_path / "lake" / "trade"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    with ServerThread(srv):
        p = _collect_proc(tmp_path, srv, "--flush-interval", "200ms")
        _wait(lambda: _spooled_rows(tmp_path / "spool") == 300, 40, "300 trades in the spool")
        p.kill()
        p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL
        assert _spooled_rows(tmp_path / "spool") == 300
        blocker.unlink()
        # The restart: replays the spool first, then goes on where the venue is now.
        port = free_port()
        p = _collect_proc(tmp_path, srv, "--flush-interval", "200ms", "--metrics-port", str(port))
        _wait(lambda: srv.done({"btcusdt@trade"}), 40, "the replay to finish")
        _wait(lambda: metric(port, TRADES_READ) == 281, 40, "the last 281 trades read")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        sent = sent_frames(srv, "btcusdt@trade")
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary["replayed_from_spool"] == 300 and summary["left_in_spool"] == 0, (summary, err)
    assert len(sent) == 581
    assert_trades_equal(
        scan_all(LakeStore(tmp_path), "trade", "binance", SYM), binance_trades_expected(sent)
    )


def test_db_coverage_json(tmp_path, capsys):
    from algo_trade.collect.events import EventLog
    from algo_trade.exchanges.base import Event
    from tests.conftest import make_trades

    h0 = 1_704_067_200_000_000_000  # 2024-01-01 00:00
    store = LakeStore(tmp_path)
    store.write("trade", make_trades(3600, start_ns=h0))
    t = scan_all(store, "trade", "sim", SYM)
    assert t.num_rows == 3600
    EventLog(tmp_path).append(
        [Event("sim", SYM, "trade", h0 + 600 * 10**9, h0 + 900 * 10**9, "Connection lost")]
    )
    code, out, err = run_cli(
        [
            "db",
            "coverage",
            "--exchange",
            "sim",
            "--symbol",
            SYM,
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01 02:00",
            "--home",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    rows = {(r["hour"], r["stream"]): r for r in json.loads(out)}
    first = rows[(h0, "trade")]
    assert (
        first["rows"] == 3600
        and first["gap_s"] == 300.0
        and first["coverage"] == pytest.approx(1 - 300 / 3600, abs=1e-6)
    )
    assert first["gaps"] == "Connection lost"
    assert (h0, "book") not in rows  # no book data, no book gaps: not reported


def test_profile_and_memory_profile_of_a_collect_run(tmp_path):
    """--profile writes a pyinstrument page and --profile-memory prints the stage table;
    the run still stores what it was sent."""
    srv = binance_server()
    prof = tmp_path / "collect-profile.html"
    with ServerThread(srv):
        p = _collect_proc(
            tmp_path, srv, "--duration", "3s", "--profile", str(prof), "--profile-memory"
        )
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["left_in_spool"] == 0
    assert prof.stat().st_size > 1000 and "pyinstrument" in prof.read_text().lower()
    assert "peak traced Python memory" in err and "collect" in err
    assert scan_all(LakeStore(tmp_path), "trade", "binance", SYM).num_rows > 0
