"""The one place where run statistics are computed: backtest, sweep and walk-forward all
call `compute`, so a sweep row and ``backtest(...).stats`` are the same numbers.

A metric is a small class with a name and one ``compute(run)`` method reading a `Run`
(the accumulators a kernel leaves in its state, plus the equity curve). Add your own:

>>> from algo_trade.engine import metrics
>>> class TradesPerDay(metrics.Metric):
...     name = "trades_per_day"
...     def compute(self, run):
...         return run.trades / run.days if run.days > 0 else float("nan")
>>> metrics.register(TradesPerDay())
>>> "trades_per_day" in metrics.registry()
True

Registered metrics appear in every `backtest` stats Series and every sweep row, and a
sweep can rank by them (``metric="trades_per_day"``). Definitions and the annualization
rule: docs/engine.md ("Stats definitions").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from algo_trade.engine import kernels as K
from algo_trade.errors import ConfigError

NS_PER_YEAR = 365 * 86_400 * 10**9  # crypto trades every day: a year is 365 days of events
NS_PER_DAY = 86_400e9


@dataclass(frozen=True)
class Run:
    """What a metric reads: one run's accumulators (from the kernel's state) and its curve.

    Returns are per event, r_i = equity_i / equity_{i-1} - 1 with equity_{-1} = init_cash.
    Annualization uses the data's real span: span = (ts_last - ts_first) * n / (n - 1),
    years = span / 365 days, periods_per_year = n / years.
    """

    events: int
    span_ns: float
    init_cash: float
    final_equity: float
    sum_r: float  # sum of per-event returns
    sum_r2: float  # sum of their squares
    sum_dn2: float  # sum of squared negative returns
    max_dd: float  # positive fraction of the running peak (peak starts at init_cash)
    max_dd_ns: float  # longest time from a peak to the event before a new peak (or the end)
    exposed: int  # events with an open position
    orders: int
    trades: int
    wins: int
    gross_win: float
    gross_loss: float
    sum_trade_return: float
    turnover_notional: float
    fees: float
    funding_paid: float
    liquidations: int
    dust_orders: int
    start_ns: int | None = None
    end_ns: int | None = None
    equity: np.ndarray | None = None  # per event (user metrics may read it)

    @classmethod
    def from_state(cls, ts: np.ndarray, equity: np.ndarray, st: np.ndarray, init_cash: float,
                   ts_unit_ns: int = 1) -> Run:  # fmt: skip
        """From a kernel's final state vector; ts in units of ts_unit_ns nanoseconds."""
        n = len(equity)
        span = float(ts[-1] - ts[0]) * ts_unit_ns * n / (n - 1) if n > 1 else 0.0
        s = K.state_record(st)
        return cls(
            events=n, span_ns=span, init_cash=float(init_cash),
            final_equity=float(equity[-1]) if n else float(init_cash),
            sum_r=float(s["sum_r"]), sum_r2=float(s["sum_r2"]), sum_dn2=float(s["sum_dn2"]),
            max_dd=float(s["max_dd"]), max_dd_ns=float(s["max_dd_ns"]) * ts_unit_ns,
            exposed=int(s["exposed"]), orders=int(s["nfill"]), trades=int(s["ntrade"]),
            wins=int(s["wins"]), gross_win=float(s["gross_win"]), gross_loss=float(s["gross_loss"]),
            sum_trade_return=float(s["sum_tret"]), turnover_notional=float(s["turnover"]),
            fees=float(s["fees"]), funding_paid=float(s["fund"]), liquidations=int(s["nliq"]),
            dust_orders=int(s["ndust"]),
            start_ns=int(ts[0]) * ts_unit_ns if n else None,
            end_ns=int(ts[-1]) * ts_unit_ns if n else None, equity=equity,
        )  # fmt: skip

    @classmethod
    def from_equity(
        cls, ts_ns: np.ndarray, equity: np.ndarray, init_cash: float, **counts: Any
    ) -> Run:
        """From an equity curve alone (e.g. walk-forward's stitched out-of-sample curve):
        the same return and drawdown definitions as the kernels; counts (orders, trades,
        fees, ...) default to 0 when not given."""
        eq = np.asarray(equity, dtype=np.float64)
        n = len(eq)
        prev = np.r_[init_cash, eq[:-1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(prev > 0, eq / prev - 1.0, 0.0)
        peak = np.maximum.accumulate(np.r_[init_cash, eq])[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(peak > 0, 1.0 - eq / peak, 1.0)
        new_peak = eq >= peak
        peak_ts = np.maximum.accumulate(np.where(new_peak, ts_ns, ts_ns[0] if n else 0))
        span = float(ts_ns[-1] - ts_ns[0]) * n / (n - 1) if n > 1 else 0.0
        base = dict(orders=0, trades=0, wins=0, gross_win=0.0, gross_loss=0.0, sum_trade_return=0.0,
                    turnover_notional=0.0, fees=0.0, funding_paid=0.0, liquidations=0, dust_orders=0,
                    exposed=0)  # fmt: skip
        base.update(counts)
        return cls(
            events=n, span_ns=span, init_cash=float(init_cash),
            final_equity=float(eq[-1]) if n else float(init_cash), sum_r=float(r.sum()),
            sum_r2=float((r * r).sum()), sum_dn2=float((np.minimum(r, 0.0) ** 2).sum()),
            max_dd=float(dd.max()) if n else 0.0,
            max_dd_ns=float((ts_ns - peak_ts).max()) if n else 0.0,
            start_ns=int(ts_ns[0]) if n else None, end_ns=int(ts_ns[-1]) if n else None,
            equity=eq, **base,
        )  # fmt: skip

    # --- derived figures, shared by the built-in metrics
    @property
    def years(self) -> float:
        return self.span_ns / NS_PER_YEAR

    @property
    def days(self) -> float:
        return self.span_ns / NS_PER_DAY

    @property
    def periods_per_year(self) -> float:
        y = self.years
        return self.events / y if y > 0 else 0.0

    @property
    def mean(self) -> float:
        return self.sum_r / self.events if self.events else 0.0

    @property
    def std(self) -> float:
        n = self.events
        m = self.mean
        return math.sqrt(max(self.sum_r2 - n * m * m, 0.0) / (n - 1)) if n > 1 else 0.0

    @property
    def downside(self) -> float:
        return math.sqrt(self.sum_dn2 / self.events) if self.events else 0.0

    @property
    def cagr(self) -> float:
        final, years = self.final_equity, self.years
        if final <= 0:
            return -1.0
        if years <= 0:
            return 0.0
        try:
            return (final / self.init_cash) ** (1.0 / years) - 1.0
        except OverflowError:  # a short run's return compounded over a year
            return math.inf


class Metric:
    """One statistic of a run. Subclass, set `name` (and `lower_is_better` when smaller is
    better, which sweeps use to rank), and implement `compute`."""

    name: str = ""
    lower_is_better: bool = False
    integer: bool = False  # a count (stored as int64 in sweep results)
    doc: str = ""

    def compute(self, run: Run) -> float:
        raise NotImplementedError


class _Fn(Metric):
    def __init__(
        self, name: str, fn: Any, lower: bool = False, integer: bool = False, doc: str = ""
    ):
        self.name, self._fn, self.lower_is_better, self.integer, self.doc = (
            name,
            fn,
            lower,
            integer,
            doc,
        )

    def compute(self, run: Run) -> float:
        return self._fn(run)


def _sharpe(r: Run) -> float:
    s = r.std
    return r.mean / s * math.sqrt(r.periods_per_year) if s > 0 else 0.0


def _sortino(r: Run) -> float:
    d = r.downside
    return r.mean / d * math.sqrt(r.periods_per_year) if d > 0 else 0.0


def _calmar(r: Run) -> float:
    c = r.cagr
    return c / r.max_dd if r.max_dd > 0 and math.isfinite(c) else math.nan


def _profit_factor(r: Run) -> float:
    if r.gross_loss > 0:
        return r.gross_win / r.gross_loss
    return math.inf if r.gross_win > 0 else math.nan


_BUILTIN: list[Metric] = [
    _Fn("final_equity", lambda r: r.final_equity, doc="last equity"),
    _Fn("total_return", lambda r: r.final_equity / r.init_cash - 1.0, doc="final / init_cash - 1"),
    _Fn("cagr", lambda r: r.cagr, doc="(final / init_cash)^(1 / years) - 1"),
    _Fn("volatility", lambda r: r.std * math.sqrt(r.periods_per_year), True, doc="std(r) x sqrt(ppy)"),
    _Fn("sharpe", _sharpe, doc="mean(r) / std(r) x sqrt(ppy), risk-free 0"),
    _Fn("sortino", _sortino, doc="mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(ppy)"),
    _Fn("max_drawdown", lambda r: r.max_dd, True, doc="max(1 - equity / running peak)"),
    _Fn("max_drawdown_days", lambda r: r.max_dd_ns / NS_PER_DAY, True, doc="longest drawdown, days"),
    _Fn("calmar", _calmar, doc="cagr / max_drawdown"),
    _Fn("orders", lambda r: r.orders, integer=True, doc="fills, liquidations included"),
    _Fn("trades", lambda r: r.trades, integer=True, doc="closed round trips"),
    _Fn("win_rate", lambda r: r.wins / r.trades if r.trades else math.nan, doc="winning round trips"),
    _Fn("profit_factor", _profit_factor, doc="gross wins / gross losses"),
    _Fn("avg_trade", lambda r: (r.gross_win - r.gross_loss) / r.trades if r.trades else math.nan),
    _Fn("avg_trade_return", lambda r: r.sum_trade_return / r.trades if r.trades else math.nan),
    _Fn("exposure", lambda r: r.exposed / r.events if r.events else 0.0, doc="events with a position"),
    _Fn("turnover", lambda r: r.turnover_notional / r.init_cash, True, doc="traded notional / init_cash"),
    _Fn("fees", lambda r: r.fees, True, doc="fees paid"),
    _Fn("funding_pnl", lambda r: -r.funding_paid, doc="funding received - paid"),
    _Fn("liquidations", lambda r: r.liquidations, True, integer=True),
    _Fn("dust_orders", lambda r: r.dust_orders, True, integer=True, doc="orders the dust rule did not execute"),
]  # fmt: skip
_REGISTRY: dict[str, Metric] = {m.name: m for m in _BUILTIN}


def register(metric: Metric) -> Metric:
    """Add a metric to every backtest's stats and every sweep row (same name: replaced)."""
    if not isinstance(metric, Metric) or not metric.name or not metric.name.isidentifier():
        raise ConfigError("a metric is a Metric instance with a name that is an identifier")
    if metric.name in ("start", "end", "events", "days", "init_cash"):
        raise ConfigError(f"metric name {metric.name!r} is taken by a run's span fields")
    _REGISTRY[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    """Remove a user metric (built-ins stay)."""
    if name in {m.name for m in _BUILTIN}:
        raise ConfigError(f"{name!r} is a built-in metric")
    _REGISTRY.pop(name, None)


def registry() -> dict[str, Metric]:
    return dict(_REGISTRY)


def lower_is_better(name: str) -> bool:
    m = _REGISTRY.get(name)
    return bool(m and m.lower_is_better)


def integer_metrics() -> tuple[str, ...]:
    return tuple(n for n, m in _REGISTRY.items() if m.integer)


def compute(run: Run) -> dict[str, float]:
    """Every registered metric of `run`, in registration order."""
    out: dict[str, float] = {}
    for name, m in _REGISTRY.items():
        v = m.compute(run)
        out[name] = int(v) if m.integer else float(v)
    return out
