"""`sweep`: run a strategy over a parameter grid on data loaded once.

>>> import algo_trade
>>> res = algo_trade.sweep(bars, "sma_cross", grid={"fast": "5:50:5", "slow": "20:200:20"},
...                        where="fast < slow", metric="sharpe")  # doctest: +SKIP
>>> res.best  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from algo_trade.errors import ConfigError, DataError
from algo_trade.fileio import atomic_path, write_text_atomic
from algo_trade.sweep.cache import CachedData, open_cached, save_arrays
from algo_trade.sweep.executors import EXECUTORS, run_batches
from algo_trade.sweep.grid import Grid
from algo_trade.sweep.indicators import DEFAULT_MAX_BYTES, process_cache
from algo_trade.sweep.kernels import INT_STATS, N_STATS, STAT_NAMES, run_cross_nb, sweep_cross_nb

NS_PER_YEAR = 365 * 86_400 * 10**9  # as the engine annualizes (crypto trades every day)
LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "max_drawdown_days", "volatility", "fees", "turnover", "liquidations"}
)
DEFAULT_BLOCKS = 16  # CSCV blocks: C(16, 8) = 12,870 splits


@dataclass(frozen=True)
class SweepStrategy:
    """A strategy the sweep kernels run natively: two indicators of one kind, crossed
    (the engine's `sma_cross`/`ema_cross`; its parameter specs are the engine's)."""

    name: str
    indicator: str
    params: tuple[str, ...] = ("fast", "slow", "short")
    required: tuple[str, ...] = ("fast", "slow")


STRATEGIES: dict[str, SweepStrategy] = {
    "sma_cross": SweepStrategy("sma_cross", "sma"),
    "ema_cross": SweepStrategy("ema_cross", "ema"),
}

# The engine's settings that bars backtests use; the others (latency, book overflow,
# rebalancing) belong to modes the sweep kernel does not run.
SWEEP_SETTINGS = ("init_cash", "fee_taker_bps", "fee_maker_bps", "fill_at", "slippage_bps", "slippage_range",
                  "leverage", "maintenance_margin", "liquidation_fee_bps")  # fmt: skip


def get_strategy(name: str) -> SweepStrategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}: sweeps support {', '.join(STRATEGIES)}"
        ) from None


def sweep_settings(settings: Mapping[str, object]) -> dict[str, object]:
    """The engine's `Settings` checks (types, ranges), restricted to what bars sweeps use."""
    from algo_trade.engine.api import Settings

    other = [k for k in settings if k not in SWEEP_SETTINGS]
    if other:
        raise ConfigError(
            f"unknown or unsupported setting {other[0]!r} for a sweep: it takes {', '.join(SWEEP_SETTINGS)}"
        )
    cfg = Settings.build(**settings)
    return {k: getattr(cfg, k) for k in SWEEP_SETTINGS}


def _check_params(strategy: str, combos: pd.DataFrame) -> None:
    """Vectorized form of the engine strategy's own parameter checks (types, ranges, fast < slow)."""
    from algo_trade.strategies import get as engine_strategy

    specs = engine_strategy(strategy).params
    for p in ("fast", "slow"):
        v = combos[p].to_numpy()
        spec = specs[p]
        if v.dtype == bool or not np.issubdtype(v.dtype, np.number) or (v != np.round(v)).any():
            raise ConfigError(
                f"parameter {p} of {strategy} must be a whole number of bars ({spec.describe()})"
            )
        if (v < spec.min).any() or (v > spec.max).any():
            bad = v[(v < spec.min) | (v > spec.max)][0]
            raise ConfigError(
                f"parameter {p} of {strategy} is {bad}, out of range: {spec.describe()}"
            )
        combos[p] = v.astype(np.int64)
    s = combos["short"].to_numpy()
    if s.dtype != bool:
        raise ConfigError(f"parameter short of {strategy} must be true or false, got {s[0]!r}")
    bad = int((combos["fast"] >= combos["slow"]).sum())
    if bad:
        raise ConfigError(
            f"{strategy} needs fast < slow, and {bad} of the grid's combinations have fast >= slow: "
            'add --where "fast < slow" (where="fast < slow")'
        )


