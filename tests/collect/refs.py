"""Slow, obviously-correct references and loaders for the real captures in tests/data."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
SEC = 1_000_000_000


def capture_lines(name: str, ts_scale: int = 1) -> list[tuple[int, str]]:
    """(recv ts ns, raw) per line of a `<ts> <raw>` gzip capture."""
    out = []
    with gzip.open(DATA / name, "rt") as f:
        for line in f:
            ts, raw = line.rstrip("\n").split(" ", 1)
            out.append((int(ts) * ts_scale, raw))
    return out


def top(bids: dict, asks: dict, depth: int) -> list[float]:
    bp = sorted(bids, reverse=True)[:depth]
    ap = sorted(asks)[:depth]
    pb = [math.nan] * (depth - len(bp))
    pa = [math.nan] * (depth - len(ap))
    return bp + pb + [bids[p] for p in bp] + pb + ap + pa + [asks[p] for p in ap] + pa


def binance_reference_books(
    lines: list[tuple[int, str]], depth: int, iv: int
) -> dict[int, list[float]]:
    """Grid time -> top levels, replaying snapshot + every diff with u >= lastUpdateId in
    file order (no gaps expected); the row at g holds diffs with E < g."""
    snap = next(json.loads(r) for _, r in lines if "lastUpdateId" in r)
    last = snap["lastUpdateId"]
    bids = {float(p): float(q) for p, q in snap["bids"] if float(q) > 0}
    asks = {float(p): float(q) for p, q in snap["asks"] if float(q) > 0}
    out: dict[int, list[float]] = {}
    g = (snap["T"] * 1_000_000 // iv + 1) * iv
    for _, raw in lines:
        if "depthUpdate" not in raw:
            continue
        d = json.loads(raw)["data"]
        if d["u"] < last:
            continue
        e = d["E"] * 1_000_000
        while e >= g:
            out[g] = top(bids, asks, depth)
            g += iv
        for side, lv in ((bids, d["b"]), (asks, d["a"])):
            for p, q in lv:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
    return out


def bybit_reference_books(
    lines: list[tuple[int, str]], venue_symbol: str, depth: int, iv: int
) -> dict[int, list[float]]:
    """Grid time -> top levels of one Bybit book: a snapshot replaces, deltas apply; the
    row at g holds every update with ts < g."""
    bids: dict = {}
    asks: dict = {}
    out: dict[int, list[float]] = {}
    g = None
    for _, raw in lines:
        m = json.loads(raw)
        topic = m.get("topic", "")
        if not (topic.startswith("orderbook.") and topic.endswith("." + venue_symbol)):
            continue
        ts = m["ts"] * 1_000_000
        if g is not None:
            while ts >= g:
                out[g] = top(bids, asks, depth)
                g += iv
        if m["type"] == "snapshot":
            bids = {float(p): float(q) for p, q in m["data"]["b"]}
            asks = {float(p): float(q) for p, q in m["data"]["a"]}
            g = g or (ts // iv + 1) * iv
        else:
            for side, lv in ((bids, m["data"]["b"]), (asks, m["data"]["a"])):
                for p, q in lv:
                    if float(q) == 0:
                        side.pop(float(p), None)
                    else:
                        side[float(p)] = float(q)
    return out


def hyperliquid_reference_books(
    lines: list[tuple[int, str]], depth: int, iv: int
) -> dict[int, list[float]]:
    """Grid time g -> the last full l2Book with time < g (between the first and last book)."""
    books = [json.loads(r)["data"] for _, r in lines if '"l2Book"' in r]
    out: dict[int, list[float]] = {}
    for prev, cur in zip(books, books[1:], strict=False):
        g = (prev["time"] * 1_000_000 // iv + 1) * iv
        while g <= cur["time"] * 1_000_000:
            lv = prev["levels"]
            out[g] = top(
                {float(x["px"]): float(x["sz"]) for x in lv[0]},
                {float(x["px"]): float(x["sz"]) for x in lv[1]},
                depth,
            )
            g += iv
    return out
