"""A sweep's data: the same inputs `backtest` takes, made shareable with its workers.

`sweep` accepts what `algo_trade.backtest` accepts (a bars DataFrame with the one column
convention of `MarketData.from_bars`, or `MarketData` from `algo_trade.load`), plus a data
cache entry (`CachedData`, or its directory). Workers in this process read the arrays as
they are; workers in other processes or on a Dask cluster get a cache entry's path and
map its files (no per-worker copy, nothing pickled but the path).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from algo_trade.data.cache import CachedData, open_cached, save_market
from algo_trade.data.market import MarketData
from algo_trade.errors import ConfigError, DataError


def as_market(data: object) -> MarketData:
    """MarketData from a sweep's `data` argument (the engine's `as_market` for frames)."""
    from algo_trade.engine.api import as_market as engine_market

    if isinstance(data, CachedData):
        return data.market()
    if isinstance(data, (str, Path)) and (Path(data) / "meta.json").is_file():
        return open_cached(data).market()
    if isinstance(data, pa.Table):
        data = data.to_pandas()
    elif isinstance(data, Mapping):
        data = pd.DataFrame({k: np.asarray(v) for k, v in data.items()})
    if not isinstance(data, (pd.DataFrame, MarketData)):
        raise DataError(
            "sweep data must be what backtest takes (a bars DataFrame or algo_trade.load(...) "
            f"output) or a data cache entry, got {type(data).__name__}"
        )
    return engine_market(data)


def identity(data: object, md: MarketData) -> str:
    """What indicator-cache keys and sweep specs name the data by: a cache entry's key and
    version, else a hash of the arrays (never an object's id(), which a later array may
    reuse once this one is freed)."""
    if isinstance(data, CachedData):
        return f"{data.meta['key']}-{data.meta['version']}"
    h = hashlib.sha256()
    h.update(f"{md.mode}/{md.ts_unit_ns}".encode())
    for name, a in (("ts", md.ts), *sorted(md.columns.items())):
        a = np.ascontiguousarray(a)
        h.update(f"{name}/{a.dtype}/{a.shape}".encode())
        h.update(a.data)
    return "mem" + h.hexdigest()[:20]


def shareable(data: object, md: MarketData, executor: str, home: str | Path | None) -> object:
    """What batches receive: the data itself in this process, else a cache entry (pickled
    as its path)."""
    if isinstance(data, CachedData):
        return data
    if executor == "local":
        return md
    if home is None:
        raise ConfigError(
            f"the {executor} executor needs home= (a directory its workers share) for in-memory data"
        )
    return save_market(md, home)


def market_of(ref: object) -> MarketData:
    """The MarketData a batch runs on (a worker maps a cache entry's files)."""
    if isinstance(ref, MarketData):
        return ref
    if isinstance(ref, CachedData):
        return ref.market()
    raise DataError(f"a sweep batch got data of type {type(ref).__name__}")  # pragma: no cover


def time_range(md: MarketData, start: object, end: object) -> tuple[int, int]:
    """Event indices [lo, hi) of [start, end); events before lo only warm indicators up."""
    n = len(md)
    if start is None and end is None:
        return 0, n
    from algo_trade.timeutil import parse_time_ns

    ts = md.ts_ns
    lo = int(np.searchsorted(ts, parse_time_ns(start))) if start is not None else 0  # type: ignore[arg-type]
    hi = int(np.searchsorted(ts, parse_time_ns(end))) if end is not None else n  # type: ignore[arg-type]
    if hi - lo < 3:
        raise DataError("fewer than 3 events in the sweep's time range")
    return lo, hi
