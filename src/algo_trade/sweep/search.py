"""How a sweep picks its trials: the whole grid, a random sample of it, or Optuna (TPE).

- ``grid``: every combination of the axes kept by ``where``.
- ``random``: ``trials`` distinct combinations of that grid, drawn with ``seed``.
- ``optuna``: ``trials`` trials proposed by Optuna's TPE sampler (seeded) within the
  axes' bounds: a range ``5:50[:5]`` is an integer (or float) interval, ``log:1:1000:7``
  a log-scaled interval, a list ``5,10,20`` a categorical choice, one value stays fixed.
  A proposal that ``where`` or the strategy's own rule (e.g. fast < slow) refuses is
  not run and not counted as a trial; Optuna is told it failed and proposes again.

Each trial gets a combo id (0, 1, ...). Results are written per batch, so a killed sweep
resumes: grid and random trials are fixed by the spec, and the ones already stored are
skipped; an Optuna study is rebuilt from the stored trials (each added with its value)
and asked for the remaining ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algo_trade.errors import ConfigError
from algo_trade.strategies import Strategy
from algo_trade.sweep.grid import Constraint, Grid, parse_axis

SEARCHES = ("grid", "random", "optuna")


def check_params(strat: Strategy, names: Sequence[str]) -> None:
    unknown = [p for p in names if p not in strat.params]
    if unknown:
        valid = ", ".join(strat.params) or "none"
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for strategy {strat.name!r}: it takes {valid}"
        )


def resolve_all(strat: Strategy, combos: pd.DataFrame) -> pd.DataFrame:
    """Every combination checked by the strategy's own rules (types, ranges, cross rules),
    with its defaults filled in: the grid's columns become the strategy's parameters."""
    rows = combos.to_dict("records")
    out = [strat.resolve(r) for r in rows] if rows else []
    return pd.DataFrame(out, columns=list(strat.params))


def grid_trials(strat: Strategy, axes: Mapping[str, object], where: str | None, search: str,
                trials: int | None, seed: int) -> pd.DataFrame:  # fmt: skip
    """The trials of a grid or random search, one row each, every parameter a column."""
    check_params(strat, list(axes))
    if not axes:  # no axis: the defaults, once
        return resolve_all(strat, pd.DataFrame([{}]))
    if search == "random" and trials is None:
        raise ConfigError("a random search needs a number of trials (--trials N)")
    g = Grid(dict(axes), where=where, random=trials if search == "random" else None, seed=seed)
    if g.constraint is not None and not g.constraint.names:
        raise ConfigError(
            f"--where {where!r} names no parameter: write a condition over {', '.join(axes)}"
        )
    combos = g.combinations()
    try:
        return resolve_all(strat, combos)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (a combination of the grid; narrow it or add --where)") from None


# ----------------------------------------------------------------------------- optuna
@dataclass
class _Axis:
    name: str
    kind: str  # "int" | "float" | "cat" | "fixed"
    lo: Any = None
    hi: Any = None
    step: Any = None
    log: bool = False
    values: tuple = ()


def _axis(name: str, spec: object) -> _Axis:
    if isinstance(spec, str) and ":" in spec:
        s = spec.strip()
        if s.startswith("log:"):
            vals = parse_axis(s)
            lo, hi = min(vals), max(vals)
            if lo == hi:
                return _Axis(name, "fixed", values=(lo,))
            kind = "int" if all(isinstance(v, int) for v in vals) else "float"
            return _Axis(name, kind, lo, hi, None, True)
        parts = s.split(":")
        vals = parse_axis(s)
        lo, hi = vals[0], vals[-1]
        if lo == hi:
            return _Axis(name, "fixed", values=(lo,))
        if all(isinstance(v, int) for v in vals):
            step = int(parts[2]) if len(parts) == 3 else 1
            return _Axis(name, "int", lo, hi, step)
        step = float(parts[2]) if len(parts) == 3 else None
        return _Axis(name, "float", float(lo), float(hi), step)
    vals = tuple(parse_axis(spec))
    if len(vals) == 1:
        return _Axis(name, "fixed", values=vals)
    return _Axis(name, "cat", values=vals)


class OptunaSearch:
    """Asks an Optuna TPE study for trials within the axes' bounds; resumable from stored rows."""

    def __init__(self, strat: Strategy, axes: Mapping[str, object], where: str | None, seed: int,
                 minimize: bool) -> None:  # fmt: skip
        try:
            import optuna
        except ImportError:  # pragma: no cover - a dependency
            raise ConfigError(
                "the optuna search needs the optuna package: pip install optuna"
            ) from None
        check_params(strat, list(axes))
        self.optuna = optuna
        self.strat = strat
        self.axes = [_axis(n, s) for n, s in axes.items()]
        if not any(a.kind != "fixed" for a in self.axes):
            raise ConfigError(
                "an optuna search needs bounds: give at least one parameter a range or list, "
                "e.g. --grid fast=5:50 --grid slow=20:200"
            )
        self.constraint = Constraint.parse(where) if where and where.strip() else None
        if self.constraint is not None:
            unknown = self.constraint.names - set(axes)
            if unknown or not self.constraint.names:
                raise ConfigError(
                    f"--where {where!r} must be a condition over the parameters {', '.join(axes)}"
                )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            direction="minimize" if minimize else "maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        self.dists = {a.name: self._dist(a) for a in self.axes if a.kind != "fixed"}
        self.refused = 0  # proposals not run (where / the strategy's rule said no)

    def _dist(self, a: _Axis):
        d = self.optuna.distributions
        if a.kind == "int":
            return d.IntDistribution(
                int(a.lo), int(a.hi), log=a.log, step=1 if a.log else int(a.step)
            )
        if a.kind == "float":
            return d.FloatDistribution(
                float(a.lo), float(a.hi), log=a.log, step=None if a.log else a.step
            )
        return d.CategoricalDistribution(list(a.values))

    def resume(self, done: pd.DataFrame, metric: str) -> None:
        """Add the stored trials (params and value) to the study."""
        for row in done.to_dict("records"):
            params = {n: _plain(row[n]) for n in self.dists}
            v = float(row[metric])
            self.study.add_trial(
                self.optuna.trial.create_trial(
                    params=params,
                    distributions=self.dists,
                    value=v if math.isfinite(v) else None,
                    state=self.optuna.trial.TrialState.COMPLETE
                    if math.isfinite(v)
                    else self.optuna.trial.TrialState.FAIL,
                )  # fmt: skip
            )

    def ask(self, k: int) -> list[tuple[Any, dict]]:
        """Up to k (trial, resolved params) the strategy accepts."""
        out: list[tuple[Any, dict]] = []
        attempts = 0
        while len(out) < k and attempts < 200 * k:
            attempts += 1
            trial = self.study.ask(self.dists)
            p = {a.name: a.values[0] for a in self.axes if a.kind == "fixed"}
            p.update(trial.params)
            ok = True
            if self.constraint is not None:
                cols = {n: np.asarray([v]) for n, v in p.items()}
                ok = bool(self.constraint.mask(cols, 1)[0])
            if ok:
                try:
                    p = self.strat.resolve(p)
                except ConfigError:
                    ok = False
            if not ok:
                self.refused += 1
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                continue
            out.append((trial, p))
        if not out:
            raise ConfigError(
                "the optuna search found no parameters that --where and the strategy accept"
            )
        return out

    def tell(self, trial: Any, value: float) -> None:
        if math.isfinite(value):
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
