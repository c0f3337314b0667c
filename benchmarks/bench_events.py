"""Events engine against hftbacktest 2.4 on the real Binance captures, side by side.

Both engines replay the same events: hftbacktest's own converter reads the capture
(../shared/realdata/hftbacktest/usdm_btcusdt_20240808.gz), and our event chunk is built from
its converted array (exchange rows: exch_ts, local_ts, side, price, qty), so differences come
from the engines, not the parsers. Same grid market maker (5 post-only orders per side, 10
ticks apart, requoted every 100 ms), same risk-averse queue model, constant 5 ms entry and
response latency, maker -0.5 bp / taker 4 bp; hftbacktest's no-partial-fill exchange vs ours
with partial_fills=False. Rows:

- grid MM: fill count and final PnL, ours vs hftbacktest (target within 2%);
- a taker strategy (market orders on 1-s mid changes): the same orders, in time and side;
- speed: events/s of the grid MM run, ours vs hftbacktest (target >= 2x), best of 3;
- first call in a fresh process with a warm compile cache (target <= 1 s);
- peak RSS of a 30-day streamed run (synthetic depth/trade events, 2M per day) (<= 2 GB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from algo_trade.engine import events as ev
from algo_trade.engine import orderapi as oa
from algo_trade.strategies.orderlevel import register

HERE = Path(__file__).resolve().parent
REAL = Path(
    os.environ.get("ALGO_TRADE_REALDATA", HERE.parent.parent.parent / "shared" / "realdata")
)
CAPTURE = REAL / "hftbacktest" / "usdm_btcusdt_20240808.gz"
TICK, LOT = 0.1, 0.001
ENTRY_NS = RESP_NS = 5_000_000
MAKER, TAKER = -0.5e-4, 4e-4
GRID = {"levels": 5, "step_ticks": 10, "half_spread_ticks": 10, "qty": 0.002, "max_position": 0.02,
        "every_ms": 100.0}  # fmt: skip


# ----------------------------------------------------------------------------- strategies
class TakerParams(NamedTuple):
    qty: float = 0.001
    every_ms: float = 1000.0


@register("bench_taker", TakerParams)
@njit(cache=True, nogil=True)
def taker(ctx, p):  # pragma: no cover - compiled
    """Every second: buy when the mid rose since the last look, sell when it fell; records
    (time, side) of every order in the user array (u[0]: count, u[1]: last mid)."""
    oa.set_wake(ctx, np.int64(p.every_ms * 1e6), False)
    u = oa.user(ctx)
    while oa.wait(ctx):
        m = oa.mid(ctx)
        if not (m > 0.0):
            continue
        last = u[1]
        u[1] = m
        if last > 0.0 and m != last:
            side = oa.BUY if m > last else oa.SELL
            oa.submit(ctx, side, 0.0, p.qty, oa.MARKET, oa.IOC, False)
            k = int(u[0])
            if 4 + 2 * k + 1 < u.shape[0]:
                u[4 + 2 * k] = oa.now(ctx) - 1_700_000_000_000_000_000
                u[4 + 2 * k + 1] = side
                u[0] = k + 1


def _hbt_grid():
    from hftbacktest import BUY, GTX, LIMIT, SELL

    @njit
    def grid(hbt, levels, step_ticks, half_ticks, qty, max_pos, every_ns):
        tick = hbt.depth(0).tick_size
        step = step_ticks * tick
        bids = np.empty(levels, np.int64)
        asks = np.empty(levels, np.int64)
        while hbt.elapse(every_ns) == 0:
            hbt.clear_inactive_orders(0)
            d = hbt.depth(0)
            bb = d.best_bid
            ba = d.best_ask
            if not (bb > 0 and ba > 0 and np.isfinite(bb) and np.isfinite(ba)):
                continue
            m = 0.5 * (bb + ba)
            b0 = np.floor((m - half_ticks * tick) / step + 1e-9) * step
            a0 = np.ceil((m + half_ticks * tick) / step - 1e-9) * step
            pos = hbt.position(0)
            nb = levels if pos < max_pos else 0
            na = levels if pos > -max_pos else 0
            for j in range(levels):
                bids[j] = np.int64(np.floor(min(b0 - j * step, bb) / tick + 1e-9))
                asks[j] = np.int64(np.ceil(max(a0 + j * step, ba) / tick - 1e-9))
            orders = hbt.orders(0)
            vals = orders.values()
            while vals.has_next():
                o = vals.get()
                if not o.cancellable:
                    continue
                keep = False
                if o.side == BUY:
                    for j in range(nb):
                        if bids[j] == o.price_tick:
                            keep = True
                else:
                    for j in range(na):
                        if asks[j] == o.price_tick:
                            keep = True
                if not keep:
                    hbt.cancel(0, o.order_id, False)
            for j in range(nb):
                if bids[j] not in orders:
                    hbt.submit_buy_order(0, bids[j], bids[j] * tick, qty, GTX, LIMIT, False)
            for j in range(na):
                if asks[j] not in orders:
                    hbt.submit_sell_order(0, asks[j], asks[j] * tick, qty, GTX, LIMIT, False)
        return True

    @njit
    def taker_hbt(hbt, qty, every_ns, out):
        last = 0.0
        k = 0
        oid = 0
        while hbt.elapse(every_ns) == 0:
            hbt.clear_inactive_orders(0)
            d = hbt.depth(0)
            if not (d.best_bid > 0 and d.best_ask > 0 and np.isfinite(d.best_ask)):
                continue
            m = 0.5 * (d.best_bid + d.best_ask)
            if last > 0.0 and m != last:
                oid += 1
                if m > last:
                    hbt.submit_buy_order(0, oid, d.best_ask, qty, 3, 1, False)  # IOC market
                    side = 1
                else:
                    hbt.submit_sell_order(0, oid, d.best_bid, qty, 3, 1, False)
                    side = -1
                if k < out.shape[0]:
                    out[k, 0] = hbt.current_timestamp - 1_700_000_000_000_000_000
                    out[k, 1] = side
                    k += 1
            last = m
        return k

    return grid, taker_hbt, BUY, SELL


# ----------------------------------------------------------------------------- data
def _converted(tmp: Path) -> np.ndarray:
    from hftbacktest.data.utils import binancefutures

    out = tmp / "hbt.npz"
    binancefutures.convert(str(CAPTURE), output_filename=str(out), combined_stream=True)
    return np.load(out)["data"]


def _our_chunk(data: np.ndarray) -> dict[str, np.ndarray]:
    """The exchange rows of hftbacktest's converted array as our depth/trade columns (each
    event is in the array once with the exchange flag)."""
    from hftbacktest import BUY_EVENT, EXCH_EVENT

    ev_ = data["ev"]
    rows = data[(ev_ & EXCH_EVENT) > 0]
    kind = rows["ev"] & 0xFF
    side = np.where((rows["ev"] & BUY_EVENT) > 0, 1, -1).astype(np.int8)
    out = {}
    for name, sel, flag in (
        ("depth", (kind == 1) | (kind == 4), kind == 4),
        ("trade", kind == 2, None),
    ):
        r = rows[sel]
        out[name] = {"ts": r["exch_ts"], "ts_local": r["local_ts"], "side": side[sel], "price": r["px"],
                     "qty": r["qty"]}  # fmt: skip
        if flag is not None:
            out[name]["flags"] = flag[sel].astype(np.uint8)
            out[name]["seq"] = np.zeros(int(sel.sum()), np.int64)
    return ev.build_events(out["depth"], out["trade"])


def _hbt_run(tmp: Path, fn, partial: bool, *args):
    from hftbacktest import BacktestAsset, ROIVectorMarketDepthBacktest

    a = (BacktestAsset().data([str(tmp / "hbt.npz")]).linear_asset(1.0)
         .constant_latency(ENTRY_NS, RESP_NS).risk_adverse_queue_model()
         .trading_value_fee_model(MAKER, TAKER).tick_size(TICK).lot_size(LOT)
         .roi_lb(30_000.0).roi_ub(90_000.0).last_trades_capacity(0))  # fmt: skip
    a = a.partial_fill_exchange() if partial else a.no_partial_fill_exchange()
    hbt = ROIVectorMarketDepthBacktest([a])
    t0 = time.process_time()  # CPU seconds: the machine is shared, wall time is not comparable
    r = fn(hbt, *args)
    dt = time.process_time() - t0
    sv = hbt.state_values(0)
    d = hbt.depth(0)
    mid = 0.5 * (d.best_bid + d.best_ask)
    pnl = sv.balance + sv.position * mid - sv.fee
    out = {
        "fills": int(sv.num_trades),
        "pnl": float(pnl),
        "seconds": dt,
        "ret": r,
        "position": sv.position,
    }
    hbt.close()
    return out


def _ours(chunk, strategy, params, user=None, **kw):
    cfg = {"tick_size": TICK, "lot_size": LOT, "fee_maker_bps": MAKER * 1e4, "fee_taker_bps": TAKER * 1e4,
           "entry_latency_ms": ENTRY_NS / 1e6, "response_latency_ms": RESP_NS / 1e6,
           "queue_model": "risk_averse", "partial_fills": False, "maintenance_margin": 0.0,
           "init_cash": 1e7, "leverage": 100.0, "price_window": 0.3, **kw}  # fmt: skip
    t0 = time.perf_counter()
    res = ev.run([chunk], strategy, params, user=user, **cfg)
    return res, time.perf_counter() - t0


# ----------------------------------------------------------------------------- memory
_MEM_SCRIPT = r"""
import resource, sys, time
import numpy as np
from algo_trade.engine import events as ev
DAYS, PER_DAY = int(sys.argv[1]), int(sys.argv[2])
def days():
    rng = np.random.default_rng(7)
    t0 = 1_704_067_200_000_000_000
    mid = 40_000.0
    for d in range(DAYS):
        n = PER_DAY
        ts = t0 + d * 86_400 * 10**9 + np.sort(rng.integers(0, 86_400 * 10**9, n))
        steps = rng.choice([-0.1, 0.0, 0.1], n, p=[0.05, 0.9, 0.05])
        m = np.round(mid + np.cumsum(steps), 1)
        mid = float(m[-1])
        side = rng.choice(np.array([1, -1], np.int8), n)
        lvl = rng.integers(0, 20, n)
        px = np.round(np.where(side == 1, m - 0.1 * lvl, m + 0.1 + 0.1 * lvl), 1)
        qty = np.round(rng.exponential(1.0, n) * (rng.random(n) > 0.1), 3)
        tr = rng.random(n) < 0.05
        qty[tr] = np.maximum(qty[tr], 0.001)
        px[tr] = np.where(side[tr] == 1, m[tr] + 0.1, m[tr])
        lat = ts + 3_000_000
        depth = {"ts": ts[~tr], "ts_local": lat[~tr], "side": side[~tr], "price": px[~tr], "qty": qty[~tr]}
        trade = {"ts": ts[tr], "ts_local": lat[tr], "side": side[tr], "price": px[tr], "qty": qty[tr]}
        yield ev.build_events(depth, trade)
