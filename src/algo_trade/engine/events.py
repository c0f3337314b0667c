"""Events mode: stream depth + trade (+ funding, mark) rows through the event kernel with an
order-level strategy, in bounded memory.

>>> from algo_trade.engine import events
>>> from algo_trade.data.events import from_store
>>> src = from_store("./algo-trade-data", "sim", "BTC-USDT-PERP", "2024-01-01", "2024-01-03")  # doctest: +SKIP
>>> res = events.run(src, "grid_mm", {"levels": 3}, tick_size=0.1, fee_maker_bps=-0.5)  # doctest: +SKIP

Input is read one day (and at most `chunk_rows` rows) at a time; the order table, message
rings, books and ledger are allocated once; ledger rows and equity records are copied out
in chunks. Semantics: docs/engine.md ("Events mode").
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algo_trade.engine import events_nb as E
from algo_trade.engine import orders as O
from algo_trade.errors import ConfigError, DataError
from algo_trade.values import parse_bool

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class EventSettings:
    """Events-mode settings (CLI: the same names with dashes)."""

    init_cash: float = 10_000.0
    fee_maker_bps: float = 2.0  # negative: a rebate
    fee_taker_bps: float = 5.0
    leverage: float = 1.0  # open orders + position may reach leverage x equity
    maintenance_margin: float = 0.005
    liquidation_fee_bps: float = 20.0
    tick_size: float = 0.0  # 0: the smallest price step seen in the first chunk
    lot_size: float = 0.0  # 0: any quantity
    queue_model: str = "risk_averse"  # risk_averse | power | log
    queue_power: float = 2.0  # n of the power model
    partial_fills: bool = True
    entry_latency_ms: float = 0.0
    response_latency_ms: float = 0.0
    latency_file: str = (
        ""  # recorded series (CSV: ts, entry_ms, response_ms); overrides the constants
    )
    latency_max_gap_s: float = 60.0  # a series with a longer hole between rows is refused
    feed_latency_ms: float = 0.0  # for rows without ts_local
    record_every_ms: float = 1000.0  # equity records: 0 = at every exchange event
    price_window: float = 0.3  # book window: first chunk's median price +- this fraction
    max_orders: int = 256
    max_messages: int = 65_536
    ledger_chunk: int = 65_536
    chunk_rows: int = 4_000_000
    user_slots: int = 64

    @classmethod
    def build(cls, **given: Any) -> EventSettings:
        names = {f.name: f for f in dataclasses.fields(cls)}
        bad = [k for k in given if k not in names]
        if bad:
            raise ConfigError(
                f"unknown setting {bad[0]!r} for events mode: valid settings are {', '.join(names)}"
            )
        vals: dict[str, Any] = {}
        for k, v in given.items():
            if v is None:
                continue
            typ = type(names[k].default)
            try:
                if typ is bool:
                    vals[k] = parse_bool(v)
                elif typ is int:
                    if isinstance(v, bool) or float(v) != int(float(v)):
                        raise ValueError
                    vals[k] = int(float(v))
                elif typ is float:
                    if isinstance(v, bool) or not math.isfinite(float(v)):
                        raise ValueError
                    vals[k] = float(v)
                else:
                    vals[k] = str(v)
            except (TypeError, ValueError):
                raise ConfigError(f"setting {k} must be a {typ.__name__}, got {v!r}") from None
        s = cls(**vals)
        s.check()
        return s

    def check(self) -> None:
        if self.queue_model not in O.QUEUE_MODELS:
            raise ConfigError(
                f"queue_model must be one of {', '.join(O.QUEUE_MODELS)}, got {self.queue_model!r}"
            )
        for k in (
            "init_cash",
            "leverage",
            "max_orders",
            "max_messages",
            "ledger_chunk",
            "chunk_rows",
        ):
            if getattr(self, k) <= 0:
                raise ConfigError(f"{k} must be > 0, got {getattr(self, k)}")
        for k in ("fee_taker_bps", "maintenance_margin", "liquidation_fee_bps", "tick_size",
                  "lot_size", "entry_latency_ms", "response_latency_ms", "feed_latency_ms",
                  "record_every_ms", "queue_power", "latency_max_gap_s"):  # fmt: skip
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.maintenance_margin >= 1 or self.leverage * self.maintenance_margin >= 1:
            raise ConfigError(
                f"leverage {self.leverage} with maintenance_margin {self.maintenance_margin} is liquidated at once"
            )
        if self.fee_maker_bps <= -100 or self.fee_maker_bps > 1000:
            raise ConfigError(f"fee_maker_bps out of range: {self.fee_maker_bps}")
        if not 0 < self.price_window < 1:
            raise ConfigError(f"price_window must be in (0, 1), got {self.price_window}")


# ----------------------------------------------------------------------------- input
def build_events(
    depth: Mapping[str, np.ndarray] | None = None,
    trade: Mapping[str, np.ndarray] | None = None,
    funding: Mapping[str, np.ndarray] | None = None,
    feed_latency_ns: int = 0,
) -> dict[str, np.ndarray]:
    """Merge columnar rows into one event chunk ordered by ts (trades before depth rows of
    the same ts: the queue sees the trade, then the level's decrease net of it).

    depth: ts, ts_local, side, price, qty[, flags, seq]; trade: ts, ts_local, side (taker),
    price, qty; funding: ts, rate, mark_px, settled (settled rows pay, the others only
    move the mark). A missing or null ts_local is ts + feed_latency_ns.
    """
    parts = []
    for kind, cols in ((O.EV_TRADE, trade), (O.EV_DEPTH, depth)):
        if cols is None or len(cols["ts"]) == 0:
            continue
        ts = np.asarray(cols["ts"], dtype=np.int64)
        n = ts.shape[0]
        lts = cols.get("ts_local")
        lts = ts + feed_latency_ns if lts is None else _fill_local(ts, lts, feed_latency_ns)
        flags = np.zeros(n, dtype=np.uint8)
        if kind == O.EV_DEPTH and "flags" in cols:
            snap = (np.asarray(cols["flags"]).astype(np.uint8) & O.FLAG_SNAPSHOT) != 0
            seq = np.asarray(cols.get("seq", np.zeros(n)), dtype=np.int64)
            start = snap.copy()
            start[1:] &= ~(snap[:-1] & (ts[1:] == ts[:-1]) & (seq[1:] == seq[:-1]))
            flags = (
                snap.astype(np.uint8) * O.FLAG_SNAPSHOT | start.astype(np.uint8) * O.FLAG_SNAP_START
            )
        parts.append((ts, lts, np.full(n, kind, np.int8), np.asarray(cols["side"], np.int8),
                      np.asarray(cols["price"], np.float64), np.asarray(cols["qty"], np.float64), flags))  # fmt: skip
    if funding is not None and len(funding["ts"]):
        ts = np.asarray(funding["ts"], dtype=np.int64)
        n = ts.shape[0]
        settled = np.asarray(funding.get("settled", np.ones(n, bool)), dtype=bool)
        kind = np.where(settled, O.EV_FUNDING, O.EV_MARK).astype(np.int8)
        mark = np.asarray(funding.get("mark_px", np.full(n, np.nan)), dtype=np.float64)
        parts.append((ts, ts + feed_latency_ns, kind, np.zeros(n, np.int8), mark,
                      np.asarray(funding["rate"], np.float64), np.zeros(n, np.uint8)))  # fmt: skip
    if not parts:
        return _empty_chunk()
    cols = [np.concatenate([p[j] for p in parts]) for j in range(7)]
    order = np.argsort(cols[0], kind="stable")
    out = dict(
        zip(
            ("ts", "ts_local", "kind", "side", "price", "qty", "flags"),
            (c[order] for c in cols),
            strict=True,
        )
    )
    return out


def _fill_local(ts: np.ndarray, lts: Any, feed_ns: int) -> np.ndarray:
    arr = np.asarray(lts)
    if arr.dtype == object:
        arr = np.array([ts[i] + feed_ns if v is None else v for i, v in enumerate(arr)], np.int64)
    return np.asarray(arr, dtype=np.int64)


def _empty_chunk() -> dict[str, np.ndarray]:
    return {"ts": np.zeros(0, np.int64), "ts_local": np.zeros(0, np.int64), "kind": np.zeros(0, np.int8),
            "side": np.zeros(0, np.int8), "price": np.zeros(0), "qty": np.zeros(0),
            "flags": np.zeros(0, np.uint8)}  # fmt: skip


def from_arrays(**kinds: Mapping[str, np.ndarray] | None) -> list[dict[str, np.ndarray]]:
    """One chunk from in-memory columns (see build_events)."""
    return [build_events(**kinds)]


def _chunks(source: Iterable[dict[str, np.ndarray]], rows: int) -> Iterator[dict[str, np.ndarray]]:
    for ch in source:
        n = len(ch["ts"])
        for a in range(0, n, rows):
            yield {k: v[a : a + rows] for k, v in ch.items()} if n > rows else ch


def _check_chunk(ch: dict[str, np.ndarray], prev_ts: int) -> None:
    ts = ch["ts"]
    if len(ts) == 0:
        return
    if ts[0] < prev_ts or np.any(np.diff(ts) < 0):
        raise DataError("event rows are not ordered by ts: build chunks with build_events()")
    px, qty, kind = ch["price"], ch["qty"], ch["kind"]
    book = kind <= O.EV_TRADE
    bad = book & ~((px > 0) & np.isfinite(px) & (qty >= 0) & np.isfinite(qty))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"bad depth/trade row at ts {int(ts[i])}: price {px[i]}, qty {qty[i]} (need price > 0, qty >= 0)"
        )
    if np.any((kind == O.EV_TRADE) & (qty <= 0)) or np.any(book & (np.abs(ch["side"]) != 1)):
        raise DataError("a trade with qty <= 0 or a row with side not in (1, -1) in the event data")


# ----------------------------------------------------------------------------- latency file
def read_latency(
    path: str | Path, max_gap_s: float = 60.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A recorded latency series: CSV with a header ``ts,entry_ms,response_ms``; ts in ns
    since the epoch (or ISO-8601 UTC), increasing; an empty or negative value marks a time
    without a usable latency (orders sent then are rejected). Rows farther apart than
    max_gap_s are refused (a hole in the recording is not interpolated)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"latency file {p} not found (CSV with columns ts,entry_ms,response_ms)")
    try:
        df = pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise ConfigError(f"latency file {p} is not a CSV: {exc}".splitlines()[0]) from None
    need = ["ts", "entry_ms", "response_ms"]
    if list(df.columns[:3]) != need:
        raise ConfigError(
            f"latency file {p} needs the header ts,entry_ms,response_ms, got {','.join(map(str, df.columns))}"
        )
    if len(df) < 2:
        raise ConfigError(f"latency file {p} needs at least 2 rows")
    ts = df["ts"]
    try:
        ts = (
            ts.astype("int64").to_numpy()
            if np.issubdtype(ts.dtype, np.number)
            else (
                pd.to_datetime(ts, utc=True)
                .astype("datetime64[ns, UTC]")
                .astype("int64")
                .to_numpy()
            )
        )
    except (ValueError, TypeError):
        raise ConfigError(
            f"latency file {p}: column ts must be ns since the epoch or ISO-8601 times"
        ) from None
    d = np.diff(ts)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0)) + 1
        raise ConfigError(f"latency file {p}: ts must increase (row {i + 1})")
    if np.any(d > max_gap_s * 1e9):
        i = int(np.argmax(d > max_gap_s * 1e9)) + 1
        raise ConfigError(
            f"latency file {p} has a gap of {d[i - 1] / 1e9:g} s before row {i + 1} "
            f"(max {max_gap_s:g} s): fill the recording or raise latency_max_gap_s"
        )
    ent = pd.to_numeric(df["entry_ms"], errors="coerce").to_numpy(np.float64) * 1e6
    rsp = pd.to_numeric(df["response_ms"], errors="coerce").to_numpy(np.float64) * 1e6
    return ts, ent, rsp


# ----------------------------------------------------------------------------- run
@dataclass
class EventsResult:
    """An events-mode run: `ledger` (fills, liquidations, funding), `records` (equity on a
    time grid), `orders` table at the end, `stats`."""

    stats: dict[str, Any]
    ledger_array: np.ndarray
    records_array: np.ndarray
    orders_array: np.ndarray
    settings: EventSettings
    strategy: str
    params: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    user_array: np.ndarray | None = None

    @cached_property
    def fills(self) -> pd.DataFrame:
        lg = self.ledger_array
        df = pd.DataFrame({k: lg[k] for k in lg.dtype.names})
        df["kind"] = np.asarray(O.LEDGER_KINDS, dtype=object)[lg["kind"]]
        df.index = pd.to_datetime(lg["ts"], utc=True)
        return df.drop(columns="ts")

    @cached_property
    def equity(self) -> pd.DataFrame:
        r = self.records_array
        df = pd.DataFrame({k: r[k] for k in r.dtype.names if k != "ts"})
        df.index = pd.to_datetime(r["ts"], utc=True)
        return df

    exchange: str = ""
    symbol: str = ""
    mode: str = "events"

    def summary(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "params": self.params, "mode": "events",
                "exchange": self.exchange, "symbol": self.symbol, "stats": self.stats,
                "timings": self.timings}  # fmt: skip

    @property
    def trades(self) -> pd.DataFrame:
        """Fills (there are no round trips in events mode: see `fills`)."""
        return self.fills

    def to_html(self, path: str | Path) -> Path:
        from algo_trade.report.market_making import write_report

        return write_report(self, path)


def _params_tuple(spec: Any, params: Mapping[str, Any]) -> Any:
    return spec.ptype(**params)


def run(
    source: Iterable[dict[str, np.ndarray]],
    strategy: Any,
    params: Mapping[str, Any] | None = None,
    signal: tuple[np.ndarray, np.ndarray] | None = None,
    user: np.ndarray | None = None,
    **settings: Any,
) -> EventsResult:
    """Run an order-level strategy (registered name, ``module:function`` or an
    `OrderStrategy`) over event chunks (`from_store`, `from_arrays`).

    signal: (ts, value) a series the strategy reads with `orderapi.signal` (follow_target:
    the target position); user: the initial content of the strategy's own array."""
    from algo_trade.strategies import orderlevel

    cfg = EventSettings.build(**settings)
    spec = orderlevel.get(strategy)
    p = spec.resolve(params)
    pt = spec.ptype(**p)
    if cfg.latency_file:
        lat_ts, lat_in, lat_out = read_latency(cfg.latency_file, cfg.latency_max_gap_s)
    else:
        lat_ts, lat_in, lat_out = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    sig_ts, sig_val = (
        (np.zeros(0, np.int64), np.zeros(0))
        if signal is None
        else (
            np.ascontiguousarray(signal[0], np.int64),
            np.ascontiguousarray(signal[1], np.float64),
        )
    )
    t0 = time.perf_counter()
    fs, st = E.new_state_nb(cfg.init_cash)
    fs[E.F_LOT] = cfg.lot_size
    fs[E.F_FMAKER] = cfg.fee_maker_bps * 1e-4
    fs[E.F_FTAKER] = cfg.fee_taker_bps * 1e-4
    fs[E.F_LEV] = cfg.leverage
    fs[E.F_MM] = cfg.maintenance_margin
    fs[E.F_LIQFEE] = cfg.liquidation_fee_bps * 1e-4
    fs[E.F_QN] = cfg.queue_power
    fs[E.F_LAST_RESP_LAT] = cfg.response_latency_ms * 1e6
    st[E.I_QMODEL] = O.QUEUE_MODELS[cfg.queue_model]
    st[E.I_PARTIAL] = 1 if cfg.partial_fills else 0
    st[E.I_ENTRY_NS] = int(round(cfg.entry_latency_ms * 1e6))
    st[E.I_RESP_NS] = int(round(cfg.response_latency_ms * 1e6))
    st[E.I_REC_EVERY] = int(round(cfg.record_every_ms * 1e6))
    orders = np.zeros(cfg.max_orders, O.ORDER)
    reqs = np.zeros(cfg.max_messages, O.MSG)
    resps = np.zeros(cfg.max_messages, O.MSG)
    ledger = np.zeros(cfg.ledger_chunk + cfg.max_orders + E.ROWS_PER_ITEM + 8, O.LEDGER)
    recs = np.zeros(cfg.ledger_chunk, O.RECORD)
    scratch = np.zeros(cfg.max_orders, np.int64)
    resting = np.zeros(cfg.max_orders, np.int64)  # slots resting at the exchange
    user = np.zeros(cfg.user_slots, np.float64) if user is None else np.array(user, np.float64)
    books = None
    led_out: list[np.ndarray] = []
    rec_out: list[np.ndarray] = []
    prev_ts = -(2**63)
    n_events = 0
    t_sim = 0.0
    c_sim = 0.0  # CPU seconds (a fairer speed figure on a shared machine)
    for ch in _chunks(source, cfg.chunk_rows):
        if len(ch["ts"]) == 0:
            continue
        _check_chunk(ch, prev_ts)
        prev_ts = int(ch["ts"][-1])
        if books is None:
            books = _init_books(ch, cfg, fs, st)
        lorder = np.argsort(ch["ts_local"], kind="stable").astype(np.int64)
        ctx = E.Ctx(ch["ts"], ch["ts_local"], ch["kind"], ch["side"], ch["price"], ch["qty"],
                    ch["flags"], lorder, *books, orders, reqs, resps, ledger, recs, lat_ts,
                    lat_in, lat_out, fs, st, scratch, resting, user, sig_ts, sig_val)  # fmt: skip
        st[E.I_N] = len(ch["ts"])
        st[E.I_IX] = 0
        st[E.I_IL] = 0
        if st[E.I_STARTED] == 0:
            st[E.I_LNOW] = int(ch["ts_local"][lorder[0]])
            st[E.I_STARTED] = 1
        n_events += len(ch["ts"])
        while True:
            t1 = time.perf_counter()
            c1 = time.process_time()
            try:
                spec.fn(ctx, pt)
            except Exception as exc:  # a strategy raising inside numba: one line
                raise ConfigError(
                    f"strategy {spec.name!r} raised {type(exc).__name__}: {exc} at local time "
                    f"{pd.Timestamp(int(st[E.I_LNOW]), tz='UTC')}"
                ) from None
            t_sim += time.perf_counter() - t1
            c_sim += time.process_time() - c1
            if st[E.I_ERR]:
                raise ConfigError(_error_line(spec.name, fs, st))
            stop = st[E.I_STOP]
            if (
                stop == E.STOP_FULL
                or st[E.I_NLED] > cfg.ledger_chunk // 2
                or st[E.I_NREC] > cfg.ledger_chunk // 2
            ):
                led_out.append(ledger[: st[E.I_NLED]].copy())
                rec_out.append(recs[: st[E.I_NREC]].copy())
                st[E.I_NLED] = 0
                st[E.I_NREC] = 0
            if stop == E.STOP_FULL:
                continue
            break
        if stop == E.STOP_NONE:  # the strategy returned on its own: the run ends
            break
    if books is None:
        raise DataError("no events to run: the source had no depth or trade rows")
    led_out.append(ledger[: st[E.I_NLED]].copy())
    rec_out.append(recs[: st[E.I_NREC]].copy())
    lg = np.concatenate(led_out)
    rc = np.concatenate(rec_out)
    stats = _stats(lg, rc, fs, st, cfg, n_events)
    timings = {"simulate": t_sim, "cpu": c_sim, "total": time.perf_counter() - t0}
    res = EventsResult(stats, lg, rc, orders[: st[E.I_HI_SLOT]].copy(), cfg, spec.name, p, timings)
    res.user_array = user
    return res


def _init_books(
    ch: dict[str, np.ndarray], cfg: EventSettings, fs: np.ndarray, st: np.ndarray
) -> tuple:
    book = ch["kind"] <= O.EV_TRADE
    px = ch["price"][book]
    if px.size == 0:
        raise DataError("the first chunk has no depth or trade rows to set the price window")
    tick = cfg.tick_size
    if tick <= 0:
        u = np.unique(np.round(px[:200_000], 10))
        d = np.diff(u)
        tick = float(np.round(d[d > 0].min(), 12)) if (d > 0).any() else 1e-8
    fs[E.F_TICK] = tick
    # around the median price, not min/max: venues stream stray far levels (a bid at 2% of
    # the price) that would make the window, its memory and its scans huge
    ref = float(np.median(px[:1_000_000]))
    lo, hi = ref * (1 - cfg.price_window), ref * (1 + cfg.price_window)
    base = int(math.floor(lo / tick))
    r = int(math.ceil(hi / tick)) - base + 1
    if r > 20_000_000:
        raise ConfigError(
            f"the price window holds {r} ticks (tick {tick:g}): lower price_window or set tick_size"
        )
    st[E.I_BASE] = base
    st[E.I_XBA] = r
    st[E.I_LBA] = r
    return (np.zeros(r), np.zeros(r), np.zeros(r), np.zeros(r))


def _error_line(name: str, fs: np.ndarray, st: np.ndarray) -> str:
    code = int(st[E.I_ERR])
    arg = fs[E.F_ERR_ARG]
    text = O.ERROR_NAMES[code].format(
        arg=f"{arg:g}", tick=f"{fs[E.F_TICK]:g}", lot=f"{fs[E.F_LOT]:g}"
    )
    when = pd.Timestamp(int(st[E.I_LNOW]), tz="UTC")
    return f"strategy {name!r} at {when}: {text}"


def _stats(lg: np.ndarray, rc: np.ndarray, fs: np.ndarray, st: np.ndarray, cfg: EventSettings,
           n_events: int) -> dict[str, Any]:  # fmt: skip
    fills = lg[(lg["kind"] == O.LG_MAKER) | (lg["kind"] == O.LG_TAKER)]
    mid = rc["mid"][-1] if len(rc) else np.nan
    final = fs[E.F_CASH] + (fs[E.F_POS] * mid if fs[E.F_POS] != 0 else 0.0)
    eq = rc["equity"] if len(rc) else np.array([cfg.init_cash])
    peak = np.maximum.accumulate(np.concatenate([[cfg.init_cash], eq]))
    mdd = float(np.max(1 - np.concatenate([[cfg.init_cash], eq]) / peak))
    return {
        "final_equity": float(final),
        "total_return": float(final / cfg.init_cash - 1),
        "max_drawdown": mdd,
        "fills": int(len(fills)),
        "maker_fills": int(st[E.I_NMAKER]),
        "taker_fills": int(st[E.I_NTAKER]),
        "volume": float(np.abs(fills["qty"] * fills["px"]).sum()),
        "fees": float(fs[E.F_FEES]),
        "funding_pnl": float(-fs[E.F_FUND]),
        "realized_pnl": float(fs[E.F_REAL]),
        "position": float(fs[E.F_POS]),
        "liquidations": int(st[E.I_NLIQ]),
        "rejected": int(st[E.I_NREJ]),
        "events": int(n_events),
        "wakeups": int(st[E.I_WAKES]),
        "out_of_window": int(st[E.I_OUT_ROI]),
        "orders": int(st[E.I_OID]),
    }
