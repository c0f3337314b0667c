"""`sweep`: run any registered strategy over many parameter sets through the engine itself.

>>> import algo_trade
>>> res = algo_trade.sweep(bars, "sma_cross", grid={"fast": "5:50:5", "slow": "20:200:20"},
...                        where="fast < slow", metric="sharpe")  # doctest: +SKIP
>>> res.best  # doctest: +SKIP

One engine: every trial is the engine's own signal -> kernel -> stats path
(`engine.api.signal`, `engine.api.simulate`, `engine.metrics`), the one `backtest` runs, so
each row equals ``backtest(data, strategy, params, **settings).stats`` bit for bit. What a
sweep adds: the data loaded once and shared (memory-mapped for other processes), an
indicator cache shared by the trials of a process, parallel batches (threads here, a
process pool, or Dask), results written per batch (resumable), and the overfitting
statistics over every trial.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from algo_trade.engine import metrics as M
from algo_trade.engine.api import Settings, check_mode, signal, simulate, strategy_inputs
from algo_trade.errors import ConfigError
from algo_trade.strategies import Strategy
from algo_trade.strategies import get as get_strategy
from algo_trade.sweep import results as R
from algo_trade.sweep.data import as_market, identity, market_of, shareable, time_range
from algo_trade.sweep.executors import EXECUTORS, dask_client, run_batches
from algo_trade.sweep.indicators import DEFAULT_MAX_BYTES, process_cache
from algo_trade.sweep.kernels import block_sums_nb, returns_nb
from algo_trade.sweep.search import SEARCHES, OptunaSearch, grid_trials

DEFAULT_BLOCKS = 16  # CSCV blocks: C(16, 8) = 12,870 splits
Progress = Callable[[int, int], None]  # (trials done, trials in all)


# ----------------------------------------------------------------------------- one trial
def evaluate(md: Any, strat: Strategy, params: Mapping[str, Any], cfg: Settings, mode: str,
             lo: int, hi: int, inputs: Any = None,
             equity: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray, np.ndarray]:  # fmt: skip
    """One backtest over events [lo, hi): (metrics, equity, final kernel state). The target
    is computed over all the data (indicators warm up on the events before lo). equity: a
    float64[hi - lo] buffer to fill (a batch reuses one: fresh pages cost more than the run)."""
    inputs = inputs if inputs is not None else strategy_inputs(md, mode)
    target = signal(strat, inputs, params, len(md))
    equity = np.empty(hi - lo) if equity is None else equity
    st, _ = simulate(md, mode, target, cfg, equity, lo, hi)
    ts = md.ts[lo:hi]
    return M.compute(M.Run.from_state(ts, equity, st, cfg.init_cash, md.ts_unit_ns)), equity, st


def run_batch(data_ref: object, data_id: str, strategy: object, mode: str,
              params: Mapping[str, np.ndarray], settings: Mapping[str, Any], lo: int, hi: int,
              n_blocks: int, ind_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, np.ndarray]:  # fmt: skip
    """Run one batch of trials (in whichever thread, process or Dask worker holds it):
    each metric as an array over the batch, plus per-block return sums for CSCV."""
    md = market_of(data_ref)
    strat = get_strategy(strategy)  # type: ignore[arg-type]
    cfg = Settings.build(**settings)
    inputs = strategy_inputs(md, mode, cache=process_cache(ind_bytes).scoped(data_id))
    names = list(params)
    m = len(params[names[0]]) if names else 0
    out = {k: np.empty(m) for k in M.registry()}
    s1 = np.zeros((m, n_blocks))
    s2 = np.zeros((m, n_blocks))
    buf = np.empty(hi - lo)
    for j in range(m):
        p = {k: _plain(params[k][j]) for k in names}
        stats, equity, _ = evaluate(md, strat, p, cfg, mode, lo, hi, inputs, buf)
        for k, v in stats.items():
            out[k][j] = v
        if n_blocks > 0:
            s1[j], s2[j] = block_sums_nb(equity, cfg.init_cash, n_blocks)
    out["_s1"] = s1
    out["_s2"] = s2
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _batch_slices(n: int, workers: int, executor: str) -> list[slice]:
    # enough batches for a moving progress bar and load balance across the threads; remote
    # workers get a few large tasks each (an indicator computed once serves many trials)
    per = max(
        1, math.ceil(n / (8 * max(workers, 1) if executor == "local" else 4 * max(workers, 1)))
    )
    per = min(per, 64) if executor == "local" else per
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


# ----------------------------------------------------------------------------- the sweep
def sweep(
    data: object,
    strategy: str | Strategy | Callable[..., np.ndarray],
    grid: Mapping[str, object] | None = None,
    where: str | None = None,
    metric: str = "sharpe",
    executor: str = "local",
    workers: int | None = None,
    *,
    search: str = "grid",
    trials: int | None = None,
    random: int | None = None,
    seed: int = 0,
    mode: str | None = None,
    home: str | os.PathLike | None = None,
    sweep_id: str | None = None,
    cluster: str | None = None,
    client: object | None = None,
    progress: Progress | None = None,
    n_blocks: int = DEFAULT_BLOCKS,
    indicator_cache_bytes: int = DEFAULT_MAX_BYTES,
    walk_forward: str | Mapping | None = None,
    start: object = None,
    end: object = None,
    on_batch: Callable[[int, int], None] | None = None,
    **settings: object,
) -> R.SweepResult:
    """Backtest `strategy` for every trial of `grid` and rank the trials by `metric`.

    data: what `algo_trade.backtest` takes (bars DataFrame, `algo_trade.load` output) or a
    data cache entry; strategy: any registered name, ``module:function`` or a function;
    grid: {param: "5:50:5" | "5,10,20" | "log:1:1000:7" | list}; where: a condition over
    the parameters ("fast < slow"); search: "grid" | "random" | "optuna" with `trials`
    (``random=N`` is ``search="random", trials=N``); mode: "bars" | "book" (default: the
    data's); executor: "local" (threads) | "process" | "dask" (`cluster` address or a
    LocalCluster); home: data home, where results stream to ``sweeps/<id>/`` (resumable);
    progress: called with (done, total) after each batch; settings: `backtest`'s. Every
    row equals ``backtest(data, strategy, params=row's params, mode=mode, **settings).stats``.
    """
    t0 = time.perf_counter()
    if mode == "events":
        if walk_forward is not None:
            raise ConfigError("walk-forward runs in bars or book mode, not events mode (yet)")
        return _sweep_events(data, strategy, grid, where, metric, executor, workers, search, trials, random,
                             seed, home, sweep_id, progress, n_blocks, on_batch, settings, t0)  # fmt: skip
    strat = get_strategy(strategy)
    ref = strategy if isinstance(strategy, str) else strat  # what batches get (picklable)
    if random is not None:
        search, trials = "random", random
    if cluster and executor == "local":  # an address given: that is where the work goes
        executor = "dask"
    if search not in SEARCHES:
        raise ConfigError(f"unknown search {search!r}: choose one of {', '.join(SEARCHES)}")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if search == "optuna" and trials is None:
        raise ConfigError("an optuna search needs a number of trials (--trials N)")
    if n_blocks and (n_blocks < 2 or n_blocks % 2):
        raise ConfigError(
            f"n_blocks (CSCV blocks) must be 0 (no PBO) or an even number >= 2, got {n_blocks}"
        )
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if metric not in M.registry():
        raise ConfigError(f"unknown metric {metric!r}: choose one of {', '.join(M.registry())}")
    cfg = Settings.build(**settings)
    st = dataclasses.asdict(cfg)
    axes = dict(grid or {})
    md = as_market(data)
    mode = check_mode(md, strat, cfg, mode)
    lo, hi = time_range(md, start, end)
    workers = int(workers) if workers else (os.cpu_count() or 1)
    opt = None
    if search == "optuna":
        opt = OptunaSearch(strat, axes, where, seed, M.lower_is_better(metric))
        combos = None
    else:
        combos = grid_trials(strat, axes, where, search, trials, seed)

    if walk_forward is not None:
        from algo_trade.sweep.walkforward import run_walk_forward

        if combos is None:
            raise ConfigError(
                "walk-forward runs a grid or random search in each window, not optuna"
            )
        return run_walk_forward(data, md, strat, ref, mode, combos, metric, executor, workers, cluster, client,
                                cfg, walk_forward, lo, hi, indicator_cache_bytes, progress, t0, home,
                                sweep_id, {"axes": axes, "where": where, "search": search, "trials": trials,
                                           "seed": seed})  # fmt: skip

    data_ref = shareable(data, md, executor, home)
    ident = identity(data, md)
    spec = {"strategy": strat.name, "grid": {k: str(v) for k, v in axes.items()}, "where": where,
            "search": search, "trials": trials, "seed": seed, "settings": st, "mode": mode,
            "data": ident, "range": [lo, hi], "n_blocks": n_blocks, "events": len(md),
            **({"metric": metric} if opt is not None else {})}  # fmt: skip
    out_dir = R.sweep_dir(home, sweep_id, spec)
    done = R.read_parts(out_dir) if out_dir else None
    parts: list[pa.Table] = [] if done is None else [done]
    own = None
    if executor == "dask" and client is None:  # connect before drawing progress
        client, lc = dask_client(cluster, workers)
        own = (client, lc)
    job = (data_ref, ident, ref, mode, st, lo, hi, n_blocks, indicator_cache_bytes)
    try:
        if opt is None:
            computed = _run_trials(combos, done, job, executor, workers, cluster, client, out_dir,
                                   parts, progress, on_batch)  # fmt: skip
        else:
            computed = _run_optuna(opt, trials, metric, done, job, executor, workers, cluster, client,
                                   out_dir, parts, progress, on_batch)  # fmt: skip
    finally:
        if own is not None:
            own[0].close()
            if own[1] is not None:
                own[1].close()
    inputs = strategy_inputs(md, mode, cache=process_cache(indicator_cache_bytes).scoped(ident))
    result = _finish(parts, md, strat, mode, search, metric, cfg, lo, hi, n_blocks, inputs)
    result.sweep_id = out_dir.name if out_dir else None
    result.path = out_dir
    result.computed = computed
    result.seconds = time.perf_counter() - t0
    if opt is not None:
        result.extra["refused_proposals"] = opt.refused
    if out_dir is not None:
        from algo_trade.fileio import write_text_atomic

        write_text_atomic(out_dir / "summary.json", _json(result.summary()))
    return result


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str, indent=1)


def _batches(
    rows: pd.DataFrame, job: tuple, workers: int, executor: str
) -> tuple[list, list[slice]]:
    data_ref, ident, ref, mode, st, lo, hi, n_blocks, ind_bytes = job
    params = [c for c in rows.columns if c != "combo"]
    slices = _batch_slices(len(rows), workers, executor)
    batches = [(data_ref, ident, ref, mode, {p: rows[p].to_numpy()[s] for p in params}, st, lo, hi,
                n_blocks, ind_bytes) for s in slices]  # fmt: skip
    return batches, slices


def _run_trials(combos, done, job, executor, workers, cluster, client, out_dir, parts, progress,
                on_batch) -> int:  # fmt: skip
    combos = combos.copy()
    combos.insert(0, "combo", np.arange(len(combos), dtype=np.int64))
    todo = (
        combos if done is None else combos[~combos["combo"].isin(done.column("combo").to_numpy())]
    )
    batches, slices = _batches(todo, job, workers, executor)
    total, count = len(combos), len(combos) - len(todo)
    if progress is not None:
        progress(count, total)
    for i, res in run_batches(run_batch, batches, executor, workers, cluster, client):
        part = R.part_table(todo.iloc[slices[i]], res, job[7])
        if out_dir is not None:
            R.write_part(out_dir, part)
        parts.append(part)
        count += part.num_rows
        if progress is not None:
            progress(count, total)
        if on_batch is not None:
            on_batch(i, part.num_rows)
    return len(todo)


def _run_optuna(opt, trials, metric, done, job, executor, workers, cluster, client, out_dir, parts,
                progress, on_batch) -> int:  # fmt: skip
    count = 0
    next_id = 0
    if done is not None and done.num_rows:
        prev = done.to_pandas()
        opt.resume(prev, metric)
        count = len(prev)
        next_id = int(prev["combo"].max()) + 1
    computed = 0
    if progress is not None:
        progress(count, trials)
    step = max(4, 2 * workers)  # trials asked at once: TPE learns between rounds
    while count < trials:
        asked = opt.ask(min(step, trials - count))
        rows = pd.DataFrame([p for _, p in asked])
        rows.insert(0, "combo", np.arange(next_id, next_id + len(rows), dtype=np.int64))
        next_id += len(rows)
        batches, slices = _batches(rows, job, workers, executor)
        for i, res in run_batches(run_batch, batches, executor, workers, cluster, client):
            part = R.part_table(rows.iloc[slices[i]], res, job[7])
            if out_dir is not None:
                R.write_part(out_dir, part)
            parts.append(part)
            values = part.column(metric).to_numpy()
            for (trial, _), v in zip(asked[slices[i]], values, strict=True):
                opt.tell(trial, float(v))
            count += part.num_rows
            computed += part.num_rows
            if progress is not None:
                progress(count, trials)
            if on_batch is not None:
                on_batch(i, part.num_rows)
    return computed


def _finish(parts, md, strat, mode, search, metric, cfg, lo, hi, n_blocks, inputs) -> R.SweepResult:
    if not parts:
        raise ConfigError("the sweep has no trials to run")  # pragma: no cover - checked before
    full, s1, s2 = R.split_moments(R.by_combo(parts), n_blocks)
    res = R.SweepResult(full.to_pandas(), metric, list(strat.params), strat.name,
                        dataclasses.asdict(cfg), mode, search)  # fmt: skip
    n = hi - lo
    _, equity, _ = evaluate(md, strat, res.best_params, cfg, mode, lo, hi, inputs)
    ts_ns = md.ts[lo:hi] * md.ts_unit_ns if md.ts_unit_ns != 1 else md.ts[lo:hi]
    span = float(ts_ns[-1] - ts_ns[0]) * n / (n - 1) if n > 1 else 0.0
    ppy = n / (span / M.NS_PER_YEAR) if span > 0 else 0.0
    res.extra["periods_per_year"] = ppy
    res.extra["bars"] = n
    res.best_equity = pd.Series(
        equity, index=pd.to_datetime(ts_ns, unit="ns", utc=True), name="equity"
    )
    R.overfitting(res, s1, s2, returns_nb(equity, cfg.init_cash), n, n_blocks, ppy)
    return res


def _sweep_events(data, strategy, grid, where, metric, executor, workers, search, trials, random, seed, home,
                  sweep_id, progress, n_blocks, on_batch, settings, t0) -> R.SweepResult:  # fmt: skip
    """mode="events": the trials through the event-driven engine (`sweep.events`)."""
    from algo_trade.sweep import events as SE

    if executor != "local":
        raise ConfigError(
            "an events sweep runs on the local executor (threads); its source streams from the store"
        )
    if random is not None:
        search, trials = "random", random
    if search == "optuna":
        raise ConfigError("an events sweep runs grid or random searches")
    source = SE.source_factory(data)
    spec_s = SE.trial_spec(strategy, settings)
    st = SE.settings_dict(settings)
    combos = grid_trials(spec_s, dict(grid or {}), where, search, trials, seed)
    workers = int(workers) if workers else (os.cpu_count() or 1)
    spec = {"strategy": spec_s.name, "grid": {k: str(v) for k, v in (grid or {}).items()}, "where": where,
            "search": search, "trials": trials, "seed": seed, "settings": st, "mode": "events",
            "data": getattr(data, "__qualname__", type(data).__name__), "n_blocks": n_blocks}  # fmt: skip
    out_dir = R.sweep_dir(home, sweep_id, spec)
    done = R.read_parts(out_dir) if out_dir else None
    combos = combos.copy()
    combos.insert(0, "combo", np.arange(len(combos), dtype=np.int64))
    todo = (
        combos if done is None else combos[~combos["combo"].isin(done.column("combo").to_numpy())]
    )
    slices = _batch_slices(len(todo), workers, "local")
    params = [c for c in todo.columns if c != "combo"]
    batches = [
        (source, strategy, {p: todo[p].to_numpy()[s] for p in params}, settings, n_blocks)
        for s in slices
    ]
    parts: list[pa.Table] = [] if done is None else [done]
    count = len(combos) - len(todo)
    for i, res in run_batches(SE.run_batch, batches, "local", workers):
        part = R.part_table(todo.iloc[slices[i]], res, n_blocks)
        if out_dir is not None:
            R.write_part(out_dir, part)
        parts.append(part)
        count += part.num_rows
        if progress is not None:
            progress(count, len(combos))
        if on_batch is not None:
            on_batch(i, part.num_rows)
    full, s1, s2 = R.split_moments(R.by_combo(parts), n_blocks)
    table = full.to_pandas()
    if metric not in table.columns:
        raise ConfigError(
            f"unknown metric {metric!r} for an events sweep: choose one of {', '.join(table.columns[1:])}"
        )
    res = R.SweepResult(table, metric, list(spec_s.params), spec_s.name, st, "events", search)
    _, eq, ts = SE.evaluate(source, strategy, res.best_params, settings)
    n = len(eq)
    span = float(ts[-1] - ts[0]) * n / (n - 1) if n > 1 else 0.0
    ppy = n / (span / M.NS_PER_YEAR) if span > 0 else 0.0
    res.extra["periods_per_year"] = ppy
    res.best_equity = pd.Series(eq, index=pd.to_datetime(ts, unit="ns", utc=True), name="equity")
    R.overfitting(res, s1, s2, returns_nb(eq, SE.init_cash(settings)), n, n_blocks, ppy)
    res.sweep_id = out_dir.name if out_dir else None
    res.path = out_dir
    res.computed = len(todo)
    res.seconds = time.perf_counter() - t0
    return res
