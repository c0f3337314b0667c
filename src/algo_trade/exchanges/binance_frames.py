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
class Block:
    """One block's lines read into columns by `BinanceFrames.parse` (no state yet)."""

    data: bytes
    msgs: np.ndarray  # binancenb.MSG, one per line
    lv_px: np.ndarray
    lv_qty: np.ndarray
    lv_side: np.ndarray


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
        self._carry: Block | None = None

    def parse(self, block: bytes) -> Block:
        """Read whole lines (each ending with a newline) into columns. Keeps no state, and
        the kernel releases the GIL: blocks can be parsed ahead on other threads."""
        buf = np.frombuffer(block, dtype=np.uint8)
        msgs = np.empty(block.count(b"\n") + 1, binancenb.MSG)
        cap = len(block) // 9 + 1
        lv_px = np.empty(cap, np.float64)
        lv_qty = np.empty(cap, np.float64)
        lv_side = np.empty(cap, np.int8)
        n, n_lv = binancenb.parse_lines_nb(
            buf, self._names, self._offsets, POW10, msgs, lv_px, lv_qty, lv_side
        )
        return Block(block, msgs[:n], lv_px[:n_lv], lv_qty[:n_lv], lv_side[:n_lv])

    def feed_lines(self, block: bytes) -> Parsed:
        """Parse whole lines and apply them (`parse` then `apply`)."""
        return self.apply(self.parse(block))

    def apply(self, blk: Block) -> Parsed:
        """Apply a parsed block, in file order: the book rules, the general parser for
        the other frames. Messages whose fate is still open at the end (a snapshot no
        diff bridged yet, diffs waiting for a snapshot) are kept for the next block."""
        own = blk.msgs
        n_own = len(own)
        carried = self._carry
        if carried is not None and len(carried.msgs):
            msgs = np.concatenate([carried.msgs, own])
            shift = len(carried.lv_px)
            msgs["lv_lo"][len(carried.msgs) :] += shift
            msgs["lv_hi"][len(carried.msgs) :] += shift
            lv_px = np.concatenate([carried.lv_px, blk.lv_px])
            lv_qty = np.concatenate([carried.lv_qty, blk.lv_qty])
            lv_side = np.concatenate([carried.lv_side, blk.lv_side])
        else:
            msgs, lv_px, lv_qty, lv_side = own, blk.lv_px, blk.lv_qty, blk.lv_side
        n = len(msgs)
        out = tuple(np.empty(len(lv_px) + n, t) for t in DEPTH_TYPES)
        carry = np.zeros(n, np.bool_)
        rows = binancenb.sequence_nb(
            msgs, n, lv_px, lv_qty, lv_side, self.synced, self.last_u, out, self.counts, carry
        )
        kind = own["kind"]
        # Frames the kernels leave to the general parser, in file order.
        feed = self.norm.feed
        counters = self.norm.counters
        other_bad = []
        recv, raw_lo, raw_hi = own["recv"], own["raw_lo"], own["raw_hi"]
        data = blk.data
        for i in np.flatnonzero(kind == binancenb.OTHER).tolist():
            before = counters.malformed
            feed(int(recv[i]), data[raw_lo[i] : raw_hi[i]])
            if counters.malformed != before:
                other_bad.append(i)
        if carry.any():
            # Keep the open messages with their levels (re-based), not their text.
            keep = msgs[carry].copy()
            parts = [np.arange(m["lv_lo"], m["lv_hi"]) for m in keep]
            take = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            lens = keep["lv_hi"] - keep["lv_lo"]
            keep["lv_lo"] = np.concatenate(([0], np.cumsum(lens)[:-1]))
            keep["lv_hi"] = keep["lv_lo"] + lens
            self._carry = Block(b"", keep, lv_px[take], lv_qty[take], lv_side[take])
        else:
            self._carry = None
        t = own[kind == binancenb.TRADE]
        self.messages += int(n_own - (kind == binancenb.EMPTY).sum())
        return Parsed(
            depth=tuple(a[:rows] for a in out),
            trade_ts=t["ts"],
            trade_ts_local=t["recv"],
            trade_sym=t["sym"],
            trade_side=t["side"],
            trade_px=t["px"],
            trade_qty=t["qty"],
            trade_id=t["first_id"],
            bad_lines=np.flatnonzero(kind == binancenb.BAD_LINE),
            unparsed=np.union1d(
                np.flatnonzero(kind == binancenb.UNPARSED), np.array(other_bad, np.int64)
            ).astype(np.int64),
            lines=n_own,
        )

    def counters(self) -> dict[str, int]:
        stale, gaps, too_old = (int(x) for x in self.counts)
        return {
            "messages": self.messages,
            "gaps": gaps + too_old,
            "resyncs": gaps + too_old,
            "stale_dropped": stale,
        }
