"""Collector work per CPU-second and peak memory at a fixed 3,000 msg/s, beside cryptofeed.

Same input for every client, measured in the same run: the real Binance USD-M capture of
tests/data (depth diffs and trades, the book + trade mix; trades in Binance's aggTrade
format, which cryptofeed subscribes to and our Normalizer also reads), looped with
times and ids moved forward, served by the replay server at a fixed ~3,000 msg/s.
Clients, one process each, one after the other on the same server:

- `algo-trade collect --streams book,trade` and `--streams book,depth,trade` into the
  lake, fsync on (the real collector: parse, books, spool, store);
- cryptofeed 3.0.1 (Python 3.13, uvloop) with counting callbacks for L2_BOOK and TRADES,
  in its own venv (benchmarks/.venv-cryptofeed, made with a python3.13 if there is one);
- a bare aiohttp websocket client that only counts frames (no parsing, no storage).

Per client: messages received and CPU time (user + system, all threads) over the same
steady window (after a warm-up that covers imports, connecting and the first book),
so start-up costs are left out for everyone; peak RSS (VmHWM) of the process.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_collect import _cpu_s, _free_port  # noqa: E402

DATA = ROOT / "tests" / "data"
CAPTURE = DATA / "binance_usdm_btcusdt_20230404_head3000.gz"
INFO = DATA / "binance_exchangeinfo_20210722_subset.json"
RATE = 3000  # msg/s offered
CF_VENV = ROOT / "benchmarks" / ".venv-cryptofeed"
CF_VERSION = "3.0.1"


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def book_trade_capture(out: Path) -> float:
    """The capture's depth diffs, REST snapshot and trades (as aggTrade frames) into
    `out`; returns the messages per recorded second (to pace the server)."""
    lines = []
    first = last = None
    n = 0
    with gzip.open(CAPTURE, "rt") as f:
        for line in f:
            ts, raw = line.rstrip("\n").split(" ", 1)
            obj = json.loads(raw)
            stream = obj.get("stream", "")
            if "@depth" in stream or "lastUpdateId" in obj:
                lines.append(line.rstrip("\n"))
            elif stream.endswith("@trade"):
                d = obj["data"]
                agg = {
                    "e": "aggTrade",
                    "E": d["E"],
                    "a": d["t"],
                    "s": d["s"],
                    "p": d["p"],
                    "q": d["q"],
                    "f": d["t"],
                    "l": d["t"],
                    "T": d["T"],
                    "m": d["m"],
                }
                frame = {"stream": stream.replace("@trade", "@aggTrade"), "data": agg}
                lines.append(f"{ts} {json.dumps(frame, separators=(',', ':'))}")
            else:
                continue
            if stream:
                n += 1
                t = int(ts)
                first = t if first is None else first
                last = t
    with gzip.open(out, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return n / ((last - first) / 1e6)  # µs receive times


def _server(work: Path, capture: Path, speed: float) -> tuple[subprocess.Popen, int]:
    port_file = work / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "algo_trade.testing.replay", "--exchange", "binance",
         "--capture", str(capture), "--ts-scale", "1000",
         "--rest", f"/fapi/v1/exchangeInfo={INFO}", "--loops", "1000000", "--shift-loops",
         "--port-file", str(port_file), "--speed", f"{speed:.3f}"],
        stdout=subprocess.DEVNULL, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )  # fmt: skip
    t0 = time.monotonic()
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() - t0 > 30 or proc.poll() is not None:
            raise RuntimeError("replay server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _metrics_messages(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    # one count per feed: depth reads the book feed, so its messages are the book's
    vals = {}
    for stream, v in re.findall(
        r'^algo_trade_collect_messages_total\{exchange="[^"]*",stream="([^"]*)"\} (\S+)$',
        text,
        re.M,
    ):
        vals["book" if stream == "depth" else stream] = float(v)
    return int(sum(vals.values()))


_COUNTER = """
import asyncio, sys, time
import aiohttp

