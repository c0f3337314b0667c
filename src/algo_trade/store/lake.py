"""The embedded default store: Parquet files partitioned by kind/exchange/symbol/day.

Layout under the data home::

    lake/<kind>/<exchange>/<symbol>/<YYYY-MM-DD>/<min_ts>-<max_ts>-<id>.parquet

- Each file holds one day of one dataset, sorted by ts; its name carries its ts range,
  so a time-bounded read opens only the files it needs, and row-group statistics on
  ts narrow it further. Footers are cached per process (files never change once named).
- Prices and sizes are stored as exact scaled integers (see `codec`), ts as delta-packed
  int64; exchange and symbol live in the path, not the file.
- Files appear atomically: written under a hidden temporary name, fsynced, then renamed.
  Readers never lock; writers and compaction take a per-dataset file lock, so several
  processes can write the same dataset safely.
- Writes are idempotent: rows whose key (`schema.KEYS`) is already stored are skipped.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_trade.data import depth_nb
from algo_trade.errors import DamagedFileError, DataError, StoreError
from algo_trade.fileio import atomic_path, fsync_path, write_text_atomic
from algo_trade.schema import (
    KEYS,
    KINDS,
    OPTIONAL,
    book_depth,
    check_exchange,
    check_kind,
    check_symbol,
    label_array,
    schema_for,
)
from algo_trade.store import codec
from algo_trade.store.base import DatasetStats, WriteResult, checked_for_write
from algo_trade.store.order import in_total_order, tie_keys
from algo_trade.timeutil import NS_PER_DAY, day_of_ns, parse_range_ns

ROW_GROUP_ROWS = 8192  # small groups: a bounded query decodes little; scans lose nothing measurable
BATCH_ROWS = 65_536  # rows per batch yielded by merged (overlapping-file) reads
SCAN_ROW_GROUPS = 8  # row groups decoded per batch of a scan (~44 MB of 20-level books decoded)
PARALLEL_DECODE_ROWS = 32_768  # decode columns on all cores above this many rows
PARALLEL_MIN_ROWS = 100_000  # below this, one file: threads would cost more than they save
_WRITE_THREADS = max(1, min(8, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_WRITE_THREADS, thread_name_prefix="lake-write")
    return _POOL


_META_KEY = b"algo_trade"
# <min_ts>-<max_ts>-<id>.parquet; ts before 1970 are negative ("-000...123--000...45-id").
_NAME_RE = re.compile(r"(-?\d+)-(-?\d+)-[0-9a-f]+\.parquet")
_LEVEL_RE = re.compile(r"^(bid|ask)_(px|sz)_\d+$")


def _scale_group(name: str) -> str:
    """Columns that share one decimal scale in a file."""
    m = _LEVEL_RE.match(name)
    if m:
        return m.group(2)
    if name in ("open", "high", "low", "close"):
        return "ohlc"
    if name in ("mark_px", "index_px"):
        return "px"
    return name


@dataclass(frozen=True)
class _FileInfo:
    path: str
    min_ts: int
    max_ts: int
    rg_min: np.ndarray  # int64 per row group
    rg_max: np.ndarray
    rows: int
    scales: dict[str, int]
    columns: tuple[str, ...]
    metadata: pq.FileMetaData  # cached footer: opening a file skips re-parsing it
    key_order: bool = False  # rows sharing a ts are in key order (files written since it is so)

    def open(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.path, metadata=self.metadata)


_DAMAGE = (pa.ArrowException, OSError, ValueError, KeyError, IndexError, TypeError)


def damaged_file_error(path: str, exc: BaseException) -> DamagedFileError:
    """One line naming a lake file that cannot be read and how to set it aside."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    home = path.split(f"{os.sep}lake{os.sep}")[0]
    return DamagedFileError(
        f"damaged lake file {path} ({why}); set it aside with `algo-trade db check --home {home}"
        " --quarantine`, then re-import or re-collect that day"
    )


def _read_file_info(path: str) -> _FileInfo:
    try:
        return _parse_file_info(path)
    except FileNotFoundError:
        raise
    except _DAMAGE as exc:
        raise damaged_file_error(path, exc) from None


def _parse_file_info(path: str) -> _FileInfo:
    md = pq.read_metadata(path)
    meta = json.loads((md.metadata or {}).get(_META_KEY, b"{}"))
    ts_idx = md.schema.names.index("ts")
    n = md.num_row_groups
    rg_min = np.empty(n, dtype=np.int64)
    rg_max = np.empty(n, dtype=np.int64)
    for i in range(n):
        st = md.row_group(i).column(ts_idx).statistics
        rg_min[i], rg_max[i] = st.min, st.max
    m = _NAME_RE.fullmatch(os.path.basename(path))
    assert m is not None
    return _FileInfo(
        path,
        int(m.group(1)),
        int(m.group(2)),
        rg_min,
        rg_max,
        md.num_rows,
        meta.get("scales", {}),
        tuple(md.schema.names),
        md,
        bool(meta.get("key_order")),
    )


