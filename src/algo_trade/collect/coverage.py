"""Coverage and holes: rows per hour from the store, gaps from the collector's event log.

>>> from algo_trade.collect.coverage import gaps, coverage
>>> holes = gaps("./algo-trade-data", "binance", "BTC-USDT-PERP", "2024-01-01", "2024-01-02")  # doctest: +SKIP

`gaps` is what a backtest asks ("where is my data missing?"): one row per event
(stream, start_ns, end_ns, reason). `coverage` is the hourly table behind
``algo-trade db coverage``: per stream, rows, seconds inside gaps, and the covered
fraction, measured two ways and reported as the smaller:

- from incidents (``event_coverage``): 1 - seconds inside recorded gaps / seconds;
- from the data itself (``data_coverage``): the share of the hour's slots of the
  stream's expected cadence that hold at least one row. Books are sampled on a grid, so
  their slot is the grid step (read from the rows: the median step between them);
  trades, funding and depth arrive irregularly, so theirs is fixed (`CADENCE_NS`): an
  hour of a 1 s book with 6 minutes of rows shows 0.1, whether or not anything recorded
  why.

Liquidations are sparse: an hour without any is covered when another stream of the
symbol had data then (no cadence is expected of them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from algo_trade.collect.events import read_events
from algo_trade.errors import DataError, StoreError
from algo_trade.exchanges.base import STREAMS
from algo_trade.timeutil import parse_range_ns

HOUR_NS = 3_600_000_000_000
# The slot a stream is expected to fill at least once (books: their grid step, from the
# data). A minute for trades and funding: a quiet market goes seconds without a trade,
# but a minute without one (or without a Binance/Bybit funding update, ~1 s apart, or a
# Hyperliquid poll, 5 s) means the collector was not getting data. Depth diffs come
# every 10-100 ms on a live book: 10 s without one is a hole.
CADENCE_NS = {"trade": 60_000_000_000, "funding": 60_000_000_000, "depth": 10_000_000_000}
MIN_GRID_NS = 1_000_000  # a book grid step read from the data is clipped to [1 ms, 1 min]
MAX_GRID_NS = 60_000_000_000


def gaps(
    home: str | Path,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    stream: str | None = None,
) -> pa.Table:
    """Data-quality events overlapping [start, end) for one exchange/symbol (and stream)."""
    s, e = parse_range_ns(start, end)
    evs = [
        ev
        for ev in read_events(Path(home), s, e, exchange, symbol)
        if ev.reason != "malformed" and (stream is None or ev.stream in (stream, "*"))
    ]
    return pa.table(
        {
            "stream": pa.array([ev.stream for ev in evs], pa.string()),
            "start_ns": pa.array([ev.start_ns for ev in evs], pa.int64()),
            "end_ns": pa.array(
                [ev.end_ns if ev.end_ns is not None else ev.start_ns for ev in evs], pa.int64()
            ),
            "reason": pa.array([ev.reason for ev in evs], pa.string()),
            "detail": pa.array([ev.detail for ev in evs], pa.string()),
        }
    )


def _union_seconds(intervals: list[tuple[int, int]], lo: int, hi: int) -> float:
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total = 0
    cur_a = cur_b = None
    for a, b in clipped:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total / 1e9


def _grid_step(ts: np.ndarray) -> int:
    """A book's sampling step, read from its rows: the median step between them."""
    u = np.unique(ts)
    if len(u) < 2:
        return 1_000_000_000
    step = int(np.median(np.diff(u)))
    return min(max(step, MIN_GRID_NS), MAX_GRID_NS)


def _hour_counts(
    store, kind: str, exchange: str, symbol: str, h0: int, nh: int, s: int, e: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows per hour, filled cadence slots per hour, and the slot width (0: none)."""
    counts = np.zeros(nh, dtype=np.int64)
    width = CADENCE_NS.get(kind, 0)
    slots: list[np.ndarray] = []
    try:
        batches = store.scan(kind, exchange, symbol, s, e, columns=["ts"])
        for b in batches:
            ts = b.column(0).to_numpy()
            if not len(ts):
                continue
            counts += np.bincount((ts - h0) // HOUR_NS, minlength=nh)[:nh]
            if kind == "book" and not width:
                width = _grid_step(ts)
            if width:
                slots.append(np.unique((ts - h0) // width))
    except (DataError, StoreError):
        pass  # no such dataset: zero rows
    filled = np.zeros(nh, dtype=np.int64)
    if slots:
        u = np.unique(np.concatenate(slots))
        filled = np.bincount(u * width // HOUR_NS, minlength=nh)[:nh]
    return counts, filled, width


def _expected_slots(lo: int, hi: int, h0: int, width: int) -> int:
    """Slots of `width` (aligned on h0) that [lo, hi) touches."""
    return int((hi - 1 - h0) // width - (lo - h0) // width + 1)


def coverage(
    store, home: str | Path, exchange: str, symbol: str, start: object, end: object
) -> list[dict]:
    """One row per (hour, stream): rows, gap_s, coverage (0..1), and the gap reasons."""
    s, e = parse_range_ns(start, end)
    if e - s > 366 * 24 * HOUR_NS:
        raise DataError("coverage covers at most a year per call; narrow --start/--end")
    h0 = s // HOUR_NS * HOUR_NS
    nh = int(-(-(e - h0) // HOUR_NS))
    # depth is a stream once the collector records it; imported depth counts before that
    streams = tuple(dict.fromkeys((*STREAMS, "depth")))
    scanned = {k: _hour_counts(store, k, exchange, symbol, h0, nh, s, e) for k in streams}
    counts = {k: v[0] for k, v in scanned.items()}
    any_rows = np.zeros(nh, dtype=bool)
    for c in counts.values():
        any_rows |= c > 0
    evs = gaps(home, exchange, symbol, s, e)
    ev_rows = evs.to_pylist()
    out = []
    for i in range(nh):
        lo, hi = max(h0 + i * HOUR_NS, s), min(h0 + (i + 1) * HOUR_NS, e)
        span = (hi - lo) / 1e9
        for st in streams:
            ivs = [(r["start_ns"], r["end_ns"]) for r in ev_rows if r["stream"] in (st, "*")]
            reasons = sorted(
                {
                    r["reason"]
                    for r in ev_rows
                    if r["stream"] in (st, "*") and r["end_ns"] > lo and r["start_ns"] < hi
                }
            )
            gap_s = _union_seconds(ivs, lo, hi)
            rows = int(counts[st][i])
            has = rows > 0 or (st == "liquidation" and any_rows[i])
            if rows == 0 and not gap_s and not has:
                continue
            by_events = max(0.0, 1.0 - gap_s / span) if has else 0.0
            _, filled, width = scanned[st]
            if width and has:
                by_data = min(1.0, int(filled[i]) / _expected_slots(lo, hi, h0, width))
            else:
                by_data = by_events  # sparse (liquidations) or no data: incidents only
            out.append(
                {
                    "hour": h0 + i * HOUR_NS,
                    "stream": st,
                    "rows": rows,
                    "gap_s": round(gap_s, 3),
                    "event_coverage": round(by_events, 6),
                    "data_coverage": round(by_data, 6),
                    "coverage": round(min(by_events, by_data), 6),
                    "gaps": ",".join(reasons),
                }
            )
    return out
