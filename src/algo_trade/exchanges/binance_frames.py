"""Binance USD-M: many ``<receive time> <raw frame>`` lines -> depth and trade columns at once.

The block path of the Binance adapter, for recorded captures (and any caller holding
many frames): depth diffs, REST snapshots and trades are read by the `binancenb`
kernels with Binance's book rules; every other frame (markPrice, forceOrder, aggTrade,
replies) goes through `binance.Normalizer.feed` as before. Receive times become
`ts_local`.

>>> f = BinanceFrames(binance.Normalizer(["BTC-USDT-PERP"]))
>>> out = f.feed_lines(b'1723161255030314 {"stream":"btcusdt@trade","data":{"e":"trade",'
...     b'"E":1,"T":1,"s":"BTCUSDT","t":7,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}\\n')
>>> out.trade_px.tolist(), out.trade_ts_local.tolist()
([61800.3], [1723161255030314000])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algo_trade.exchanges import binance, binancenb
from algo_trade.exchanges.framenb import POW10

DEPTH_FIELDS = ("ts", "ts_local", "sym", "side", "px", "qty", "seq", "flags")
DEPTH_TYPES = (np.int64, np.int64, np.int32, np.int8, np.float64, np.float64, np.int64, np.uint8)


@dataclass
class Parsed:
    """What one block gave: depth rows (incl. LOST markers), trades, bad line indexes."""

    depth: tuple[np.ndarray, ...]  # DEPTH_FIELDS; flags & LOST_FLAG rows are markers only
    trade_ts: np.ndarray
    trade_ts_local: np.ndarray
    trade_sym: np.ndarray
    trade_side: np.ndarray
    trade_px: np.ndarray
    trade_qty: np.ndarray
    trade_id: np.ndarray
    bad_lines: np.ndarray  # indexes (among this block's own lines) of malformed lines
    unparsed: np.ndarray  # indexes of frames the venue parser cannot use
    lines: int  # this block's own lines (carried ones not counted)


class BinanceFrames:
    """Block parser for Binance USD-M frames; one per (import, symbols), state across blocks."""

    def __init__(self, normalizer: binance.Normalizer) -> None:
        self.norm = normalizer
        venue = [normalizer.venue[s].encode() for s in normalizer.symbols]
        self._names = np.frombuffer(b"".join(venue) or b"\0", dtype=np.uint8).copy()
        self._offsets = np.cumsum([0] + [len(v) for v in venue]).astype(np.int64)
        n = len(venue)
        self.synced = np.zeros(n, np.int8)
        self.last_u = np.zeros(n, np.int64)
        self.counts = np.zeros(3, np.int64)  # stale, gaps, snapshots too old
        self.messages = 0
        self._carry = b""

    def feed_lines(self, block: bytes) -> Parsed:
        """Parse whole lines (each ending with a newline)."""
        n_carry_bytes = len(self._carry)
        data = self._carry + block if n_carry_bytes else block
        n_carried = self._carry.count(b"\n") if n_carry_bytes else 0
        buf = np.frombuffer(data, dtype=np.uint8)
        n_lines = data.count(b"\n") + 1
        msgs = np.empty(n_lines, binancenb.MSG)
        cap = len(data) // 9 + 1
        lv_px = np.empty(cap, np.float64)
        lv_qty = np.empty(cap, np.float64)
        lv_side = np.empty(cap, np.int8)
        n, n_lv = binancenb.parse_lines_nb(
            buf, self._names, self._offsets, POW10, msgs, lv_px, lv_qty, lv_side
        )
        msgs = msgs[:n]
        kind = msgs["kind"]
        out = tuple(np.empty(n_lv + n, t) for t in DEPTH_TYPES)
        carry = np.zeros(n, np.bool_)
        rows = binancenb.sequence_nb(
            msgs, n, lv_px, lv_qty, lv_side, self.synced, self.last_u, out, self.counts, carry
        )
        # Frames the kernels leave to the general parser, in file order.
        other = np.flatnonzero(kind == binancenb.OTHER)
        feed = self.norm.feed
        counters = self.norm.counters
        other_bad = []
        recv, raw_lo, raw_hi = msgs["recv"], msgs["raw_lo"], msgs["raw_hi"]
        for i in other.tolist():
            before = counters.malformed
            feed(int(recv[i]), data[raw_lo[i] : raw_hi[i]])
            if counters.malformed != before:
                other_bad.append(i)
        t = msgs[kind == binancenb.TRADE]
        if carry.any():
            # Whole lines (receive time and frame), parsed again before the next block.
            lo, hi = msgs["line_lo"][carry].tolist(), msgs["raw_hi"][carry].tolist()
            self._carry = b"".join(data[a:b] + b"\n" for a, b in zip(lo, hi, strict=True))
        else:
            self._carry = b""
        own = np.arange(n) >= n_carried
        self.messages += int(own.sum() - (kind[own] == binancenb.EMPTY).sum())
        return Parsed(
            depth=tuple(a[:rows] for a in out),
            trade_ts=t["ts"],
            trade_ts_local=t["recv"],
            trade_sym=t["sym"],
            trade_side=t["side"],
            trade_px=t["px"],
            trade_qty=t["qty"],
            trade_id=t["first_id"],
            bad_lines=np.flatnonzero(own & (kind == binancenb.BAD_LINE)) - n_carried,
            unparsed=np.union1d(
                np.flatnonzero(own & (kind == binancenb.UNPARSED)), np.array(other_bad, np.int64)
            ).astype(np.int64)
            - n_carried,
            lines=n - n_carried,
        )

    def counters(self) -> dict[str, int]:
        stale, gaps, too_old = (int(x) for x in self.counts)
        return {
            "messages": self.messages,
            "gaps": gaps + too_old,
            "resyncs": gaps + too_old,
            "stale_dropped": stale,
        }
