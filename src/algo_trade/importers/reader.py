"""Shared file reading for the importers: discovery, decompression, chunked CSV, bad rows.

- `discover(paths, suffixes)`: files and whole directories (recursively), sorted.
- `open_binary(path)`: ``.gz`` and ``.zip`` (one member) are decompressed as a stream;
  a `Counting` wrapper under it tells how many compressed bytes were consumed (progress).
- `CsvSource`: blocks of whole lines parsed in parallel and returned in order (constant
  memory), by the `csvnb` kernel for plain numeric layouts, else by pyarrow. Rows with
  the wrong number of fields are skipped and reported with their line; a block with a
  value that does not parse as its column's type is checked cell by cell, so the bad
  cell's line is reported and one bad cell costs speed only in its own block.
- `FileReport` gathers what happened to one file: rows written per kind, duplicates,
  rejected rows per reason, up to `MAX_SAMPLES` bad rows with file, line and reason,
  the time range. Line numbers count the header as line 1.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from algo_trade.errors import DataError
from algo_trade.importers import csvnb
from algo_trade.values import FALSE_WORDS, TRUE_WORDS

BLOCK_BYTES = 4 << 20  # CSV bytes per block: ~4k book rows or ~50k trade rows
IN_FLIGHT = 3  # blocks being parsed at once: memory stays a few blocks whatever the file
MAX_SAMPLES = 20  # bad rows kept per file for the report (all are counted)
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*$|^(?i:nan)$"
_INT_RE = r"^\s*[-+]?\d+\s*$|^\s*$"


def discover(paths: Iterable[str | Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files under `paths` (files or directories, recursively) whose name ends with a suffix."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = [
                Path(root) / name
                for root, _dirs, names in os.walk(path)
                for name in names
                if name.lower().endswith(suffixes) and not name.startswith(".")
            ]
            out.extend(sorted(found))
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    if not out:
        raise DataError(
            f"no {'/'.join(suffixes)} files found in {', '.join(str(p) for p in paths)}"
        )
    return list(dict.fromkeys(out))


class Counting(io.RawIOBase):
    """A raw file that counts the bytes read from it (compressed bytes, for progress)."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.pos = 0
        self.size = os.fstat(self._fh.fileno()).st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # noqa: ANN001 - buffer protocol
        n = self._fh.readinto(b)
        self.pos = self._fh.tell()
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()
        super().close()


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        from isal.igzip_lib import IsalError
    except ImportError:  # pragma: no cover - isal is a dependency
        return errors
    return (*errors, IsalError)


# What a damaged compressed file raises while it is read (truncation, bad block, CRC).
READ_ERRORS = _read_errors()


def compression_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".gz"):
        return "gzip"
    return ""


def open_binary(path: Path, counter: Counting | None = None) -> io.BufferedIOBase:
    """A decompressed byte stream of `path` (.gz, .zip with one data member, or plain)."""
    raw = counter or Counting(path)
    kind = compression_of(path)
    try:
        if kind == "zip":
            zf = zipfile.ZipFile(raw)
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise DataError(
                    f"{path}: a zip must hold exactly one data file, found {len(members)}"
                )
            return zf.open(members[0])
        if kind == "gzip":
            try:
                from isal.igzip import IGzipFile as GzipFile
            except ImportError:  # pragma: no cover - isal is a dependency
                from gzip import GzipFile
            return GzipFile(fileobj=io.BufferedReader(raw, 1 << 20), mode="rb")
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable zip file (truncated or corrupt: {exc})") from None
    return io.BufferedReader(raw, 1 << 20)


