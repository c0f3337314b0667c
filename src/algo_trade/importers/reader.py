"""Shared file reading for the importers: discovery, decompression, chunked CSV, bad rows.

- `discover(paths, suffixes)`: files and whole directories (recursively), sorted.
- `open_binary(path)`: ``.gz`` and ``.zip`` (one member) are decompressed as a stream;
  a `Counting` wrapper under it tells how many compressed bytes were consumed (progress).
- `CsvSource`: `pyarrow.csv.open_csv` in blocks (constant memory). Rows with the wrong
  number of fields are skipped by the parser and reported; a value that does not parse
  as its column's type makes the reader restart the file in a checking mode (all columns
  read as text, each numeric cell tested) that reports the exact cell and skips the rows
  already delivered, so one bad cell costs speed only in files that have one.
- `FileReport` gathers what happened to one file: rows written per kind, duplicates,
  rejected rows per reason, up to `MAX_SAMPLES` bad rows with file, line and reason,
  the time range. Line numbers count the header as line 1.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from algo_trade.errors import DataError

BLOCK_BYTES = 8 << 20  # CSV bytes per block: ~8k book rows or ~100k trade rows
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
            import gzip

            return gzip.GzipFile(fileobj=io.BufferedReader(raw, 1 << 20), mode="rb")
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable zip file (truncated or corrupt: {exc})") from None
    return io.BufferedReader(raw, 1 << 20)


def read_error(path: Path, exc: BaseException) -> DataError:
    """A clear message for a file that cannot be read to its end."""
    if isinstance(exc, EOFError) or "end-of-stream" in str(exc) or "truncated" in str(exc).lower():
        return DataError(f"{path}: the file is truncated (compressed stream ends early)")
    if isinstance(exc, zipfile.BadZipFile) or "CRC" in str(exc) or "Bad CRC" in str(exc):
        return DataError(f"{path}: corrupt compressed data ({exc})")
    return DataError(f"{path}: cannot be read: {exc}")


def read_header(path: Path, max_bytes: int = 1 << 16) -> list[str]:
    """The first line of a CSV file, split on commas (used to detect the dataset)."""
    try:
        with open_binary(path) as fh:
            first = fh.readline(max_bytes)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise read_error(path, exc) from None
    return [c.strip().strip('"') for c in first.decode("utf-8", "replace").strip().split(",")]


@dataclass
class BadRow:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


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
    # ordinal samples wait for the line map of rows the parser skipped
    _pending: list[tuple[int, str]] = field(default_factory=list)
    _skipped_texts: list[str] = field(default_factory=list)

    def bad(self, reason: str, line: int | None = None, count: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        if self.strict:
            raise StrictStop(
                str(BadRow(self.path, line, reason)) + " (--strict: nothing written from this file)"
            )
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(BadRow(self.path, line, reason))

    def bad_ordinals(self, reason: str, ordinals: np.ndarray, header_lines: int) -> None:
        """Rows given by data-row ordinal; their lines are fixed once skipped rows are known."""
        n = len(ordinals)
        if not n:
            return
        if self.strict:
            self.bad(reason, self.line_of(int(ordinals[0]), header_lines))
        self.rejected[reason] = self.rejected.get(reason, 0) + n
        room = MAX_SAMPLES - len(self.samples) - len(self._pending)
        for o in ordinals[: max(0, room)]:
            self._pending.append((int(o) + header_lines + 1, reason))

    def skipped_row(self, text: str, reason: str) -> None:
        self._skipped_texts.append(text)
        self.bad(reason)

    def line_of(self, ordinal: int, header_lines: int) -> int:
        return ordinal + header_lines + 1

    def seen_ts(self, ts: np.ndarray) -> None:
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
            self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)

    def finish(self) -> None:
        """Turn pending ordinal samples into lines (rows skipped by the parser shift them)."""
        if not self._pending:
            return
        shift = len(self._skipped_texts)
        for line, reason in self._pending:
            # Exact when no row was skipped by the parser; otherwise a lower bound.
            self.samples.append(
                BadRow(self.path, line, reason if not shift else f"{reason} (line approximate)")
            )
        self._pending.clear()

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


@dataclass
class Chunk:
    table: pa.Table
    ordinals: np.ndarray  # data-row ordinal (0 = first row after the header) of each row


class CsvSource:
    """Stream a CSV file as typed Arrow chunks with constant memory.

    `column_types` fixes the types of named columns (others are inferred); `names` gives
    the column names of a file without a header row.
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

    def _open(self, as_text: bool, skip: int = 0) -> pv.CSVStreamingReader:
        self.counter = Counting(self.path)
        stream = open_binary(self.path, self.counter)
        types = {n: pa.string() for n in self.column_types} if as_text else dict(self.column_types)
        seen_texts = 0

        def on_invalid(row: pv.InvalidRow) -> str:
            nonlocal seen_texts
            seen_texts += 1
            if not as_text or seen_texts > self._skipped_first_pass:
                self.report.skipped_row(
                    row.text[:120],
                    f"expected {row.expected_columns} fields, found {row.actual_columns}: {row.text[:60]!r}",
                )
            return "skip"

        return pv.open_csv(
            stream,
            read_options=pv.ReadOptions(
                block_size=self.block_bytes,
                column_names=self.names,
                use_threads=True,
            ),
            parse_options=pv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pv.ConvertOptions(
                column_types=types,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    _skipped_first_pass = 0

    def __iter__(self) -> Iterator[Chunk]:
        done = 0
        try:
            try:
                reader = self._open(as_text=False)
                for batch in reader:
                    n = batch.num_rows
                    yield Chunk(pa.Table.from_batches([batch]), np.arange(done, done + n))
                    done += n
                return
            except pa.ArrowInvalid as exc:
                if "conversion error" not in str(exc) and "In CSV column" not in str(exc):
                    raise
            # A cell did not parse: go over the file again in text mode, cell by cell.
            self._skipped_first_pass = len(self.report._skipped_texts)
            reader = self._open(as_text=True)
            pos = 0
            for batch in reader:
                n = batch.num_rows
                ordinals = np.arange(pos, pos + n)
                pos += n
                keep_from = max(0, done - int(ordinals[0]))
                if keep_from >= n:
                    continue
                table = pa.Table.from_batches([batch]).slice(keep_from)
                ordinals = ordinals[keep_from:]
                table, ordinals = self._convert_checked(table, ordinals)
                if table.num_rows:
                    yield Chunk(table, ordinals)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise read_error(self.path, exc) from None
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if "CSV parse error" in msg or "Empty CSV file" in msg:
                raise DataError(
                    f"{self.path}: not a readable CSV file ({msg.splitlines()[0]})"
                ) from None
            raise read_error(self.path, exc) from None

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
                ok = pc.is_in(pc.utf8_lower(col), pa.array(["true", "false", "1", "0", ""]))
            else:
                ok = pc.match_substring_regex(col, pattern)
            ok_np = ok.to_numpy(zero_copy_only=False)
            ok_np = np.where(pc.is_null(col).to_numpy(zero_copy_only=False), True, ok_np)
            new = ~ok_np & ~bad
            if new.any():
                values = col.to_pylist()
                for i in np.flatnonzero(new)[:MAX_SAMPLES]:
                    self.report.bad(
                        f"column {name!r}: {values[i]!r} is not a valid {typ}",
                        line=self.report.line_of(int(ordinals[i]), self.header_lines),
                    )
                extra = int(new.sum()) - min(int(new.sum()), MAX_SAMPLES)
                if extra:
                    self.report.rejected[f"column {name!r}: not a valid {typ}"] = (
                        self.report.rejected.get(f"column {name!r}: not a valid {typ}", 0) + extra
                    )
                bad |= new
                col = pc.if_else(pa.array(ok_np), col, pa.scalar(None, pa.string()))
            if pa.types.is_boolean(typ):
                cols[name] = pc.is_in(pc.utf8_lower(col), pa.array(["true", "1"]))
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
