"""Venue adapters: one module per exchange, one parser for live and recorded data.

Each venue module (``binance``, ``bybit``, ``hyperliquid``) holds everything about that
venue: symbol mapping, URLs (live and test), subscriptions, pings, REST snapshots and
polling, instrument lists (its `Adapter`, see `adapter.VenueAdapter`) and message
parsing (its `Normalizer`, see `base`). The registry below maps names to modules; the
collector and the CLI only ever ask it, so adding a venue is one module, one line here
and its tests. A Normalizer is usable without asyncio or network:

>>> from algo_trade.exchanges import normalizer_for
>>> n = normalizer_for("binance", ["BTC-USDT-PERP"], depth=20, book_interval_ns=1_000_000_000)
>>> n.feed(1723161255030314667, '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,'
...        '"s":"BTCUSDT","t":7,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}')
>>> n.drain()["trade"].num_rows
1
"""

from __future__ import annotations

import importlib
from types import ModuleType

from algo_trade.errors import ConfigError
from algo_trade.exchanges.adapter import VenueAdapter
from algo_trade.exchanges.base import BaseNormalizer as Normalizer
from algo_trade.exchanges.base import Counters, Event

# The registry: exchange name -> its module under algo_trade.exchanges (explicit, so a
# typo fails loudly instead of dropping a venue).
EXCHANGES = ("binance", "bybit", "hyperliquid")


def venue_module(exchange: str) -> ModuleType:
    """The adapter module of an exchange (binance, bybit, hyperliquid)."""
    if exchange not in EXCHANGES:
        raise ConfigError(f"unknown exchange {exchange!r}: choose from {', '.join(EXCHANGES)}")
    return importlib.import_module(f"algo_trade.exchanges.{exchange}")


def adapter_for(exchange: str) -> VenueAdapter:
    """The venue adapter of an exchange: endpoints, connections, REST calls, Normalizer."""
    return venue_module(exchange).ADAPTER


def normalizer_for(
    exchange: str,
    symbols: list[str],
    depth: int = 20,
    book_interval_ns: int = 1_000_000_000,
    streams: tuple[str, ...] | list[str] | None = None,
) -> Normalizer:
    """A fresh Normalizer of one venue for our symbols (e.g. BTC-USDT-PERP).

    streams: the record kinds to build from the book feed: ``book`` (sampled
    snapshots, the default) and/or ``depth`` (every update, snapshot runs)."""
    return adapter_for(exchange).normalizer(symbols, depth, book_interval_ns, streams)


def frames_for(normalizer: Normalizer):  # noqa: ANN201 - a venue's block parser or None
    """The block parser (many capture lines per call, `depth` rows) of a Normalizer's
    venue, sharing its state; None where the venue has none yet (feed lines one by one)."""
    if normalizer.exchange == "binance":
        from algo_trade.exchanges.binance_frames import BinanceFrames

        return BinanceFrames(normalizer)
    return None


__all__ = [
    "EXCHANGES",
    "Counters",
    "Event",
    "Normalizer",
    "VenueAdapter",
    "adapter_for",
    "frames_for",
    "normalizer_for",
    "venue_module",
]
