"""The import driver shared by every format: filter, validate, report, write.

A format module yields ``(kind, table, ordinals)`` per chunk of a file (ordinals: data
row numbers for line-level reports, or line numbers directly when `lines=True`). The
driver keeps rows in [--start, --end), checks --symbol, validates (every rejected row is
reported with file, line and reason), keeps the last book row of equal timestamps, and
writes through `Store.write` (the stores skip keys already stored: re-imports add
nothing).

--strict reads a file twice: a checking pass that writes nothing and stops at the first
bad row, then the writing pass. Memory stays constant and nothing from a bad file
reaches the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algo_trade.errors import ConfigError, DataError, StoreError
from algo_trade.importers.reader import MAX_SAMPLES, FileReport, StrictStop
from algo_trade.schema import validate
from algo_trade.store.base import Store

Progress = Callable[[int, int], None]  # (done, total) bytes of the current file
WRITE_BATCH_BYTES = 16 << 20  # rows gathered per store write (about 20k 25-level book rows)


@dataclass(frozen=True)
class ImportOptions:
    """Options of `algo-trade import` (see docs/data.md)."""

    exchange: str | None = None
    symbol: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    strict: bool = False
    # Grid of sampled book rows. None: the format's default -- Tardis incremental_book_L2
    # 1 s; raw captures none (they store every update as depth, and books are rebuilt
    # from it on load at any interval: load(..., book_from="depth")).
    book_interval_ns: int | None = None
    depth: int | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    ts_unit: str = "auto"
    tz: str = "UTC"


@dataclass
class Piece:
    kind: str
    table: pa.Table
    ordinals: np.ndarray | None = None  # data-row ordinal per row, for reports
    lines: bool = False  # ordinals are already line numbers
    header_lines: int = 1


class Format(Protocol):
    name: str
    suffixes: tuple[str, ...]

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]: ...

    def progress(self) -> tuple[int, int]: ...


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Per-kind totals over the files' counts."""
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class Summary:
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    def rows(self) -> dict[str, int]:
        return _summed(f.written for f in self.files)

    def rejected(self) -> dict[str, int]:
        return _summed(f.rejected for f in self.files)

    def to_dict(self) -> dict:
        firsts = [f.first_ts for f in self.files if f.first_ts is not None]
        lasts = [f.last_ts for f in self.files if f.last_ts is not None]
        return {
            "files": [f.to_dict() for f in self.files],
            "written": self.rows(),
            "duplicates": sum(f.duplicates for f in self.files),
            "rejected": self.rejected(),
            "first_ts": min(firsts) if firsts else None,
            "last_ts": max(lasts) if lasts else None,
            "seconds": round(self.seconds, 3),
        }


def keep_symbol(opts: ImportOptions, path: Path, table: pa.Table) -> None:
    """--symbol: every row must be that symbol (a clear error naming the file otherwise)."""
    if not opts.symbol or table.num_rows == 0:
        return
    col = table.column("symbol")
    names = set(
        pc.unique(col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col).to_pylist()
    )
    if names - {opts.symbol}:
        raise DataError(
            f"{path}: holds symbol(s) {', '.join(sorted(str(n) for n in names))}, "
            f"but --symbol says {opts.symbol}"
        )


