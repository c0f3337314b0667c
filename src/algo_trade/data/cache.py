"""Memory-mapped data cache: load a (store, kinds, exchange, symbol, range) once, map it everywhere.

`load_market_cached` keeps what `algo_trade.load` returns (a `MarketData`: every column on
one timeline, book levels included) so that a sweep's workers map the very arrays a
`backtest` of the same load would read; `CachedData.market()` gives it back.

An entry is a directory ``<home>/cache/<key>-<version>/`` holding one ``.npy`` file per
numeric column of each kind plus ``meta.json``. ``key`` hashes the query (store URL, kinds,
exchange, symbol, [start, end)); ``version`` hashes ``store.version(kind, exchange, symbol)``
of every kind, so a changed dataset gets a new entry and the stale one is removed.

Concurrency: an entry is built under an exclusive ``flock`` on ``<key>.lock`` (a second
sweep asking for the same data waits, then maps what the first one built), written into a
temporary directory and published with one atomic ``rename``. Readers never lock: a
published entry is immutable, and a process that still maps a removed entry keeps its
pages (POSIX unlink semantics).

Workers (processes, Dask) receive only the entry's path and map the files read-only with
``np.load(mmap_mode="r")``: no per-worker copy, no pickled arrays.

>>> data = load_cached(store, ["bar"], "sim", "BTC-USDT-PERP", "2024-01-01", "2024-02-01", home)  # doctest: +SKIP
>>> data["bar"]["close"][:3]  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from algo_trade.data.market import MarketData
from algo_trade.errors import DataError, StoreError
from algo_trade.store.base import Store, read_table
from algo_trade.timeutil import parse_range_ns

CACHE_DIR = "cache"
MARKET = "market"  # the kind name under which a whole MarketData is kept
_FORMAT = 1


@dataclass
class CachedData:
    """Read-only memory-mapped columns of one cache entry: ``data[kind][column]``."""

    path: Path
    meta: dict
    columns: dict[str, dict[str, np.ndarray]]

    def __getitem__(self, kind: str) -> dict[str, np.ndarray]:
        try:
            return self.columns[kind]
        except KeyError:
            raise DataError(
                f"the cached data has no {kind!r} records (it has {', '.join(self.columns)})"
            ) from None

    @property
    def kinds(self) -> list[str]:
        return list(self.columns)

    def __reduce__(self):  # pickling sends the path only; the receiver maps the files
        return (open_cached, (str(self.path),))

    def market(self) -> MarketData:
        """The entry as `MarketData` (mapped, not copied): a `market` entry as it was saved,
        or bars from a `bar` entry (funding settled per bar in fund_settle_rate/mark)."""
        if MARKET in self.columns:
            cols = dict(self.columns[MARKET])
            m = self.meta.get("market", {})
            ts = cols.pop("ts")
            return MarketData(ts, cols, m.get("mode", "bars"), m.get("exchange", ""),
                              m.get("symbol", ""), tuple(m.get("kinds", ())), m.get("bar_ns"),
                              ts_unit_ns=int(m.get("ts_unit_ns", 1)))  # fmt: skip
        bars = dict(self["bar"])
        ts = bars.pop("ts")
        return MarketData(ts, bars, "bars", kinds=("bar",))


def cache_root(home: Path | str) -> Path:
    return Path(home) / CACHE_DIR


def query_key(
    store_url: str, kinds: Sequence[str], exchange: str, symbol: str, start_ns: int, end_ns: int
) -> str:
    q = json.dumps([store_url, sorted(kinds), exchange, symbol, start_ns, end_ns])
    return hashlib.sha256(q.encode()).hexdigest()[:20]


def _store_url(store: Store) -> str:
    url = getattr(store, "url", None)
    return str(url) if url is not None else repr(store)


def _version(
    store: Store, kinds: Sequence[str], exchange: str, symbol: str, missing_ok: bool = False
) -> str:
    parts = []
    for k in sorted(kinds):
        try:
            v = store.version(k, exchange, symbol)
        except (StoreError, DataError):
            if not missing_ok:
                raise
            v = "none"  # no such dataset (yet): its arrival changes the version
        parts.append(f"{k}={v}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_cached(path: str | Path) -> CachedData:
    """Map a published cache entry read-only (what workers do with the path they are sent)."""
    p = Path(path)
    try:
        meta = json.loads((p / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cache entry {p} is missing or damaged ({exc}); run `algo-trade cache clear`"
        ) from None
    cols: dict[str, dict[str, np.ndarray]] = {}
    for kind, names in meta["columns"].items():
        cols[kind] = {n: np.load(p / kind / f"{n}.npy", mmap_mode="r") for n in names}
    return CachedData(p, meta, cols)


def load_cached(
    store: Store,
    kinds: Sequence[str],
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    home: Path | str,
) -> CachedData:
    """The cache entry for this query, building it from the store if it is missing or stale."""
    s, e = parse_range_ns(start, end)
    kinds = sorted(set(kinds))
    url = _store_url(store)
    key = query_key(url, kinds, exchange, symbol, s, e)
    root = cache_root(home)
    version = _version(store, kinds, exchange, symbol)
    final = root / f"{key}-{version}"
    if (final / "meta.json").is_file():
        return open_cached(final)
    with _lock(root / f"{key}.lock"):
        if not (final / "meta.json").is_file():  # another process may have built it meanwhile
            _build(store, kinds, exchange, symbol, s, e, url, key, version, root, final)
        _remove_stale(root, key, keep=final.name)
    return open_cached(final)


def load_bars_cached(
    store: Store,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    home: Path | str,
    bar: str | None = None,
) -> CachedData:
    """Bars with the funding settled during each bar, as `algo_trade.load` aligns them for
    the engine (so a sweep books the same funding as `backtest`), cached like `load_cached`.

    bar: a bar length ("1m", "5m"): resample stored bars, or build them from books or trades
    when none are stored. The entry's version covers every kind that can feed it.
    """
    return load_market_cached(store, exchange, symbol, start, end, home, ("bar", "funding"), bar)


def load_market_cached(
    store: Store,
    exchange: str,
    symbol: str,
    start: object,
    end: object,
    home: Path | str,
    kinds: Sequence[str] = ("bar", "funding"),
    bar: str | None = None,
) -> CachedData:
    """`algo_trade.load(store, exchange, symbol, start, end, kinds, bar)` kept as a cache
    entry (`CachedData.market()` maps it back): loaded once, mapped by every worker."""
    from algo_trade.data.load import load

    s, e = parse_range_ns(start, end)
    url = _store_url(store)
    kinds = tuple(dict.fromkeys(kinds))
    feeds = sorted(set(kinds) | ({"book", "trade"} if bar else set()))
    key = query_key(f"{url}|market|{','.join(kinds)}|{bar}", feeds, exchange, symbol, s, e)
    root = cache_root(home)
    version = _version(store, feeds, exchange, symbol, missing_ok=True)
    final = root / f"{key}-{version}"
    if (final / "meta.json").is_file():
        return open_cached(final)
    with _lock(root / f"{key}.lock"):
        if not (final / "meta.json").is_file():
            md = load(store, exchange, symbol, s, e, kinds=kinds, bar=bar)
            meta = {"format": _FORMAT, "key": key, "version": version, "store": url, "kinds": list(kinds),
                    "exchange": exchange, "symbol": symbol, "start_ns": s, "end_ns": e, "bar": bar,
                    "created": time.time(), "rows": {MARKET: len(md)}, "columns": {},
                    "market": market_meta(md)}  # fmt: skip
            _publish(root, key, final, meta, {MARKET: {"ts": md.ts, **md.columns}})
        _remove_stale(root, key, keep=final.name)
    return open_cached(final)


def market_meta(md: MarketData) -> dict:
    """What `CachedData.market()` needs besides the arrays."""
    return {"mode": md.mode, "exchange": md.exchange, "symbol": md.symbol, "kinds": list(md.kinds),
            "bar_ns": md.bar_ns, "ts_unit_ns": md.ts_unit_ns}  # fmt: skip


def save_market(md: MarketData, home: Path | str) -> CachedData:
    """Publish in-memory MarketData as a cache entry keyed by its content (for workers in
    other processes or on a Dask cluster, which map it by path)."""
    return save_arrays(
        {MARKET: {"ts": md.ts, **md.columns}}, home, meta={"market": market_meta(md)}
    )


_BAR_COLUMNS = ("open", "high", "low", "close", "volume", "fund_settle_rate", "fund_settle_mark")


def _publish(
    root: Path, key: str, final: Path, meta: dict, columns: dict[str, dict[str, np.ndarray]]
) -> None:
    """Write columns as .npy files into a temporary directory, then rename it into place."""
    tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        for kind, cols in columns.items():
            (tmp / kind).mkdir()
            for name, a in cols.items():
                np.save(tmp / kind / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
            meta["columns"][kind] = list(cols)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(store, kinds, exchange, symbol, s, e, url, key, version, root, final) -> None:
    tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        meta: dict = {
            "format": _FORMAT,
            "key": key,
            "version": version,
            "store": url,
            "kinds": kinds,
            "exchange": exchange,
            "symbol": symbol,
            "start_ns": s,
            "end_ns": e,
            "created": time.time(),
            "rows": {},
            "columns": {},
        }
        for kind in kinds:
            table = read_table(store, kind, exchange, symbol, s, e)
            if table.num_rows == 0:
                raise DataError(f"no {kind} data for {exchange}/{symbol} in the range asked")
            (tmp / kind).mkdir()
            names = []
            for name in table.column_names:
                col = table.column(name)
                if not (
                    pa.types.is_integer(col.type)
                    or pa.types.is_floating(col.type)
                    or pa.types.is_boolean(col.type)
                ):
                    continue  # labels (exchange, symbol) and ids stay in the store
                arr = col.to_numpy()
                if arr.dtype == object:  # integer column with nulls
                    arr = col.cast(pa.float64()).to_numpy()
                np.save(tmp / kind / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
                names.append(name)
            meta["rows"][kind] = table.num_rows
            meta["columns"][kind] = names
            del table
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_stale(root: Path, key: str, keep: str) -> None:
    for d in root.glob(f"{key}-*"):
        if d.name != keep and d.is_dir():
            # rename first so no reader opens a half-deleted entry, then delete
            trash = root / f".del-{d.name}-{uuid.uuid4().hex[:6]}"
            try:
                os.rename(d, trash)
            except OSError:
                continue
            shutil.rmtree(trash, ignore_errors=True)


def save_arrays(
    columns: dict[str, dict[str, np.ndarray]],
    home: Path | str,
    label: str = "memory",
    meta: dict | None = None,
) -> CachedData:
    """Publish in-memory arrays as a cache entry keyed by their content (for remote workers)."""
    h = hashlib.sha256()
    h.update(json.dumps(meta or {}, sort_keys=True, default=str).encode())
    for kind in sorted(columns):
        for name in sorted(columns[kind]):
            a = np.ascontiguousarray(columns[kind][name])
            h.update(f"{kind}/{name}/{a.dtype}/{a.shape}".encode())
            h.update(a.data)
    digest = h.hexdigest()[:20]
    root = cache_root(home)
    final = root / f"mem{digest}-0"
    if (final / "meta.json").is_file():
        return open_cached(final)
    with _lock(root / f"mem{digest}.lock"):
        if not (final / "meta.json").is_file():
            tmp = root / f".tmp-mem{digest}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            meta = {"format": _FORMAT, "key": f"mem{digest}", "version": "0", "store": label, "kinds": sorted(columns),
                    "exchange": "", "symbol": "", "start_ns": None, "end_ns": None, "created": time.time(),
                    "rows": {}, "columns": {}, **(meta or {})}  # fmt: skip
            for kind, cols in columns.items():
                (tmp / kind).mkdir()
                for name, a in cols.items():
                    np.save(tmp / kind / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
                meta["columns"][kind] = list(cols)
                meta["rows"][kind] = len(next(iter(cols.values()))) if cols else 0
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            os.rename(tmp, final)
    return open_cached(final)


def cache_entries(home: Path | str) -> list[dict]:
    """One row per published entry: key, dataset, range, rows, size, age."""
    root = cache_root(home)
    rows = []
    if not root.is_dir():
        return rows
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not d.is_dir() or not (d / "meta.json").is_file():
            continue
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        rows.append(
            {
                "entry": d.name,
                "store": meta.get("store"),
                "kinds": ",".join(meta.get("kinds", [])),
                "exchange": meta.get("exchange"),
                "symbol": meta.get("symbol"),
                "start_ns": meta.get("start_ns"),
                "end_ns": meta.get("end_ns"),
                "rows": sum(meta.get("rows", {}).values()),
                "MB": round(size / 2**20, 2),
                "age_s": round(time.time() - meta.get("created", time.time()), 1),
            }
        )
    return rows


def clear_cache(home: Path | str) -> dict[str, int]:
    """Remove every entry (processes that map one keep their pages until they finish)."""
    root = cache_root(home)
    removed, freed = 0, 0
    if not root.is_dir():
        return {"removed": 0, "bytes": 0}
    for d in list(root.iterdir()):
        if d.is_dir():
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            key = d.name.split("-")[0]
            try:
                with _lock(root / f"{key}.lock"):
                    shutil.rmtree(d, ignore_errors=True)
            except OSError as exc:
                raise StoreError(f"cannot remove cache entry {d}: {exc}") from None
            removed += not d.name.startswith(".")
    for f in root.glob("*.lock"):
        f.unlink(missing_ok=True)
    return {"removed": removed, "bytes": freed}