def years_of(ts: np.ndarray, lo: int, hi: int) -> float:
    """The engine's annualization span of bars [lo, hi): (last - first) * n / (n - 1), in years."""
    n = hi - lo
    if n < 2:
        return 0.0
    return float(ts[hi - 1] - ts[lo]) * n / (n - 1) / NS_PER_YEAR


# ----------------------------------------------------------------------------- data
# what a sweep reads of bars: prices, and the funding settled during each bar when known
BAR_COLUMNS = ("open", "high", "low", "close", "volume", "fund_settle_rate", "fund_settle_mark")


def as_bars(data: object) -> dict[str, np.ndarray]:
    """Bar columns (ts, open, high, low, close[, volume, funding]) as NumPy arrays, without
    copying memory maps. data: a `CachedData` entry, `MarketData` from `algo_trade.load`, a
    DataFrame (``ts`` column or a DatetimeIndex), an Arrow table or a dict of arrays."""
    if isinstance(data, CachedData):
        return dict(data["bar"])
    if isinstance(data, (str, Path)) and (Path(data) / "meta.json").is_file():
        return dict(open_cached(data)["bar"])
    cols: dict[str, np.ndarray]
    from algo_trade.data.market import MarketData

    if isinstance(data, MarketData):
        if data.mode != "bars":
            raise ConfigError(
                "sweeps run on bars: load with kinds including 'bar' (or bar='1m' to build them)"
            )
        cols = {"ts": np.asarray(data.ts, dtype=np.int64),
                **{c: data.columns[c] for c in BAR_COLUMNS if c in data.columns}}  # fmt: skip
    elif isinstance(data, pa.Table):
        cols = {
            c: data.column(c).to_numpy() for c in data.column_names if c in ("ts", *BAR_COLUMNS)
        }
    elif isinstance(data, pd.DataFrame):
        df = data
        cols = {c: df[c].to_numpy() for c in BAR_COLUMNS if c in df.columns}
        if "ts" in df.columns:
            cols["ts"] = _ts_ns(df["ts"])
        elif isinstance(df.index, pd.DatetimeIndex):
            cols["ts"] = _ts_ns(df.index)
    elif isinstance(data, Mapping):
        cols = {k: np.asarray(v) for k, v in data.items()}
    else:
        raise DataError(
            f"sweep data must be bars (DataFrame, Arrow table, dict of arrays or cached data), got {type(data).__name__}"
        )
    for c in ("ts", "open", "high", "low", "close"):
        if c not in cols:
            raise DataError(
                f"sweep data has no {c!r} column (bars need ts, open, high, low, close)"
            )
    if len(cols["close"]) < 3:
        raise DataError("sweep data has fewer than 3 bars")
    return cols


def _ts_ns(ts: object) -> np.ndarray:
    """int64 ns since the epoch from an int column or datetimes of any unit (pandas 3 may use us)."""
    if isinstance(ts, pd.Series) and isinstance(
        ts.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType
    ):
        ts = pd.DatetimeIndex(ts)
    if isinstance(ts, pd.DatetimeIndex):
        if ts.tz is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.as_unit("ns").asi8
    return np.asarray(ts, dtype=np.int64)


def _check_bars(bars: dict[str, np.ndarray], lo: int, hi: int) -> None:
    """Refuse what the engine refuses (it stops at the first bad bar): prices that are not
    positive finite numbers, timestamps that do not increase. One vectorized pass."""
    ts = np.asarray(bars["ts"][lo:hi], dtype=np.int64)
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if bad.size:
        raise DataError(
            f"bar timestamps must increase: bar {lo + bad[0] + 1} is not after the one before"
        )
    for c in ("open", "high", "low", "close"):
        x = np.asarray(bars[c][lo:hi])
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~(x > 0) | ~np.isfinite(x))
        if bad.size:
            raise DataError(
                f"bar {lo + bad[0]} has {c} = {x[bad[0]]}: prices must be positive numbers"
            )


