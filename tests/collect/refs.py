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
