"""Durable data-quality events (disconnects, resyncs, gaps, stalls, malformed messages).

Stored as JSON lines under the data home, one file per UTC day:
``<home>/events/<YYYY-MM-DD>.jsonl``; each line is one `Event` (exchange, symbol,
stream, start_ns, end_ns, reason, detail). JSON lines stay readable with any tool, are
appended with fsync, and work whichever store holds the records (lake or PostgreSQL).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from algo_trade.exchanges.base import Event

NS_PER_DAY = 86_400 * 1_000_000_000


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d")


class EventLog:
    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "events"

    def append(self, events: Iterable[Event]) -> int:
        by_day: dict[str, list[bytes]] = {}
        for e in events:
            by_day.setdefault(_day(e.start_ns), []).append(orjson.dumps(e.to_dict()) + b"\n")
        if not by_day:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        n = 0
        for day, lines in by_day.items():
            with open(self.dir / f"{day}.jsonl", "ab") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
            n += len(lines)
        return n


def read_events(
    home: Path,
    start_ns: int,
    end_ns: int,
    exchange: str | None = None,
    symbol: str | None = None,
) -> list[Event]:
    """Events overlapping [start_ns, end_ns) for one exchange/symbol ('*' events match all)."""
    d = Path(home) / "events"
    if not d.exists():
        return []
    out = []
    first = _day(start_ns - NS_PER_DAY)
    last = _day(end_ns)
    for path in sorted(d.glob("*.jsonl")):
        if not (first <= path.stem <= last):
            continue
        for line in path.read_bytes().splitlines():
            try:
                e = Event(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError):
                continue  # a torn last line after a crash
            end = e.end_ns if e.end_ns is not None else e.start_ns
            if end < start_ns or e.start_ns >= end_ns:
                continue
            if exchange and e.exchange != exchange:
                continue
            if symbol and e.symbol not in (symbol, "*"):
                continue
            out.append(e)
    return out
