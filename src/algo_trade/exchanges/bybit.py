"""Bybit v5 linear (USDT/USDC perpetuals): symbol mapping, message decoding, book rules.

Symbols: ``BTC-USDT-PERP`` <-> ``BTCUSDT``; ``BTC-USDC-PERP`` <-> ``BTCPERP`` (Bybit's name
for USDC perpetuals).

Topics on ``/v5/public/linear``:

- ``orderbook.<N>.<s>``: a ``snapshot`` replaces the book; each ``delta`` must carry
  ``u`` = previous ``u`` + 1 (``u`` = 1 is a service restart: a snapshot). A gap puts
  the book out of sync until the next snapshot (`resubscribe()` names the symbols for
  which the client should unsubscribe and subscribe again). Levels with size 0 are
  deleted.
- ``tickers.<s>``: a snapshot then deltas holding only the changed fields; they are
  merged into a full state, and a funding row (predicted ``fundingRate``, ``markPrice``,
  ``indexPrice``, ``nextFundingTime``, ``fundingIntervalHour``) is added whenever one of
  those fields changes. When ``nextFundingTime`` rolls forward, a ``settled`` row is
  added at the old time with the last rate.
- ``allLiquidation.<s>``: ``S`` is the side of the liquidated *position* (Buy: a long
  was liquidated), so the forced order's side is its opposite.
- ``publicTrade.<s>``: ``S`` is the taker side; ``i`` the trade id.
- Replies (``success``/``op``) and application pongs are counted and ignored. The client
  sends ``{"op":"ping"}`` every 20 s (Bybit closes idle connections).
"""

from __future__ import annotations

import orjson

from algo_trade.errors import ConfigError, ExchangeError
from algo_trade.exchanges.adapter import Connection, Endpoints, Request, VenueAdapter
from algo_trade.exchanges.base import BaseNormalizer, ms_ns

EXCHANGE = "bybit"
WS_URL = "wss://stream.bybit.com"
WS_PATH = "/v5/public/linear"
REST_URL = "https://api.bybit.com"
TEST_WS_URL = "wss://stream-testnet.bybit.com"
TEST_REST_URL = "https://api-testnet.bybit.com"
TOPICS_PER_SUBSCRIBE = 10  # Bybit refuses a subscribe with more args
INSTRUMENTS_PATH = "/v5/market/instruments-info?category=linear&limit=1000"
BOOK_LEVELS = 50
PING = b'{"op":"ping"}'
PING_INTERVAL_S = 20.0


def to_venue(symbol: str) -> str:
    """BTC-USDT-PERP -> BTCUSDT; BTC-USDC-PERP -> BTCPERP."""
    parts = symbol.split("-")
    if len(parts) != 3 or parts[2] != "PERP":
        raise ConfigError(
            f"{symbol}: only linear perpetuals (BASE-USDT-PERP) are collected from Bybit"
        )
    base, quote, _ = parts
    if quote == "USDT":
        return f"{base}USDT"
    if quote == "USDC":
        return f"{base}PERP"
    raise ConfigError(
        f"{symbol}: Bybit linear perpetuals are margined in USDT or USDC, not {quote}"
    )


def from_venue(name: str) -> str:
    """BTCUSDT -> BTC-USDT-PERP; BTCPERP -> BTC-USDC-PERP."""
    if name.endswith("USDT") and len(name) > 4:
        return f"{name[:-4]}-USDT-PERP"
    if name.endswith("PERP") and len(name) > 4:
        return f"{name[:-4]}-USDC-PERP"
    raise ExchangeError(f"cannot map Bybit symbol {name!r}")


def topics(symbols: list[str], streams: list[str], book_levels: int = BOOK_LEVELS) -> list[str]:
    names = {
        "book": f"orderbook.{book_levels}",
        "funding": "tickers",
        "liquidation": "allLiquidation",
        "trade": "publicTrade",
    }
    return [f"{names[st]}.{to_venue(s)}" for s in symbols for st in streams]


def parse_instruments(body: str | bytes) -> set[str]:
    """Our symbols of the trading perpetuals in a /v5/market/instruments-info body."""
    import orjson

    out = set()
    for s in orjson.loads(body)["result"]["list"]:
        if (
            s.get("contractType", "LinearPerpetual") != "LinearPerpetual"
            or s.get("status") != "Trading"
        ):
            continue
        try:
            out.add(from_venue(s["symbol"]))
        except ExchangeError:
            continue
    return out


_FUND_FIELDS = ("fundingRate", "markPrice", "indexPrice", "nextFundingTime", "fundingIntervalHour")