class _Writer:
    """Per-file write state: the held-back tail of book rows (last row per ts wins)."""

    def __init__(self, store: Store | None, report: FileReport) -> None:
        self.store = store
        self.report = report
        self.tail: dict[str, pa.Table] = {}
        self.batch: dict[str, list[pa.Table]] = {}
        self.batch_bytes: dict[str, int] = {}
        self.pending: tuple[str, Future] | None = None  # the store write in flight
        self.skip: set[str] = set()  # kinds the store cannot hold

    def add(self, kind: str, table: pa.Table) -> None:
        """Gather chunks into batches of about WRITE_BATCH_BYTES: fewer, larger files and
        fewer key look-ups in the store; memory stays bounded by the batch size."""
        if table.num_rows == 0 or kind in self.skip:
            return
        self.batch.setdefault(kind, []).append(table)
        self.batch_bytes[kind] = self.batch_bytes.get(kind, 0) + table.nbytes
        if self.batch_bytes[kind] >= WRITE_BATCH_BYTES:
            self._flush_batch(kind)

    def _flush_batch(self, kind: str) -> None:
        parts = self.batch.pop(kind, [])
        self.batch_bytes.pop(kind, None)
        if parts:
            schema = parts[0].schema
            self.put(
                kind, pa.concat_tables([p if p.schema == schema else p.cast(schema) for p in parts])
            )

    def put(self, kind: str, table: pa.Table, flush: bool = False) -> None:
        if kind == "book":
            held = self.tail.pop("book", None)
            if held is not None:
                table = (
                    pa.concat_tables([held, table.cast(held.schema)]) if table.num_rows else held
                )
            ts = table.column("ts").to_numpy()
            if not flush and len(ts):
                cut = (
                    int(np.searchsorted(ts, ts[-1], side="left"))
                    if np.all(ts[1:] >= ts[:-1])
                    else len(ts) - 1
                )
                self.tail["book"] = table.slice(cut)
                table = table.slice(0, cut)
                ts = ts[:cut]
            if len(ts) > 1:
                later_same = np.zeros(len(ts), dtype=bool)
                later_same[:-1] = ts[:-1] == ts[1:]
                if later_same.any():
                    table = table.filter(pa.array(~later_same))
        if table.num_rows == 0:
            return
        self.report.seen_ts(table.column("ts").to_numpy())
        if self.store is None:
            self.report.written[kind] = self.report.written.get(kind, 0)
            return
        # The store encodes and writes on its own thread while this one reads and checks
        # the next batch; one write in flight keeps memory at two batches.
        self.wait()
        if kind in self.skip:
            return
        self.pending = (kind, _write_pool().submit(self.store.write, kind, table))

    def wait(self) -> None:
        """Finish the write in flight and count what it did."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        kind, fut = pending
        try:
            res = fut.result()
        except StoreError as exc:
            if kind != "depth":
                raise
            # A store without a depth table yet (PostgreSQL before its migration): the
            # other kinds are still imported, and the report says what was left out.
            self.skip.add(kind)
            self.report.notes.append(f"depth rows not stored: {exc}")
            return
        self.report.written[kind] = self.report.written.get(kind, 0) + res.written
        self.report.duplicates += res.duplicates
        for k, v in res.rejected.items():  # rules the store has beyond ours (none today)
            self.report.rejected[k] = self.report.rejected.get(k, 0) + v

    def close(self) -> None:
        for kind in list(self.batch):
            self._flush_batch(kind)
        if "book" in self.tail:
            self.put("book", self.tail["book"].slice(0, 0), flush=True)
        self.wait()


_WRITE_POOL: ThreadPoolExecutor | None = None


def _write_pool() -> ThreadPoolExecutor:
    global _WRITE_POOL
    if _WRITE_POOL is None:
        _WRITE_POOL = ThreadPoolExecutor(1, thread_name_prefix="import-write")
    return _WRITE_POOL


def _one_pass(
    fmt: Format,
    path: Path,
    opts: ImportOptions,
    report: FileReport,
    store: Store | None,
    progress: Progress | None,
    live_depth: set[tuple[str, str]] | None = None,
) -> None:
    writer = _Writer(store, report)
    live_depth = set() if live_depth is None else live_depth
    try:
        for piece in fmt.pieces(path, opts, report):
            table = piece.table
            ords = piece.ordinals
            if table.num_rows and (opts.start_ns is not None or opts.end_ns is not None):
                ts = table.column("ts").to_numpy(zero_copy_only=False)
                keep = np.ones(len(ts), dtype=bool)
                if opts.start_ns is not None:
                    keep &= ts >= opts.start_ns
                if opts.end_ns is not None:
                    keep &= ts < opts.end_ns
                if not keep.all():
                    table = table.filter(pa.array(keep))
                    ords = ords[keep] if ords is not None else None
            if table.num_rows == 0:
                continue
            if not getattr(fmt, "checks_symbol", False):
                keep_symbol(opts, path, table)
            if piece.kind == "depth" and ords is None and store is not None:
                # Rows a parser built (no lines to report): the store's own validation
                # (the same rules, counted in the report) is enough; checking twice
                # costs as much as writing.
                writer.add("depth", table)
                if progress is not None:
                    progress(*fmt.progress())
                continue
            if piece.kind == "depth":
                # A stream whose snapshot came in an earlier piece (or file) of this
                # import continues: its diffs are not "before any snapshot".
                checked = validate("depth", table, live=lambda e, s, _t: (e, s) in live_depth)
                _note_live(checked.table, live_depth)
            else:
                checked = validate(piece.kind, table)
            for reason, pos in checked.rows.items():
                if ords is None:
                    report.bad(reason, None, len(pos))
                elif piece.lines:
                    for p in pos[:MAX_SAMPLES]:
                        report.bad(reason, int(ords[p]))
                    if len(pos) > MAX_SAMPLES:
                        report.rejected[reason] += len(pos) - MAX_SAMPLES
                else:
                    report.bad_ordinals(reason, ords[pos], piece.header_lines)
            writer.add(piece.kind, checked.table)
            if progress is not None:
                progress(*fmt.progress())
    except (DataError, ConfigError):
        # The rows read before the failure are valid: store them (a later import of a
        # good copy adds only the rest), then report the file.
        if store is not None:
            try:
                writer.close()
            except (DataError, ConfigError):
                pass
        raise
    writer.close()
    report.finish()


def _note_live(table: pa.Table, live: set[tuple[str, str]]) -> None:
    """Streams with an accepted snapshot row in `table` (depth): later pieces continue them."""
    if table.num_rows == 0:
        return
    snap = table.filter(pc.not_equal(pc.bit_wise_and(table.column("flags"), 1), 0))
    if snap.num_rows:
        pairs = snap.group_by(["exchange", "symbol"]).aggregate([]).to_pylist()
        live.update((p["exchange"], p["symbol"]) for p in pairs)


def import_files(
    store: Store,
    fmt: Format,
    paths: list[Path],
    opts: ImportOptions,
    on_file: Callable[[Path, int], Progress | None] | None = None,
) -> Summary:
    """Import every file in `paths` (already discovered) with `fmt` into `store`.

    Files that cannot be read are reported (`FileReport.error`) and skipped; with
    --strict the first bad row stops the whole import with a DataError naming it.
    """
    summary = Summary()
    t0 = time.perf_counter()
    live_depth: set[tuple[str, str]] = set()
    for path in paths:
        report = FileReport(str(path), fmt.name)
        summary.files.append(report)
        progress = on_file(path, path.stat().st_size) if on_file else None
        try:
            if opts.strict:
                check = FileReport(str(path), fmt.name, strict=True)
                _one_pass(_checking(fmt), path, opts, check, None, progress)
            _one_pass(fmt, path, opts, report, store, progress, live_depth)
        except StrictStop as exc:
            report.error = str(exc)
            summary.seconds = time.perf_counter() - t0
            raise
        except (DataError, ConfigError) as exc:
            report.error = str(exc)
            if opts.strict:
                raise
    summary.seconds = time.perf_counter() - t0
    return summary


def _checking(fmt: Format) -> Format:
    """The format for the checking pass (formats with state across files copy it)."""
    make = getattr(fmt, "checking", None)
    return make() if make is not None else fmt
