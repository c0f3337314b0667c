"""Venue adapters: one module per exchange, one parser for live and recorded data.

Every venue module exposes a `Normalizer` with the same small API (see `base`), usable
without asyncio or network:

>>> from algo_trade.exchanges import normalizer_for
>>> n = normalizer_for("binance", ["BTC-USDT-PERP"], depth=20, book_interval_ns=1_000_000_000)
>>> n.feed(1723161255030314667, '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,'
...        '"s":"BTCUSDT","t":7,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}')
>>> n.drain()["trade"].num_rows
1
"""

from __future__ import annotations

from algo_trade.errors import ConfigError
from algo_trade.exchanges.base import BaseNormalizer as Normalizer
from algo_trade.exchanges.base import Counters, Event

EXCHANGES = ("binance", "bybit", "hyperliquid")


def venue_module(exchange: str):  # noqa: ANN201 - returns a module
    """The adapter module of an exchange (binance, bybit, hyperliquid)."""
    if exchange == "binance":
        from algo_trade.exchanges import binance as mod
    elif exchange == "bybit":
        from algo_trade.exchanges import bybit as mod
    elif exchange == "hyperliquid":
        from algo_trade.exchanges import hyperliquid as mod
    else:
        raise ConfigError(f"unknown exchange {exchange!r}: choose from {', '.join(EXCHANGES)}")
    return mod


def normalizer_for(
    exchange: str, symbols: list[str], depth: int = 20, book_interval_ns: int = 1_000_000_000
) -> Normalizer:
    """A fresh Normalizer of one venue for our symbols (e.g. BTC-USDT-PERP)."""
    return venue_module(exchange).Normalizer(
        symbols, depth=depth, book_interval_ns=book_interval_ns
    )


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
    "frames_for",
    "normalizer_for",
    "venue_module",
]