FOOTER_CACHE_BYTES = 64 << 20  # parsed footers kept per process (serialized size)
_CacheInfo = collections.namedtuple("_CacheInfo", "currsize nbytes")


class _FooterCache:
    """`_FileInfo` per path, least recently used evicted first, bounded by the footers'
    bytes rather than their count: a 20-level book file's footer is ~150 KB, so a count
    bound lets a long-running process that scans many files hold hundreds of MB. Files
    are immutable once written (compaction writes new names), so a path never goes stale."""

    def __init__(self, read, max_bytes: int) -> None:
        self.__wrapped__ = read
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[str, tuple[_FileInfo, int]] = collections.OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def __call__(self, path: str) -> _FileInfo:
        with self._lock:
            hit = self._items.get(path)
            if hit is not None:
                self._items.move_to_end(path)
                return hit[0]
        info = self.__wrapped__(path)  # outside the lock: reads of other files go on
        size = info.metadata.serialized_size
        with self._lock:
            if path not in self._items:
                self._items[path] = (info, size)
                self._nbytes += size
                while self._nbytes > self.max_bytes and len(self._items) > 1:
                    _, (_, old) = self._items.popitem(last=False)
                    self._nbytes -= old
        return info

    def cache_info(self) -> _CacheInfo:
        with self._lock:
            return _CacheInfo(len(self._items), self._nbytes)

    def cache_clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._nbytes = 0


_file_info = _FooterCache(_read_file_info, FOOTER_CACHE_BYTES)


