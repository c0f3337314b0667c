"""What a venue adapter tells the collector: endpoints, connections, REST calls, book repair.

The collector core (``collect/``) runs connections, REST calls and timers for any venue;
everything that differs between venues is answered here, by one `VenueAdapter` per
exchange module (``exchanges/binance.py`` ...), found by name in the registry
(``exchanges/__init__.py``). The adapter does no I/O itself: it describes websocket
connections (`Connection`) and HTTP requests (`Request`) and turns what comes back into
messages for its `Normalizer`, so it is tested without a network.

Adding a venue: a module with its symbol mapping, a `Normalizer` (``base.BaseNormalizer``)
and an adapter subclass, one line in the registry, and its tests (docs/collector.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from algo_trade.errors import ConfigError
from algo_trade.exchanges.base import STREAMS, BaseNormalizer

NETWORKS = ("live", "test")

# Streams read from another stream's subscription: `depth` stores every update of the
# same order-book feed that `book` samples, so both share one connection per venue.
FEED_OF = {"depth": "book"}


def feed_of(stream: str) -> str:
    """The subscription (feed) a stream is read from: book for depth, else itself."""
    return FEED_OF.get(stream, stream)


@dataclass(frozen=True)
class Endpoints:
    """A venue's base URLs: websocket and REST (paths are the adapter's)."""

    ws_url: str
    rest_url: str


@dataclass(frozen=True)
class VenueSettings:
    """Per-venue settings of one collector run (the CLI builds them from options/env).

    poll_s: how often REST-polled streams are asked (None: the adapter's default)."""

    ws_url: str
    rest_url: str
    poll_s: float | None = None


@dataclass(frozen=True)
class Request:
    """One HTTP request to a venue's REST endpoint (path is joined to the REST base URL)."""

    method: str
    path: str
    body: bytes | None = None


@dataclass(frozen=True)
class Connection:
    """One websocket connection: the feed it carries (for `symbols`; empty: all), where,
    what to send on connect, and the application ping the venue wants (None: protocol
    pings are enough). A venue with a per-connection limit gets several per feed."""

    feed: str
    url: str
    subscribe: tuple[str, ...] = ()
    ping: str | None = None
    ping_interval_s: float = 30.0
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Poll:
    """A feed read by polling REST: `request` every `interval_s`; the body is a message."""

    feed: str
    request: Request
    interval_s: float


class VenueAdapter:
    """Everything venue-specific the collector needs (subclass per venue).

    Subclasses set `name`, `title`, `urls`, `normalizer_cls`, and implement
    `connections` and `instruments`; the hooks with defaults (`polls`, `snapshot`,
    `snapshot_message`, `resubscribe`) cover REST-polled feeds, REST book snapshots and
    book resubscription, for the venues that need them.
    """

    name = ""
    title = ""
    urls: dict[str, Endpoints] = {}  # network (live, test) -> endpoints
    streams: tuple[str, ...] = STREAMS
    # stream -> why this venue cannot give it (one line for the user)
    unsupported: dict[str, str] = {}
    normalizer_cls: type[BaseNormalizer] = BaseNormalizer
    poll_s = 5.0  # default interval of REST-polled feeds

    # ------------------------------------------------------------ settings
    def endpoints(self, network: str = "live") -> Endpoints:
        if network not in self.urls:
            raise ConfigError(
                f"{self.name} has no {network!r} network: choose from {', '.join(self.urls)}"
            )
        return self.urls[network]

    def check_streams(self, streams: tuple[str, ...] | list[str]) -> None:
        """Raise ConfigError for a stream this venue cannot give (one line saying why)."""
        for st in streams:
            if st in self.unsupported:
                raise ConfigError(self.unsupported[st])
            if st not in self.streams:
                raise ConfigError(f"{self.title} has no {st!r} stream")

    def normalizer(
        self,
        symbols: list[str],
        depth: int = 20,
        book_interval_ns: int = 1_000_000_000,
        streams: tuple[str, ...] | list[str] | None = None,
    ) -> BaseNormalizer:
        """A fresh Normalizer for our symbols; `streams` says which record kinds to emit
        from the book feed (book snapshots, depth updates; default: book only)."""
        return self.normalizer_cls(
            symbols, depth=depth, book_interval_ns=book_interval_ns, streams=streams
        )

    # ------------------------------------------------------------ websocket
    def feeds(self, streams: tuple[str, ...] | list[str]) -> list[str]:
        """The distinct feeds (subscriptions) the streams need, in order."""
        return list(dict.fromkeys(feed_of(s) for s in streams))

    def connections(
        self, symbols: list[str], feeds: list[str], ws_url: str
    ) -> list[Connection]:  # pragma: no cover - abstract
        """One websocket connection per feed the venue streams (polled feeds have none)."""
        raise NotImplementedError

    def polls(self, symbols: list[str], feeds: list[str], settings: VenueSettings) -> list[Poll]:
        """REST-polled feeds (default: none)."""
        return []

    # ------------------------------------------------------------ REST
    def instruments(self) -> Request:  # pragma: no cover - abstract
        """The request for the venue's instrument list (checked at start)."""
        raise NotImplementedError

    def parse_instruments(self, body: bytes) -> set[str]:  # pragma: no cover - abstract
        """Our symbols listed in the instrument-list body."""
        raise NotImplementedError

    def snapshot(self, symbol: str) -> Request | None:
        """The REST request for a book snapshot of one of our symbols (None: the venue
        sends snapshots on the websocket)."""
        return None

    def snapshot_message(self, symbol: str, body: bytes) -> bytes:
        """A snapshot body as the message fed to the Normalizer (and the raw record)."""
        return body

    def resubscribe(self, symbols: list[str]) -> list[str]:
        """Messages sent on the book connection so the venue sends fresh snapshots of
        `symbols` (default: none; the venue needs no help or gets a REST snapshot)."""
        return []
