"""Raw websocket captures -> depth, trade, funding, liquidation (and, on request, book) records.

A capture is gzip (or plain) text with one message per line, ``<local receive time>
<raw message exactly as the venue sent it>``: the layout of hftbacktest's collector and
of our own raw recorder (`algo_trade.collect.rawlog`). A REST depth snapshot body may sit
on its own line. The receive time may be in ms, µs or ns (read from its magnitude) and
becomes `ts_local` of the depth, trade and liquidation rows.

Lines go through the venue adapters in `algo_trade.exchanges` (one parser for live and
recorded data): a venue with a block parser (`exchanges.frames_for`: Binance USD-M) is
read 4 MB of lines per kernel call, read and parsed ahead on other threads; the others
are fed line by line to their Normalizer. Every accepted book update is stored as
`depth`; sampled `book` rows only when --book-interval is given (from the depth rows, or
by the Normalizer). The venue and its symbols are read from the first lines
(``{"stream":..}`` or ``"e"`` Binance USD-M, ``{"channel":..}`` Hyperliquid,
``{"topic":..}`` Bybit), unless --exchange names the venue. One parser state per
(venue, symbols) lives for the whole import, so consecutive files (a day cut at
midnight) continue the same book and the funding settlement between them is kept.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from algo_trade.errors import ConfigError, DataError, ExchangeError
from algo_trade.exchanges import EXCHANGES, frames_for, normalizer_for, venue_module
from algo_trade.exchanges.base import BaseNormalizer
from algo_trade.exchanges.framenb import LOST_FLAG
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.booksample import BookSampler, run_codes
from algo_trade.importers.reader import (
    READ_ERRORS,
    Counting,
    FileReport,
    _pool,
    open_binary,
    open_stream,
    read_error,
)
from algo_trade.prefetch import prefetch
from algo_trade.schema import DEFAULT_DEPTH, DEPTH_SNAPSHOT, label_array, schema_for

DETECT_LINES = 5_000  # lines read to find the venue and symbols
NS_PER_S = 1_000_000_000
DRAIN_LINES = 20_000  # lines between drains: bounds memory whatever the file size
BLOCK_BYTES = 4 << 20  # decompressed bytes per block-parser call: bounds memory
PARSE_AHEAD = 2  # blocks parsed ahead of the one applied
BAD_LINE = "line is not '<receive time> <raw message>'"
UNUSABLE = "message the venue parser cannot use"


_BINANCE_S = re.compile(rb'"s":\s*"([A-Za-z0-9_]+)"')


def _line_blocks(stream) -> Iterator[bytes]:  # noqa: ANN001 - a binary stream
    """Blocks of about BLOCK_BYTES of whole lines (the last one gets its newline)."""
    rest = b""
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            if rest:
                yield rest + b"\n"
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        yield data[:cut]
        rest = data[cut:]


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
    head: list[bytes] = []
    for i, line in enumerate(_lines(path, Counting(path))):
        if i >= DETECT_LINES:
            break
        head.append(line)
    for line in head:
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
        if venue == "binance" and parsed >= 50:
            # Binance frames name their symbol as "s": a byte scan finds the others
            # (decoding 5,000 frames costs more than importing them).
            for s in _BINANCE_S.findall(b"".join(head)):
                seen[s.decode()] = None
            break
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


def _note_counters(
    report: FileReport, norm: BaseNormalizer, before: dict[str, int], after: dict[str, int]
) -> None:
    """Note what the file added to the feed counters, and the normalizer's events
    (malformed lines are already counted per line), both parse paths alike."""
    for name in ("messages", "gaps", "resyncs", "stale_dropped"):
        d = after[name] - before[name]
        if d:
            report.notes.append(f"{name}: {d}")
    for ev in norm.drain_events():
        if ev.reason != "malformed":
            report.notes.append(f"{ev.reason} {ev.symbol} {ev.stream}: {ev.detail}"[:200])


class CaptureFormat:
    name = "capture"
    suffixes = (".gz",)
    checks_symbol = True  # --symbol is matched to the venue's stored name in `detect`

    def __init__(self) -> None:
        self._normalizers: dict[tuple[str, tuple[str, ...]], BaseNormalizer] = {}
        self._frames: dict[tuple[str, tuple[str, ...]], object] = {}
        self._samplers: dict[tuple[str, tuple[str, ...]], BookSampler] = {}
        self._counter: Counting | None = None
        self._progress: object | None = None

    def checking(self) -> CaptureFormat:
        return CaptureFormat()

    def progress(self) -> tuple[int, int]:
        c = self._progress or self._counter
        return (c.pos, c.size) if c else (0, 0)

    def _normalizer(self, venue: str, symbols: list[str], opts: ImportOptions) -> BaseNormalizer:
        key = (venue, tuple(symbols))
        n = self._normalizers.get(key)
        if n is None:
            # Every update as depth; sampled books only when --book-interval asks.
            streams = ("depth", "book") if opts.book_interval_ns is not None else ("depth",)
            n = normalizer_for(
                venue,
                symbols,
                depth=opts.depth or DEFAULT_DEPTH,
                book_interval_ns=opts.book_interval_ns or NS_PER_S,
                streams=streams,
            )
            self._normalizers[key] = n
        return n

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        venue, symbols = detect(path, opts)
        report.dataset = f"{venue} {','.join(symbols)}"
        norm = self._normalizer(venue, symbols, opts)
        key = (venue, tuple(symbols))
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = frames_for(norm)
        if frames is not None:
            yield from self._blocks(path, opts, report, norm, frames, key)
            return
        yield from self._per_line(path, report, norm)

    # ------------------------------------------------------------ block path
    def _blocks(self, path, opts, report, norm, frames, key) -> Iterator[Piece]:  # noqa: ANN001
        """Venues with a block parser: many lines per kernel call (depth, trades), the
        rest through the Normalizer; book rows sampled from the depth rows."""
        sampler = self._samplers.get(key)
        if sampler is None and opts.book_interval_ns is not None:
            sampler = self._samplers[key] = BookSampler(
                opts.depth or DEFAULT_DEPTH, opts.book_interval_ns, final_row=False
            )
        before = frames.counters()
        stream, self._progress = open_stream(path)
        lines_before = 0
        try:
            with (
                stream,
                closing(prefetch(_line_blocks(stream), name="import-capture-read")) as blocks,
            ):
                # Blocks are read and parsed ahead on other threads (gzip and the kernel
                # release the GIL) while this one applies the previous block and the
                # store writes on its own; the reader stops before the file closes.
                ahead: deque[Future] = deque()
                for block in blocks:
                    ahead.append(_pool().submit(frames.parse, block))
                    if len(ahead) < PARSE_AHEAD:
                        continue
                    lines_before = yield from self._apply(
                        ahead.popleft().result(), frames, norm, sampler, report, lines_before
                    )
                while ahead:
                    lines_before = yield from self._apply(
                        ahead.popleft().result(), frames, norm, sampler, report, lines_before
                    )
        except READ_ERRORS as exc:
            raise read_error(path, exc) from None
        _note_counters(report, norm, before, frames.counters())

    def _apply(self, blk, frames, norm, sampler, report, lines_before):  # noqa: ANN001, ANN202
        got = frames.apply(blk)
        bad = [(i, BAD_LINE) for i in got.bad_lines.tolist()]
        bad += [(i, UNUSABLE) for i in got.unparsed.tolist()]
        for i, reason in sorted(bad):
            report.bad(reason, lines_before + i + 1)
        yield from self._block_pieces(norm, sampler, got)
        yield from self._drain(norm)
        return lines_before + got.lines

    @staticmethod
    def _block_pieces(norm: BaseNormalizer, sampler: BookSampler | None, got) -> Iterator[Piece]:  # noqa: ANN001
        names = norm.symbols
        ts, ts_local, sym, side, px, qty, seq, flags = got.depth
        if len(ts):
            lost = (flags & LOST_FLAG) != 0
            snap = (flags & DEPTH_SNAPSHOT) != 0
            for code in np.unique(sym).tolist() if sampler is not None else ():
                mine = sym == code
                s_snap = snap[mine]
                s_ts, s_seq = ts[mine], seq[mine]
                # A run starts where the (ts, seq) of snapshot rows changes.
                start = s_snap.copy()
                start[1:] &= ~(s_snap[:-1] & (s_ts[1:] == s_ts[:-1]) & (s_seq[1:] == s_seq[:-1]))
                codes = run_codes(s_snap, start)
                codes[lost[mine]] = -1
                yield from (
                    Piece("book", t)
                    for t in sampler.feed(
                        norm.exchange,
                        names[code],
                        s_ts,
                        codes,
                        side[mine] == 1,
                        px[mine],
                        qty[mine],
                    )
                )
            keep = ~lost
            n = int(keep.sum())
            if n:
                table = pa.Table.from_arrays(
                    [
                        pa.array(ts[keep]),
                        pa.array(ts_local[keep]),
                        label_array(norm.exchange, n),
                        pa.DictionaryArray.from_arrays(
                            pa.array(sym[keep]), pa.array(names, pa.string())
                        ),
                        pa.array(side[keep]),
                        pa.array(px[keep]),
                        pa.array(qty[keep]),
                        pa.array(seq[keep]),
                        pa.array(flags[keep]),
                    ],
                    schema=schema_for("depth"),
                )
                yield Piece("depth", table)
        n = len(got.trade_ts)
        if n:
            cols = {
                "ts": pa.array(got.trade_ts),
                "ts_local": pa.array(got.trade_ts_local),
                "exchange": label_array(norm.exchange, n),
                "symbol": pa.DictionaryArray.from_arrays(
                    pa.array(got.trade_sym), pa.array(names, pa.string())
                ),
                "side": pa.array(got.trade_side),
                "price": pa.array(got.trade_px),
                "qty": pa.array(got.trade_qty),
                "trade_id": pa.array(got.trade_id).cast(pa.string()),
            }
            schema = schema_for("trade")
            yield Piece(
                "trade", pa.Table.from_arrays([cols[f] for f in schema.names], schema=schema)
            )

    # ------------------------------------------------------------ line path
    def _per_line(self, path: Path, report: FileReport, norm: BaseNormalizer) -> Iterator[Piece]:
        before = norm.counters.as_dict()
        self._progress = None
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
                report.bad(UNUSABLE, lineno)
            since_drain += 1
            if since_drain >= DRAIN_LINES:
                since_drain = 0
                yield from self._drain(norm)
        yield from self._drain(norm)
        _note_counters(report, norm, before, norm.counters.as_dict())

    @staticmethod
    def _drain(norm: BaseNormalizer) -> Iterator[Piece]:
        for kind, table in norm.drain().items():
            # Rows are built by the parser, not read from a line: no line numbers to report.
            yield Piece(kind, table, None)
