"""`backtest`: run a strategy over bars or L2 books and get a `Result`.

>>> import algo_trade
>>> res = algo_trade.backtest(df, "sma_cross", params={"fast": 10, "slow": 50},
...                           fee_taker_bps=5, fill_at="close")  # doctest: +SKIP
>>> res.stats["sharpe"], res.trades.head()  # doctest: +SKIP

The pandas-facing side: data to arrays, the strategy's signal, one kernel call
(`engine/kernels.py`), stats, and lazily built DataFrames. Semantics: docs/engine.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trade.data.market import MarketData, bad_bar_message
from algo_trade.engine import kernels as K
from algo_trade.engine import metrics as M
from algo_trade.errors import ConfigError, DataError
from algo_trade.strategies import Inputs, Strategy
from algo_trade.strategies import get as get_strategy
from algo_trade.values import json_safe, parse_bool

NS_PER_YEAR = M.NS_PER_YEAR
MODES = ("bars", "book", "events")
FILL_AT = ("next", "close")
OVERFLOW = {"penalty": K.OVERFLOW_PENALTY, "unfilled": K.OVERFLOW_UNFILLED}


@dataclass(frozen=True)
class Settings:
    """Backtest settings; the same names are the CLI's options (``--fee-taker-bps`` ...)."""

    init_cash: float = 10_000.0
    fee_taker_bps: float = 5.0  # every engine order is a market order: taker fee
    fee_maker_bps: float = 2.0  # recorded for reports; no maker (limit) orders yet
    fill_at: str = (
        "next"  # "next": next bar's open / next snapshot after latency; "close": bars only
    )
    slippage_bps: float = 0.0  # bars: fill price moved against the order
    slippage_range: float = 0.0  # bars: plus this fraction of the bar's high-low range
    leverage: float = 1.0  # target 1 means notional = leverage x equity
    maintenance_margin: float = 0.005  # fraction of notional; 0 disables liquidation
    liquidation_fee_bps: float = 20.0  # on a liquidation's notional
    latency_ms: float = 0.0  # book mode: an order reaches the book this much later
    rebalance: bool = False  # trade back to the target fraction at every event
    book_overflow: str = "penalty"  # an order deeper than the book: "penalty" | "unfilled"
    overflow_penalty_bps: float = 10.0  # beyond the worst displayed level

    @classmethod
    def build(cls, **given: Any) -> Settings:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in given if k not in names]
        if unknown:
            raise ConfigError(
                f"unknown setting {unknown[0]!r}: valid settings are {', '.join(names)}"
            )
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in given or given[f.name] is None:
                continue
            v = given[f.name]
            typ = type(f.default)
            try:
                if typ is bool:
                    v = parse_bool(v)
                elif typ is float:
                    if isinstance(v, bool):
                        raise ValueError
                    v = float(v)
                    if not math.isfinite(v):
                        raise ValueError
                else:
                    v = str(v)
            except (TypeError, ValueError):
                raise ConfigError(f"setting {f.name} must be a {typ.__name__}, got {v!r}") from None
            values[f.name] = v
        s = cls(**values)
        s.check()
        return s

    def check(self) -> None:
        if self.init_cash <= 0:
            raise ConfigError(f"init_cash must be positive, got {self.init_cash}")
        if self.leverage <= 0:
            raise ConfigError(f"leverage must be > 0 (1 = no leverage), got {self.leverage}")
        if self.fill_at not in FILL_AT:
            raise ConfigError(f"fill_at must be one of {', '.join(FILL_AT)}, got {self.fill_at!r}")
        if self.book_overflow not in OVERFLOW:
            raise ConfigError(
                f"book_overflow must be one of {', '.join(OVERFLOW)}, got {self.book_overflow!r}"
            )
        for name in ("fee_taker_bps", "fee_maker_bps", "slippage_bps", "slippage_range",
                     "maintenance_margin", "liquidation_fee_bps", "latency_ms", "overflow_penalty_bps"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        # upper bounds: beyond them a value is a typo, and ns/int64 arithmetic would overflow
        for name, top in (("latency_ms", 86_400_000.0), ("leverage", 1_000.0),
                          ("init_cash", 1e15), ("fee_taker_bps", 10_000.0),
                          ("fee_maker_bps", 10_000.0), ("slippage_bps", 10_000.0),
                          ("slippage_range", 10_000.0), ("liquidation_fee_bps", 10_000.0),
                          ("overflow_penalty_bps", 10_000.0)):  # fmt: skip
            if getattr(self, name) > top:
                raise ConfigError(f"{name} must be at most {top:g}, got {getattr(self, name):g}")
        if self.maintenance_margin >= 1:
            raise ConfigError(
                f"maintenance_margin is a fraction of notional (e.g. 0.005), got {self.maintenance_margin}"
            )
        if self.maintenance_margin > 0 and self.leverage * self.maintenance_margin >= 1:
            raise ConfigError(
                f"leverage {self.leverage} with maintenance_margin {self.maintenance_margin} is liquidated "
                f"at once: use leverage < {1 / self.maintenance_margin:g}"
            )
        cost = (self.fee_taker_bps + self.slippage_bps) * 1e-4
        if self.leverage * cost >= 1:
            raise ConfigError(
                f"leverage x (fee + slippage) = {self.leverage * cost:g} must be below 1; lower the fees or leverage"
            )


# ----------------------------------------------------------------------------- result
_KINDS = np.array(["taker", "liquidation", "funding", "miss", "dust"], dtype=object)


@dataclass
class Result:
    """A backtest's outcome. ``stats`` is a Series; the DataFrames are built on first use.

    equity: equity, cash, position_value, drawdown (a positive fraction of the peak) per event.
    positions: price (the mark), target, qty, avg_entry (NaN when flat), realized_pnl,
    unrealized_pnl, fees, funding (cumulative; funding > 0 = paid) per event.
    trades: closed round trips, indexed by entry time. fills: every order fill (and missed
    book order). funding: every funding payment.
    """

    stats: pd.Series
    strategy: str
    params: dict[str, Any]
    settings: Settings
    mode: str
    exchange: str = ""
    symbol: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _ledger: np.ndarray = field(default_factory=lambda: np.empty(0, K.LEDGER_DTYPE), repr=False)
    _n_trades: int = 0
    _ts_unit_ns: int = 1

    @cached_property
    def _replayed(self) -> tuple[np.ndarray, np.ndarray]:
        """(state after each ledger row, round trips), rebuilt from the ledger on first use."""
        return K.replay_ledger_nb(self._ledger, self.settings.init_cash, self._n_trades)

    def _index(self, idx: np.ndarray | None = None) -> pd.DatetimeIndex:
        ts = self._arrays["ts"] if idx is None else self._arrays["ts"][idx]
        if self._ts_unit_ns != 1:
            ts = ts * self._ts_unit_ns
        return pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True), name="ts")

    @cached_property
    def _last_row(self) -> np.ndarray:
        """Per event, the last ledger row at or before it (-1: none yet)."""
        n = len(self._arrays["ts"])
        idx = np.ascontiguousarray(self._ledger["idx"])
        return np.searchsorted(idx, np.arange(n, dtype=np.int64), side="right") - 1

    def _per_event(self, col: str, before: float) -> np.ndarray:
        """A field of the account after each ledger row (AFTER_DTYPE) as of the end of each
        event (it steps at ledger rows)."""
        vals = np.append(self._replayed[0][col], before)  # row -1 picks `before`
        return vals[self._last_row]

    @cached_property
    def equity(self) -> pd.DataFrame:
        eq = self._arrays["equity"]
        cash = self._per_event("cash", self.settings.init_cash)
        peak = np.maximum.accumulate(np.maximum(eq, self.settings.init_cash))
        return pd.DataFrame(
            {"equity": eq, "cash": cash, "position_value": eq - cash, "drawdown": 1.0 - eq / peak},
            index=self._index(),
            copy=False,  # fresh arrays: no need for pandas to copy them into one block
        )

    @cached_property
    def positions(self) -> pd.DataFrame:
        a = self._arrays
        qty = self._per_event("pos", 0.0)
        avg = self._per_event("avg", np.nan)
        return pd.DataFrame(
            {
                "price": a["mark"],
                "target": a["target"].astype(np.float64),
                "qty": qty,
                "avg_entry": avg,
                "realized_pnl": self._per_event("real", 0.0),
                "unrealized_pnl": np.where(qty != 0.0, qty * (a["mark"] - avg), 0.0),
                "fees": self._per_event("fees", 0.0),
                "funding": self._per_event("fund", 0.0),
            },
            index=self._index(),
            copy=False,
        )

    def _ledger_frame(self, kinds: tuple[int, ...]) -> pd.DataFrame:
        keep = np.isin(self._ledger["kind"], kinds)
        led = self._ledger[keep]
        after = self._replayed[0][keep]
        return pd.DataFrame(
            {
                "kind": _KINDS[led["kind"]],
                "qty": led["qty"],
                "price": led["px"],
                "fee": led["fee"],
                "aux": led["aux"],
                "position_after": after["pos"],
                "cash_after": after["cash"],
            },
            index=self._index(led["idx"]),
        )

    @cached_property
    def fills(self) -> pd.DataFrame:
        """Fills (kind taker or liquidation), missed book orders (kind miss, qty 0) and
        orders the dust rule did not execute (kind dust, qty 0; docs/engine.md): side, qty
        (absolute), price, notional, fee, unfilled, position_after, cash_after."""
        df = self._ledger_frame((K.KIND_TAKER, K.KIND_LIQUIDATION, K.KIND_MISS, K.KIND_DUST))
        signed = df["qty"].to_numpy()
        aux = df.pop("aux").to_numpy()
        df.insert(1, "side", np.sign(np.where(signed != 0, signed, aux)).astype(np.int8))
        df["qty"] = np.abs(signed)
        df.insert(4, "notional", df["qty"] * df["price"].fillna(0.0))
        df.insert(6, "unfilled", np.abs(aux))
        return df

    @cached_property
    def funding(self) -> pd.DataFrame:
        """Funding payments: rate, mark_px, payment (> 0 paid by us), position, cash_after."""
        df = self._ledger_frame((K.KIND_FUNDING,))
        return pd.DataFrame(
            {"rate": df["aux"], "mark_px": df["price"], "payment": df["fee"],
             "position": df["position_after"], "cash_after": df["cash_after"]},
            index=df.index,
        )  # fmt: skip

    @property
    def orders(self) -> pd.DataFrame:
        """Same as `fills` (every order in the engine is a market order, filled at once)."""
        return self.fills

    @cached_property
    def trades(self) -> pd.DataFrame:
        t = self._replayed[1]
        entry = t["entry_idx"]
        exit_ = t["exit_idx"]
        exit_ts = self._index(exit_)
        df = pd.DataFrame(
            {
                "exit_time": exit_ts,
                "side": t["side"].astype(np.int8),
                "qty": t["qty"],
                "entry_px": t["entry_px"],
                "exit_px": t["exit_px"],
                "pnl": t["pnl"],
                "return": t["ret"],
                "fees": t["fees"],
                "funding": t["funding"],
                "liquidated": t["liquidated"],
            },
            index=self._index(entry).rename("entry_time"),
        )
        df.insert(1, "duration", df["exit_time"] - df.index)
        return df

    def plot(self) -> Any:
        """A plotly Figure: price and trades, equity, drawdown, position, funding."""
        from algo_trade.report.backtest import figure

        return figure(self)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (works offline) and return its path."""
        from algo_trade.report.backtest import write_html

        out = write_html(self, path)
        return Path(out) if out is not None else Path(path)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly: strategy, params, settings and stats."""
        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "params": self.params,
            "settings": dataclasses.asdict(self.settings),
            "stats": {k: json_safe(v) for k, v in self.stats.items()},
            "timings": self.timings,
        }

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"Result({self.strategy} {self.params}, {self.mode}, final_equity={s['final_equity']:.2f}, "
            f"total_return={s['total_return']:.4f}, sharpe={s['sharpe']:.3f}, trades={int(s['trades'])})"
        )


