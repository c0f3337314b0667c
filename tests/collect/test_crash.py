"""kill -9 mid-stream, five times, against a live-clocked replay of a real Binance
capture: every trade the venue published is stored exactly once (the ones a dead
collector never saw are fetched back from aggTrades), and every downtime is recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

from algo_trade.collect.coverage import gaps
from algo_trade.collect.events import read_events
from algo_trade.exchanges.binance_backfill import parse_id
from algo_trade.store.lake import LakeStore
from algo_trade.testing.replay import ReplayServer, load_capture
from tests.collect.harness import ServerThread, scan_all
from tests.collect.refs import DATA
from tests.collect.test_cli_collect import CLI, TRADES_READ, _wait, free_port, metric

SYM = "BTC-USDT-PERP"
CAPTURE = DATA / "binance_usdm_btcusdt_20240808_head12000.gz"  # 47 s, 1,920 trades a loop
KILLS = 5
PENDING = 'algo_trade_collect_backfill_pending{exchange="binance"}'
BACKFILLED = 'algo_trade_collect_backfilled_trades_total{exchange="binance"}'


def _proc(home: Path, srv: ReplayServer, port: int) -> subprocess.Popen:
    args = [
        *CLI,
        "collect",
        "--exchange",
        "binance",
        "--symbols",
        SYM,
        "--streams",
        "book,trade",
        "--book-interval",
        "250ms",
        "--home",
        str(home),
        "--no-status",
        "--json",
        "--log-level",
        "warning",
        "--metrics-port",
        str(port),
        "--binance-ws-url",
        srv.ws_url,
    ]
    env = dict(os.environ, ALGO_TRADE_BINANCE_REST_URL=srv.rest_url)
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _durable_book_ts(home: Path) -> int:
    try:
        marks = json.loads((home / "spool" / "marks.json").read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return marks.get("binance", {}).get("last", {}).get(SYM, {}).get("book", 0)


def test_five_kill_9s_lose_no_trade_and_record_every_downtime(tmp_path):
    srv = ReplayServer(
        "binance",
        load_capture(CAPTURE),
        rest={
            "/fapi/v1/exchangeInfo": (
                DATA / "binance_exchangeinfo_20210722_subset.json"
            ).read_bytes()
        },
        speed=1.5,
        live=True,  # the venue goes on publishing while the collector is down
        # Three loops (ids and times moved on each loop): ~94 s of trading, so trades
        # go on after every restart however slowly a loaded machine starts them.
        loops=3,
        shift_loops=True,
    )
    backfilled = 0
    with ServerThread(srv):
        for k in range(KILLS):
            port = free_port()
            book0 = _durable_book_ts(tmp_path)
            p = _proc(tmp_path, srv, port)
            try:
                # Mid-stream: this run has read trades, made a book row durable, and
                # fetched back what the last kill made it miss.
                def mid_stream(port: int = port, book0: int = book0, k: int = k) -> bool:
                    return (
                        metric(port, TRADES_READ) >= 40
                        and _durable_book_ts(tmp_path) > book0
                        and (k == 0 or metric(port, BACKFILLED) > 0)
                        and metric(port, PENDING) == 0
                    )

                _wait(
                    mid_stream,
                    90,
                    f"run {k} mid-stream",
                )
                backfilled += metric(port, BACKFILLED)
            finally:
                p.kill()
                p.communicate(timeout=30)
            assert p.returncode == -signal.SIGKILL
        port = free_port()
        p = _proc(tmp_path, srv, port)
        trade_key = "btcusdt@trade"
        _wait(
            lambda: (
                srv.done({trade_key, "btcusdt@depth"})
                and metric(port, TRADES_READ) == srv.last_conn_sent.get(trade_key, 0)
                and metric(port, BACKFILLED) > 0
                and metric(port, PENDING) == 0
            ),
            240,
            "the last run to read everything",
        )
        backfilled += metric(port, BACKFILLED)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary["previous_run"] == "crashed" and summary["unfilled_trade_holes"] == 0

    # Every published trade stored once: ids (a backfilled range "f-l" covers f..l),
    # and the quantities add up exactly.
    published = [
        json.loads(raw if loop == 0 else srv.shift.frame(i, loop))["data"]
        for loop in range(srv.loops)
        for i, (_, key, raw) in enumerate(srv.frames)
        if key == "btcusdt@trade"
    ]
    assert len(published) == 3 * 1920
    by_id = {d["t"]: d for d in published}
    t = scan_all(LakeStore(tmp_path), "trade", "binance", SYM).to_pydict()
    ids = []
    for tid, ts, side, px, qty in zip(
        t["trade_id"], t["ts"], t["side"], t["price"], t["qty"], strict=True
    ):
        a, b = parse_id(tid)
        ids.extend(range(a, b + 1))
        fills = [by_id[i] for i in range(a, b + 1)]
        assert {f["T"] * 1_000_000 for f in fills} == {ts}, tid
        assert {float(f["p"]) for f in fills} == {px}, tid
        assert {-1 if f["m"] else 1 for f in fills} == {side}, tid
        assert Decimal(str(qty)) == sum(Decimal(f["q"]) for f in fills), tid
    lost = sorted(set(by_id) - set(ids))
    assert lost == [], f"{len(lost)} trades lost"
    assert len(ids) == len(set(ids)) == len(published)  # none twice
    assert backfilled > 0  # kills did make the collector miss trades

    # Every downtime recorded: one "collector down" gap per restart after a kill, for
    # the book (which cannot be fetched back), in venue time, visible to a backtest.
    runs = [json.loads(x) for x in (tmp_path / "spool" / "runs.jsonl").read_text().splitlines()]
    assert [r["event"] for r in runs] == ["start"] * (KILLS + 1) + ["stop"]
    evs = read_events(tmp_path, 0, 2**62, "binance", SYM)
    down = [e for e in evs if e.reason == "collector down"]
    assert len(down) == KILLS and {e.stream for e in down} == {"book"}, down
    assert all(e.end_ns >= e.start_ns and "kill -9" in e.detail for e in down)
    assert not [e for e in evs if e.reason == "trades not backfilled"]
    holes = gaps(tmp_path, "binance", SYM, "2024-08-08", "2024-08-10", stream="book").to_pydict()
    assert holes["reason"].count("collector down") == KILLS
    print(
        f"\n{KILLS} kill -9s: {backfilled:.0f} trade ids fetched back, 0 lost; "
        f"book downtime recorded {sum(e.end_ns - e.start_ns for e in down) / 1e9:.2f} s"
    )