def _data_identity(data: object, bars: dict[str, np.ndarray]) -> str:
    """What indicator-cache keys and sweep specs name the data by: never an object's id(),
    which a later array may reuse once this one is freed."""
    if isinstance(data, CachedData):
        return f"{data.meta['key']}-{data.meta['version']}"
    h = hashlib.sha256()
    for c in ("ts", "open", "high", "low", "close", "fund_settle_rate", "fund_settle_mark"):
        if c in bars:
            a = np.ascontiguousarray(bars[c])
            h.update(c.encode())
            h.update(a.data)
    return "mem" + h.hexdigest()[:20]


# ----------------------------------------------------------------------------- batches
def run_batch(
    data_ref: object,
    data_id: str,
    strategy: str,
    params: dict[str, np.ndarray],
    settings: dict,
    lo: int,
    hi: int,
    n_blocks: int,
    ind_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, np.ndarray]:
    """Run one batch of combinations (in whichever process or worker holds it)."""
    from numba.typed import List

    bars = as_bars(data_ref)
    spec = get_strategy(strategy)
    fast = np.asarray(params["fast"], dtype=np.int64)
    slow = np.asarray(params["slow"], dtype=np.int64)
    short = np.asarray(params["short"], dtype=np.bool_)
    windows = np.unique(np.concatenate([fast, slow]))
    cache = process_cache(ind_bytes)
    close = _f64(bars["close"])
    arrays = [cache.get(data_id, spec.indicator, "close", close, int(w)) for w in windows]
    inds = List(arrays)
    fi = np.searchsorted(windows, fast)
    si = np.searchsorted(windows, slow)
    ts = np.asarray(bars["ts"], dtype=np.int64)
    stats, s1, s2 = sweep_cross_nb(
        ts, _f64(bars["open"]), _f64(bars["high"]), _f64(bars["low"]), close, *_funding(bars), inds, fi, si,
        short, int(lo), int(hi), *_kernel_settings(settings), years_of(ts, lo, hi), int(n_blocks),
    )  # fmt: skip
    out = {name: stats[:, i] for i, name in enumerate(STAT_NAMES)}
    out["_s1"] = s1
    out["_s2"] = s2
    return out


