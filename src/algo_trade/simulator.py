"""A plausible, deterministic perpetual-futures market for demos, tests and benchmarks.

Per symbol (seeded by the run seed and the symbol name):

- index price: GARCH(1,1) log-returns per book interval plus Poisson jumps, so calm and
  wild periods cluster;
- perp mid = index x (1 + premium); the premium is mean-reverting and leans with recent
  momentum; mark = index x (1 + smoothed premium);
- book: prices on the tick grid, spread and level gaps that widen and sizes that thin out
  as volatility rises; `depth` levels per side, best first;
- trades: Poisson arrivals whose rate grows with volatility, at the touch;
- funding: settled every 8 h (00/08/16 UTC) at the interval's mean premium plus a clamped
  interest term (Binance's formula shape), capped at +-0.75 %; a predicted rate each minute;
- liquidations: bursts after sharp 1-minute moves, on the side that lost (longs after
  drops), plus a thin background;
- 1-minute bars of the mid with traded volume.

Everything is vectorized; the only sequential recursion (GARCH) is a numba kernel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from numba import njit

from algo_trade.errors import ConfigError
from algo_trade.schema import DEPTH_SNAPSHOT, book_columns, check_symbol, label_array
from algo_trade.timeutil import NS_PER_DAY, NS_PER_S, parse_time_ns

EXCHANGE = "sim"
DEFAULT_START = "2024-01-01"
FUNDING_INTERVAL_H = 8
_BASE_PRICE = {
    "BTC": 42_000.0,
    "ETH": 2_300.0,
    "SOL": 100.0,
    "BNB": 300.0,
    "XRP": 0.6,
    "DOGE": 0.08,
}
_YEAR_S = 365 * 86_400
MAX_DAYS = 36_500
MAX_STEPS = 20_000_000


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    price: float
    tick_decimals: int  # tick = 10**-tick_decimals
    lot_decimals: int  # size step = 10**-lot_decimals
    annual_vol: float


def spec_for(symbol: str) -> SymbolSpec:
    check_symbol(symbol)
    base = symbol.split("-")[0]
    price = _BASE_PRICE.get(
        base, 10.0 + int(hashlib.sha256(base.encode()).hexdigest()[:4], 16) % 90
    )
    tick = 1 if price >= 10_000 else 2 if price >= 100 else 4 if price >= 1 else 5
    lot = 3 if price >= 1_000 else 1 if price >= 1 else 0
    vol = 0.6 if base == "BTC" else 0.75
    return SymbolSpec(symbol, price, tick, lot, vol)


@njit(cache=True, nogil=True)
def garch_returns_nb(z, omega, alpha, beta, var0):  # pragma: no cover - compiled
    """z: float64[n] standard normals -> (returns float64[n], sigma float64[n]) of a GARCH(1,1)."""
    n = z.shape[0]
    r = np.empty(n)
    sig = np.empty(n)
    var = var0
    for i in range(n):
        s = np.sqrt(var)
        sig[i] = s
        r[i] = s * z[i]
        var = omega + alpha * r[i] * r[i] + beta * var
    return r, sig


@dataclass
class _Path:
    ts: np.ndarray  # int64 ns, one per book interval
    index: np.ndarray
    mid: np.ndarray
    mark: np.ndarray
    premium: np.ndarray
    sigma: np.ndarray  # per-step volatility
    vol_ratio: np.ndarray  # sigma / long-run sigma


def _rng(seed: int, symbol: str, salt: str) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}:{symbol}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def _price_path(spec: SymbolSpec, start_ns: int, n: int, step_ns: int, seed: int) -> _Path:
    rng = _rng(seed, spec.symbol, "path")
    dt_s = step_ns / NS_PER_S
    sigma0 = spec.annual_vol * np.sqrt(dt_s / _YEAR_S)
    alpha, beta = 0.05, 0.94
    omega = sigma0**2 * (1 - alpha - beta)
    z = rng.standard_t(5, n) / np.sqrt(5 / 3)  # fat tails, unit variance
    r, sigma = garch_returns_nb(z, omega, alpha, beta, sigma0**2)
    # Jumps: about three a day, 0.5-2 % each.
    jumps = rng.random(n) < 3 * dt_s / 86_400
    r = r + jumps * rng.normal(0, 0.012, n)
    index = spec.price * np.exp(np.cumsum(r))
    # Premium: AR(1) around +1 bp, pushed by the last minute's momentum.
    steps_min = max(1, int(60 / dt_s))
    mom = np.convolve(r, np.ones(steps_min), "full")[:n]
    premium = _ar1(0.0001, 0.999**dt_s, 0.00002 * np.sqrt(dt_s), n, rng) + 0.05 * mom
    premium = np.clip(premium, -0.02, 0.02)
    mid = index * (1 + premium)
    smooth = _ema(premium, max(1, int(60 / dt_s)))
    mark = index * (1 + smooth)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_ns
    return _Path(ts, index, mid, mark, premium, sigma, sigma / sigma0)


def _ar1(mean: float, phi: float, noise: float, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(0, noise, n)
    out = _ar1_nb(e, phi)
    return mean + out


@njit(cache=True, nogil=True)
def _ar1_nb(e, phi):  # pragma: no cover - compiled
    out = np.empty_like(e)
    x = 0.0
    for i in range(e.shape[0]):
        x = phi * x + e[i]
        out[i] = x
    return out


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    return _ema_nb(x, 2.0 / (span + 1))


@njit(cache=True, nogil=True)
def _ema_nb(x, a):  # pragma: no cover - compiled
    out = np.empty_like(x)
    m = x[0]
    for i in range(x.shape[0]):
        m = a * x[i] + (1 - a) * m
        out[i] = m
    return out


def _dec(ticks: np.ndarray, decimals: int) -> np.ndarray:
    """Integer ticks -> exact decimal floats (one correctly rounded division)."""
    return ticks.astype(np.float64) / 10.0**decimals


def _labels(n: int, symbol: str) -> dict[str, pa.Array]:
    return {"exchange": label_array(EXCHANGE, n), "symbol": label_array(symbol, n)}


def _book(spec: SymbolSpec, p: _Path, sl: slice, depth: int, rng: np.random.Generator) -> pa.Table:
    mid = p.mid[sl]
    vr = np.clip(p.vol_ratio[sl], 0.3, 6.0)
    n = len(mid)
    tick = 10.0**-spec.tick_decimals
    # Spread in ticks: one tick when calm, wider with volatility and relative to price.
    base_ticks = max(1.0, spec.price * 0.00002 / tick)
    spread = np.maximum(1, np.rint(base_ticks * vr * rng.exponential(1.0, n))).astype(np.int64)
    bid0 = np.floor(mid / tick - spread / 2).astype(np.int64)
    ask0 = bid0 + spread
    gap_scale = np.maximum(1.0, base_ticks * vr)[:, None]
    lot = 10.0**-spec.lot_decimals
    base_sz = max(1.0, 50_000 / spec.price / lot)  # ~$50k a level when calm
    cols: dict[str, np.ndarray] = {}
    for side, sign, best in (("bid", -1, bid0), ("ask", 1, ask0)):
        gaps = np.maximum(1, np.rint(gap_scale * rng.exponential(1.0, (n, depth)))).astype(np.int64)
        gaps[:, 0] = 0
        ticks = best[:, None] + sign * np.cumsum(gaps, axis=1)
        growth = np.sqrt(1 + np.arange(depth))[None, :]  # deeper levels rest bigger
        lots = np.maximum(
            1, np.rint(base_sz * growth * rng.lognormal(-0.5, 1.0, (n, depth)) / vr[:, None])
        )
        px = _dec(ticks, spec.tick_decimals)
        sz = _dec(lots.astype(np.int64), spec.lot_decimals)
        for i in range(depth):
            cols[f"{side}_px_{i}"] = px[:, i]
            cols[f"{side}_sz_{i}"] = sz[:, i]
    data = {"ts": pa.array(p.ts[sl]), **_labels(n, spec.symbol)}
    data.update({c: pa.array(cols[c]) for c in book_columns(depth)})
    return pa.table(data)


def _trades(
    spec: SymbolSpec, p: _Path, sl: slice, step_ns: int, rng: np.random.Generator, id0: int
):
    vr = np.clip(p.vol_ratio[sl], 0.3, 6.0)
    lam = 0.8 * vr * step_ns / NS_PER_S  # ~0.8 trades/s when calm
    counts = rng.poisson(lam)
    total = int(counts.sum())
    idx = np.repeat(np.arange(len(counts)), counts)
    offs = np.sort(rng.random(total)) if total else np.zeros(0)
    ts = p.ts[sl][idx] + (offs * step_ns).astype(np.int64) % step_ns
    ts.sort()
    tick = 10.0**-spec.tick_decimals
    mid = p.mid[sl][idx]
    side = np.where(rng.random(total) < 0.5, 1, -1).astype(np.int8)
    half = np.maximum(1, np.rint(spec.price * 0.00001 / tick))
    ticks = np.where(
        side > 0, np.ceil(mid / tick + half * 0.5), np.floor(mid / tick - half * 0.5)
    ).astype(np.int64)
    lot = 10.0**-spec.lot_decimals
    lots = np.maximum(1, np.rint(rng.lognormal(0, 1.5, total) * 2_000 / spec.price / lot)).astype(
        np.int64
    )
    ids = pa.array(np.arange(id0, id0 + total).astype(str))
    table = pa.table(
        {
            "ts": pa.array(ts),
            **_labels(total, spec.symbol),
            "side": pa.array(side),
            "price": pa.array(_dec(ticks, spec.tick_decimals)),
            "qty": pa.array(_dec(lots, spec.lot_decimals)),
            "trade_id": ids,
            "ts_local": pa.array(ts + _latency_ns(total, p.ts[sl][0] if len(idx) else 0)),
        }
    )
    return table, id0 + total


def _latency_ns(n: int, salt: int) -> np.ndarray:
    """Feed latency (receipt minus venue time): 2 ms plus an exponential tail, ~5 ms mean.
    Its own generator, keyed by time, so adding it changed no other simulated value."""
    rng = np.random.default_rng(abs(int(salt)) % (2**63))
    return (2_000_000 + rng.exponential(3_000_000, n)).astype(np.int64)


@njit(cache=True, nogil=True)
def _depth_diff_nb(prev, cur, out_step, out_side, out_tick, out_lots):  # pragma: no cover
    """Level changes between consecutive simulated books.

    prev: int64[4, L] (bid ticks, bid lots, ask ticks, ask lots) before the first step
    (lots 0: no book yet); cur: int64[n, 4, L]. Writes one row per changed level (lots 0:
    the level left the book) and returns the row count; prev ends as the last book."""
    n = cur.shape[0]
    depth = cur.shape[2]
    m = 0
    for k in range(n):
        for s in range(2):
            pt = 2 * s
            # deleted levels: in prev, not in cur
            for i in range(depth):
                if prev[pt + 1, i] == 0:
                    continue
                found = False
                for j in range(depth):
                    if cur[k, pt, j] == prev[pt, i]:
                        found = True
                        break
                if not found:
                    out_step[m] = k
                    out_side[m] = 1 - 2 * s
                    out_tick[m] = prev[pt, i]
                    out_lots[m] = 0
                    m += 1
            # new or resized levels
            for j in range(depth):
                same = False
                for i in range(depth):
                    if prev[pt, i] == cur[k, pt, j] and prev[pt + 1, i] == cur[k, pt + 1, j]:
                        same = True
                        break
                if not same:
                    out_step[m] = k
                    out_side[m] = 1 - 2 * s
                    out_tick[m] = cur[k, pt, j]
                    out_lots[m] = cur[k, pt + 1, j]
                    m += 1
        for r in range(4):
            for i in range(depth):
                prev[r, i] = cur[k, r, i]
    return m


def _depth(spec: SymbolSpec, book: pa.Table, depth: int, state: dict, step_ns: int) -> pa.Table:
    """`depth` events whose replay gives exactly the simulated books: each book row's
    changes arrive as one message shortly before its ts (the book row at ts holds every
    update before ts); the first book is a snapshot run. ts_local adds feed latency."""
    n = book.num_rows
    td, ld = 10.0**spec.tick_decimals, 10.0**spec.lot_decimals
    cur = np.empty((n, 4, depth), dtype=np.int64)
    for r, (side, what) in enumerate((("bid", "px"), ("bid", "sz"), ("ask", "px"), ("ask", "sz"))):
        f = td if what == "px" else ld
        for i in range(depth):
            cur[:, r, i] = np.rint(book.column(f"{side}_{what}_{i}").to_numpy() * f)
    first = "prev" not in state
    prev = state.setdefault("prev", np.zeros((4, depth), dtype=np.int64))
    cap = n * 4 * depth
    step = np.empty(cap, dtype=np.int64)
    side = np.empty(cap, dtype=np.int8)
    tick = np.empty(cap, dtype=np.int64)
    lots = np.empty(cap, dtype=np.int64)
    m = _depth_diff_nb(prev, cur, step, side, tick, lots)
    step, side, tick, lots = step[:m], side[:m], tick[:m], lots[:m]
    book_ts = book.column("ts").to_numpy()
    rng = state.setdefault("rng", _rng(state["seed"], spec.symbol, "depth"))
    # each message lands in the second half of the interval before its book row
    offset = rng.integers(1, max(2, step_ns // 2), n)
    msg_ts = book_ts - offset
    ts = msg_ts[step]
    seq0 = state.get("seq", 0)
    seq = seq0 + 1 + step
    state["seq"] = seq0 + n
    flags = np.zeros(m, dtype=np.uint8)
    if first:
        flags[step == 0] = DEPTH_SNAPSHOT
    lat = _latency_ns(n, int(book_ts[0]) + 1)
    recv = np.maximum.accumulate(msg_ts + lat)  # one connection: receipt order is kept
    return pa.table(
        {
            "ts": pa.array(ts),
            "ts_local": pa.array(recv[step]),
            **_labels(m, spec.symbol),
            "side": pa.array(side),
            "price": pa.array(_dec(tick, spec.tick_decimals)),
            "qty": pa.array(_dec(lots, spec.lot_decimals)),
            "seq": pa.array(seq),
            "flags": pa.array(flags),
        }
    )


def _liquidations(
    spec: SymbolSpec, p: _Path, sl: slice, step_ns: int, rng: np.random.Generator
) -> pa.Table:
    idx_all = np.arange(sl.start, sl.stop)
    steps_min = max(1, int(60 * NS_PER_S / step_ns))
    back = np.maximum(idx_all - steps_min, 0)
    move = np.log(p.index[idx_all] / p.index[back])
    typical = p.sigma[idx_all] * np.sqrt(steps_min)
    z = move / np.maximum(typical, 1e-12)
    # Intensity per step: thin background, bursts when the last minute moved > 3 sigma.
    lam = 0.0005 * step_ns / NS_PER_S + 0.5 * np.maximum(np.abs(z) - 3, 0.0) ** 1.5
    counts = rng.poisson(lam)
    total = int(counts.sum())
    pick = np.repeat(np.arange(len(counts)), counts)
    ts = p.ts[sl][pick] + (rng.random(total) * step_ns).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    pick, ts = pick[order], ts[order]
    # A drop liquidates longs (forced sells, side -1); a rally liquidates shorts.
    side = np.where(
        z[pick] < 0, -1, np.where(z[pick] > 0, 1, np.where(rng.random(total) < 0.5, 1, -1))
    ).astype(np.int8)
    tick = 10.0**-spec.tick_decimals
    px = p.mid[sl][pick] * (1 - side * rng.uniform(0.0005, 0.003, total))
    ticks = np.rint(px / tick).astype(np.int64)
    lot = 10.0**-spec.lot_decimals
    lots = np.maximum(1, np.rint(rng.lognormal(0, 1.2, total) * 20_000 / spec.price / lot)).astype(
        np.int64
    )
    return pa.table(
        {
            "ts": pa.array(ts),
            **_labels(total, spec.symbol),
            "side": pa.array(side),
            "price": pa.array(_dec(ticks, spec.tick_decimals)),
            "qty": pa.array(_dec(lots, spec.lot_decimals)),
        }
    )


def funding_rate(
    mean_premium: np.ndarray, interest: float = 0.0001, cap: float = 0.0075
) -> np.ndarray:
    """Binance-shaped rate per interval: P + clamp(I - P, -0.05 %, 0.05 %), capped at +-cap."""
    clamp = np.clip(interest - mean_premium, -0.0005, 0.0005)
    return np.clip(mean_premium + clamp, -cap, cap)


def _funding(spec: SymbolSpec, p: _Path, sl: slice, step_ns: int) -> pa.Table:
    interval_ns = FUNDING_INTERVAL_H * 3_600 * NS_PER_S
    minute = 60 * NS_PER_S
    ts = p.ts[sl]
    # Predicted rate each minute: the running mean premium of the current interval.
    rows_ts, rows_rate, rows_mark, rows_index, rows_next, rows_settled = [], [], [], [], [], []
    step_min = max(1, int(minute // step_ns))
    pick = np.arange(0, len(ts), step_min)
    # Running mean of premium since the interval began (cumsum within intervals).
    interval_id = p.ts // interval_ns
    cs = np.cumsum(p.premium)
    first = np.searchsorted(p.ts, interval_id * interval_ns)
    count = np.arange(len(p.ts)) - first + 1
    mean_prem = (cs - np.where(first > 0, cs[np.maximum(first - 1, 0)], 0.0)) / count
    g = np.arange(sl.start, sl.stop)[pick]
    rows_ts.append(p.ts[g])
    rows_rate.append(funding_rate(mean_prem[g]))
    rows_mark.append(p.mark[g])
    rows_index.append(p.index[g])
    rows_next.append((interval_id[g] + 1) * interval_ns)
    rows_settled.append(np.zeros(len(g), dtype=bool))
    # Settlements: the first step at or after each boundary inside this slice, rate of the interval that ended.
    bounds = np.unique((ts // interval_ns) * interval_ns)
    bounds = bounds[(bounds >= ts[0]) & (bounds > p.ts[0])]
    if len(bounds):
        at = np.searchsorted(p.ts, bounds)
        prev = at - 1
        rows_ts.append(bounds)
        rows_rate.append(funding_rate(mean_prem[prev]))
        rows_mark.append(p.mark[at])
        rows_index.append(p.index[at])
        rows_next.append(bounds + interval_ns)
        rows_settled.append(np.ones(len(bounds), dtype=bool))
    ts_all = np.concatenate(rows_ts)
    order = np.argsort(ts_all, kind="stable")
    n = len(ts_all)
    tick = 10.0**-spec.tick_decimals

    def to_tick(parts: list[np.ndarray]) -> np.ndarray:
        return _dec(
            np.rint(np.concatenate(parts)[order] / tick).astype(np.int64), spec.tick_decimals
        )

    return pa.table(
        {
            "ts": pa.array(ts_all[order]),
            **_labels(n, spec.symbol),
            "rate": pa.array(np.round(np.concatenate(rows_rate)[order], 8)),
            "interval_h": pa.array(np.full(n, float(FUNDING_INTERVAL_H))),
            "mark_px": pa.array(to_tick(rows_mark)),
            "index_px": pa.array(to_tick(rows_index)),
            "next_ts": pa.array(np.concatenate(rows_next)[order]),
            "settled": pa.array(np.concatenate(rows_settled)[order]),
        }
    )


def _bars(spec: SymbolSpec, p: _Path, sl: slice, step_ns: int, trades: pa.Table) -> pa.Table:
    minute = 60 * NS_PER_S
    ts = p.ts[sl]
    mid = p.mid[sl]
    bucket = ts // minute
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    tick = 10.0**-spec.tick_decimals
    q = lambda a: _dec(np.rint(a / tick).astype(np.int64), spec.tick_decimals)  # noqa: E731
    o = mid[starts]
    c = mid[ends - 1]
    h = np.maximum.reduceat(mid, starts)
    lo = np.minimum.reduceat(mid, starts)
    tb = trades.column("ts").to_numpy() // minute
    vol = np.zeros(len(starts))
    if len(tb):
        pos = np.searchsorted(bucket[starts], tb)
        ok = (pos < len(starts)) & (bucket[starts][np.minimum(pos, len(starts) - 1)] == tb)
        np.add.at(vol, pos[ok], trades.column("qty").to_numpy()[ok])
    n = len(starts)
    return pa.table(
        {
            "ts": pa.array(bucket[starts] * minute),
            **_labels(n, spec.symbol),
            "open": pa.array(q(o)),
            "high": pa.array(q(h)),
            "low": pa.array(q(lo)),
            "close": pa.array(q(c)),
            "volume": pa.array(np.round(vol, spec.lot_decimals)),
        }
    )


def check_run(days: float, book_interval_ns: int, depth: int, start: str | int) -> tuple[int, int]:
    """Refuse a run that cannot be simulated, before anything is computed or written;
    returns (start_ns, book snapshots per symbol)."""
    if not 0 < days <= MAX_DAYS:  # also refuses nan
        raise ConfigError(f"--days must be positive and at most {MAX_DAYS}, got {days}")
    if depth < 1 or depth > 500:
        raise ConfigError(f"--depth must be between 1 and 500, got {depth}")
    if book_interval_ns < 1_000_000 or book_interval_ns > 3_600 * NS_PER_S:
        raise ConfigError("--book-interval must be between 1ms and 1h")
    start_ns = parse_time_ns(start)
    n = int(days * NS_PER_DAY // book_interval_ns)
    if n < 2:
        raise ConfigError(
            "the run is shorter than two book intervals; raise --days or lower --book-interval"
        )
    if n > MAX_STEPS:  # the price path is built whole: about 80 bytes a step
        raise ConfigError(
            f"{n:,} book snapshots per symbol is more than {MAX_STEPS:,}; lower --days or raise"
            " --book-interval (or generate in several runs with --start)"
        )
    parse_time_ns(start_ns + int(days * NS_PER_DAY))  # the end must fit int64 ns too
    return start_ns, n


def simulate(
    symbols: list[str],
    days: float,
    book_interval_ns: int = NS_PER_S,
    depth: int = 20,
    seed: int = 42,
    start: str | int = DEFAULT_START,
    chunk_ns: int = 3_600 * NS_PER_S,
    depth_hours: float | None = 0.0,
) -> Iterator[tuple[str, str, pa.Table]]:
    """Yield (kind, symbol, table) chunks of a simulated market, in time order per symbol.

    depth_hours: hours from the start with `depth` events too (every book change; about
    4 x depth rows per book interval, so the default keeps them off); None: the whole run.

    >>> chunks = simulate(["BTC-USDT-PERP"], days=0.01, seed=1, depth_hours=0.1)
    >>> kinds = {kind for kind, _, _ in chunks}
    >>> sorted(kinds)
    ['bar', 'book', 'depth', 'funding', 'liquidation', 'trade']
    """
    start_ns, n = check_run(days, book_interval_ns, depth, start)
    # Chunks hold whole minutes so bars are never split.
    steps_per_chunk = max(1, int(chunk_ns // book_interval_ns))
    minute_steps = max(1, int(60 * NS_PER_S // book_interval_ns))
    steps_per_chunk = max(minute_steps, steps_per_chunk // minute_steps * minute_steps)
    for symbol in symbols:
        spec = spec_for(symbol)
        path = _price_path(spec, start_ns, n, book_interval_ns, seed)
        rng = _rng(seed, symbol, "book")
        next_id = 1
        depth_state: dict = {"seed": seed}
        depth_end = (
            start_ns + int(depth_hours * 3600 * NS_PER_S) if depth_hours is not None else None
        )
        for a in range(0, n, steps_per_chunk):
            sl = slice(a, min(n, a + steps_per_chunk))
            book = _book(spec, path, sl, depth, rng)
            yield "book", symbol, book
            if depth_end is None or int(path.ts[sl.start]) < depth_end:
                if depth_end is not None:
                    book = book.filter(pa.compute.less(book.column("ts"), depth_end))
                yield "depth", symbol, _depth(spec, book, depth, depth_state, book_interval_ns)
            trades, next_id = _trades(spec, path, sl, book_interval_ns, rng, next_id)
            yield "trade", symbol, trades
            yield "funding", symbol, _funding(spec, path, sl, book_interval_ns)
            yield "liquidation", symbol, _liquidations(spec, path, sl, book_interval_ns, rng)
            yield "bar", symbol, _bars(spec, path, sl, book_interval_ns, trades)


def generate(
    store,
    symbols: list[str],
    days: float,
    book_interval_ns: int = NS_PER_S,
    depth: int = 20,
    seed: int = 42,
    start: str | int = DEFAULT_START,
    progress: Callable[[str, int], None] | None = None,
    depth_hours: float | None = 0.0,
) -> dict[str, int]:
    """Simulate and write to `store` in batches; returns rows written per kind
    (`depth_hours`: see `simulate`)."""
    written: dict[str, int] = {}
    pending: dict[str, list[pa.Table]] = {}
    pending_rows: dict[str, int] = {}
    flush_rows = 500_000  # large batches: fewer, bigger files

    for kind, symbol, table in simulate(
        symbols, days, book_interval_ns, depth, seed, start, depth_hours=depth_hours
    ):
        if table.num_rows == 0:
            continue
        key = f"{kind}:{symbol}"
        pending.setdefault(key, []).append(table)
        pending_rows[key] = pending_rows.get(key, 0) + table.num_rows
        if pending_rows[key] >= flush_rows:
            _flush(key, pending, pending_rows, store, written)
        if progress is not None and kind == "book":
            progress(symbol, table.num_rows)
    for key in list(pending):
        _flush(key, pending, pending_rows, store, written)
    return written


def _flush(key, pending, pending_rows, store, written) -> None:
    kind = key.split(":")[0]
    tables = pending.pop(key, [])
    pending_rows.pop(key, None)
    if tables:
        res = store.write(kind, pa.concat_tables(tables))
        written[kind] = written.get(kind, 0) + res.written
