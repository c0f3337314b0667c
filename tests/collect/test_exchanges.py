"""Venue parsers against real captures (tests/data), checked against slow references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from algo_trade.errors import ConfigError
from algo_trade.exchanges import binance, bybit, hyperliquid, normalizer_for
from algo_trade.schema import validate
from tests.collect.refs import DATA, SEC, binance_reference_books, capture_lines, top
from tests.realdata import hyperliquid_main_dex_ctxs

BIN = "binance_usdm_btcusdt_20230404_head3000.gz"  # µs timestamps


def _rows(table):
    cols = [c for c in table.column_names if c.startswith(("bid_", "ask_"))]
    arr = np.column_stack([table.column(c).to_numpy() for c in cols])
    return dict(zip(table.column("ts").to_pylist(), arr, strict=True))


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


def test_binance_book_matches_direct_replay():
    lines = capture_lines(BIN, 1000)
    n = binance.Normalizer(["BTC-USDT-PERP"], depth=20, book_interval_ns=SEC)
    for ts, raw in lines:
        n.feed(ts, raw)
    got = _rows(n.drain()["book"])
    ref = binance_reference_books(lines, 20, SEC)
    assert len(got) >= 10
    assert set(got) == set(ref)
    for g, row in got.items():
        assert _same(row, ref[g]), g
    assert n.counters.malformed == 0 and n.counters.resyncs == 0


def test_binance_gap_resyncs_and_books_stay_correct():
    lines = capture_lines(BIN, 1000)
    diffs = [i for i, (_, r) in enumerate(lines) if "depthUpdate" in r]
    snap_i = next(i for i, (_, r) in enumerate(lines) if "lastUpdateId" in r)
    drop = [i for i in diffs if i > snap_i][200]
    ref = binance_reference_books(lines, 20, SEC)
    # A fresh snapshot, 300 diffs after the gap, built from the reference replay state.
    resume = [i for i in diffs if i > drop][300]
    snap = json.loads(lines[snap_i][1])
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    for i in diffs:
        if i > resume:
            break
        d = json.loads(lines[i][1])["data"]
        if d["u"] < snap["lastUpdateId"]:
            continue
        for side, lv in ((bids, d["b"]), (asks, d["a"])):
            for p, q in lv:
                side.pop(float(p), None) if float(q) == 0 else side.__setitem__(float(p), float(q))
    last = json.loads(lines[resume][1])["data"]
    fresh = json.dumps(
        {
            "lastUpdateId": last["u"],
            "E": last["E"],
            "T": last["T"],
            "bids": [[str(p), str(q)] for p, q in bids.items()],
            "asks": [[str(p), str(q)] for p, q in asks.items()],
        }
    )
    n = binance.Normalizer(["BTC-USDT-PERP"], depth=20, book_interval_ns=SEC)
    for i, (ts, raw) in enumerate(lines):
        if i == drop:
            continue
        n.feed(ts, raw)
        if n.pending_snapshots() and i == resume:
            n.feed(ts, fresh)
    assert n.counters.resyncs == 1 and n.counters.gaps == 1
    got = _rows(n.drain()["book"])
    gap_t = json.loads(lines[drop][1])["data"]["E"] * 1_000_000
    resume_t = last["E"] * 1_000_000
    assert any(g > resume_t for g in got)  # books resumed after the resync
    for g, row in got.items():
        assert not (gap_t < g <= resume_t), "no book rows while out of sync"
        assert _same(row, ref[g]), g
    ev = [e for e in n.drain_events() if e.stream == "book"]
    assert len(ev) == 1 and ev[0].reason == "sequence gap" and ev[0].end_ns is not None


def test_binance_funding_and_settlement():
    n = binance.Normalizer(["BTC-USDT-PERP"])
    for ts, raw in capture_lines("binance_usdm_btcusdt_markprice_20230404_05.gz", 1000):
        n.feed(ts, raw)
    table = n.drain()["funding"]
    assert validate("funding", table).n_rejected == 0
    f = table.to_pandas()
    assert len(f) == 99 + 415 + 1
    settled = f[f.settled]
    assert settled.ts.tolist() == [1680652800000 * 1_000_000]
    # The settled rate is the last one published for that settlement time: the real
    # stream sent r=0.00002760 at E=...800010, after the hour, still with the old T.
    before = f[(~f.settled) & (f.next_ts == 1680652800000 * 1_000_000)].iloc[-1]
    assert settled.rate.iloc[0] == before.rate == 0.0000276
    first = f.iloc[
        0
    ]  # {"E":1680652701000,"p":"28147.27373413","i":"28159.75642857","r":"0.00002754"}
    assert (first.ts, first.rate, first.mark_px, first.index_px) == (
        1680652701000 * 1_000_000,
        0.00002754,
        28147.27373413,
        28159.75642857,
    )


def test_binance_trades_liquidations_and_malformed():
    n = binance.Normalizer(["BTC-USDT-PERP", "ETH-USDT-PERP"])
    n.feed(
        1,
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}',
    )
    n.feed(2, '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256344')  # truncated
    n.feed(3, "not json at all")
    # Binance's documented forceOrder format (no real capture exists).
    n.feed(
        4,
        '{"stream":"ethusdt@forceOrder","data":{"e":"forceOrder","E":1568014460893,"o":{"s":"ETHUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9911.5","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}',
    )
    n.feed(
        5,
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256344,"T":1723161256344,"s":"BTCUSDT","t":5266583936,"p":"61800.30","q":"0.199","X":"MARKET","m":true}}',
    )
    out = n.drain()
    t = out["trade"].to_pydict()
    assert t["trade_id"] == ["5266583935", "5266583936"] and t["side"] == [1, -1]
    assert t["ts"] == [1723161256322_000_000, 1723161256344_000_000] and t["qty"] == [0.006, 0.199]
    liq = out["liquidation"].to_pydict()
    assert (
        liq["symbol"] == ["ETH-USDT-PERP"]
        and liq["side"] == [-1]
        and liq["price"] == [9911.5]
        and liq["qty"] == [0.014]
    )
    assert n.counters.malformed == 2 and n.counters.messages == 5


def test_symbol_maps_and_instruments():
    assert (
        binance.to_venue("BTC-USDT-PERP") == "BTCUSDT"
        and binance.from_venue("BTCUSDT") == "BTC-USDT-PERP"
    )
    assert binance.from_venue("BTCUSDT_240927") == "BTC-USDT-240927"
    assert (
        bybit.to_venue("ETH-USDT-PERP") == "ETHUSDT"
        and bybit.from_venue("BTCPERP") == "BTC-USDC-PERP"
    )
    assert (
        hyperliquid.to_venue("BTC-USDT-PERP") == "BTC"
        and hyperliquid.from_venue("BTC") == "BTC-USDC-PERP"
    )
    assert "BTC-USDT-PERP" in binance.parse_instruments(
        (DATA / "binance_exchangeinfo_20210722_subset.json").read_bytes()
    )
    assert {"BTC-USDT-PERP", "ETH-USDT-PERP"} <= bybit.parse_instruments(
        (DATA / "bybit_instruments_linear_20260809_subset.json").read_bytes()
    )
    assert "BTC-USDC-PERP" in hyperliquid.parse_instruments(
        (DATA / "hyperliquid_meta_2023.json").read_bytes()
    )
    with pytest.raises(ConfigError):
        normalizer_for("kraken", ["BTC-USDT-PERP"])
    with pytest.raises(ConfigError):
        bybit.to_venue("BTC-USD-PERP")


def _bybit_lines():
    return capture_lines("bybit_v5_linear_btc_eth.jsonl.gz")


def test_bybit_book_trades_funding_match_reference():
    lines = _bybit_lines()
    n = bybit.Normalizer(["BTC-USDT-PERP", "ETH-USDT-PERP"], depth=10, book_interval_ns=SEC)
    for ts, raw in lines:
        n.feed(ts, raw)
    out = n.drain()
    assert n.counters.malformed == 0 and n.counters.resyncs == 0
    # Reference: snapshot replaces, deltas apply, row at g = state before first update with ts >= g.
    for sym, vs in (("BTC-USDT-PERP", "BTCUSDT"), ("ETH-USDT-PERP", "ETHUSDT")):
        bids, asks, ref, g = {}, {}, {}, None
        for _, raw in lines:
            m = json.loads(raw)
            if m.get("topic", "").startswith("orderbook.") and m["topic"].endswith("." + vs):
                ts = m["ts"] * 1_000_000
                if g is not None:
                    while ts >= g:
                        ref[g] = top(bids, asks, 10)
                        g += SEC
                if m["type"] == "snapshot":
                    bids = {float(p): float(q) for p, q in m["data"]["b"]}
                    asks = {float(p): float(q) for p, q in m["data"]["a"]}
                    g = g or (ts // SEC + 1) * SEC
                else:
                    for side, lv in ((bids, m["data"]["b"]), (asks, m["data"]["a"])):
                        for p, q in lv:
                            side.pop(float(p), None) if float(q) == 0 else side.__setitem__(
                                float(p), float(q)
                            )
        tab = out["book"].to_pandas()
        tab = tab[tab.symbol == sym]
        levels = tab.iloc[:, 3:].to_numpy(dtype=float)
        got = {int(ts): row for ts, row in zip(tab.ts, levels, strict=True)}
        assert len(got) >= 20 and set(got) == set(ref)
        for k, row in got.items():
            assert _same(row, ref[k])
    trades = out["trade"].to_pandas()
    n_ref = sum(len(json.loads(r)["data"]) for _, r in lines if '"publicTrade.' in r)
    assert len(trades) == n_ref and set(trades.side) <= {1, -1}
    f = out["funding"].to_pandas()
    btc = f[f.symbol == "BTC-USDT-PERP"]
    assert btc.rate.iloc[0] == 0.0001 and btc.next_ts.iloc[0] == 1786320000000 * 1_000_000
    assert (
        btc.interval_h.iloc[0] == 8.0
        and btc.mark_px.iloc[0] == 65117.44
        and btc.index_px.iloc[0] == 65137.76
    )
    assert btc.mark_px.iloc[1] == 65117.43  # from a delta merged into the full state


def test_bybit_gap_asks_for_resubscribe_and_liquidation_side():
    lines = _bybit_lines()
    deltas = [
        i
        for i, (_, r) in enumerate(lines)
        if "orderbook.50.BTCUSDT" in r or ("orderbook" in r and "BTCUSDT" in r and '"delta"' in r)
    ]
    n = bybit.Normalizer(["BTC-USDT-PERP"])
    for i, (ts, raw) in enumerate(lines):
        if i == deltas[50]:
            continue
        n.feed(ts, raw)
    assert n.counters.resyncs >= 1 and n.resubscribe() == ["BTC-USDT-PERP"]
    n.feed(
        1,
        '{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":1739502303204,"data":[{"T":1739502302929,"s":"BTCUSDT","S":"Buy","v":"0.003","p":"96000.0"}]}',
    )
    liq = n.drain()["liquidation"].to_pydict()
    assert liq["side"] == [-1] and liq["qty"] == [0.003]  # a long was liquidated: forced sell


def test_hyperliquid_books_trades_funding():
    lines = capture_lines("hyperliquid_btc_20250126.gz")
    n = hyperliquid.Normalizer(["BTC-USDT-PERP"], depth=20, book_interval_ns=SEC)
    assert n.symbols == ["BTC-USDC-PERP"]
    for ts, raw in lines:
        n.feed(ts, raw)
    meta = json.loads((DATA / "hyperliquid_meta_2023.json").read_text())
    ctxs = hyperliquid_main_dex_ctxs()
    n.feed(1737918869000000000, json.dumps([meta, ctxs]))
    out = n.drain()
    books = [json.loads(r)["data"] for _, r in lines if '"l2Book"' in r]
    ref = {}
    for prev, cur in zip(books, books[1:], strict=False):
        for g in range(
            (prev["time"] * 1_000_000 // SEC + 1) * SEC, cur["time"] * 1_000_000 + 1, SEC
        ):
            if g <= cur["time"] * 1_000_000:
                lv = prev["levels"]
                ref[g] = top(
                    {float(x["px"]): float(x["sz"]) for x in lv[0]},
                    {float(x["px"]): float(x["sz"]) for x in lv[1]},
                    20,
                )
    got = _rows(out["book"])
    assert set(got) == set(ref) and len(got) >= 20
    for g, row in got.items():
        assert _same(row, ref[g])
    n_trades = sum(len(json.loads(r)["data"]) for _, r in lines if '"trades"' in r)
    assert out["trade"].num_rows == n_trades
    f = out["funding"].to_pydict()
    assert f["mark_px"] == [77562.0] and f["index_px"] == [77605.0] and f["rate"] == [-0.0000015186]
    assert f["interval_h"] == [1.0] and f["next_ts"] == [1737921600000000000]