def _funding(bars: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Funding settled per bar and its mark (NaN: none), or empty arrays without funding."""
    if "fund_settle_rate" not in bars:
        return np.empty(0), np.empty(0)
    rate = _f64(bars["fund_settle_rate"])
    mark = (
        _f64(bars["fund_settle_mark"]) if "fund_settle_mark" in bars else np.full(len(rate), np.nan)
    )
    return rate, mark


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)  # no copy for float64 columns and their memory maps


def _kernel_settings(st: Mapping[str, object]) -> tuple:
    return (st["fill_at"] == "close", float(st["init_cash"]), float(st["fee_taker_bps"]),  # type: ignore[arg-type]
            float(st["slippage_bps"]), float(st["slippage_range"]), float(st["leverage"]),  # type: ignore[arg-type]
            float(st["maintenance_margin"]), float(st["liquidation_fee_bps"]))  # type: ignore[arg-type]  # fmt: skip


def single_returns(bars: dict[str, np.ndarray], strategy: str, params: Mapping[str, object], settings: dict,
                   lo: int, hi: int, data_id: str | None = None) -> tuple[dict[str, float], np.ndarray]:  # fmt: skip
    """Stats and per-bar returns of one combination over bars [lo, hi)."""
    spec = get_strategy(strategy)
    close = _f64(bars["close"])
    cache = process_cache()
    data_id = data_id or _data_identity(None, bars)
    f = cache.get(data_id, spec.indicator, "close", close, int(params["fast"]))
    s = cache.get(data_id, spec.indicator, "close", close, int(params["slow"]))
    ts = np.asarray(bars["ts"], dtype=np.int64)
    stats = np.empty(N_STATS)
    rets = np.empty(hi - lo)
    e = np.empty(0)
    run_cross_nb(ts, _f64(bars["open"]), _f64(bars["high"]), _f64(bars["low"]), close, *_funding(bars), f, s, lo, hi,
                 bool(params.get("short", False)), *_kernel_settings(settings), years_of(ts, lo, hi), stats, e, e,
                 rets)  # fmt: skip
    return dict(zip(STAT_NAMES, stats.tolist(), strict=True)), rets


# ----------------------------------------------------------------------------- results
@dataclass
class SweepResult:
    """One row per combination: a column per parameter and per stat; plus overfitting stats."""

    results: pd.DataFrame
    metric: str
    params: list[str]
    strategy: str
    settings: dict
    sweep_id: str | None = None
    path: Path | None = None
    dsr: dict | None = None
    pbo: dict | None = None
    walk_forward: object | None = None
    seconds: float = 0.0
    computed: int = 0  # combinations computed in this run (the rest were resumed)
    extra: dict = field(default_factory=dict)

    @property
    def ascending(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def ranked(self, top: int | None = None) -> pd.DataFrame:
        df = self.results.sort_values(self.metric, ascending=self.ascending, kind="stable")
        return df.head(top) if top else df

    @property
    def best(self) -> dict:
        """Parameters and stats of the best combination by `metric`."""
        row = self.ranked(1).iloc[0]
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}

    @property
    def best_params(self) -> dict:
        b = self.best
        return {p: b[p] for p in self.params}

    def heatmap(self, x: str | None = None, y: str | None = None, metric: str | None = None):
        """Plotly heatmap of `metric` over two parameters (others at their best values)."""
        from algo_trade.sweep.report import heatmap_figure

        return heatmap_figure(self, x, y, metric)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report; written to `path` if given."""
        from algo_trade.sweep.report import sweep_html

        html = sweep_html(self)
        if path is not None:
            write_text_atomic(path, html)
        return html

    def summary(self) -> dict:
        return {
            "sweep_id": self.sweep_id,
            "path": str(self.path) if self.path else None,
            "strategy": self.strategy,
            "metric": self.metric,
            "combinations": len(self.results),
            "computed": self.computed,
            "seconds": round(self.seconds, 3),
            "best": self.best,
            "deflated_sharpe": self.dsr,
            "pbo": self.pbo,
        }


# ----------------------------------------------------------------------------- the sweep
def _batch_slices(n: int, workers: int, executor: str) -> list[slice]:
    # enough batches for a moving progress bar and load balance; big enough that each
    # prange call keeps every thread busy
    # (remote workers: a few large tasks each, so a worker computes an indicator once and
    # reuses it across many combinations; fewer round trips too)
    per = max(
        4 * max(workers, 1), math.ceil(n / (20 if executor == "local" else 4 * max(workers, 1)))
    )
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


def _spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def sweep(
    data: object,
    strategy: str,
    grid: Mapping[str, object],
    where: str | None = None,
    metric: str = "sharpe",
    executor: str = "local",
    workers: int | None = None,
    *,
    random: int | None = None,
    seed: int = 0,
    home: str | Path | None = None,
    sweep_id: str | None = None,
    cluster: str | None = None,
    client: object | None = None,
    progress: bool = False,
    n_blocks: int = DEFAULT_BLOCKS,
    indicator_cache_bytes: int = DEFAULT_MAX_BYTES,
    walk_forward: str | Mapping | None = None,
    start: object = None,
    end: object = None,
    on_batch: Callable[[int, int], None] | None = None,
    **settings: object,
) -> SweepResult:
    """Backtest every combination of `grid` (kept by `where`) and rank them by `metric`.

    data: bars (DataFrame/Arrow/dict with ts, open, close) or a `CachedData` entry;
    grid: {param: "5:50:5" | "5,10,20" | "log:1:1000:7" | list}; where: a constraint such as
    "fast < slow"; executor: "local" | "process" | "dask"; home: data home, where results
    stream to ``sweeps/<id>/results.parquet`` (resumable); settings: the backtest settings,
    named as in `algo_trade.backtest` (init_cash, fee_taker_bps, fill_at, slippage_bps,
    slippage_range, leverage, maintenance_margin, liquidation_fee_bps). Each combination's
    stats equal ``backtest(data, strategy, params=combination, **settings).stats``.
    """
    t0 = time.perf_counter()
    spec_s = get_strategy(strategy)
    if n_blocks and (n_blocks < 2 or n_blocks % 2):
        raise ConfigError(
            f"n_blocks (CSCV blocks) must be 0 (no PBO) or an even number >= 2, got {n_blocks}"
        )
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if metric not in STAT_NAMES:
        raise ConfigError(f"unknown metric {metric!r}: choose one of {', '.join(STAT_NAMES)}")
    unknown = set(grid) - set(spec_s.params)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for {strategy}: it takes {', '.join(spec_s.params)}"
        )
    missing = set(spec_s.required) - set(grid)
    if missing:
        raise ConfigError(
            f"the grid needs a value for {', '.join(sorted(missing))} (e.g. --grid {sorted(missing)[0]}=10)"
        )
    st = sweep_settings(settings)
    axes = {**dict(grid), **({} if "short" in grid else {"short": [False]})}
    g = Grid(axes, where=where, random=random, seed=seed)
    combos = g.combinations()
    _check_params(strategy, combos)
    bars = as_bars(data)
    n = len(bars["close"])
    lo, hi = _bar_range(bars, start, end)
    _check_bars(bars, 0, hi)  # bars before lo feed the indicators
    workers = int(workers) if workers else (os.cpu_count() or 1)

    if walk_forward is not None:
        from algo_trade.sweep.walkforward import run_walk_forward

        return run_walk_forward(data, bars, strategy, combos, metric, executor, workers, cluster, client, st,
                                walk_forward, lo, hi, n_blocks, indicator_cache_bytes, progress, t0)  # fmt: skip

    data_ref = _shareable(data, bars, executor, home)
    ident = _data_identity(data, bars)
    spec = {"strategy": strategy, "grid": g.axes, "where": where, "random": random, "seed": seed,
            "settings": st, "data": ident, "range": [lo, hi],
            "n_blocks": n_blocks, "bars": n}  # fmt: skip
    out_dir = _sweep_dir(home, sweep_id, spec)
    done = _read_parts(out_dir) if out_dir else None
    combos.insert(0, "combo", np.arange(len(combos), dtype=np.int64))
    todo = (
        combos if done is None else combos[~combos["combo"].isin(done.column("combo").to_numpy())]
    )
    slices = _batch_slices(len(todo), workers, executor)
    batches = [
        (
            data_ref,
            ident,
            strategy,
            {p: todo[p].to_numpy()[s] for p in spec_s.params},
            st,
            lo,
            hi,
            n_blocks,
            indicator_cache_bytes,
        )
        for s in slices
    ]
    parts: list[pa.Table] = [] if done is None else [done]
    own_cluster = None
    if executor == "dask" and client is None and batches:  # connect before drawing progress
        from algo_trade.sweep.executors import dask_client

        client, own_cluster = dask_client(cluster, workers)
        own_cluster = (client, own_cluster)
    bar = _progress(progress, len(combos), len(combos) - len(todo))
    try:
        for i, res in run_batches(run_batch, batches, executor, workers, cluster, client):
            part = _part_table(todo.iloc[slices[i]], res, n_blocks)
            if out_dir is not None:
                _write_part(out_dir, part)
            parts.append(part)
            if bar is not None:
                bar[0].advance(bar[1], part.num_rows)
            if on_batch is not None:
                on_batch(i, part.num_rows)
    finally:
        if bar is not None:
            bar[0].stop()
        if own_cluster is not None:
            own_cluster[0].close()
            if own_cluster[1] is not None:
                own_cluster[1].close()
    full = _by_combo(parts)
    result = _finish(full, spec_s, strategy, metric, st, bars, lo, hi, n_blocks, ident)
    result.sweep_id = out_dir.name if out_dir else None
    result.path = out_dir
    result.computed = len(todo)
    result.seconds = time.perf_counter() - t0
    if out_dir is not None:
        (out_dir / "summary.json").write_text(json.dumps(result.summary(), default=str, indent=1))
    return result


