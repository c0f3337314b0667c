"""What one collector run needs, in one frozen object (the CLI builds it; env vars are read there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from algo_trade.collect.memory import TRIM_INTERVAL_S
from algo_trade.errors import ConfigError
from algo_trade.exchanges import EXCHANGES, adapter_for
from algo_trade.exchanges.adapter import NETWORKS, VenueSettings
from algo_trade.exchanges.base import STREAMS

MAX_DEPTH = 1_000  # levels per side kept per book (venues publish at most 1000-5000)
MIN_BOOK_INTERVAL_NS = 10_000_000  # 10 ms: finer sampling is what the depth stream is for

DEFAULT_STREAMS = ("book", "funding", "trade")


@dataclass(frozen=True)
class CollectConfig:
    """Everything one collector run needs (the CLI builds it; env vars are read there).

    venues: per-venue settings (URLs, REST poll interval) by exchange name; a venue
    missing here uses its adapter's endpoints on `network` (live or test).
    """

    exchanges: tuple[str, ...]
    symbols: tuple[str, ...]
    streams: tuple[str, ...] = DEFAULT_STREAMS
    home: Path = Path("algo-trade-data")
    depth: int = 20
    book_interval_ns: int = 1_000_000_000
    duration_s: float | None = None
    queue_size: int = 1000
    flush_rows: int = 5000
    flush_interval_s: float = 1.0  # store writes wait up to this long to batch rows
    # Rows received are fsynced in the spool within about this long (group commit): what
    # a kill -9 or power cut can lose at most.
    durable_window_s: float = 0.1
    venues: Mapping[str, VenueSettings] = field(default_factory=dict)
    network: str = "live"
    spool_dir: Path | None = None
    record_raw: Path | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    stale_s: float = 30.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    max_spool_rows: int = 20_000_000
    shutdown_timeout_s: float = 10.0
    fsync: bool = True
    trim_interval_s: float = TRIM_INTERVAL_S

    def validate(self) -> None:
        for ex in self.exchanges:
            if ex not in EXCHANGES:
                raise ConfigError(f"unknown exchange {ex!r}: choose from {', '.join(EXCHANGES)}")
        for st in self.streams:
            if st not in STREAMS:
                raise ConfigError(f"unknown stream {st!r}: choose from {', '.join(STREAMS)}")
        if self.network not in NETWORKS:
            raise ConfigError(f"unknown network {self.network!r}: choose from live, test")
        for ex in self.exchanges:
            adapter_for(ex).check_streams(self.streams)
        if self.queue_size < 1 or self.flush_rows < 1 or self.flush_interval_s <= 0:
            raise ConfigError("--queue-size, flush rows and flush interval must be positive")
        if not 0.001 <= self.durable_window_s <= 60:
            raise ConfigError("--durable-window must be between 1ms and 60s, e.g. 100ms")
        self._check_bounds()

    def _check_bounds(self) -> None:
        """Sizes and intervals a collector can honour; beyond them it would spin or grow
        without bound (a 1 ns book grid, 100,000 levels), so they are refused up front."""
        if not 1 <= self.depth <= MAX_DEPTH:
            raise ConfigError(f"--depth must be between 1 and {MAX_DEPTH}, got {self.depth}")
        if not MIN_BOOK_INTERVAL_NS <= self.book_interval_ns <= 3_600 * 10**9:
            raise ConfigError("--book-interval must be between 10ms and 1h, e.g. 1s")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("--duration must be positive, e.g. 1h")
        if self.queue_size > 10_000_000 or self.flush_rows > 10_000_000:
            raise ConfigError("--queue-size and flush rows must be at most 10,000,000")
        if self.flush_interval_s > 3_600 or not 0 < self.stale_s <= 86_400:
            raise ConfigError("the flush interval must be at most 1h and --stale-after 1s..1d")
        # 0 asks the OS for a free port (the tests and embedded callers use it)
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65_535:
            raise ConfigError(
                f"--metrics-port must be between 0 (any free port) and 65535, got {self.metrics_port}"
            )
        for option, path in (("--spool", self.spool_dir), ("--record-raw", self.record_raw)):
            if path is not None and path.exists() and not path.is_dir():
                raise ConfigError(f"{option} {path} is a file; give a directory")

    def check_local(self) -> None:
        """What can be checked on this machine before any connection: the metrics port is
        free (bound and released at once)."""
        if self.metrics_port is None:
            return
        import socket

        with socket.socket(socket.AF_INET6 if ":" in self.metrics_host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.metrics_host, self.metrics_port))
            except OSError as exc:
                raise ConfigError(
                    f"--metrics-port {self.metrics_port} on {self.metrics_host}: {exc.strerror};"
                    " choose a free port"
                ) from None

    def settings(self, exchange: str) -> VenueSettings:
        """The venue's settings: as given, else its adapter's endpoints on `network`."""
        given = self.venues.get(exchange)
        if given is not None:
            return given
        ep = adapter_for(exchange).endpoints(self.network)
        return VenueSettings(ep.ws_url, ep.rest_url)
