"""Walk-forward: optimize on each training window, trade the choice on the next test window.

Windows are cut by time: train [t, t + train), test [t + train, t + train + test), then t
moves by `step` (default: the test length, so test windows tile; a shorter step is refused,
since overlapping test windows would count bars twice in the stitched equity). Only
whole windows are used. The sweep kernels evaluate a combination over a bar range
[lo, hi) with indicators that use only past bars, so a training evaluation never sees a
bar of its test window; a test window starts flat and its indicators are warmed up on
earlier bars (which is what live trading would have had).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from algo_trade.errors import ConfigError, DataError
from algo_trade.timeutil import parse_duration_ns


@dataclass
class WalkForwardResult:
    windows: pd.DataFrame  # one row per window: bounds, chosen params, in-sample metric, OOS stats
    ts: np.ndarray  # int64 ns of each out-of-sample bar
    equity: np.ndarray  # stitched out-of-sample equity (starts at 1.0)
    stats: dict  # overall out-of-sample stats


def parse_walk_forward(spec: str | Mapping) -> dict[str, int]:
    """'train=30d,test=7d[,step=7d]' -> {'train': ns, 'test': ns, 'step': ns}."""
    if isinstance(spec, Mapping):
        items = dict(spec)
    else:
        items = {}
        for part in str(spec).split(","):
            k, sep, v = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"bad walk-forward spec {spec!r}: use train=30d,test=7d[,step=7d]"
                )
            items[k.strip()] = v.strip()
    bad = set(items) - {"train", "test", "step"}
    if bad or "train" not in items or "test" not in items:
        raise ConfigError(f"bad walk-forward spec {spec!r}: use train=30d,test=7d[,step=7d]")
    out = {k: parse_duration_ns(v) for k, v in items.items()}
    out.setdefault("step", out["test"])
    if out["step"] < out["test"]:
        # overlapping test windows would count some bars twice in the stitched equity
        raise ConfigError(f"bad walk-forward spec {spec!r}: step must be at least test")
    return out


def windows(
    ts: np.ndarray, lo: int, hi: int, train_ns: int, test_ns: int, step_ns: int
) -> list[tuple[int, int, int, int]]:
    """Bar-index windows (train_lo, train_hi, test_lo, test_hi); train_hi == test_lo always."""
    ts = np.asarray(ts, dtype=np.int64)
    bar_ns = int(np.median(np.diff(ts[lo : min(hi, lo + 100_000)])))
    end_ns = int(ts[hi - 1]) + bar_ns
    out = []
    t = int(ts[lo])
    while t + train_ns + test_ns <= end_ns:
        a = int(np.searchsorted(ts, t, "left"))
        b = int(np.searchsorted(ts, t + train_ns, "left"))
        c = int(np.searchsorted(ts, t + train_ns + test_ns, "left"))
        a, b, c = max(a, lo), min(b, hi), min(c, hi)
        if b - a >= 3 and c - b >= 2:
            out.append((a, b, b, c))
        t += step_ns
    return out


def run_walk_forward(data, bars, strategy, combos, metric, executor, workers, cluster, client, st, spec, lo, hi,
                     n_blocks, ind_bytes, progress, t0):  # fmt: skip
    from algo_trade.sweep.api import (
        LOWER_IS_BETTER,
        SweepResult,
        _batch_slices,
        _by_combo,
        _data_identity,
        _part_table,
        _shareable,
        get_strategy,
        run_batch,
        single_returns,
        years_of,
    )
    from algo_trade.sweep.executors import dask_client, run_batches

    wf = parse_walk_forward(spec)
    wins = windows(bars["ts"], lo, hi, wf["train"], wf["test"], wf["step"])
    if not wins:
        raise DataError(f"the data is too short for one walk-forward window of train+test ({spec})")
    spec_s = get_strategy(strategy)
    data_ref = _shareable(data, bars, executor, None if executor == "local" else _home_of(data))
    ident = _data_identity(data, bars)
    combos = combos.copy()
    combos.insert(0, "combo", np.arange(len(combos), dtype=np.int64))
    own = None
    if executor == "dask" and client is None:  # one cluster for every window
        client, own = dask_client(cluster, workers)
    rows, oos_ts, oos_r, last = [], [], [], None
    try:
        for w, (a, b, c, d) in enumerate(wins):
            slices = _batch_slices(len(combos), workers, executor)
            batches = [(data_ref, ident, strategy, {p: combos[p].to_numpy()[s] for p in spec_s.params}, st, a, b, 0, ind_bytes)
                       for s in slices]  # fmt: skip
            parts = [None] * len(slices)
            for i, res in run_batches(run_batch, batches, executor, workers, cluster, client):
                parts[i] = _part_table(combos.iloc[slices[i]], res, 0)
            ins = _by_combo(parts).to_pandas()
            best = ins.sort_values(metric, ascending=metric in LOWER_IS_BETTER, kind="stable").iloc[
                0
            ]
            params = {p: best[p].item() for p in spec_s.params}
            stats, r = single_returns(bars, strategy, params, st, c, d, ident)
            ts = np.asarray(bars["ts"][c:d])
            rows.append({"window": w, "train_start": _iso(bars["ts"][a]), "train_end": _iso(bars["ts"][b - 1]),
                         "test_start": _iso(ts[0]), "test_end": _iso(ts[-1]), **params,
                         f"is_{metric}": float(best[metric]), **{f"oos_{k}": v for k, v in stats.items()}})  # fmt: skip
            oos_ts.append(ts)
            oos_r.append(r)
            last = ins
    finally:
        if own is not None:
            client.close()
            own.close()
    r = np.concatenate(oos_r)
    eq = np.cumprod(1.0 + r)
    # annualized over the test bars' own span, as the engine annualizes
    oos_ts_all = np.concatenate(oos_ts)
    years = float(sum(years_of(t, 0, len(t)) for t in oos_ts))
    ppy = len(r) / years if years > 0 else 0.0
    sd = r.std(ddof=1) if len(r) > 1 else 0.0
    peak = np.maximum.accumulate(np.r_[1.0, eq])[1:]
    overall = {"total_return": float(eq[-1] - 1.0), "sharpe": float(r.mean() / sd * np.sqrt(ppy)) if sd > 0 else 0.0,
               "max_drawdown": float(np.max(1.0 - eq / peak)), "windows": len(wins), "bars": int(len(r))}  # fmt: skip
    wfr = WalkForwardResult(pd.DataFrame(rows), oos_ts_all, eq, overall)
    res = SweepResult(
        last,
        metric,
        list(spec_s.params),
        strategy,
        dict(st),
    )
    res.walk_forward = wfr
    res.computed = len(combos) * len(wins)
    res.seconds = time.perf_counter() - t0
    res.extra["periods_per_year"] = ppy
    return res


def _home_of(data) -> None:
    from algo_trade.sweep.cache import CachedData

    if isinstance(data, CachedData):
        return None
    raise ConfigError(
        "walk-forward on a process or Dask executor needs cached data (algo_trade.sweep.load_cached)"
    )


def _iso(ts_ns) -> str:
    return str(np.datetime64(int(ts_ns), "ns"))[:19]