def _bar_range(bars: dict[str, np.ndarray], start: object, end: object) -> tuple[int, int]:
    n = len(bars["close"])
    if start is None and end is None:
        return 0, n
    from algo_trade.timeutil import parse_time_ns

    ts = bars["ts"]
    lo = int(np.searchsorted(ts, parse_time_ns(start))) if start is not None else 0  # type: ignore[arg-type]
    hi = int(np.searchsorted(ts, parse_time_ns(end))) if end is not None else n  # type: ignore[arg-type]
    if hi - lo < 3:
        raise DataError("fewer than 3 bars in the sweep's time range")
    return lo, hi


def _shareable(
    data: object, bars: dict[str, np.ndarray], executor: str, home: str | Path | None
) -> object:
    """What batches receive: the cache entry (pickled as its path) or, locally, the arrays."""
    if isinstance(data, CachedData):
        return data
    if executor == "local":
        return bars
    if home is None:
        raise ConfigError(
            f"the {executor} executor needs home= (a directory its workers share) for in-memory data"
        )
    return save_arrays(
        {"bar": {k: v for k, v in bars.items() if k in ("ts", *BAR_COLUMNS)}},
        home,
    )


def _sweep_dir(home: str | Path | None, sweep_id: str | None, spec: dict) -> Path | None:
    if home is None:
        if sweep_id is not None:
            raise ConfigError("a sweep id needs a data home (home=) to keep its results in")
        return None
    h = _spec_hash(spec)
    sid = sweep_id or h
    if not sid.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"bad sweep id {sid!r}: use letters, digits, - and _")
    d = Path(home) / "sweeps" / sid
    spec_file = d / "spec.json"
    if spec_file.is_file():
        old = json.loads(spec_file.read_text())
        if old.get("hash") != h:
            raise ConfigError(
                f"sweep id {sid!r} belongs to a different sweep spec; choose another id or delete {d}"
            )
    else:
        write_text_atomic(spec_file, json.dumps({"hash": h, **spec}, default=str, indent=1))
    (d / "results.parquet").mkdir(exist_ok=True)
    return d