# ----------------------------------------------------------------------------- run
@contextmanager
def _timed(timings: dict[str, float], name: str, stages: Any) -> Iterator[None]:
    t0 = time.perf_counter()
    if stages is not None:
        with stages.stage(name):
            yield
    else:
        yield
    timings[name] = round(time.perf_counter() - t0, 6)


def as_market(data: Any) -> MarketData:
    """MarketData from what `backtest` and `sweep` accept (one convention for both): bars
    as a DataFrame (`MarketData.from_bars`: the columns docs/engine.md lists, unknown
    funding-like columns refused), or `algo_trade.load(...)` output."""
    if isinstance(data, MarketData):
        if len(data) == 0:
            raise DataError("no data: the market data has no events in its range")
        return data
    if isinstance(data, pd.DataFrame):
        return MarketData.from_bars(data)
    raise DataError(
        "data must be a DataFrame of bars or MarketData from algo_trade.load(...), "
        f"got {type(data).__name__}"
    )


def backtest(
    data: pd.DataFrame | MarketData,
    strategy: str | Strategy | Callable[..., np.ndarray],
    params: Mapping[str, Any] | None = None,
    *,
    mode: str | None = None,
    stages: Any = None,
    **settings: Any,
) -> Result:
    """Backtest `strategy` on `data` with `params`; settings as in `Settings`.

    data: bars (DataFrame with open/high/low/close[/volume] and a UTC DatetimeIndex) or
    `algo_trade.load(...)` output. strategy: a registered name (see
    `algo_trade.strategies.registry()`), ``module:function``, or a function
    ``fn(data: Inputs, **params) -> target array``. mode: "bars" | "book" (default: the
    data's own). stages: an `algo_trade.profiling.Stages` to record per-stage time/memory.

    >>> res = backtest(df, "sma_cross", params={"fast": 10, "slow": 50}, fee_taker_bps=5,
    ...                fill_at="close")  # doctest: +SKIP
    """
    if mode == "events":
        return _events(data, strategy, params, settings)
    cfg = Settings.build(**settings)
    strat = get_strategy(strategy)
    p = strat.resolve(params)
    md = as_market(data)
    mode = check_mode(md, strat, cfg, mode)
    timings: dict[str, float] = {}
    n = len(md)
    ts = md.ts
    with _timed(timings, "signals", stages):
        target = signal(strat, strategy_inputs(md, mode), p, n)
    equity = np.empty(n)
    with _timed(timings, "simulate", stages):
        st, ledger = simulate(md, mode, target, cfg, equity)
    with _timed(timings, "metrics", stages):
        stats = compute_stats(ts, equity, st, cfg, md.ts_unit_ns)
    cols = md.columns
    mark = cols["close"] if "close" in cols else _mid(cols)
    arrays = {"ts": ts, "mark": mark, "target": target, "equity": equity}
    return Result(stats, strat.name, p, cfg, mode, md.exchange, md.symbol, timings, arrays, ledger,
                  int(st[K.S_NTRADE]), md.ts_unit_ns)  # fmt: skip