async def main(port, seconds):
    n = 0
    async def one(http, stream):
        nonlocal n
        async with http.ws_connect(f"ws://127.0.0.1:{port}/stream?streams={stream}") as ws:
            async for _ in ws:
                n += 1
    async def report():
        while True:
            print(f"{time.monotonic():.3f} {n}", flush=True)
            await asyncio.sleep(1)
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(one(http, s)) for s in ("btcusdt@depth", "btcusdt@trade")]
        tasks.append(asyncio.create_task(report()))
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""

_CRYPTOFEED = """
import sys, time, asyncio, threading
from cryptofeed import FeedHandler
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges import BinanceFutures
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint

import cryptofeed.connection as C

# cryptofeed refuses plain ws:// (the replay server on 127.0.0.1 has no TLS): let it pass
_init = C.WSAsyncConn.__init__
def _ws_init(self, address, *a, **k):
    _init(self, "wss://" + address[5:] if address.startswith("ws://") else address, *a, **k)
    self.address = address
C.WSAsyncConn.__init__ = _ws_init

port, seconds = int(sys.argv[1]), float(sys.argv[2])
base = f"127.0.0.1:{port}"
BinanceFutures.websocket_endpoints = [WebsocketEndpoint(f"ws://{base}", options={"compression": None})]
BinanceFutures.rest_endpoints = [RestEndpoint(f"http://{base}", routes=Routes(
    "/fapi/v1/exchangeInfo", l2book="/fapi/v1/depth?symbol={}&limit={}",
    open_interest="/fapi/v1/openInterest?symbol={}"))]
n = 0
async def count(*args, **kw):
    global n
    n += 1
def report():
    while True:
        print(f"{time.monotonic():.3f} {n}", flush=True)
        time.sleep(1)
threading.Thread(target=report, daemon=True).start()
fh = FeedHandler(config={"uvloop": True, "log": {"disabled": True}})
fh.add_feed(BinanceFutures(symbols=["BTC-USDT-PERP"], channels=[L2_BOOK, TRADES],
                           callbacks={L2_BOOK: count, TRADES: count}))
threading.Timer(seconds, lambda: __import__("os")._exit(0)).start()
fh.run()
"""


def cryptofeed_python() -> str | None:
    """The cryptofeed venv's python, made once with a python3.13 when there is one."""
    py = CF_VENV / "bin" / "python"
    if py.exists():
        return str(py)
    candidates = [os.environ.get("CRYPTOFEED_PYTHON"), shutil.which("python3.13")]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python") for p in sorted(pyenv.glob("3.1[3-9]*"))]
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        try:
            subprocess.run([c, "-m", "venv", str(CF_VENV)], check=True, capture_output=True)
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", f"cryptofeed=={CF_VERSION}", "uvloop"],
                check=True,
                capture_output=True,
                timeout=600,
            )
            return str(py)
        except (subprocess.SubprocessError, OSError):
            shutil.rmtree(CF_VENV, ignore_errors=True)
    return None


def _measure(proc: subprocess.Popen, count, warm_s: float, seconds: float) -> dict:
    """Messages and CPU over [warm_s, seconds] of a running client; peak RSS."""
    t0 = time.monotonic()
    start = None
    peak = 0.0
    while proc.poll() is None and time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        peak = max(peak, _hwm_mb(proc.pid) or 0.0)
        if start is None and time.monotonic() - t0 >= warm_s:
            start = (time.monotonic(), count(), _cpu_s(proc.pid))
    end = (time.monotonic(), count(), _cpu_s(proc.pid))
    peak = max(peak, _hwm_mb(proc.pid) or 0.0)
    if start is None or None in start or None in end:
        raise RuntimeError("client ended before the measurement window")
    msgs = end[1] - start[1]
    cpu = end[2] - start[2]
    return {
        "msgs": msgs,
        "rate": msgs / (end[0] - start[0]),
        "per_cpu_s": msgs / cpu if cpu > 0 else None,
        "cpu_share": cpu / (end[0] - start[0]),
        "peak_rss_mb": peak,
    }


