"""The tests' own reading of Binance captures (`<recv ts> <raw frame>` lines): depth rows
as a collector keeps them, and an independent dict-based replay of the same messages.

Written here, apart from the importers, so the book kernel is checked against code that
shares nothing with it: plain dicts, Python floats, heapq for the top levels.
"""

from __future__ import annotations

import gzip
import heapq
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from algo_trade.schema import DEPTH_RESYNC, DEPTH_SNAPSHOT

MS = 1_000_000


def read_lines(path: str, ts_unit_ns: int | None = None) -> list[tuple[int, dict]]:
    """(recv ns, data) of every depth message (diffs and REST snapshots) in a capture."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, raw = line.split(" ", 1)
            recv = int(ts)
            if ts_unit_ns is None:
                ts_unit_ns = 1000 if recv < 10**17 else 1  # µs or ns captures
            d = json.loads(raw)
            d = d.get("data", d)
            if d.get("e") == "depthUpdate" or "lastUpdateId" in d:
                out.append((recv * ts_unit_ns, d))
    return out


def top(book: dict[float, float], n: int, best_high: bool) -> list[tuple[float, float]]:
    pick = heapq.nlargest if best_high else heapq.nsmallest
    return [(p, book[p]) for p in pick(n, book)]


@dataclass
class Replay:
    """Depth rows kept under Binance's sync rules, and the venue book after each message."""

    depth: int = 20
    rows: list[tuple] = field(default_factory=list)  # (ts, ts_local, side, price, qty, seq, flags)
    states: list[tuple[int, list, list]] = field(default_factory=list)  # (ts, bids, asks)
    resyncs: int = 0
    gaps: int = 0
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    synced: bool = False
    snap: tuple | None = None
    buf: list = field(default_factory=list)
    last_u: int = 0
    ever_synced: bool = False

    def snapshot(self, recv: int, d: dict) -> None:
        self.bids = {float(p): float(q) for p, q in d["bids"] if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in d["asks"] if float(q) > 0}
        self.snap = (int(d["lastUpdateId"]), int(d["E"]) * MS, recv, d)
        self.synced = False
        pending, self.buf = self.buf, []
        for r, x in pending:
            self.diff(r, x)

    def diff(self, recv: int, d: dict) -> None:
        ts = int(d["E"]) * MS
        u = int(d["u"])
        if self.synced:
            if int(d["pu"]) != self.last_u:
                self.gaps += 1
                self.synced = False
                self.snap = None
                self.buf.append((recv, d))
                return
            self._apply(recv, d, ts, u)
            return
        if self.snap is None:
            self.buf.append((recv, d))
            return
        last_id, snap_ts, snap_recv, body = self.snap
        if u < last_id:
            return
        if int(d["U"]) > last_id:
            self.snap = None
            self.buf.append((recv, d))
            return
        # The run is stamped no later than the first diff applied on it (read order).
        run_ts = min(snap_ts, ts)
        flags = DEPTH_SNAPSHOT | (DEPTH_RESYNC if self.ever_synced else 0)
        self.resyncs += self.ever_synced
        for side, levels in ((1, body["bids"]), (-1, body["asks"])):
            for p, q in levels:
                self.rows.append((run_ts, snap_recv, side, float(p), float(q), last_id, flags))
        self.snap = None
        self.synced = self.ever_synced = True
        self._record(run_ts)
        self._apply(recv, d, ts, u)

    def _apply(self, recv: int, d: dict, ts: int, u: int) -> None:
        for side, book, levels in ((1, self.bids, d["b"]), (-1, self.asks, d["a"])):
            for p, q in levels:
                p, q = float(p), float(q)
                self.rows.append((ts, recv, side, p, q, u, 0))
                if q > 0:
                    book[p] = q
                else:
                    book.pop(p, None)
        self.last_u = u
        self._record(ts)

    def _record(self, ts: int) -> None:
        self.states.append(
            (ts, top(self.bids, self.depth, True), top(self.asks, self.depth, False))
        )

    def feed(self, msgs: list[tuple[int, dict]]) -> Replay:
        for recv, d in msgs:
            if "lastUpdateId" in d:
                self.snapshot(recv, d)
            else:
                self.diff(recv, d)
        return self

    def snapshot_now(self, last_u: int, e_ms: int) -> dict:
        """A REST-like snapshot body of the current book (for simulated resyncs)."""
        return {
            "lastUpdateId": last_u,
            "E": e_ms,
            "bids": [[repr(p), repr(q)] for p, q in self.bids.items()],
            "asks": [[repr(p), repr(q)] for p, q in self.asks.items()],
        }


def state_matrix(states: list[tuple[int, list, list]], depth: int) -> np.ndarray:
    """(m, 4, L) like the kernel: bid_px, bid_sz, ask_px, ask_sz, NaN-padded."""
    out = np.full((len(states), 4, depth), math.nan)
    for i, (_, bids, asks) in enumerate(states):
        for j, (p, q) in enumerate(bids):
            out[i, 0, j], out[i, 1, j] = p, q
        for j, (p, q) in enumerate(asks):
            out[i, 2, j], out[i, 3, j] = p, q
    return out


def depth_table(rows: list[tuple], exchange: str, symbol: str) -> pa.Table:
    a = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "ts": pa.array(a[0], pa.int64()),
            "ts_local": pa.array(a[1], pa.int64()),
            "exchange": pa.array([exchange] * n),
            "symbol": pa.array([symbol] * n),
            "side": pa.array(a[2], pa.int8()),
            "price": pa.array(a[3], pa.float64()),
            "qty": pa.array(a[4], pa.float64()),
            "seq": pa.array(a[5], pa.int64()),
            "flags": pa.array(a[6], pa.uint8()),
        }
    )
