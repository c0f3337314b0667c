"""A sweep's results: the `SweepResult`, its parts on disk (what makes a sweep resumable)
and the overfitting statistics computed over all of its rows."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from algo_trade.engine import metrics as M
from algo_trade.errors import ConfigError
from algo_trade.fileio import atomic_path, write_text_atomic


@dataclass
class SweepResult:
    """One row per combination (trial): combo id, a column per parameter, one per metric;
    plus the overfitting statistics over every row."""

    results: pd.DataFrame
    metric: str
    params: list[str]
    strategy: str
    settings: dict
    mode: str = "bars"
    search: str = "grid"
    sweep_id: str | None = None
    path: Path | None = None
    dsr: dict | None = None
    pbo: dict | None = None
    walk_forward: object | None = None
    seconds: float = 0.0
    computed: int = 0  # combinations computed in this run (the rest were resumed)
    best_equity: pd.Series | None = None  # the best row's equity curve (for the report)
    extra: dict = field(default_factory=dict)

    @property
    def ascending(self) -> bool:
        return M.lower_is_better(self.metric)

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

    def heatmap(self, x: str | None = None, y: str | None = None, metric: str | None = None) -> Any:
        """Plotly heatmap of `metric` over any two parameters (others at their best values)."""
        from algo_trade.report.sweep import heatmap_figure

        return heatmap_figure(self, x, y, metric)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report; written to `path` if given."""
        from algo_trade.report.sweep import sweep_html

        html = sweep_html(self)
        if path is not None:
            write_text_atomic(path, html)
        return html

    def summary(self) -> dict:
        return {
            "sweep_id": self.sweep_id,
            "path": str(self.path) if self.path else None,
            "strategy": self.strategy,
            "mode": self.mode,
            "search": self.search,
            "metric": self.metric,
            "combinations": len(self.results),
            "computed": self.computed,
            "seconds": round(self.seconds, 3),
            "best": self.best if len(self.results) else None,
            "deflated_sharpe": self.dsr,
            "pbo": self.pbo,
        }


# ----------------------------------------------------------------------------- parts on disk
def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def sweep_dir(home: str | Path | None, sweep_id: str | None, spec: dict) -> Path | None:
    """``<home>/sweeps/<id>/`` for this spec (created), or None without a home. An id used
    by a different spec is refused (its results would mix)."""
    if home is None:
        if sweep_id is not None:
            raise ConfigError("a sweep id needs a data home (home=) to keep its results in")
        return None
    h = spec_hash(spec)
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


def part_table(rows: pd.DataFrame, res: dict[str, np.ndarray], n_blocks: int) -> pa.Table:
    """One batch's rows as an Arrow table: combo, parameters, metrics, and (for CSCV) the
    per-block return sums as fixed-size lists. Built column by column from arrays."""
    cols: dict[str, pa.Array] = {c: pa.array(rows[c].to_numpy()) for c in rows.columns}
    ints = set(M.integer_metrics())
    for name, v in res.items():  # every metric, plus an events run's own stats
        if name in ("_s1", "_s2") or name in cols:
            continue
        cols[name] = pa.array(v.astype(np.int64) if name in ints else v)
    if n_blocks > 0:
        for k in ("_s1", "_s2"):
            flat = pa.array(np.ascontiguousarray(res[k], dtype=np.float64).ravel())
            cols[k] = pa.FixedSizeListArray.from_arrays(flat, n_blocks)
    return pa.table(cols)


def write_part(directory: Path, part: pa.Table) -> None:
    d = directory / "results.parquet"
    d.mkdir(parents=True, exist_ok=True)
    name = f"part-{int(part.column('combo')[0].as_py()):09d}-{uuid.uuid4().hex[:8]}.parquet"
    with atomic_path(d / name) as tmp:  # a part is visible whole or not at all
        pq.write_table(part, tmp)


def read_parts(directory: Path) -> pa.Table | None:
    files = sorted((directory / "results.parquet").glob("part-*.parquet"))
    if not files:
        return None
    return by_combo([pq.read_table(f) for f in files])


def by_combo(parts: list[pa.Table]) -> pa.Table:
    """Parts concatenated, ordered by combination, each combination once."""
    t = pa.concat_tables(parts, promote_options="permissive")
    combo = t.column("combo").to_numpy()
    _, first = np.unique(combo, return_index=True)  # sorted by combo; a repeat is dropped
    return t.take(pa.array(first))


def split_moments(full: pa.Table, n_blocks: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """(table without the block sums, s1[N, B], s2[N, B])."""
    if "_s1" not in full.column_names:
        e = np.empty((full.num_rows, 0))
        return full, e, e
    s1, s2 = (
        full.column(k).combine_chunks().flatten().to_numpy().reshape(-1, n_blocks)
        for k in ("_s1", "_s2")
    )
    return full.drop_columns(["_s1", "_s2"]), s1, s2


def overfitting(res: SweepResult, s1: np.ndarray, s2: np.ndarray, best_returns: np.ndarray,
                n: int, n_blocks: int, ppy: float) -> None:  # fmt: skip
    """Deflated Sharpe of the best row over every trial (each row is one trial: grid,
    random and optuna alike) and PBO by CSCV from the rows' per-block return sums."""
    from algo_trade.sweep.overfit import deflated_sharpe, pbo_cscv

    if len(res.results) == 0:
        return
    # every trial's per-event Sharpe (the paper's unit): the annualized one without its factor
    sharpe = res.results["sharpe"].to_numpy(dtype=np.float64)
    trial_sr = sharpe / np.sqrt(ppy) if ppy > 0 else np.full(len(sharpe), np.nan)
    d = deflated_sharpe(best_returns, trial_sr)
    res.dsr = {"dsr": d.dsr, "sharpe_per_bar": d.sr, "expected_max_sharpe_per_bar": d.sr0,
               "trials": len(res.results), "bars": d.n_obs, "skew": d.skew,
               "kurtosis": d.kurtosis}  # fmt: skip
    if len(res.results) >= 2 and n_blocks >= 2 and n_blocks % 2 == 0 and n >= 2 * n_blocks:
        # event t of the range is in block t * n_blocks // n (sweep.kernels.block_sums_nb)
        cnt = np.bincount(np.arange(n, dtype=np.int64) * n_blocks // n, minlength=n_blocks)
        p = pbo_cscv(moments=(cnt.astype(np.float64), s1.T, s2.T))
        res.pbo = {"pbo": p.pbo, "splits": p.n_splits, "blocks": p.n_blocks,
                   "oos_vs_is_slope": p.degradation}  # fmt: skip


def remove_sweep(home: str | Path, sweep_id: str) -> None:
    shutil.rmtree(Path(home) / "sweeps" / sweep_id, ignore_errors=True)
