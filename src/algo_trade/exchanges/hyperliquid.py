"""Hyperliquid perpetuals: symbol mapping, message decoding.

Symbols: Hyperliquid perps are margined and settled in USDC, so coin ``BTC`` is stored
as ``BTC-USDC-PERP``. A request for ``BTC-USDT-PERP`` or ``BTC-USD-PERP`` names the same
coin (so one ``--symbols`` list works across venues) and is stored as ``BTC-USDC-PERP``.

Messages:

- ws ``{"channel":"l2Book","data":{"coin","time","levels":[bids, asks]}}``: every message
  is a full 20-level book (no sequence to check); it replaces the book and is stored as
  a depth snapshot run (seq -1: the venue numbers nothing). A second book with the same
  time as the last run would merge into it, so it is stored as the level changes from
  that run instead (none when it is the same book, as the subscription's first push is).
- ws ``{"channel":"trades","data":[{coin, side, px, sz, time, tid}]}``: ``side`` B is a
  buying taker, A a selling one.
- REST ``POST /info {"type":"metaAndAssetCtxs"}`` -> ``[meta, ctxs]`` (feed the body as
  it came) and ws ``activeAssetCtx``: funding rows with the hourly predicted ``funding``
  rate, ``markPx`` and ``oraclePx`` (as the index); the response has no time, so the row
  is stamped with the local receive time, and ``next_ts`` is the next whole hour.
- Hyperliquid publishes **no public liquidation stream**: ``liquidation`` is refused.
"""

from __future__ import annotations

import orjson

from algo_trade.errors import ConfigError
from algo_trade.exchanges.adapter import (
    Connection,
    Endpoints,
    Poll,
    Request,
    VenueAdapter,
    VenueSettings,
)
from algo_trade.exchanges.base import BaseNormalizer, ms_ns

EXCHANGE = "hyperliquid"
WS_URL = "wss://api.hyperliquid.xyz"
WS_PATH = "/ws"
REST_URL = "https://api.hyperliquid.xyz"
TEST_WS_URL = "wss://api.hyperliquid-testnet.xyz"
TEST_REST_URL = "https://api.hyperliquid-testnet.xyz"
INFO_PATH = "/info"
STREAMS = ("book", "depth", "funding", "trade")
FUNDING_POLL_S = 5.0
PING = '{"method":"ping"}'
PING_INTERVAL_S = 30.0  # Hyperliquid closes connections silent for 60 s
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
        if "book" in streams or "depth" in streams:
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

    def __init__(
        self,
        symbols: list[str],
        depth: int = 20,
        book_interval_ns: int = 1_000_000_000,
        streams: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        super().__init__(symbols, depth, book_interval_ns, streams)
        self._last_run: dict[str, int] = {}  # sym -> venue time of its last snapshot run

    def on_disconnect(
        self,
        ts_ns: int,
        reason: str,
        streams: list[str] | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        super().on_disconnect(ts_ns, reason, streams, symbols)
        for s in symbols or self.symbols:
            self._last_run.pop(s, None)

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
                self._l2book(sym, ms_ns(d["time"]), d["levels"])
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

    def _l2book(self, sym: str, ts: int, levels: list) -> None:
        book = self.books[sym]
        bids, asks = levels
        if book.synced:
            self._clock(sym, ts)
        same_run = self.emit_depth and book.synced and self._last_run.get(sym) == ts
        if same_run:
            old_bids, old_asks = dict(book.bids), dict(book.asks)
        book.load([(x["px"], x["sz"]) for x in bids], [(x["px"], x["sz"]) for x in asks])
        resync = not book.synced
        if resync:
            self._synced(sym, ts)
        if not self.emit_depth:
            return
        if same_run:
            self._depth_changes(sym, ts, book, old_bids, old_asks)
        else:
            self._depth_snapshot(sym, ts, -1, book, resync)
            self._last_run[sym] = ts

    def _depth_changes(self, sym: str, ts: int, book, old_bids: dict, old_asks: dict) -> None:
        """Store the difference between two books as diff rows (removed levels: size 0)."""
        sides = []
        for new, old in ((book.bids, old_bids), (book.asks, old_asks)):
            changed = [(p, q) for p, q in new.items() if old.get(p) != q]
            changed += [(p, 0.0) for p in old if p not in new]
            sides.append(changed)
        if sides[0] or sides[1]:
            scratch = type(book)()
            self._depth_diff(sym, ts, -1, scratch, sides[0], sides[1])

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


class Adapter(VenueAdapter):
    """Hyperliquid for the collector: method subscriptions, application pings, funding
    polled from the info endpoint; no liquidation stream."""

    name = EXCHANGE
    title = "Hyperliquid"
    urls = {
        "live": Endpoints(WS_URL, REST_URL),
        "test": Endpoints(TEST_WS_URL, TEST_REST_URL),
    }
    streams = STREAMS
    unsupported = {"liquidation": NO_LIQUIDATIONS}
    normalizer_cls = Normalizer
    poll_s = FUNDING_POLL_S

    def connections(self, symbols: list[str], feeds: list[str], ws_url: str) -> list[Connection]:
        return [
            Connection(
                feed,
                ws_url + WS_PATH,
                tuple(
                    orjson.dumps({"method": "subscribe", "subscription": s}).decode()
                    for s in subscriptions(symbols, [feed])
                ),
                PING,
                PING_INTERVAL_S,
            )
            for feed in feeds
            if feed != "funding"  # polled from the info endpoint
        ]

    def polls(self, symbols: list[str], feeds: list[str], settings: VenueSettings) -> list[Poll]:
        if "funding" not in feeds:
            return []
        body = orjson.dumps({"type": "metaAndAssetCtxs"})
        interval = settings.poll_s if settings.poll_s is not None else self.poll_s
        return [Poll("funding", Request("POST", INFO_PATH, body), interval)]

    def instruments(self) -> Request:
        return Request("POST", INFO_PATH, orjson.dumps({"type": "meta"}))

    def parse_instruments(self, body: bytes) -> set[str]:
        return parse_instruments(body)


ADAPTER = Adapter()
