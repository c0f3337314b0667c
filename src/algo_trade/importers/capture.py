"""Raw websocket captures -> book, trade, funding (and liquidation) records.

A capture is gzip (or plain) text with one message per line, ``<local receive time>
<raw message exactly as the venue sent it>``: the layout of hftbacktest's collector and
of our own raw recorder (`algo_trade.collect.rawlog`). A REST depth snapshot body may sit
on its own line. The receive time may be in ms, µs or ns (read from its magnitude).

Every line goes through the collector's own parser and book builder
(`algo_trade.exchanges.<venue>.Normalizer`): one parser for live and recorded data.
The venue and its symbols are read from the first lines (``{"stream":..}`` or ``"e"``
Binance USD-M, ``{"channel":..}`` Hyperliquid, ``{"topic":..}`` Bybit), unless
--exchange names the venue. One Normalizer per (venue, symbols) lives for the whole
import, so consecutive files (a day cut at midnight) continue the same book and the
funding settlement that falls between them is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from algo_trade.errors import ConfigError, DataError, ExchangeError
from algo_trade.exchanges import EXCHANGES, normalizer_for, venue_module
from algo_trade.exchanges.base import BaseNormalizer
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.reader import READ_ERRORS, Counting, FileReport, open_binary, read_error
from algo_trade.schema import DEFAULT_DEPTH

DETECT_LINES = 5_000  # lines read to find the venue and symbols
DRAIN_LINES = 20_000  # lines between drains: bounds memory whatever the file size
BAD_LINE = "line is not '<receive time> <raw message>'"


def recv_ns(value: int) -> int:
    """A receive time in ms, µs or ns -> ns (by magnitude)."""
    if value < 10**14:
        return value * 1_000_000
    if value < 10**17:
        return value * 1_000
    return value


def _venue_of(obj: object) -> str | None:
    if isinstance(obj, dict):
        if "stream" in obj or "e" in obj.get("data", obj) or "lastUpdateId" in obj:
            return "binance"
        if "channel" in obj:
            return "hyperliquid"
        if "topic" in obj:
            return "bybit"
    return None


def _venue_symbols(venue: str, obj: object) -> list[str]:
    """Venue symbols a message names (empty when it names none)."""
    if not isinstance(obj, dict):
        return []
    if venue == "binance":
        d = obj.get("data", obj)
        if isinstance(d, dict):
            s = d.get("s") or (d.get("o") or {}).get("s")
            if s:
                return [s]
        stream = obj.get("stream")
        return [stream.split("@", 1)[0].upper()] if isinstance(stream, str) else []
    if venue == "hyperliquid":
        d = obj.get("data")
        if isinstance(d, dict) and "coin" in d:
            return [d["coin"]]
        if isinstance(d, list):
            return [x["coin"] for x in d if isinstance(x, dict) and "coin" in x]
        return []
    topic = obj.get("topic")
    return [topic.rpartition(".")[2]] if isinstance(topic, str) else []


def _lines(path: Path, counter: Counting) -> Iterator[bytes]:
    try:
        with open_binary(path, counter) as fh:
            yield from fh
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None


def detect(path: Path, opts: ImportOptions) -> tuple[str, list[str]]:
    """(venue, our symbols) from the first lines of a capture."""
    venue = opts.exchange
    if venue is not None and venue not in EXCHANGES:
        raise ConfigError(
            f"--exchange {venue}: captures are replayed by a venue adapter; choose one of "
            f"{', '.join(EXCHANGES)}"
        )
    seen: dict[str, None] = {}
    parsed = 0
    for i, line in enumerate(_lines(path, Counting(path))):
        if i >= DETECT_LINES:
            break
        _ts, _, raw = line.partition(b" ")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        parsed += 1
        v = _venue_of(obj)
        if venue is None and v is not None:
            venue = v
        if venue is not None and v == venue:
            for s in _venue_symbols(venue, obj):
                seen[s] = None
    if parsed == 0:
        raise DataError(
            f"{path}: unknown format (no '<receive time> <json message>' line in the first "
            f"{DETECT_LINES} lines)"
        )
    if venue is None:
        raise DataError(
            f"{path}: cannot tell the venue of these messages; give --exchange "
            f"({', '.join(EXCHANGES)})"
        )
    mod = venue_module(venue)
    ours: list[str] = []
    for s in seen:
        try:
            ours.append(mod.from_venue(s))
        except (ExchangeError, ConfigError) as exc:
            raise DataError(
                f"{path}: {exc} (the {venue} adapter covers its perpetuals only)"
            ) from None
    ours = list(dict.fromkeys(ours))
    if opts.symbol:
        want = normalizer_for(venue, [opts.symbol]).symbols[0]  # the venue's stored name
        others = [s for s in ours if s != want]
        if others:
            raise DataError(f"{path}: holds {', '.join(ours)}, but --symbol says {opts.symbol}")
        ours = [want]
    if not ours:
        raise DataError(f"{path}: no {venue} market-data message names a symbol; give --symbol")
    return venue, ours


class CaptureFormat:
    name = "capture"
    suffixes = (".gz",)
    checks_symbol = True  # --symbol is matched to the venue's stored name in `detect`

    def __init__(self) -> None:
        self._normalizers: dict[tuple[str, tuple[str, ...]], BaseNormalizer] = {}
        self._counter: Counting | None = None

    def checking(self) -> CaptureFormat:
        return CaptureFormat()

    def progress(self) -> tuple[int, int]:
        c = self._counter
        return (c.pos, c.size) if c else (0, 0)

    def _normalizer(self, venue: str, symbols: list[str], opts: ImportOptions) -> BaseNormalizer:
        key = (venue, tuple(symbols))
        n = self._normalizers.get(key)
        if n is None:
            n = normalizer_for(
                venue,
                symbols,
                depth=opts.depth or DEFAULT_DEPTH,
                book_interval_ns=opts.book_interval_ns,
            )
            self._normalizers[key] = n
        return n

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        venue, symbols = detect(path, opts)
        report.dataset = f"{venue} {','.join(symbols)}"
        norm = self._normalizer(venue, symbols, opts)
        before = norm.counters.as_dict()
        self._counter = counter = Counting(path)
        feed = norm.feed
        counters = norm.counters
        since_drain = 0
        for lineno, line in enumerate(_lines(path, counter), start=1):
            ts_text, sep, raw = line.partition(b" ")
            if not sep or not ts_text.isdigit() or not raw.strip():
                if line.strip():
                    report.bad(BAD_LINE, lineno)
                continue
            malformed = counters.malformed
            feed(recv_ns(int(ts_text)), raw)
            if counters.malformed != malformed:
                report.bad("message the venue parser cannot use", lineno)
            since_drain += 1
            if since_drain >= DRAIN_LINES:
                since_drain = 0
                yield from self._drain(norm)
        yield from self._drain(norm)
        after = norm.counters.as_dict()
        for key in ("messages", "gaps", "resyncs", "stale_dropped"):
            d = after[key] - before[key]
            if d:
                report.notes.append(f"{key}: {d}")
        for ev in norm.drain_events():
            if ev.reason != "malformed":
                report.notes.append(f"{ev.reason} {ev.symbol} {ev.stream}: {ev.detail}"[:200])

    @staticmethod
    def _drain(norm: BaseNormalizer) -> Iterator[Piece]:
        for kind, table in norm.drain().items():
            # Rows are built by the parser, not read from a line: no line numbers to report.
            yield Piece(kind, table, None)