class Normalizer(BaseNormalizer):
    """Bybit v5 linear messages -> normalized records (see the module docstring)."""

    exchange = EXCHANGE

    def __init__(
        self,
        symbols: list[str],
        depth: int = 20,
        book_interval_ns: int = 1_000_000_000,
        streams: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        super().__init__(symbols, depth, book_interval_ns, streams)
        self._ticker: dict[str, dict] = {}
        self._resub: set[str] = set()

    def venue_symbol(self, symbol: str) -> str:
        return to_venue(symbol)

    def resubscribe(self) -> list[str]:
        out = sorted(self._resub)
        self._resub.clear()
        return out

    def on_disconnect(
        self,
        ts_ns: int,
        reason: str,
        streams: list[str] | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        super().on_disconnect(ts_ns, reason, streams, symbols)
        if streams is None or "funding" in streams:
            for s in symbols or self.symbols:
                self._ticker.pop(s, None)

    def _feed(self, recv_ts_ns: int, obj: object, symbol: str | None) -> None:
        if not isinstance(obj, dict):
            raise TypeError("message is not a JSON object")
        topic = obj.get("topic")
        if topic is None:
            if "op" in obj or "success" in obj or "ret_msg" in obj:
                self._seen("ignored")
                return
            raise ValueError("not a Bybit message")
        head, _, vsym = topic.rpartition(".")
        sym = self.ours.get(vsym)
        if head.startswith("orderbook."):
            self._seen("book")
            if sym is not None:
                self._on_book(sym, obj)
        elif head == "publicTrade":
            self._seen("trade")
            if sym is not None:
                for t in obj["data"]:
                    self._trade_row(
                        ms_ns(t["T"]),
                        sym,
                        1 if t["S"] == "Buy" else -1,
                        float(t["p"]),
                        float(t["v"]),
                        str(t["i"]),
                    )
        elif head == "tickers":
            self._seen("funding")
            if sym is not None:
                self._tickers(sym, obj)
        elif head in ("allLiquidation", "liquidation"):
            self._seen("liquidation")
            if sym is not None:
                data = obj["data"]
                for x in data if isinstance(data, list) else [data]:
                    # S is the liquidated position's side; the forced order takes the other side.
                    side = -1 if x["S"] == "Buy" else 1
                    self._liq_row(
                        ms_ns(x.get("T") or x.get("updatedTime")),
                        sym,
                        side,
                        float(x["p"]),
                        float(x.get("v") or x["size"]),
                    )
        else:
            self._seen("ignored")

    def _on_book(self, sym: str, obj: dict) -> None:
        d = obj["data"]
        book = self.books[sym]
        ts = ms_ns(obj["ts"])
        u = int(d["u"])
        if obj["type"] == "snapshot" or u == 1:
            resync = not book.synced
            if book.synced:
                self._clock(sym, ts)
            book.load(d["b"], d["a"])
            book.last_id = u
            if resync:
                self._synced(sym, ts)
            if self.emit_depth:
                self._depth_snapshot(sym, ts, u, book, resync)
            return
        if not book.synced:
            self.counters.stale_dropped += 1
            return
        if u != book.last_id + 1:
            self._lost(sym, ts, "sequence gap", f"u {u} after {book.last_id}")
            self._resub.add(sym)
            return
        self._clock(sym, ts)
        if self.emit_depth:
            self._depth_diff(sym, ts, u, book, d["b"], d["a"])
        else:
            book.apply(d["b"], d["a"])
        book.last_id = u

    def _tickers(self, sym: str, obj: dict) -> None:
        d = obj["data"]
        state = self._ticker.get(sym)
        if obj.get("type") == "snapshot" or state is None:
            state = self._ticker[sym] = {}
        changed = any(k in d for k in _FUND_FIELDS)
        prev_next = state.get("nextFundingTime")
        prev_rate = state.get("fundingRate")
        state.update(d)
        if not changed or "fundingRate" not in state or "nextFundingTime" not in state:
            return
        ts = ms_ns(obj["ts"])
        next_ts = ms_ns(state["nextFundingTime"])
        ih = float(state.get("fundingIntervalHour") or 8)
        mark = float(state.get("markPrice") or "nan")
        index = float(state.get("indexPrice") or "nan")
        if prev_next is not None and prev_rate is not None:
            old = ms_ns(prev_next)
            if next_ts > old and ts >= old:
                self._fund_row(old, sym, float(prev_rate), ih, mark, index, old, True)
        self._fund_row(ts, sym, float(state["fundingRate"]), ih, mark, index, next_ts, False)


def _subscribe_messages(op: str, tops: list[str]) -> list[str]:
    return [
        orjson.dumps({"op": op, "args": tops[i : i + TOPICS_PER_SUBSCRIBE]}).decode()
        for i in range(0, len(tops), TOPICS_PER_SUBSCRIBE)
    ]


class Adapter(VenueAdapter):
    """Bybit v5 linear for the collector: topic subscriptions, application pings, books
    repaired by resubscribing (the venue answers with a snapshot)."""

    name = EXCHANGE
    title = "Bybit linear"
    urls = {
        "live": Endpoints(WS_URL, REST_URL),
        "test": Endpoints(TEST_WS_URL, TEST_REST_URL),
    }
    normalizer_cls = Normalizer

    def connections(self, symbols: list[str], feeds: list[str], ws_url: str) -> list[Connection]:
        return [
            Connection(
                feed,
                ws_url + WS_PATH,
                tuple(_subscribe_messages("subscribe", topics(symbols, [feed]))),
                PING.decode(),
                PING_INTERVAL_S,
            )
            for feed in feeds
        ]

    def instruments(self) -> Request:
        return Request("GET", INSTRUMENTS_PATH)

    def parse_instruments(self, body: bytes) -> set[str]:
        return parse_instruments(body)

    def resubscribe(self, symbols: list[str]) -> list[str]:
        tops = topics(symbols, ["book"])
        return _subscribe_messages("unsubscribe", tops) + _subscribe_messages("subscribe", tops)


ADAPTER = Adapter()