def _part_table(rows: pd.DataFrame, res: dict[str, np.ndarray], n_blocks: int) -> pa.Table:
    """One batch's rows as an Arrow table: combo, parameters, stats, and (for CSCV) the
    per-block return sums as fixed-size lists. Built column by column from arrays."""
    cols: dict[str, pa.Array] = {c: pa.array(rows[c].to_numpy()) for c in rows.columns}
    for name in STAT_NAMES:
        v = res[name]
        cols[name] = pa.array(v.astype(np.int64) if name in INT_STATS else v)
    if n_blocks > 0:
        for k in ("_s1", "_s2"):
            flat = pa.array(np.ascontiguousarray(res[k], dtype=np.float64).ravel())
            cols[k] = pa.FixedSizeListArray.from_arrays(flat, n_blocks)
    return pa.table(cols)


def _write_part(out_dir: Path, part: pa.Table) -> None:
    d = out_dir / "results.parquet"
    name = f"part-{int(part.column('combo')[0].as_py()):09d}-{uuid.uuid4().hex[:8]}.parquet"
    with atomic_path(d / name) as tmp:  # a part is visible whole or not at all
        pq.write_table(part, tmp)


def _read_parts(out_dir: Path) -> pa.Table | None:
    files = sorted((out_dir / "results.parquet").glob("part-*.parquet"))
    if not files:
        return None
    return _by_combo([pq.read_table(f) for f in files])


