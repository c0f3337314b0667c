"""Sampled `book` rows from `depth` rows, one book per (exchange, symbol), across chunks.

The importers store every update as `depth` and, as before, book rows on the
--book-interval grid (the row at grid time g holds the book after every update with
time < g, the collector's rule). The replay is `booknb.replay_l2_nb`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from algo_trade.importers import booknb
from algo_trade.schema import book_schema, label_array

OUT_ROWS = 16_384


def run_codes(snap: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """booknb codes: 0 diff, 1 snapshot row, 2 first row of a snapshot run.

    snap: bool[n] the row belongs to a snapshot run; start: bool[n] the row starts one
    (default: a snapshot row after a non-snapshot row)."""
    codes = snap.astype(np.int8)
    if start is None:
        start = snap.copy()
        start[1:] &= ~snap[:-1]
    codes[start & snap] = 2
    return codes


class BookSampler:
    """Book rows on a grid of `interval_ns` with `depth` levels from streamed depth rows."""

    def __init__(self, depth: int, interval_ns: int, final_row: bool) -> None:
        self.depth = depth
        self.interval_ns = interval_ns
        self.final_row = final_row
        self._books: dict[tuple[str, str], tuple] = {}
        self._out_ts = np.empty(OUT_ROWS, np.int64)
        self._out_lv = np.empty((OUT_ROWS, 4 * depth), np.float64)

    def _table(self, exchange: str, symbol: str, k: int) -> pa.Table:
        cols = [
            pa.array(self._out_ts[:k].copy()),
            label_array(exchange, k),
            label_array(symbol, k),
        ]
        cols += [pa.array(self._out_lv[:k, j].copy()) for j in range(4 * self.depth)]
        return pa.Table.from_arrays(cols, schema=book_schema(self.depth))

    def feed(
        self,
        exchange: str,
        symbol: str,
        ts: np.ndarray,
        codes: np.ndarray,
        is_bid: np.ndarray,
        px: np.ndarray,
        qty: np.ndarray,
    ) -> Iterator[pa.Table]:
        """Replay one symbol's rows (in order; codes from `run_codes`, -1 = book lost)."""
        key = (exchange, symbol)
        if key not in self._books:
            self._books[key] = booknb.new_state()
        state, bids, asks = self._books[key]
        arrs = [
            np.ascontiguousarray(ts, np.int64),
            np.ascontiguousarray(codes, np.int8),
            np.ascontiguousarray(is_bid, np.bool_),
            np.ascontiguousarray(px, np.float64),
            np.ascontiguousarray(qty, np.float64),
        ]
        i = 0
        while i < len(arrs[0]):
            i, k = booknb.replay_l2_nb(
                *arrs, i, state, bids, asks, self.interval_ns, self._out_ts, self._out_lv
            )
            if k:
                yield self._table(exchange, symbol, k)

    def finish(self) -> Iterator[pa.Table]:
        """At the end of the data: one row at the next grid time (if `final_row`)."""
        if not self.final_row:
            return
        for (exchange, symbol), (state, bids, asks) in self._books.items():
            k = booknb.final_row_nb(state, bids, asks, self._out_ts, self._out_lv)
            if k:
                yield self._table(exchange, symbol, k)