class LakeStore:
    """Parquet lake in `home`/lake. Thread-safe for reads; writers lock per dataset.

    >>> store = LakeStore(Path("algo-trade-data"))  # doctest: +SKIP
    >>> for batch in store.scan("book", "sim", "BTC-USDT-PERP", "2024-01-01", "2024-01-02"):
    ...     print(batch.num_rows)  # doctest: +SKIP
    """

    def __init__(self, home: Path | str, fsync: bool = True) -> None:
        self.home = Path(home)
        try:
            os.fsencode(self.home).decode("utf-8")
        except UnicodeDecodeError:
            raise StoreError(
                f"the data home {str(self.home)!r} is not a UTF-8 path; choose another with"
                " --home or ALGO_TRADE_HOME"
            ) from None
        self.root = self.home / "lake"
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not self.root.is_dir():
                raise StoreError(
                    f"cannot create the data home {self.home}: {exc.strerror}; "
                    "choose another with --home or ALGO_TRADE_HOME"
                ) from None
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(
                f"the data home {self.home} is not readable; choose another with --home or ALGO_TRADE_HOME"
            )
        # A read-only lake (a snapshot, a shared archive) is read as usual; writing and
        # compacting it say so. The mount flag counts too: root passes os.access on it.
        self.read_only = not os.access(self.root, os.W_OK | os.X_OK) or _read_only_mount(self.root)

    def __repr__(self) -> str:
        return f"LakeStore({str(self.home)!r})"

    @property
    def url(self) -> str:
        return str(self.home)

    def close(self) -> None:
        pass

    def warm_up(self) -> None:
        """Pay the first write's one-time costs now, writing nothing: loading the compiled
        codec kernels (~0.5 s, more on a busy machine) and the Parquet writer. A writer
        with a latency budget (the live collector) calls this before data arrives;
        otherwise the first write carries it."""
        k, arrays = codec.encode_group([np.array([1.5, np.nan])])
        codec.decode_column(arrays[0], k)
        table = pa.table({"ts": pa.array([0, 1], pa.int64()), "x": arrays[0]})
        pq.write_table(
            table,
            pa.BufferOutputStream(),
            compression="zstd",
            use_dictionary=False,
            column_encoding={"ts": "DELTA_BINARY_PACKED", "x": "DELTA_BINARY_PACKED"},
        )

    # ------------------------------------------------------------------ paths
    def _dataset_dir(self, kind: str, exchange: str, symbol: str) -> Path:
        check_kind(kind)
        check_exchange(exchange)
        check_symbol(symbol)
        return self.root / kind / exchange / symbol

    def _existing_dataset(self, kind: str, exchange: str, symbol: str) -> Path:
        ds = self._dataset_dir(kind, exchange, symbol)
        if not ds.is_dir():
            known = [f"{e}/{s}" for k, e, s in self.symbols(kind)]
            hint = (
                f"; stored {kind} datasets: {', '.join(known[:10])}"
                if known
                else f"; no {kind} data is stored yet"
            )
            raise StoreError(f"no {kind} data for {exchange}/{symbol} in {self.home}{hint}")
        return ds

    @staticmethod
    def _days(ds: Path) -> list[str]:
        try:
            return sorted(d for d in os.listdir(ds) if len(d) == 10 and d[4] == "-")
        except FileNotFoundError:
            return []

    @staticmethod
    def _files(day_dir: Path) -> list[tuple[int, int, str]]:
        """The day's data files, as readers must see them: while a compaction manifest says
        its merged file is in place, the files it replaces are left out (they may linger
        after a crash or while older readers finish; they are never counted twice)."""
        out = []
        try:
            names = os.listdir(day_dir)
        except FileNotFoundError:
            return out
        hidden = _superseded(day_dir, names) if _MANIFEST in names else set()
        for name in names:
            m = _NAME_RE.fullmatch(name)
            if m and name not in hidden:
                out.append((int(m.group(1)), int(m.group(2)), str(day_dir / name)))
        out.sort()
        return out

    @contextmanager
    def _reading(self, day_dir: Path) -> Iterator[None]:
        """A shared lock on the day's readers file while its files are read: compaction
        unlinks the files it replaced only when no reader holds it (readers never wait)."""
        try:
            fh = open(day_dir / _READERS, "rb")  # noqa: SIM115 - closed below
        except OSError:  # none yet (no compaction can have run) or a read-only lake
            yield
            return
        try:
            fcntl.flock(fh, fcntl.LOCK_SH)
            yield
        finally:
            fh.close()  # releases the lock

    @contextmanager
    def _locked(self, day_dir: Path) -> Iterator[None]:
        """Exclusive lock on one day partition (writers and compaction; readers never lock)."""
        if self.read_only:
            raise StoreError(
                f"the data home {self.home} is read-only: it can be read, not written or"
                " compacted; copy it elsewhere (or choose another --home) to change it"
            )
        day_dir.mkdir(parents=True, exist_ok=True)
        if not (day_dir / _READERS).exists():
            (day_dir / _READERS).touch()
        with open(day_dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ write
    def write(self, kind: str, table: pa.Table) -> WriteResult:
        """Validate, split by exchange/symbol/day, skip stored keys, write files atomically."""
        live = self._depth_live if kind == "depth" else None
        t, result = checked_for_write(kind, table, live=live)
        if t.num_rows == 0:
            return result
        ex = t.column("exchange").chunk(0)
        sym = t.column("symbol").chunk(0)
        ex_idx = ex.indices.to_numpy(zero_copy_only=False)
        sym_idx = sym.indices.to_numpy(zero_copy_only=False)
        ts = t.column("ts").to_numpy()
        day = ts // NS_PER_DAY
        single = len(ex.dictionary) == 1 and len(sym.dictionary) == 1
        if not (single and np.all(ts[1:] >= ts[:-1])):
            order = np.lexsort((ts, day, sym_idx, ex_idx))
            t = t.take(pa.array(order))
            ex_idx, sym_idx, ts, day = ex_idx[order], sym_idx[order], ts[order], day[order]
        cut = (
            np.flatnonzero((np.diff(ex_idx) != 0) | (np.diff(sym_idx) != 0) | (np.diff(day) != 0))
            + 1
        )
        bounds = np.concatenate(([0], cut, [len(ts)]))
        ex_names = ex.dictionary.to_pylist()
        sym_names = sym.dictionary.to_pylist()
        groups = [
            (ex_names[ex_idx[a]], sym_names[sym_idx[a]], t.slice(int(a), int(b - a)))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        if len(groups) > 1 and t.num_rows >= PARALLEL_MIN_ROWS:
            # One partition per task: each encodes and writes its own file on its own core.
            done = _pool().map(
                lambda g: self._write_day(kind, g[0], g[1], g[2], parallel=False), groups
            )
        else:
            done = (
                self._write_day(kind, ex_name, sym_name, part) for ex_name, sym_name, part in groups
            )
        for r in done:
            result.add(r)
        return result

    def _write_day(
        self, kind: str, exchange: str, symbol: str, part: pa.Table, parallel: bool = True
    ) -> WriteResult:
        ds = self._dataset_dir(kind, exchange, symbol)
        ts = part.column("ts").to_numpy()
        day_dir = ds / day_of_ns(int(ts[0]))
        with self._locked(day_dir):
            self._check_dataset_meta(ds, kind, part.schema)
            n0 = part.num_rows
            old = [f for f in self._files(day_dir) if f[0] <= ts[-1] and f[1] >= ts[0]]
            old_keys = self._read_keys(kind, [f[2] for f in old], int(ts[0]), int(ts[-1]))
            dup = _duplicate_mask(kind, part, old_keys)
            if dup.any():
                part = part.filter(pa.array(~dup))
            part = in_total_order(kind, part)  # same-ts rows in key order: reads keep it
            if part.num_rows:
                if parallel:
                    self._write_files(kind, day_dir, part)
                else:
                    self._write_file(kind, day_dir, part)
        return WriteResult(written=part.num_rows, duplicates=n0 - part.num_rows)

    def _depth_live(self, exchange: str, symbol: str, ts: int) -> bool:
        """True when a depth row at or before `ts` is stored: a batch starting with diffs
        then continues a stored stream (its snapshot came in an earlier write)."""
        try:
            ds = self._dataset_dir("depth", exchange, symbol)
        except DataError:
            return False
        day = day_of_ns(ts)
        for d in reversed(self._days(ds)):
            if d < day:
                if self._files(ds / d):
                    return True
            elif d == day and any(f[0] <= ts for f in self._files(ds / d)):
                return True
        return False

    def _check_dataset_meta(self, ds: Path, kind: str, schema: pa.Schema) -> None:
        if kind != "book":
            return
        depth = book_depth(schema)
        meta_path = ds / "dataset.json"
        if meta_path.exists():
            stored = json.loads(meta_path.read_text()).get("depth")
            if stored != depth:
                raise DataError(
                    f"{ds.relative_to(self.root)} stores books with {stored} levels, this table has {depth}; "
                    "write it under another exchange name or resample it to the same depth"
                )
            return
        write_text_atomic(meta_path, json.dumps({"kind": kind, "depth": depth}), fsync=self.fsync)

    def _write_files(self, kind: str, day_dir: Path, part: pa.Table) -> None:
        """Large batches are cut into one file per core, encoded and written in parallel
        (the encoder and Parquet writer release the GIL)."""
        n = part.num_rows
        k = min(_WRITE_THREADS, n // PARALLEL_MIN_ROWS)
        if k < 2:
            self._write_file(kind, day_dir, part)
            return
        step = -(-n // k)
        step = -(-step // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
        chunks = [part.slice(a, step) for a in range(0, n, step)]
        list(_pool().map(lambda c: self._write_file(kind, day_dir, c), chunks))

    def _write_file(
        self, kind: str, day_dir: Path, part: pa.Table, file_name: str | None = None
    ) -> str:
        ts = part.column("ts")
        arrays: dict[str, pa.Array] = {"ts": ts.combine_chunks()}
        scales: dict[str, int] = {}
        value_cols = [n for n in part.column_names if n not in ("ts", "exchange", "symbol")]
        groups: dict[str, list[str]] = {}
        for name in value_cols:
            if pa.types.is_float64(part.schema.field(name).type):
                groups.setdefault(_scale_group(name), []).append(name)
        encoded: dict[str, pa.Array] = {}
        for names in groups.values():
            got = codec.encode_group([part.column(n).to_numpy() for n in names])
            if got is not None:
                k, arrs = got
                for n, arr in zip(names, arrs, strict=True):
                    encoded[n] = arr
                    scales[n] = k
        for name in value_cols:
            arrays[name] = encoded[name] if name in encoded else part.column(name).combine_chunks()
        table = pa.table(arrays)
        delta = [
            n for n, a in arrays.items() if pa.types.is_integer(a.type) and a.type.bit_width == 64
        ]
        floats = [n for n, a in arrays.items() if pa.types.is_float64(a.type)]
        encodings = {n: "DELTA_BINARY_PACKED" for n in delta}
        encodings.update({n: "BYTE_STREAM_SPLIT" for n in floats})
        # Delta-packed columns stay uncompressed (decode speed), except depth's: the rows of
        # one message share ts, ts_local and seq, runs of zero deltas that zstd shrinks
        # ~20x (measured: 9.6 -> 4.8 B/event on the Binance captures).
        compression = {n: ("none" if n in delta and kind != "depth" else "zstd") for n in arrays}
        meta = {"kind": kind, "scales": scales, "format": 1, "key_order": True}
        if kind == "book":
            meta["depth"] = book_depth(part.schema)
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        tsn = arrays["ts"].to_numpy()
        name = file_name or _file_name(int(tsn[0]), int(tsn[-1]))
        with atomic_path(day_dir / name, fsync=self.fsync, prefix=f".tmp-{os.getpid()}-") as tmp:
            pq.write_table(
                table,
                tmp,
                row_group_size=ROW_GROUP_ROWS,
                compression=compression,
                use_dictionary=[n for n in arrays if n not in delta and n not in floats],
                column_encoding=encodings,
                write_statistics=["ts"],
            )
        return str(day_dir / name)

    def _read_keys(self, kind: str, paths: list[str], lo: int, hi: int) -> pa.Table | None:
        if not paths:
            return None
        cols = list(KEYS[kind])
        # cache=False: a file read here for its keys is rarely read again by this process,
        # and a cached footer is held for good (a 20-level book's ~150 KB, 4096 of them):
        # a collector whose writes overlap stored files grew by every file it wrote.
        parts = [
            _read_file(
                p, cols, lo, hi + 1, kind=kind, exchange="", symbol="", labels=False, cache=False
            )
            for p in paths
        ]
        parts = [t for t in parts if t.num_rows]
        return pa.concat_tables(parts) if parts else None

    # ------------------------------------------------------------------ read
    def scan(
        self,
        kind: str,
        exchange: str,
        symbol: str,
        start: object,
        end: object,
        columns: list[str] | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Stream records with start <= ts < end in ts order, one row group at a time."""
        s, e = parse_range_ns(start, end)
        if limit is not None and limit < 0:
            raise DataError(f"limit must be >= 0, got {limit}")
        ds = self._existing_dataset(kind, exchange, symbol)
        cols = self._columns(kind, ds, columns)
        return self._scan(kind, exchange, symbol, ds, s, e, cols, limit, descending)

    def _columns(self, kind: str, ds: Path, columns: list[str] | None) -> list[str]:
        if kind == "book":
            meta = ds / "dataset.json"
            depth = json.loads(meta.read_text())["depth"] if meta.exists() else 20
            names = schema_for(kind, depth).names
        else:
            names = schema_for(kind).names
        if columns is None:
            return names
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise DataError(
                f"unknown {kind} columns {', '.join(unknown)}; valid: {', '.join(names[:12])} ..."
            )
        return list(columns)

    def _scan(self, kind, exchange, symbol, ds, s, e, cols, limit, descending):
        remaining = limit
        if remaining == 0:
            return
        first_day, last_day = day_of_ns(s), day_of_ns(e - 1)
        days = [d for d in self._days(ds) if first_day <= d <= last_day]
        if descending:
            days.reverse()
        for day in days:
            with self._reading(ds / day):
                files = [f for f in self._files(ds / day) if f[0] < e and f[1] >= s]
                for cluster in _clusters(files, descending):
                    for batch in _read_cluster(
                        cluster, cols, s, e, kind, exchange, symbol, descending, remaining
                    ):
                        if remaining is not None:
                            if batch.num_rows >= remaining:
                                yield batch.slice(0, remaining)
                                return
                            remaining -= batch.num_rows
                        yield batch

    def latest(self, kind: str, exchange: str, symbol: str, n: int) -> pa.Table:
        """The newest `n` records, oldest first."""
        ds = self._existing_dataset(kind, exchange, symbol)
        cols = self._columns(kind, ds, None)
        files = self._files(ds / self._days(ds)[-1]) if self._days(ds) else []
        if not files or n <= 0:
            return _empty(kind, cols)
        newest = max(f[1] for f in files)
        batches = list(self._scan(kind, exchange, symbol, ds, 0, newest + 1, cols, n, True))
        table = pa.Table.from_batches(batches)
        return table.take(pa.array(np.arange(table.num_rows - 1, -1, -1)))

    def symbols(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        kinds = [check_kind(kind)] if kind else list(KINDS)
        out = []
        for k in kinds:
            kd = self.root / k
            if not kd.is_dir():
                continue
            for ex in sorted(os.listdir(kd)):
                if ex.startswith("."):
                    continue
                for sym in sorted(os.listdir(kd / ex)):
                    if not sym.startswith(".") and self._days(kd / ex / sym):
                        out.append((k, ex, sym))
        return out

    def _dataset_files(self, ds: Path) -> list[tuple[int, int, str]]:
        return [f for day in self._days(ds) for f in self._files(ds / day)]

    def stats(self) -> list[DatasetStats]:
        out = []
        for kind, exchange, symbol in self.symbols():
            ds = self._dataset_dir(kind, exchange, symbol)
            files = self._dataset_files(ds)
            if not files:
                continue
            rows = sum(_file_info(f[2]).rows for f in files)
            size = sum(os.path.getsize(f[2]) for f in files)
            extra: dict[str, object] = {"days": len(self._days(ds))}
            if kind == "book":
                extra["depth"] = json.loads((ds / "dataset.json").read_text())["depth"]
            out.append(
                DatasetStats(
                    kind,
                    exchange,
                    symbol,
                    rows,
                    min(f[0] for f in files),
                    max(f[1] for f in files),
                    size,
                    len(files),
                    extra,
                )
            )
        return out

    def version(self, kind: str, exchange: str, symbol: str) -> str:
        """Changes whenever a file of the dataset is added or removed (files are immutable)."""
        ds = self._existing_dataset(kind, exchange, symbol)
        names = [os.path.basename(f[2]) for f in self._dataset_files(ds)]
        import hashlib

        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ check
    def check(self, deep: bool = False, quarantine: bool = False) -> list[dict[str, str]]:
        """Every file in the lake that reads cannot use: damaged data files (unreadable
        footer, no ts, wrong kind; with `deep` every row is decoded too) and stray files
        (left-over temporaries, names that are not lake data). With `quarantine`, each is
        moved under <home>/quarantine/ (same relative path) so reads go on without it."""
        found: list[dict[str, str]] = []
        for kind, exchange, symbol in self.symbols():
            ds = self._dataset_dir(kind, exchange, symbol)
            cols = self._columns(kind, ds, None)
            for day in self._days(ds):
                day_dir = ds / day
                for name in sorted(os.listdir(day_dir)):
                    problem = _check_entry(day_dir, name, kind, cols, deep)
                    if problem:
                        found.append({"path": str(day_dir / name), "problem": problem})
        if quarantine and found:
            if self.read_only:
                raise StoreError(f"the data home {self.home} is read-only: nothing can be moved")
            for item in found:
                src = Path(item["path"])
                dst = self.home / "quarantine" / src.relative_to(self.root)
                with self._locked(src.parent):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                item["moved_to"] = str(dst)
        return found

    # ------------------------------------------------------------------ compaction
    def compact(self) -> dict[str, int]:
        """Merge each day's files into one, dropping duplicate keys. Safe while others read."""
        report = {
            "datasets": 0,
            "days": 0,
            "files_before": 0,
            "files_after": 0,
            "duplicates_dropped": 0,
            "temp_removed": 0,
        }
        for kind, exchange, symbol in self.symbols():
            ds = self._dataset_dir(kind, exchange, symbol)
            report["datasets"] += 1
            for day in self._days(ds):
                with self._locked(ds / day):
                    report["temp_removed"] += _remove_stale_temps(ds / day)
                    if not _finish_compaction(ds / day, self.fsync):
                        continue  # an earlier compaction's sources still have readers
                    files = self._files(ds / day)
                    if len(files) < 2:
                        continue
                    cols = self._columns(kind, ds, None)
                    table = pa.concat_tables(
                        [
                            _read_file(f[2], cols, f[0], f[1] + 1, kind, exchange, symbol)
                            for f in files
                        ]
                    )
                    n = table.num_rows
                    table = _sort_dedup(kind, table)
                    # The manifest first, then the merged file: from the moment the merged
                    # file has its name, readers skip the sources (no double count, even
                    # after a kill -9); the sources go once no reader holds the day.
                    ts = table.column("ts")
                    merged = _file_name(ts[0].as_py(), ts[-1].as_py())
                    sources = [os.path.basename(f[2]) for f in files]
                    write_text_atomic(
                        ds / day / _MANIFEST,
                        json.dumps({"merged": merged, "sources": sources}),
                        fsync=self.fsync,
                    )
                    self._write_file(kind, ds / day, table, file_name=merged)
                    _finish_compaction(ds / day, self.fsync)
                    report["days"] += 1
                    report["files_before"] += len(files)
                    report["files_after"] += 1
                    report["duplicates_dropped"] += n - table.num_rows
        return report


# ---------------------------------------------------------------------- helpers
def _empty(kind: str, cols: list[str]) -> pa.Table:
    depth = sum(1 for c in cols if c.startswith("bid_px_")) or 1
    schema = schema_for(kind, depth)
    return pa.schema([schema.field(c) for c in cols]).empty_table()


_MANIFEST = ".compact.json"  # {"merged": name, "sources": [names]} of a compaction in flight
_READERS = ".readers"  # readers hold a shared flock on it while they read the day
READER_WAIT_S = 10.0  # compaction waits this long for readers before leaving sources behind


def _file_name(min_ts: int, max_ts: int) -> str:
    return f"{min_ts:019d}-{max_ts:019d}-{uuid.uuid4().hex[:12]}.parquet"


def _superseded(day_dir: Path, names: list[str]) -> set[str]:
    """Sources of a compaction whose merged file is in place (to be ignored)."""
    try:
        manifest = json.loads((day_dir / _MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    if manifest.get("merged") in names:
        return set(manifest.get("sources", ()))
    return set()


def _finish_compaction(day_dir: Path, fsync: bool) -> bool:
    """Complete (or roll back) a compaction of `day_dir`, under the writers' lock: with the
    merged file in place, unlink its sources once no reader holds the day, then drop the
    manifest; without it (killed before it was named), drop the manifest."""
    path = day_dir / _MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("merged") and (day_dir / manifest["merged"]).exists():
        with open(day_dir / _READERS, "a") as fh:
            deadline = time.monotonic() + READER_WAIT_S
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False  # readers still busy: the next compaction finishes
                    time.sleep(0.01)
            for name in manifest.get("sources", ()):
                (day_dir / name).unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)
    path.unlink(missing_ok=True)
    if fsync:
        fsync_path(day_dir)
    return True


_KNOWN = {".lock", _READERS, _MANIFEST, "dataset.json"}


def _check_entry(day_dir: Path, name: str, kind: str, cols: list[str], deep: bool) -> str:
    """Why a day directory entry is damaged or stray ('' when it is fine)."""
    path = str(day_dir / name)
    if name in _KNOWN:
        return ""
    if name.startswith(".tmp-"):
        pid = name.split("-")[1]
        if pid.isdigit() and _alive(int(pid)):
            return ""  # a write in progress
        return "stray temporary file of a writer that died"
    if not _NAME_RE.fullmatch(name):
        return "stray file: not lake data (reads ignore it)"
    try:
        info = _file_info.__wrapped__(path)
        meta = info.metadata.metadata or {}
        stored = json.loads(meta.get(_META_KEY, b"{}")).get("kind")
        if stored not in (None, kind):
            return f"holds {stored} records in a {kind} dataset"
        optional = ("exchange", "symbol", *OPTIONAL.get(kind, ()))
        missing = [c for c in cols if c not in info.columns and c not in optional]
        if missing:
            return f"wrong schema: no column {missing[0]}"
        if deep:
            _read_file(path, cols, info.min_ts, info.max_ts + 1, kind, "x", "X-Y", cache=False)
    except StoreError as exc:
        return str(exc).split("(", 1)[1].split(");", 1)[0] if "(" in str(exc) else str(exc)
    except FileNotFoundError:
        return ""  # compacted away meanwhile
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _remove_stale_temps(day_dir: Path) -> int:
    """Delete temporary files of writers that died mid-write (their pid is gone)."""
    removed = 0
    try:
        names = os.listdir(day_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(".tmp-"):
            try:
                pid = int(name.split("-")[1])
            except ValueError:
                continue  # not one of ours: `db check` lists it for the user to remove
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                (day_dir / name).unlink(missing_ok=True)
                removed += 1
            except PermissionError:
                pass
    return removed


def _clusters(
    files: list[tuple[int, int, str]], descending: bool
) -> list[list[tuple[int, int, str]]]:
    """Group files whose ts ranges overlap; non-overlapping files stream one by one."""
    out: list[list[tuple[int, int, str]]] = []
    hi = None
    for f in files:
        if hi is not None and f[0] <= hi:
            out[-1].append(f)
            hi = max(hi, f[1])
        else:
            out.append([f])
            hi = f[1]
    if descending:
        out.reverse()
    return out


def _decode(table: pa.Table, info: _FileInfo, cols: list[str], kind, exchange, symbol, labels=True):
    n = table.num_rows
    scaled = [c for c in cols if c in info.scales]
    if n >= PARALLEL_DECODE_ROWS and len(scaled) > 1:
        decoded = dict(
            zip(
                scaled,
                _pool().map(lambda c: codec.decode_column(table.column(c), info.scales[c]), scaled),
                strict=True,
            )
        )
    else:
        decoded = {c: codec.decode_column(table.column(c), info.scales[c]) for c in scaled}
    arrays = []
    present = set(table.column_names)
    for c in cols:
        if c in ("exchange", "symbol"):
            if labels:
                arrays.append(label_array(exchange if c == "exchange" else symbol, n))
        elif c in decoded:
            arrays.append(pa.array(decoded[c]))
        elif c not in present:
            # A column added to the kind after this file was written (e.g. ts_local):
            # null, so old lakes read without a rewrite.
            arrays.append(pa.nulls(n, schema_for(kind).field(c).type))
        else:
            arrays.append(table.column(c).combine_chunks())
    names = [c for c in cols if labels or c not in ("exchange", "symbol")]
    return pa.Table.from_arrays(arrays, names=names)


def _read_file(path, cols, s, e, kind, exchange, symbol, labels=True, cache=True) -> pa.Table:
    """All rows of one file with s <= ts < e, decoded (cache=False: its footer is not kept)."""
    try:
        return _read_file_unchecked(path, cols, s, e, kind, exchange, symbol, labels, cache)
    except (StoreError, FileNotFoundError):
        raise
    except _DAMAGE as exc:
        raise damaged_file_error(path, exc) from None


def _read_file_unchecked(path, cols, s, e, kind, exchange, symbol, labels, cache) -> pa.Table:
    info = _file_info(path) if cache else _file_info.__wrapped__(path)
    rgs = np.flatnonzero((info.rg_max >= s) & (info.rg_min < e)).tolist()
    file_cols = [c for c in cols if c in info.columns]
    if "ts" not in file_cols:
        file_cols = ["ts"] + file_cols
    if not rgs:
        t = info.open().schema_arrow.empty_table().select(file_cols)
    else:
        t = info.open().read_row_groups(rgs, columns=file_cols)
    ts = t.column("ts").to_numpy()
    lo, hi = np.searchsorted(ts, s), np.searchsorted(ts, e)
    t = t.slice(lo, hi - lo)
    return _decode(t, info, cols, kind, exchange, symbol, labels)


def _read_cluster(
    cluster, cols, s, e, kind, exchange, symbol, descending, limit=None
) -> Iterator[pa.RecordBatch]:
    if len(cluster) == 1:
        path = cluster[0][2]
        info = _file_info(path)
        rgs = np.flatnonzero((info.rg_max >= s) & (info.rg_min < e)).tolist()
        if descending:
            rgs.reverse()
        file_cols = [c for c in cols if c in info.columns]
        # Files written before reads had one total order keep same-ts rows in write order:
        # their key columns are read too, to order those rows here.
        fix = [] if info.key_order else [c for c in tie_keys(kind) if c not in file_cols]
        fix_ties = not info.key_order and bool(tie_keys(kind))
        file_cols += fix
        need_ts = "ts" not in file_cols
        pf = info.open()
        # Small limits read one row group; scans read several at once so pyarrow
        # decodes columns on all cores.
        step = 1 if (limit is not None and limit <= ROW_GROUP_ROWS) else SCAN_ROW_GROUPS
        if fix_ties:
            step = max(len(rgs), 1)  # a run of equal ts may cross row groups: order them at once
        for i in range(0, len(rgs), step):
            group = sorted(rgs[i : i + step])
            try:
                t = pf.read_row_groups(
                    group, columns=(["ts"] + file_cols) if need_ts else file_cols
                )
                ts = t.column("ts").to_numpy()
                lo, hi = np.searchsorted(ts, s), np.searchsorted(ts, e)
                if hi <= lo:
                    continue
                t = t.slice(lo, hi - lo)
                if fix_ties:
                    t = in_total_order(kind, t)
                out = _decode(t, info, cols, kind, exchange, symbol)
            except _DAMAGE as exc:
                raise damaged_file_error(path, exc) from None
            if descending:
                out = out.take(pa.array(np.arange(out.num_rows - 1, -1, -1)))
            yield from out.to_batches()
        return
    # Overlapping files (before compaction): merge them, dropping duplicate keys.
    key_cols = [c for c in KEYS[kind] if c not in cols]
    parts = [_read_file(f[2], cols + key_cols, s, e, kind, exchange, symbol) for f in cluster]
    table = _sort_dedup(kind, pa.concat_tables(parts)).select(cols)
    if descending:
        table = table.take(pa.array(np.arange(table.num_rows - 1, -1, -1)))
    yield from table.to_batches(max_chunksize=BATCH_ROWS)


def _key_matrix(kind: str, table: pa.Table, extra_ids: pa.Array | None = None) -> np.ndarray:
    """Key columns as an int64 matrix (n, k); floats compared by their bits, ids by code."""
    cols = []
    for name in KEYS[kind]:
        col = table.column(name)
        if name == "trade_id":
            ids = col.combine_chunks()
            if extra_ids is not None:
                ids = pa.concat_arrays([extra_ids, ids])
            codes = (
                pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False).astype(np.int64)
            )
            cols.append(codes[len(extra_ids) :] if extra_ids is not None else codes)
        elif pa.types.is_floating(col.type):
            cols.append(np.ascontiguousarray(col.to_numpy()).view(np.int64))
        else:
            cols.append(col.to_numpy(zero_copy_only=False).astype(np.int64))
    return np.column_stack(cols) if len(cols) > 1 else cols[0][:, None]


def _dup_rows(keys: np.ndarray, n_old: int) -> np.ndarray:
    """keys: (n_old + n_new, k). True for rows equal to an earlier row (old rows come first)."""
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    pos = np.arange(n)
    order = np.lexsort((pos,) + tuple(keys[:, j] for j in range(keys.shape[1] - 1, -1, -1)))
    sk = keys[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = np.all(sk[1:] == sk[:-1], axis=1)
    dup = np.empty(n, dtype=bool)
    dup[order] = same
    return dup


def _duplicate_mask(kind: str, part: pa.Table, old_keys: pa.Table | None) -> np.ndarray:
    """True for rows of `part` already stored or repeated earlier in `part`."""
    if kind == "trade":
        old_ids = (
            old_keys.column("trade_id").combine_chunks()
            if old_keys is not None
            else pa.array([], pa.string())
        )
        all_ids = pa.concat_arrays([old_ids, part.column("trade_id").combine_chunks()])
        codes = (
            pc.dictionary_encode(all_ids).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        )
        return _dup_rows(codes[:, None], len(old_ids))[len(old_ids) :]
    if kind == "depth" and (old_keys is None or old_keys.num_rows == 0):
        # Validated depth tables are in read order: a duplicate sits next to its twin.
        return depth_nb.adjacent_dups_nb(*_depth_key_arrays(part))
    new = _key_matrix(kind, part)
    if old_keys is None or old_keys.num_rows == 0:
        if KEYS[kind] == ("ts",):  # sorted by ts: a duplicate sits next to its twin
            ts = new[:, 0]
            dup = np.zeros(len(ts), dtype=bool)
            dup[1:] = ts[1:] == ts[:-1]
            return dup
        return _dup_rows(new, 0)
    old = _key_matrix(kind, old_keys)
    return _dup_rows(np.vstack([old, new]), len(old))[len(old) :]


def _depth_key_arrays(table: pa.Table) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(table.column(c).to_numpy())
        for c in ("ts", "seq", "flags", "side", "price")
    )


def _sort_dedup(kind: str, table: pa.Table) -> pa.Table:
    if kind == "depth":
        ts, seq, flags, side, price = _depth_key_arrays(table)
        order = depth_nb.depth_order(ts, seq, flags, side, price)
        table = table.take(pa.array(order))
        dup = depth_nb.adjacent_dups_nb(*_depth_key_arrays(table))
        return table.filter(pa.array(~dup)) if dup.any() else table
    table = in_total_order(kind, table)
    dup = _duplicate_mask(kind, table, None)
    return table.filter(pa.array(~dup)) if dup.any() else table