def _line_counter(proc: subprocess.Popen):  # noqa: ANN202 - a counter reading stdout lines
    import threading

    last = [0]

    def pump() -> None:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                last[0] = int(parts[1])

    threading.Thread(target=pump, daemon=True).start()
    return lambda: last[0]


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def run(quick: bool) -> list[dict]:
    seconds = 30 if quick else 75
    warm = 10 if quick else 15
    work = Path(tempfile.mkdtemp(prefix="bench-collect-cpu-"))
    capture = work / "book_trade.gz"
    per_s = book_trade_capture(capture)
    server, port = _server(work, capture, RATE / per_s)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    results: dict[str, dict] = {}
    notes: dict[str, str] = {}
    try:
        for name, streams in (("ours", "book,trade"), ("ours_depth", "book,depth,trade")):
            mport = _free_port()
            home = work / f"home-{name}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "algo_trade.cli.main", "collect", "--exchange", "binance",
                 "--symbols", "BTC-USDT-PERP", "--streams", streams, "--home", str(home),
                 "--duration", f"{seconds + 5}s", "--json", "--no-status", "--log-level", "error",
                 "--metrics-port", str(mport),
                 "--binance-ws-url", f"ws://127.0.0.1:{port}",
                 "--binance-rest-url", f"http://127.0.0.1:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
            )  # fmt: skip
            try:
                results[name] = _measure(proc, lambda p=mport: _metrics_messages(p), warm, seconds)
            finally:
                err = _stop(proc)
            if "Traceback" in err:
                notes[name] = err.strip().splitlines()[-1][:200]
        proc = subprocess.Popen(
            [sys.executable, "-c", _COUNTER, str(port), str(seconds + 5)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            results["bare"] = _measure(proc, _line_counter(proc), warm, seconds)
        finally:
            _stop(proc)
        cf = cryptofeed_python()
        if cf is not None:
            proc = subprocess.Popen(
                [cf, "-c", _CRYPTOFEED, str(port), str(seconds + 5)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                results["cryptofeed"] = _measure(proc, _line_counter(proc), warm, seconds)
            except RuntimeError as exc:
                notes["cryptofeed"] = str(exc)
            finally:
                err = _stop(proc)
                if "Traceback" in err:
                    notes["cryptofeed"] = err.strip().splitlines()[-1][:200]
        else:
            notes["cryptofeed"] = "no python >= 3.13 here: cryptofeed not run"
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    cf = results.get("cryptofeed")
    if cf and not cf["msgs"]:
        notes["cryptofeed"] = "cryptofeed received nothing"
        cf = None
    cf_txt = (
        f"cryptofeed {CF_VERSION}: {cf['per_cpu_s']:,.0f} msg/CPU-s at {cf['rate']:,.0f} msg/s, "
        f"peak RSS {cf['peak_rss_mb']:.0f} MB"
        if cf
        else f"cryptofeed not measured ({notes.get('cryptofeed', '?')}); issue's figure: "
        "14.0k msg/CPU-s, 49 MB"
    )
    bare = results["bare"]
    rows = []
    for name, label in (("ours", "book+trade"), ("ours_depth", "book+depth+trade")):
        r = results[name]
        ratio = r["per_cpu_s"] / cf["per_cpu_s"] if cf and r["per_cpu_s"] else None
        rows.append(
            {
                "name": f"collector work per CPU-second at {RATE:,} msg/s ({label}, lake, fsync)",
                "value": round(r["per_cpu_s"]) if r["per_cpu_s"] else None,
                "unit": "msg/CPU-s",
                "baseline": cf_txt,
                "target": ">= 4x cryptofeed",
                "ok": ratio is not None and ratio >= 4,
                "note": (f"{ratio:.1f}x cryptofeed; " if ratio else "")
                + f"measured rate {r['rate']:,.0f} msg/s, {r['cpu_share'] * 100:.1f}% of a core; "
                f"bare aiohttp counting client {bare['per_cpu_s']:,.0f} msg/CPU-s"
                + (f"; {notes[name]}" if name in notes else ""),
            }
        )
        rows.append(
            {
                "name": f"collector peak RSS at {RATE:,} msg/s ({label})",
                "value": round(r["peak_rss_mb"]),
                "unit": "MB",
                "baseline": f"cryptofeed {cf['peak_rss_mb']:.0f} MB" if cf else cf_txt,
                "target": "<= 100",
                "ok": r["peak_rss_mb"] <= 100,
                "note": f"bare aiohttp counting client {bare['peak_rss_mb']:.0f} MB",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
