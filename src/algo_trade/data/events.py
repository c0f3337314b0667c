"""Event chunks for the events engine from a store: one day of depth + trade + funding rows
at a time (bounded memory whatever the range)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from algo_trade import schema
from algo_trade.engine.events import DAY_NS, build_events
from algo_trade.errors import DataError
from algo_trade.store.base import open_store
from algo_trade.timeutil import parse_range_ns


def from_store(store: Any, exchange: str, symbol: str, start: object, end: object,
               feed_latency_ms: float = 0.0) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """Stream [start, end) day by day from a store (lake or PostgreSQL): depth, trade and
    funding rows of one day merged into one chunk."""
    s, e = parse_range_ns(start, end)
    st = open_store(store) if isinstance(store, (str, Path)) else store
    feed = int(feed_latency_ms * 1e6)
    day = s - s % DAY_NS
    found = False
    while day < e:
        lo, hi = max(day, s), min(day + DAY_NS, e)
        cols = {}
        for kind in ("depth", "trade", "funding"):
            batches = list(st.scan(kind, exchange, symbol, lo, hi)) if kind in schema.KINDS else []
            if batches:
                t = pa.Table.from_batches(batches)
                cols[kind] = {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names
                              if c not in ("exchange", "symbol", "trade_id")}  # fmt: skip
        if "depth" in cols:
            found = True
            yield build_events(cols.get("depth"), cols.get("trade"), cols.get("funding"), feed)
        day += DAY_NS
    if not found:
        raise DataError(
            f"no depth rows for {exchange} {symbol} in [{start}, {end}): events mode needs the "
            "'depth' kind (collect --streams depth, import a raw capture, or generate it)"
        )