def _by_combo(parts: list[pa.Table]) -> pa.Table:
    """Parts concatenated, ordered by combination, each combination once."""
    t = pa.concat_tables(parts)
    combo = t.column("combo").to_numpy()
    _, first = np.unique(combo, return_index=True)  # sorted by combo; a repeat is dropped
    return t.take(pa.array(first))


def _finish(full: pa.Table, spec_s: SweepStrategy, strategy: str, metric: str, st: dict, bars: dict,
            lo: int, hi: int, n_blocks: int, data_id: str) -> SweepResult:  # fmt: skip
    s1 = s2 = np.empty((full.num_rows, 0))
    if "_s1" in full.column_names:
        s1, s2 = (
            full.column(k).combine_chunks().flatten().to_numpy().reshape(-1, n_blocks)
            for k in ("_s1", "_s2")
        )
        full = full.drop_columns(["_s1", "_s2"])
    res = SweepResult(full.to_pandas(), metric, list(spec_s.params), strategy, dict(st))
    years = years_of(np.asarray(bars["ts"]), lo, hi)
    res.extra["periods_per_year"] = (hi - lo) / years if years > 0 else 0.0
    res.extra["bars"] = hi - lo
    _overfit(res, s1, s2, bars, st, lo, hi, n_blocks, data_id)
    return res


def _overfit(
    res: SweepResult,
    s1: np.ndarray,
    s2: np.ndarray,
    bars: dict,
    st: dict,
    lo: int,
    hi: int,
    n_blocks: int,
    data_id: str,
) -> None:
    from algo_trade.sweep.overfit import deflated_sharpe, pbo_cscv

    n = hi - lo
    if len(res.results) == 0:
        return
    ppy = res.extra["periods_per_year"]
    # every trial's per-bar Sharpe (the paper's unit): the annualized one without its factor
    trial_sr = (
        res.results["sharpe"].to_numpy() / np.sqrt(ppy)
        if ppy > 0
        else np.full(len(res.results), np.nan)
    )
    _, rets = single_returns(bars, res.strategy, res.best_params, st, lo, hi, data_id)
    d = deflated_sharpe(rets, trial_sr)
    res.dsr = {"dsr": d.dsr, "sharpe_per_bar": d.sr, "expected_max_sharpe_per_bar": d.sr0, "trials": d.n_trials,
               "bars": d.n_obs, "skew": d.skew, "kurtosis": d.kurtosis}  # fmt: skip
    if len(res.results) >= 2 and n_blocks >= 2 and n_blocks % 2 == 0 and n >= 2 * n_blocks:
        # the kernel puts bar t in block (t - lo) * n_blocks // n
        cnt = np.bincount(np.arange(n, dtype=np.int64) * n_blocks // n, minlength=n_blocks).astype(
            np.float64
        )
        p = pbo_cscv(moments=(cnt, s1.T, s2.T))
        res.pbo = {
            "pbo": p.pbo,
            "splits": p.n_splits,
            "blocks": p.n_blocks,
            "oos_vs_is_slope": p.degradation,
        }


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from algo_trade.cli.common import err_console

    p = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 TimeRemainingColumn(), console=err_console, transient=False)  # fmt: skip
    p.start()
    task = p.add_task("sweep", total=total, completed=done)
    return p, task


def remove_sweep(home: str | Path, sweep_id: str) -> None:
    shutil.rmtree(Path(home) / "sweeps" / sweep_id, ignore_errors=True)
