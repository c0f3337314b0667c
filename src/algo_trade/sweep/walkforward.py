"""Walk-forward: optimize on each training window, trade the choice on the next test window.

Windows are cut by time: train [t, t + train), test [t + train, t + train + test), then t
moves by `step` (default: the test length, so test windows tile; a shorter step is refused,
since overlapping test windows would count bars twice in the stitched equity). Only
whole windows are used. A trial is the engine's backtest over an event range [lo, hi)
with targets computed from data up to each event only, so a training evaluation never
sees an event of its test window; a test window starts flat with init_cash and its
indicators are warmed up on earlier events (which is what live trading would have had).
The stitched out-of-sample curve chains the test windows' returns from 1.0, and its stats
come from the one stats layer (`engine.metrics`), annualized over its own span.
"""

from __future__ import annotations

import json
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


def run_walk_forward(data, md, strat, ref, mode, combos, metric, executor, workers, cluster, client, cfg, spec,
                     lo, hi, ind_bytes, progress, t0, home, sweep_id, search_spec):  # fmt: skip
    """Walk-forward over [lo, hi) for any strategy: per window, the trials over the training
    events (the engine's path, as `sweep`), the best by `metric`, then one backtest of it on
    the test events. With a home, each window's training results and its chosen row are
    kept under ``sweeps/<id>/``, so a killed walk-forward resumes at the window it was in."""
    import dataclasses

    from algo_trade.engine import metrics as M
    from algo_trade.fileio import write_text_atomic
    from algo_trade.sweep import results as R
    from algo_trade.sweep.data import identity, shareable
    from algo_trade.sweep.executors import dask_client
    from algo_trade.sweep.kernels import returns_nb
    from algo_trade.sweep.runner import _run_trials, evaluate

    wf = parse_walk_forward(spec)
    ts_ns = md.ts_ns
    wins = windows(ts_ns, lo, hi, wf["train"], wf["test"], wf["step"])
    if not wins:
        raise DataError(f"the data is too short for one walk-forward window of train+test ({spec})")
    st = dataclasses.asdict(cfg)
    data_ref = shareable(data, md, executor, home)
    ident = identity(data, md)
    full_spec = {"walk_forward": {k: int(v) for k, v in wf.items()}, "strategy": strat.name, **search_spec,
                 "axes": {k: str(v) for k, v in search_spec["axes"].items()}, "settings": st, "mode": mode,
                 "data": ident, "range": [lo, hi], "metric": metric}  # fmt: skip
    out_dir = R.sweep_dir(home, sweep_id, full_spec)
    own = None
    if executor == "dask" and client is None:  # one cluster for every window
        client, own = dask_client(cluster, workers)
    rows, oos_ts, oos_eq, last, computed = [], [], [], None, 0
    lower = M.lower_is_better(metric)
    try:
        for w, (a, b, c, d) in enumerate(wins):
            wdir = out_dir / f"window-{w:03d}" if out_dir is not None else None
            row_file = wdir / "chosen.json" if wdir is not None else None
            done = (
                R.read_parts(wdir)
                if wdir is not None and (wdir / "results.parquet").is_dir()
                else None
            )
            parts = [] if done is None else [done]
            job = (data_ref, ident, ref, mode, st, a, b, 0, ind_bytes)
            if row_file is None or not row_file.is_file():
                computed += _run_trials(combos, done, job, executor, workers, cluster, client, wdir, parts,
                                        None, None)  # fmt: skip
            ins = R.by_combo(parts).to_pandas()
            best = ins.sort_values(metric, ascending=lower, kind="stable").iloc[0]
            params = {
                p: best[p].item() if hasattr(best[p], "item") else best[p] for p in strat.params
            }
            stats, equity, _ = evaluate(md, strat, params, cfg, mode, c, d)
            t = ts_ns[c:d]
            row = {"window": w, "train_start": _iso(ts_ns[a]), "train_end": _iso(ts_ns[b - 1]),
                   "test_start": _iso(t[0]), "test_end": _iso(t[-1]), **params,
                   f"is_{metric}": float(best[metric]), **{f"oos_{k}": v for k, v in stats.items()}}  # fmt: skip
            if row_file is not None and not row_file.is_file():
                write_text_atomic(row_file, json.dumps(row, default=str))
            rows.append(row)
            oos_ts.append(t)
            oos_eq.append(equity)
            last = ins
            if progress is not None:
                progress(w + 1, len(wins))
    finally:
        if own is not None:
            client.close()
            own.close()
    # each test window starts flat with init_cash: its returns chain into one curve from 1.0
    r = np.concatenate([returns_nb(e, cfg.init_cash) for e in oos_eq])
    eq = np.cumprod(1.0 + r)
    ts_all = np.concatenate(oos_ts)
    counts = {
        k: int(sum(row[f"oos_{k}"] for row in rows)) for k in ("orders", "trades", "liquidations")
    }
    run = M.Run.from_equity(ts_all, eq, 1.0, **counts)
    overall = {**M.compute(run), "windows": len(wins), "bars": int(len(r))}
    wfr = WalkForwardResult(pd.DataFrame(rows), ts_all, eq, overall)
    res = R.SweepResult(
        last, metric, list(strat.params), strat.name, st, mode, search_spec["search"]
    )
    res.walk_forward = wfr
    res.sweep_id = out_dir.name if out_dir else None
    res.path = out_dir
    res.computed = computed
    res.seconds = time.perf_counter() - t0
    res.extra["periods_per_year"] = run.periods_per_year
    return res


def _iso(ts_ns) -> str:
    return str(np.datetime64(int(ts_ns), "ns"))[:19]
