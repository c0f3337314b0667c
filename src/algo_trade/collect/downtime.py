"""The collector's own downtime: a run journal, durable high-water marks, restart gaps.

A `kill -9`, a power cut or a stopped service leaves a hole in the data that no
connection event describes. So that it is recorded all the same:

- `RunJournal` (``<spool>/runs.jsonl``) gets a line when a run starts and when it stops
  cleanly; a start with no stop after it is a run that died (crash, kill, power cut).
- `Marks` (``<spool>/marks.json``) is rewritten by every spool commit, after the commit's
  data is durable: per exchange, symbol and stream the newest record time that is
  durable (venue time, the ``ts`` of the rows), the newest over the exchange
  (``through``), and the venue Normalizer's resume state (Binance: the last trade ids and
  the trade ranges still waiting for a backfill). It never claims more than the spool
  holds; after a crash between a commit's data and its marks it claims one commit less.
- `RestartGaps`: the next run opens, per (symbol, stream) the last run had durable data
  for, a gap from that last durable record; the first new record of the stream closes
  it (`gaps()`/`db coverage` then show the hole). Liquidations are sparse: their gap
  runs from the newest durable record of any stream of the exchange to the first new
  one. Streams whose Normalizer backfills what was missed (Binance trades) get no such
  gap: the backfill records as a gap exactly what it could not fetch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from algo_trade.exchanges.base import Event
from algo_trade.fileio import fsync_path

SPARSE = "liquidation"


def _write_durably(path: Path, data: bytes, fsync: bool) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_path(path.parent)


class RunJournal:
    """``<spool>/runs.jsonl``: one line per start and per clean stop (fsynced)."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.path = Path(root) / "runs.jsonl"
        self.fsync = fsync

    def previous(self) -> dict | None:
        """The last line written (``{"event": "start"|"stop", "ns", "pid"}``) or None."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return None
        for line in reversed(lines):
            try:
                return orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn last line: the run died while writing it
        return None

    def _append(self, event: str) -> None:
        with open(self.path, "ab") as f:
            f.write(orjson.dumps({"event": event, "ns": time.time_ns(), "pid": os.getpid()}))
            f.write(b"\n")
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())

    def start(self) -> None:
        self._append("start")

    def stop(self) -> None:
        self._append("stop")


def _max_ts_by_symbol(table: pa.Table) -> dict[str, int]:
    if not table.num_rows:
        return {}
    t = pa.table({"s": table.column("symbol").cast(pa.string()), "ts": table.column("ts")})
    g = t.group_by("s").aggregate([("ts", "max")])
    return dict(zip(g.column("s").to_pylist(), g.column("ts_max").to_pylist(), strict=True))


@dataclass
class Flush:
    """One venue flush on its way into the spool (what a commit round takes)."""

    exchange: str
    tables: dict[str, pa.Table]
    events: list
    first_recv_ns: int
    venue_ts_ns: int = 0
    state: dict = field(default_factory=dict)  # the Normalizer's resume state at the drain


class Marks:
    """``<spool>/marks.json``: what is durable, per exchange/symbol/stream (see module)."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.path = Path(root) / "marks.json"
        self.fsync = fsync
        self.data: dict = self.load()

    def load(self) -> dict:
        try:
            return orjson.loads(self.path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}

    def update(self, flushes: list[Flush]) -> None:
        """Fold committed flushes in and write the file (call after their data is durable)."""
        for fl in flushes:
            ex = self.data.setdefault(fl.exchange, {"last": {}, "through": 0, "state": {}})
            for kind, table in fl.tables.items():
                for sym, ts in _max_ts_by_symbol(table).items():
                    per = ex["last"].setdefault(sym, {})
                    per[kind] = max(per.get(kind, 0), ts)
                    ex["through"] = max(ex["through"], ts)
            ex["state"] = fl.state
        _write_durably(self.path, orjson.dumps(self.data), self.fsync)


class RestartGaps:
    """Gaps of one exchange opened at start from the last run's marks (see module)."""

    def __init__(
        self,
        exchange: str,
        marks: dict,
        symbols: list[str],
        streams: list[str],
        reason: str,
        detail: str,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self.exchange = exchange
        self.reason = reason
        self.detail = detail
        self.open: dict[tuple[str, str], int] = {}
        last = marks.get("last", {})
        through = int(marks.get("through", 0))
        for sym in symbols:
            had = last.get(sym)
            if not had:
                continue
            for st in streams:
                if st in skip:
                    continue
                if st == SPARSE:
                    self.open[(sym, st)] = through
                elif st in had:
                    self.open[(sym, st)] = int(had[st])

    def close(self, tables: dict[str, pa.Table]) -> list[Event]:
        """Events for the gaps the first new records in `tables` close."""
        if not self.open:
            return []
        first: dict[tuple[str, str], int] = {}
        any_first: dict[str, int] = {}
        for kind, table in tables.items():
            if not table.num_rows:
                continue
            t = pa.table({"s": table.column("symbol").cast(pa.string()), "ts": table["ts"]})
            g = t.group_by("s").aggregate([("ts", "min")])
            for sym, ts in zip(
                g.column("s").to_pylist(), g.column("ts_min").to_pylist(), strict=True
            ):
                first[(sym, kind)] = ts
                any_first[sym] = min(any_first.get(sym, ts), ts)
        out = []
        for (sym, st), start in list(self.open.items()):
            end = first.get((sym, st)) if st != SPARSE else any_first.get(sym)
            if end is None:
                continue
            del self.open[(sym, st)]
            out.append(
                Event(self.exchange, sym, st, start, max(start, end), self.reason, self.detail)
            )
        return out
