"""Hyperliquid perpetuals: symbol mapping, message decoding.

Symbols: Hyperliquid perps are margined and settled in USDC, so coin ``BTC`` is stored
as ``BTC-USDC-PERP``. A request for ``BTC-USDT-PERP`` or ``BTC-USD-PERP`` names the same
coin (so one ``--symbols`` list works across venues) and is stored as ``BTC-USDC-PERP``.

Messages:

- ws ``{"channel":"l2Book","data":{"coin","time","levels":[bids, asks]}}``: every message
  is a full 20-level book (no sequence to check); it replaces the book.
- ws ``{"channel":"trades","data":[{coin, side, px, sz, time, tid}]}``: ``side`` B is a
  buying taker, A a selling one.
- REST ``POST /info {"type":"metaAndAssetCtxs"}`` -> ``[meta, ctxs]`` (feed the body as
  it came) and ws ``activeAssetCtx``: funding rows with the hourly predicted ``funding``
  rate, ``markPx`` and ``oraclePx`` (as the index); the response has no time, so the row
  is stamped with the local receive time, and ``next_ts`` is the next whole hour.
- Hyperliquid publishes **no public liquidation stream**: ``liquidation`` is refused.
"""

from __future__ import annotations

from algo_trade.errors import ConfigError
from algo_trade.exchanges.base import BaseNormalizer, ms_ns

EXCHANGE = "hyperliquid"
WS_URL = "wss://api.hyperliquid.xyz"
WS_PATH = "/ws"
REST_URL = "https://api.hyperliquid.xyz"
INFO_PATH = "/info"
STREAMS = ("book", "funding", "trade")
FUNDING_POLL_S = 5.0
HOUR_NS = 3_600_000_000_000
NO_LIQUIDATIONS = (
    "Hyperliquid publishes no public liquidation stream; drop 'liquidation' from --streams for it"
)


def to_venue(symbol: str) -> str:
    """BTC-USDC-PERP (or BTC-USDT-PERP, BTC-USD-PERP) -> BTC."""
    parts = symbol.split("-")
    if len(parts) != 3 or parts[2] != "PERP":
        raise ConfigError(f"{symbol}: Hyperliquid lists perpetuals only (BASE-USDC-PERP)")
    if parts[1] not in ("USDC", "USDT", "USD"):
        raise ConfigError(f"{symbol}: Hyperliquid perps are USDC-margined")
    return parts[0]


def from_venue(coin: str) -> str:
    """BTC -> BTC-USDC-PERP."""
    return f"{coin.upper()}-USDC-PERP"


def subscriptions(symbols: list[str], streams: list[str]) -> list[dict]:
    subs = []
    for s in symbols:
        coin = to_venue(s)
        if "book" in streams:
            subs.append({"type": "l2Book", "coin": coin})
        if "trade" in streams:
            subs.append({"type": "trades", "coin": coin})
    return subs


def parse_instruments(body: str | bytes) -> set[str]:
    """Our symbols from an /info {"type":"meta"} (or metaAndAssetCtxs) body."""
    import orjson

    obj = orjson.loads(body)
    meta = obj[0] if isinstance(obj, list) else obj
    return {from_venue(u["name"]) for u in meta["universe"] if not u.get("isDelisted")}


class Normalizer(BaseNormalizer):
    """Hyperliquid messages -> normalized records (see the module docstring)."""

    exchange = EXCHANGE
    streams = STREAMS

    def canonical(self, symbol: str) -> str:
        return from_venue(to_venue(symbol))

    def venue_symbol(self, symbol: str) -> str:
        return to_venue(symbol)

    def _feed(self, recv_ts_ns: int, obj: object, symbol: str | None) -> None:
        if isinstance(obj, list):
            self._seen("funding")
            self._asset_ctxs(recv_ts_ns, obj)
            return
        if not isinstance(obj, dict):
            raise TypeError("message is not JSON")
        ch = obj.get("channel")
        d = obj.get("data")
        if ch == "l2Book":
            self._seen("book")
            sym = self.ours.get(d["coin"])
            if sym is not None:
                ts = ms_ns(d["time"])
                book = self.books[sym]
                bids, asks = d["levels"]
                if book.synced:
                    self._clock(sym, ts)
                book.load([(x["px"], x["sz"]) for x in bids], [(x["px"], x["sz"]) for x in asks])
                if not book.synced:
                    self._synced(sym, ts)
        elif ch == "trades":
            self._seen("trade")
            for t in d:
                sym = self.ours.get(t["coin"])
                if sym is not None:
                    self._trade_row(
                        ms_ns(t["time"]),
                        sym,
                        1 if t["side"] == "B" else -1,
                        float(t["px"]),
                        float(t["sz"]),
                        str(t["tid"]),
                    )
        elif ch == "activeAssetCtx":
            self._seen("funding")
            sym = self.ours.get(d["coin"])
            if sym is not None:
                self._ctx(recv_ts_ns, sym, d["ctx"])
        elif ch is not None:
            self._seen("ignored")  # subscriptionResponse, pong, ...
        else:
            raise ValueError("not a Hyperliquid message")

    def _asset_ctxs(self, recv_ts_ns: int, obj: list) -> None:
        meta, ctxs = obj
        for u, ctx in zip(meta["universe"], ctxs, strict=False):
            sym = self.ours.get(u["name"])
            if sym is not None:
                self._ctx(recv_ts_ns, sym, ctx)

    def _ctx(self, ts: int, sym: str, ctx: dict) -> None:
        next_ts = (ts // HOUR_NS + 1) * HOUR_NS
        self._fund_row(
            ts,
            sym,
            float(ctx["funding"]),
            1.0,
            float(ctx["markPx"]),
            float(ctx["oraclePx"]),
            next_ts,
            False,
        )