def check_mode(md: MarketData, strat: Strategy, cfg: Settings, mode: str | None) -> str:
    """The run's mode (default: the data's own), refused where data or settings cannot serve it."""
    mode = mode or md.mode
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "book" and "bid_px" not in md:
        raise ConfigError("mode 'book' needs order books: load with kinds including 'book'")
    if mode == "book" and cfg.fill_at == "close":
        raise ConfigError(
            "fill_at='close' exists for bars only; book mode fills at the next snapshot"
        )
    if "book" in strat.needs and "bid_sz" not in md:
        raise ConfigError(
            f"strategy {strat.name!r} needs order books: load with kinds including 'book'"
        )
    return mode


def strategy_inputs(md: MarketData, mode: str, cache: Any = None) -> Inputs:
    """What a strategy function sees; `cache` (a sweep's shared indicator cache) makes
    indicators computed for one run reusable by the next on the same data."""
    return Inputs({"ts": md.ts, **md.columns}, mode, ts_unit_ns=md.ts_unit_ns, cache=cache)


def signal(strat: Strategy, inputs: Inputs, p: Mapping[str, Any], n: int) -> np.ndarray:
    """The strategy's target per event, checked for shape (int8 or float64)."""
    target = _as_target(strat.fn(inputs, **p))
    if target.shape != (n,):
        raise DataError(
            f"strategy {strat.name!r} returned shape {target.shape}, expected ({n},): one target per event"
        )
    return target