class _Gzip:
    """gzip decompressed by ISA-L (`isal`, about twice zlib's speed) or, without it, by
    Arrow's C++ reader; both release the GIL. `pos` is the compressed bytes consumed."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        self._counter: Counting | None = None
        try:
            from isal import igzip
        except ImportError:  # pragma: no cover - isal is a dependency
            self._raw = pa.OSFile(str(path))
            self._stream = pa.CompressedInputStream(self._raw, "gzip")
        else:
            self._counter = Counting(path)
            self._raw = self._counter
            self._stream = igzip.IGzipFile(fileobj=self._counter, mode="rb")

    @property
    def pos(self) -> int:
        if self._counter is not None:
            return self._counter.pos
        return self.size if self._raw.closed else self._raw.tell()

    def read(self, n: int) -> bytes:
        return self._stream.read(n)

    def __enter__(self) -> _Gzip:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._raw.close()


def open_stream(path: Path) -> tuple[object, object]:
    """(decompressed stream with read(n) and a context manager, progress object with
    `pos` and `size`)."""
    if compression_of(path) == "gzip":
        g = _Gzip(path)
        return g, g
    counter = Counting(path)
    return open_binary(path, counter), counter


def read_error(path: Path, exc: BaseException) -> DataError:
    """A clear message for a file that cannot be read to its end."""
    if isinstance(exc, EOFError) or "end-of-stream" in str(exc) or "truncated" in str(exc).lower():
        return DataError(f"{path}: the file is truncated (compressed stream ends early)")
    if (
        isinstance(exc, (zipfile.BadZipFile, zlib.error))
        or "CRC" in str(exc)
        or type(exc).__name__ == "IsalError"
    ):
        return DataError(f"{path}: corrupt compressed data ({exc})")
    return DataError(f"{path}: cannot be read: {exc}")


def read_header(path: Path, max_bytes: int = 1 << 16) -> list[str]:
    """The first line of a CSV file, split on commas (used to detect the dataset)."""
    try:
        with open_binary(path) as fh:
            first = fh.readline(max_bytes)
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None
    return header_names(first)


def header_names(first: bytes) -> list[str]:
    """Column names of a CSV header line (a UTF-8 byte-order mark is not part of them)."""
    text = first.decode("utf-8", "replace").removeprefix("\ufeff")
    return [c.strip().strip('"') for c in text.strip().split(",")]


@dataclass
class BadRow:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


_REPORT_LOCK = threading.Lock()


class StrictStop(DataError):
    """--strict: the first bad row of a file."""


@dataclass
class FileReport:
    """What importing one file did."""

    path: str
    format: str
    dataset: str = ""
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    samples: list[BadRow] = field(default_factory=list)
    first_ts: int | None = None
    last_ts: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    strict: bool = False

    def bad(
        self, reason: str, line: int | None = None, count: int = 1, counted_as: str | None = None
    ) -> None:
        """Count a rejected row under `counted_as` (default `reason`) and keep a sample."""
        key = counted_as or reason
        with _REPORT_LOCK:  # blocks of one file are parsed on several threads
            self.rejected[key] = self.rejected.get(key, 0) + count
        if self.strict:
            raise StrictStop(
                str(BadRow(self.path, line, reason)) + " (--strict: nothing written from this file)"
            )
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(BadRow(self.path, line, reason))

    def bad_ordinals(self, reason: str, ordinals: np.ndarray, header_lines: int) -> None:
        """Rows given by data-line ordinal (0 = the first line after the header)."""
        n = len(ordinals)
        if not n:
            return
        first = self.line_of(int(ordinals[0]), header_lines)
        self.bad(reason, first)
        if n > 1:
            with _REPORT_LOCK:
                self.rejected[reason] += n - 1
            room = MAX_SAMPLES - len(self.samples)
            for o in ordinals[1 : 1 + max(0, room)]:
                self.samples.append(BadRow(self.path, self.line_of(int(o), header_lines), reason))

    def line_of(self, ordinal: int, header_lines: int) -> int:
        return ordinal + header_lines + 1

    def seen_ts(self, ts: np.ndarray) -> None:
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
            self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)

    def finish(self) -> None:
        """Called once a file is done (kept for formats that hold samples back)."""

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "dataset": self.dataset,
            "written": self.written,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "bad_rows": [str(b) for b in self.samples],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "error": self.error,
            "notes": self.notes,
        }


def source_progress(src: CsvSource | None) -> tuple[int, int]:
    """(bytes read, file size) of the CSV source being imported; (0, 0) before it opens."""
    c = src.counter if src else None
    return (c.pos, c.size) if c else (0, 0)


@dataclass
class Chunk:
    table: pa.Table
    ordinals: np.ndarray  # data-row ordinal (0 = first row after the header) of each row


class CsvSource:
    """Stream a CSV file as typed Arrow chunks with constant memory.

    The decompressed text is cut into blocks of whole lines; up to `IN_FLIGHT` blocks are
    parsed at once on the shared thread pool (the parsers release the GIL) and come back
    in file order. A block whose columns are all typed text-then-int-then-float (Tardis
    book snapshots and quotes) goes through the `csvnb` kernel; any other block, or a line
    the kernel does not handle, through pyarrow. A cell that does not parse as its
    column's type sends that block (only) through a cell-by-cell check that reports the
    exact line. `column_types` fixes the types of named columns (others are inferred);
    `names` gives the column names of a file without a header row.
    """

    def __init__(
        self,
        path: Path,
        report: FileReport,
        column_types: dict[str, pa.DataType],
        names: list[str] | None = None,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self.path = path
        self.report = report
        self.column_types = column_types
        self.names = names
        self.block_bytes = block_bytes
        self.counter: Counting | None = None
        self.header_lines = 0 if names else 1

    def __iter__(self) -> Iterator[Chunk]:
        """Chunks in file order. A reader thread decompresses and cuts blocks; the pool
        parses them; this thread (the caller's) validates and writes meanwhile."""
        futures: queue.Queue = queue.Queue(maxsize=IN_FLIGHT)
        stop = threading.Event()
        reader = threading.Thread(target=self._produce, args=(futures, stop), daemon=True)
        reader.start()
        try:
            while True:
                item = futures.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item.result()
        finally:
            stop.set()
            while True:  # unblock the reader if it waits on a full queue
                try:
                    item = futures.get_nowait()
                except queue.Empty:
                    if not reader.is_alive():
                        break
                    reader.join(0.05)
                    continue
                if isinstance(item, Future):
                    item.cancel()

    def _produce(self, futures: queue.Queue, stop: threading.Event) -> None:
        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    futures.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            stream, self.counter = open_stream(self.path)
            with stream:
                names = self.names
                rest = b""
                if names is None:
                    while b"\n" not in rest:
                        more = stream.read(1 << 16)
                        if not more:
                            break
                        rest += more
                    first, _, rest = rest.partition(b"\n")
                    names = header_names(first)
                if not names or names == [""]:
                    raise DataError(f"{self.path}: empty file (no header row)")
                fast = _fast_layout(names, self.column_types)
                base = 0
                while not stop.is_set():
                    data = stream.read(self.block_bytes)
                    if not data:
                        break
                    data = rest + data
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        rest = data
                        continue
                    block, rest = data[:cut], data[cut:]
                    lines = block.count(b"\n")
                    fut = _pool().submit(self._parse, block, lines, base, names, fast)
                    if not put(fut):
                        return
                    base += lines
                if rest.strip() and not stop.is_set():
                    if not rest.endswith(b"\n"):
                        rest += b"\n"
                    lines = rest.count(b"\n")
                    put(_pool().submit(self._parse, rest, lines, base, names, fast))
            put(None)
        except READ_ERRORS as exc:
            put(read_error(self.path, exc))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            put(exc)

    # ------------------------------------------------------------ one block
    def _parse(
        self, block: bytes, lines: int, base: int, names: list[str], fast: tuple[int, int] | None
    ) -> Chunk:
        if fast is not None:
            got = csvnb.parse_numeric(
                block, fast[0], fast[1], len(names) - fast[0] - fast[1], lines
            )
            if got is not None:
                return self._fast_chunk(got, names, fast, lines, base)
        skipped: list[tuple[int, int, int]] = []  # (line in block, expected, found)

        def on_invalid(row: pv.InvalidRow) -> str:
            skipped.append((row.number or 0, row.expected_columns, row.actual_columns))
            return "skip"

        def read(types: dict[str, pa.DataType]) -> pa.Table:
            return pv.read_csv(
                io.BytesIO(block),
                read_options=pv.ReadOptions(column_names=names, use_threads=False),
                parse_options=pv.ParseOptions(
                    invalid_row_handler=on_invalid, ignore_empty_lines=False
                ),
                convert_options=pv.ConvertOptions(
                    column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=True
                ),
            )

        try:
            table = read(self.column_types)
            as_text = False
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if "conversion error" not in msg and "In CSV column" not in msg:
                raise DataError(
                    f"{self.path}: not a readable CSV file ({msg.splitlines()[0]})"
                ) from None
            skipped.clear()
            try:
                table = read({n: pa.string() for n in self.column_types})
            except pa.ArrowInvalid as exc2:
                if "UTF8" not in str(exc2):
                    raise DataError(
                        f"{self.path}: not a readable CSV file ({str(exc2).splitlines()[0]})"
                    ) from None
                # a cell that is not UTF-8 becomes U+FFFD: that row is then reported as
                # bad (with its line), the others import (no line breaks are added)
                block = block.decode("utf-8", "replace").encode("utf-8")
                skipped.clear()
                table = read({n: pa.string() for n in self.column_types})
            as_text = True
        ordinals = np.arange(base, base + lines)
        for number, expected, found in skipped:
            line = self.header_lines + base + number if number else None
            self.report.bad(
                f"expected {expected} fields, found {found}", line, counted_as="wrong field count"
            )
        if skipped:
            ordinals = np.delete(ordinals, np.array([s[0] for s in skipped], dtype=np.int64) - 1)
        if as_text:
            table, ordinals = self._convert_checked(table, ordinals)
        return Chunk(table, ordinals)

    def _fast_chunk(self, got, names, fast, lines, base) -> Chunk:  # noqa: ANN001
        texts, ints, floats = got
        n_text, n_int = fast
        cols: list[pa.Array] = []
        for i, name in enumerate(names):
            if i < n_text:
                value = texts[i].decode("utf-8", "replace")
                typ = self.column_types[name]
                if pa.types.is_dictionary(typ):
                    cols.append(
                        pa.DictionaryArray.from_arrays(
                            pa.array(np.zeros(lines, np.int32)),
                            pa.array([value or None], pa.string()),
                        )
                    )
                else:
                    cols.append(pa.array([value or None] * lines, pa.string()))
            elif i < n_text + n_int:
                cols.append(pa.array(ints[i - n_text]))
            else:
                cols.append(pa.array(floats[i - n_text - n_int]))
        return Chunk(pa.Table.from_arrays(cols, names=names), np.arange(base, base + lines))

    def _convert_checked(
        self, table: pa.Table, ordinals: np.ndarray
    ) -> tuple[pa.Table, np.ndarray]:
        bad = np.zeros(table.num_rows, dtype=bool)
        cols = {}
        for name in table.column_names:
            col = table.column(name)
            typ = self.column_types.get(name)
            if typ is None or typ == pa.string() or pa.types.is_dictionary(typ):
                cols[name] = col if typ is None or typ == pa.string() else col.cast(typ)
                continue
            pattern = _INT_RE if pa.types.is_integer(typ) else _NUMBER_RE
            if pa.types.is_boolean(typ):
                words = [*TRUE_WORDS, *FALSE_WORDS, ""]
                ok = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), pa.array(words))
            else:
                ok = pc.match_substring_regex(col, pattern)
            ok_np = ok.to_numpy(zero_copy_only=False)
            ok_np = np.where(pc.is_null(col).to_numpy(zero_copy_only=False), True, ok_np)
            new = ~ok_np & ~bad
            if new.any():
                values = col.to_pylist()
                reason = f"column {name!r}: not a valid {typ}"
                for i in np.flatnonzero(new):
                    self.report.bad(
                        f"{reason}: {values[i]!r}",
                        line=self.report.line_of(int(ordinals[i]), self.header_lines),
                        counted_as=reason,
                    )
                bad |= new
                col = pc.if_else(pa.array(ok_np), col, pa.scalar(None, pa.string()))
            if pa.types.is_boolean(typ):
                words = list(TRUE_WORDS)
                cols[name] = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), pa.array(words))
            else:
                cols[name] = pc.cast(pc.utf8_trim_whitespace(col), typ)
        out = pa.table(cols)
        if bad.any():
            out = out.filter(pa.array(~bad))
            ordinals = ordinals[~bad]
        return out, ordinals

    @property
    def progress_bytes(self) -> int:
        return self.counter.pos if self.counter else 0


def _fast_layout(names: list[str], types: dict[str, pa.DataType]) -> tuple[int, int] | None:
    """(text columns, int columns) when the file is text*, int64*, float64+ in that order
    and every column is typed; None otherwise (pyarrow parses it)."""
    kinds = []
    for n in names:
        t = types.get(n)
        if t is None:
            return None
        if pa.types.is_dictionary(t) or pa.types.is_string(t):
            kinds.append(0)
        elif t == pa.int64():
            kinds.append(1)
        elif t == pa.float64():
            kinds.append(2)
        else:
            return None
    if kinds != sorted(kinds) or 2 not in kinds:
        return None
    return kinds.count(0), kinds.count(1)


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(
            max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="import-csv"
        )
    return _POOL