t = time.perf_counter()
res = ev.run(days(), "grid_mm", {"levels": 5, "step_ticks": 2, "half_spread_ticks": 1, "qty": 0.01,
             "max_position": 0.1, "every_ms": 100.0}, tick_size=0.1, fee_maker_bps=-0.5,
             price_window=0.3, entry_latency_ms=5, response_latency_ms=5)
print(res.stats["events"], res.stats["fills"], time.perf_counter() - t,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

_FIRST_CALL = r"""
import time
t0 = time.perf_counter()
import numpy as np
from algo_trade.engine import events as ev
t1 = time.perf_counter()
ts = np.arange(1, 2001, dtype=np.int64) * 1_000_000
depth = {"ts": ts, "ts_local": ts + 1_000_000, "side": np.where(ts % 2 == 0, 1, -1).astype(np.int8),
         "price": np.where(ts % 2 == 0, 99.9, 100.0), "qty": np.full(2000, 1.0)}
res = ev.run([ev.build_events(depth)], "grid_mm", {"levels": 2, "step_ticks": 1, "half_spread_ticks": 0,
             "qty": 0.1, "max_position": 1.0, "every_ms": 50.0}, tick_size=0.1)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def run(quick: bool) -> list[dict]:
    rows: list[dict] = []
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        return [{"name": "hftbacktest comparison", "value": None, "unit": "", "ok": False,
                 "note": "hftbacktest not installed (pip install -e '.[bench]')"}]  # fmt: skip
    if not CAPTURE.exists():
        return [{"name": "hftbacktest comparison", "value": None, "unit": "", "ok": False,
                 "note": f"{CAPTURE} not found"}]  # fmt: skip
    grid, taker_hbt, _, _ = _hbt_grid()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = _converted(tmp)
        chunk = _our_chunk(data)
        n_ev = len(chunk["ts"])
        args = (GRID["levels"], GRID["step_ticks"], GRID["half_spread_ticks"], GRID["qty"],
                GRID["max_position"], int(GRID["every_ms"] * 1e6))  # fmt: skip
        _hbt_run(tmp, grid, False, *args)  # compile
        _ours(chunk, "grid_mm", GRID)
        best_h, best_o = np.inf, np.inf
        for _ in range(1 if quick else 3):
            h = _hbt_run(tmp, grid, False, *args)
            best_h = min(best_h, h["seconds"])
            res, dt = _ours(chunk, "grid_mm", GRID)
            best_o = min(best_o, res.timings["cpu"])
        o_fills = res.stats["fills"]
        o_pnl = res.stats["final_equity"] - 1e7
        df = abs(o_fills - h["fills"]) / max(h["fills"], 1)
        dp = abs(o_pnl - h["pnl"]) / max(abs(h["pnl"]), 1e-9)
        rows.append({"name": "grid MM fills, ours vs hftbacktest (no partial fills, risk-averse queue)",
                     "value": o_fills, "unit": "fills", "baseline": f"hftbacktest {h['fills']}",
                     "target": "within 2%", "ok": bool(df <= 0.02),
                     "note": f"difference {df:.2%}; {n_ev:,} events of {CAPTURE.name}"})  # fmt: skip
        rows.append({"name": "grid MM final PnL, ours vs hftbacktest", "value": round(o_pnl, 4),
                     "unit": "USDT", "baseline": f"hftbacktest {h['pnl']:.4f}", "target": "within 2%",
                     "ok": bool(dp <= 0.02), "note": f"difference {dp:.2%}"})  # fmt: skip
        rate_o, rate_h = n_ev / best_o, n_ev / best_h
        rows.append({"name": "grid MM events/s per CPU second (same events, best of 3)", "value": round(rate_o),
                     "unit": "events/s", "baseline": f"hftbacktest {rate_h:,.0f}/s",
                     "target": ">= 2x hftbacktest", "ok": bool(rate_o >= 2 * rate_h),
                     "note": f"ratio {rate_o / rate_h:.2f}x"})  # fmt: skip
        # taker: the same orders
        out = np.zeros((100_000, 2))
        th = _hbt_run(tmp, taker_hbt, False, 0.001, 1_000_000_000, out)
        k = th["ret"]
        u = np.zeros(4 + 2 * 100_000)
        tres, _ = _ours(chunk, "bench_taker", {"qty": 0.001, "every_ms": 1000.0}, user=u)
        ko = int(tres.user_array[0])
        mine = tres.user_array[4 : 4 + 2 * ko].reshape(-1, 2)
        theirs = out[:k]
        same = (
            ko == k
            and np.array_equal(mine[:, 1], theirs[:, 1])
            and np.allclose(mine[:, 0], theirs[:, 0], atol=1e6)
        )
        rows.append({"name": "taker strategy: same orders as hftbacktest (time and side)", "value": ko,
                     "unit": "orders", "baseline": f"hftbacktest {k}", "target": "identical",
                     "ok": bool(same)})  # fmt: skip
    # first call in a fresh process (cache warmed by the runs above)
    py = sys.executable
    r = subprocess.run([py, "-c", _FIRST_CALL], capture_output=True, text=True, check=True)
    imp, first = map(float, r.stdout.split())
    rows.append({"name": "first events run in a fresh process, warm compile cache", "value": round(first, 3),
                 "unit": "s", "target": "<= 1 s", "ok": bool(first <= 1.0),
                 "note": f"imports before it {imp:.2f} s"})  # fmt: skip
    days, per_day = (2, 500_000) if quick else (30, 2_000_000)
    r = subprocess.run(
        [py, "-c", _MEM_SCRIPT, str(days), str(per_day)], capture_output=True, text=True, check=True
    )
    n, fills, secs, rss = r.stdout.split()
    rows.append({"name": f"peak RSS, {days}-day streamed events run ({int(n):,} events)",
                 "value": round(float(rss)), "unit": "MB", "target": "<= 2048 MB",
                 "ok": bool(float(rss) <= 2048),
                 "note": f"{int(fills):,} fills in {float(secs):.0f} s; synthetic depth/trade days (2M events each) "
                         "generated in the process, one day in memory at a time"})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