def simulate(md: MarketData, mode: str, target: np.ndarray, cfg: Settings, equity: np.ndarray,
             lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One kernel call over events [lo, hi) (starting flat with init_cash; the target was
    computed on all the data, so indicators are warmed up on the events before lo).
    equity: float64[hi - lo], filled. Returns (final state, ledger rows used)."""
    hi = len(md) if hi is None else hi
    whole = lo == 0 and hi == len(md)
    ts = md.ts if whole else md.ts[lo:hi]
    cols = md.columns if whole else {k: v[lo:hi] for k, v in md.columns.items()}
    target = target if whole else target[lo:hi]
    no_funding = np.empty(0)
    f_rate = cols.get("fund_settle_rate", no_funding)
    f_mark = cols.get("fund_settle_mark", no_funding)
    n = hi - lo
    cap = 1024 + n // 32  # enough for most runs; an exact count costs a pass over target
    for _ in range(2):
        ledger = np.empty(cap, K.LEDGER_DTYPE)
        st = _simulate(mode, ts, cols, md.ts_unit_ns, target, f_rate, f_mark, cfg, equity, ledger)
        if not K.state_record(st)["full"]:
            break
        cap = K.ledger_capacity_nb(target, f_rate, cfg.rebalance) + K.ROWS_PER_EVENT
    if st[K.S_BAD_ROW] >= 0:
        raise DataError(
            bad_bar_message(ts, int(st[K.S_BAD_ROW]), int(st[K.S_BAD_COL]), md.ts_unit_ns)
        )
    # a view, not a copy: the unused capacity was never touched, so it holds no memory
    return st, ledger[: int(st[K.S_NLEDGER])]


def _events(data: Any, strategy: Any, params: Mapping[str, Any] | None, settings: dict) -> Any:
    """mode="events": `data` is an event source (`algo_trade.data.events.from_store`, or
    `engine.events.from_arrays`); an order-level strategy runs on it directly; a target
    strategy needs `targets_from=` MarketData (e.g. books loaded with `load`) and is traded
    with market orders by `follow_target` through the same matching."""
    from algo_trade.engine import events as ev
    from algo_trade.strategies import orderlevel

    targets_from = settings.pop("targets_from", None)
    if orderlevel.is_order_strategy(strategy):
        if targets_from is not None:
            raise ConfigError("targets_from is for target-position strategies only")
        return ev.run(data, strategy, params, **settings)
    if targets_from is None:
        raise ConfigError(
            f"strategy {strategy!r} returns target positions: in events mode pass targets_from=<MarketData> "
            "(its targets are traded with market orders), or use an order-level strategy such as grid_mm"
        )
    strat = get_strategy(strategy)
    p = strat.resolve(params)
    md = as_market(targets_from)
    target = signal(strat, strategy_inputs(md, md.mode), p, len(md)).astype(np.float64)
    target = np.clip(np.nan_to_num(target, nan=0.0), -1.0, 1.0)
    ts_ns = md.ts.astype(np.int64) * int(md.ts_unit_ns)
    lev = float(settings.get("leverage", 1.0))
    res = ev.run(data, "follow_target", {"scale": lev}, signal=(ts_ns, target), **settings)
    res.strategy, res.params = strat.name, p
    return res


def _as_target(raw: Any) -> np.ndarray:
    """Targets as int8 when they are whole (-1/0/1 signals: an eighth of the memory
    traffic; the kernels compile for both) or bool, else float64."""
    arr = np.asarray(raw)
    if arr.dtype == np.bool_:
        return arr.view(np.int8)
    if arr.dtype == np.int8:
        return arr
    return np.asarray(arr, dtype=np.float64)


def _simulate(mode: str, ts: np.ndarray, cols: Mapping[str, np.ndarray], ts_unit_ns: int,
              target: np.ndarray, f_rate: np.ndarray, f_mark: np.ndarray, cfg: Settings,
              equity: np.ndarray, ledger: np.ndarray) -> np.ndarray:  # fmt: skip
    ts, target, f_rate, f_mark = (
        _readonly(ts),
        _readonly(target),
        _readonly(f_rate),
        _readonly(f_mark),
    )
    if mode == "bars":
        o, h, lo, c = (_readonly(cols[k]) for k in ("open", "high", "low", "close"))
        limit, bad_col = K.first_bad_bar_nb(ts, c)  # a vectorized pass of its own
        return K.simulate_bars_nb(
            ts, o, h, lo, c, target, f_rate, f_mark,
            cfg.fill_at == "close", cfg.init_cash, cfg.fee_taker_bps, cfg.slippage_bps,
            cfg.slippage_range, cfg.leverage, cfg.maintenance_margin, cfg.liquidation_fee_bps,
            cfg.rebalance, equity, ledger, limit, bad_col,
        )  # fmt: skip
    bp, bs, ap, az = (_readonly(cols[k]) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    return K.simulate_book_nb(
        ts, bp, bs, ap, az, target, f_rate,
        f_mark, int(round(cfg.latency_ms * 1e6 / ts_unit_ns)), cfg.init_cash, cfg.fee_taker_bps,
        cfg.leverage, cfg.maintenance_margin, cfg.liquidation_fee_bps, cfg.rebalance,
        OVERFLOW[cfg.book_overflow], cfg.overflow_penalty_bps, equity, ledger,
    )  # fmt: skip


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles one kernel per array type, and read-only is part of
    it (pandas hands out read-only arrays, a store load writable ones): one flag, one
    compiled kernel."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _mid(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    b, a = cols["bid_px"][:, 0], cols["ask_px"][:, 0]
    return np.where(np.isnan(b), a, np.where(np.isnan(a), b, 0.5 * (a + b)))


def compute_stats(ts: np.ndarray, equity: np.ndarray, st: np.ndarray, cfg: Settings,
                  ts_unit_ns: int = 1) -> pd.Series:  # fmt: skip
    """The stats Series (definitions in docs/engine.md), from the kernel's final state, by
    the one stats layer (`engine.metrics`). ts: event times in units of ts_unit_ns ns."""
    return stats_series(M.Run.from_state(ts, equity, st, cfg.init_cash, ts_unit_ns))


def stats_series(run: M.Run) -> pd.Series:
    """The run's span fields followed by every registered metric."""
    head = {
        "start": pd.Timestamp(run.start_ns, tz="UTC") if run.start_ns is not None else pd.NaT,
        "end": pd.Timestamp(run.end_ns, tz="UTC") if run.end_ns is not None else pd.NaT,
        "events": run.events,
        "days": run.days,
        "init_cash": run.init_cash,
    }
    return pd.Series({**head, **M.compute(run)}, dtype=object, name="stats")
