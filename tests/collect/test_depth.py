"""`--streams depth` end to end: real replay servers (real captures) with dropped
connections, sequence gaps and garbage frames, the real collector, a real lake.

What is checked, per venue:
- every stored depth row is a level of a message the venue sent (the raw record holds
  what arrived; the server's own log of sent frames agrees), with the same size, and
  none is stored twice;
- nothing the venue sent after the sequence check is missing;
- every break in the venue's sequence is followed by a snapshot run flagged RESYNC,
  and diffs continue only the message stored just before them (no book state is carried
  across a gap);
- the book rebuilt from the stored depth rows equals the collector's own sampled `book`
  rows at every sampled time, and has no row inside a gap.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import numpy as np
import pyarrow as pa

from algo_trade.collect.pipeline import Collector
from algo_trade.data.depth_books import books_from_depth
from algo_trade.schema import DEPTH_RESYNC, DEPTH_SNAPSHOT
from algo_trade.store.lake import LakeStore
from algo_trade.testing.replay import Faults, load_capture
from tests.collect.harness import (
    FAR_FUTURE,
    FAR_PAST,
    binance_server,
    bybit_server,
    config,
    drive,
    hl_server,
    scan_all,
    sent_frames,
)
from tests.collect.test_pipeline import indexes

SYM = "BTC-USDT-PERP"
IV = 250_000_000
MS = 1_000_000


def _raw(tmp_path, exchange: str) -> list[str]:
    files = sorted((tmp_path / "raw" / exchange).glob("*.gz"))
    return [raw for f in files for _, raw in load_capture(f)]


def _loads(raw: str) -> dict | None:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _messages(depth: pa.Table) -> list[dict]:
    """Stored depth rows grouped into messages (consecutive rows sharing ts, seq, flags),
    in the order they were stored (read order)."""
    d = depth.to_pydict()
    out: list[dict] = []
    for i in range(depth.num_rows):
        key = (d["ts"][i], d["seq"][i], d["flags"][i])
        if not out or out[-1]["key"] != key:
            out.append({"key": key, "levels": {}})
        out[-1]["levels"][(d["side"][i], d["price"][i])] = d["qty"][i]
    return out


def _levels(bids: list, asks: list) -> dict:
    lv = {(1, float(p)): float(q) for p, q, *_ in bids}
    lv.update({(-1, float(p)): float(q) for p, q, *_ in asks})
    return lv


def _check_rows_once(depth: pa.Table) -> None:
    keys = list(
        zip(
            *(depth.column(c).to_pylist() for c in ("ts", "seq", "flags", "side", "price")),
            strict=True,
        )
    )
    dup = [k for k, n in Counter(keys).items() if n > 1]
    assert not dup, dup[:5]


def _check_rebuilt_books(store, exchange: str, symbol: str, depth_n: int, msgs: list) -> int:
    """Books rebuilt from stored depth equal the collector's sampled rows at every sampled
    time; a rebuilt row the collector lacks lies between a RESYNC run and the collector's
    first row after it (the snapshot's state existed from the run's ts on). Returns the
    rows compared."""
    got = scan_all(store, "book", exchange, symbol)
    cols = [c for c in got.column_names if c.startswith(("bid_", "ask_"))]
    mine = dict(
        zip(
            got.column("ts").to_pylist(),
            np.column_stack([got.column(c).to_numpy() for c in cols]),
            strict=True,
        )
    )
    rebuilt_t = pa.concat_tables(
        list(
            books_from_depth(
                store, exchange, symbol, FAR_PAST, FAR_FUTURE, interval_ns=IV, depth=depth_n
            )
        )
    )
    rebuilt = dict(
        zip(
            rebuilt_t.column("ts").to_pylist(),
            np.column_stack([rebuilt_t.column(c).to_numpy() for c in cols]),
            strict=True,
        )
    )
    assert mine and set(mine) <= set(rebuilt), sorted(set(mine) - set(rebuilt))[:5]
    for g, row in mine.items():
        assert np.array_equal(row, rebuilt[g], equal_nan=True), g
    mine_ts = np.array(sorted(mine))
    runs = [m["key"][0] for m in msgs if m["key"][2] & DEPTH_RESYNC]
    for g in set(rebuilt) - set(mine):
        after = [r for r in runs if r < g]
        assert after, g
        nxt = mine_ts[mine_ts > after[-1]]
        assert not len(nxt) or g < nxt[0], (g, after[-1])
    return len(mine)


# ---------------------------------------------------------------------------- binance
def _binance_collect(tmp_path, faults: Faults, streams=("book", "depth", "trade")):
    srv = binance_server(speed=8, faults=faults)
    diffs = indexes(srv, "btcusdt@depth")
    # sequence gaps (never sent) and garbage (half a frame) among the diffs
    srv.faults.skip = {diffs[300], diffs[700], diffs[701]}
    srv.faults.malformed = {diffs[500], diffs[900]}

    async def main():
        await srv.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path,
            {"binance": srv},
            streams=streams,
            book_interval_ns=IV,
            record_raw=tmp_path / "raw",
        )
        col = Collector(cfg, store)
        keys = {"btcusdt@depth"} | ({"btcusdt@trade"} if "trade" in streams else set())
        summary = await drive(col, lambda: srv.done(keys))
        await srv.stop()
        return srv, store, summary

    return asyncio.run(main())


def test_binance_depth_stores_every_diff_once_and_a_snapshot_run_per_resync(tmp_path):
    srv, store, summary = _binance_collect(tmp_path, Faults(drop_every=300, max_drops=3))
    assert srv.drops == 3 and summary["resyncs"] >= 2 and summary["malformed"] == 2
    depth = scan_all(store, "depth", "binance", SYM)
    _check_rows_once(depth)
    msgs = _messages(depth)
    # What the venue sent: diffs from the server's log (the raw record agrees), REST
    # snapshots from the raw record (the bodies as they arrived).
    sent = [json.loads(r)["data"] for r in sent_frames(srv, "btcusdt@depth")]
    raw = _raw(tmp_path, "binance")
    raw_diffs = [_loads(r)["data"] for r in raw if '"depthUpdate"' in r and _loads(r)]
    # what arrived is what the server sent, less the two garbage frames
    assert {d["u"] for d in raw_diffs} <= {d["u"] for d in sent}
    assert len(raw_diffs) == len(sent) - 2
    diff_by_key = {(d["E"] * MS, d["u"]): d for d in sent}
    snaps = {json.loads(r)["lastUpdateId"]: json.loads(r) for r in raw if "lastUpdateId" in r}
    stored_u = set()
    n_runs = 0
    prev = None
    for m in msgs:
        ts, seq, flags = m["key"]
        if flags & DEPTH_SNAPSHOT:
            n_runs += 1
            assert flags & DEPTH_RESYNC  # a Binance book only ever starts from a REST snapshot
            snap = snaps[seq]
            assert m["levels"] == _levels(snap["bids"], snap["asks"])
            assert ts <= snap["E"] * MS
        else:
            d = diff_by_key[(ts, seq)]
            assert m["levels"] == _levels(d["b"], d["a"])  # the whole message, as sent
            stored_u.add(d["u"])
            # continuity: a diff follows the message stored right before it
            ps, pflags = prev["key"][1], prev["key"][2]
            if pflags & DEPTH_SNAPSHOT:
                # the diff bridging the snapshot, or the one after a bridging diff
                # already inside it (u == lastUpdateId: not stored)
                bridges = d["U"] <= ps <= d["u"]
                assert (bridges or d["pu"] == ps) and d["u"] > ps, (d["U"], d["u"], ps)
            else:
                assert d["pu"] == ps, (d["pu"], ps)
        prev = m
    # one run to start, one per sequence gap and one per reconnect of the book stream
    book_reconnects = {r["stream"]: r["reconnects"] for r in summary["streams"]}["book"]
    assert n_runs == 1 + summary["resyncs"] + book_reconnects
    # nothing sent after the sequence check is missing: an unstored diff is inside the
    # next snapshot (u <= its lastUpdateId) with no stored diff between
    run_seqs = sorted(s for (_, s, f) in (m["key"] for m in msgs) if f & DEPTH_SNAPSHOT)
    for d in sent:
        if d["u"] in stored_u:
            continue
        later = [s for s in run_seqs if s >= d["u"]]
        assert later, d["u"]
        assert not any(d["u"] <= u <= later[0] for u in stored_u), d["u"]
    assert _check_rebuilt_books(store, "binance", SYM, 20, msgs) >= 40
    assert summary["rejected"] == {}


def test_binance_depth_alone_stores_no_book_rows(tmp_path):
    srv, store, summary = _binance_collect(tmp_path, Faults(), streams=("depth",))
    rows = {r["stream"]: r for r in summary["streams"]}
    assert set(rows) == {"depth"} and rows["depth"]["messages"] > 1000
    assert ("book", "binance", SYM) not in set(store.symbols("book"))
    depth = scan_all(store, "depth", "binance", SYM)
    assert depth.num_rows > 10_000
    _check_rows_once(depth)
    assert summary["written"]["binance/depth"] == depth.num_rows


# ---------------------------------------------------------------------------- bybit
def test_bybit_depth_snapshot_runs_and_deltas(tmp_path):
    by = bybit_server(speed=4, faults=Faults(drop_every=150, max_drops=2))
    deltas = indexes(by, "orderbook.BTCUSDT")
    by.faults.skip = {deltas[60]}
    by.faults.malformed = {deltas[90]}

    async def main():
        await by.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path,
            {"bybit": by},
            symbols=("BTC-USDT-PERP",),
            streams=("book", "depth", "trade"),
            depth=10,
            book_interval_ns=IV,
            record_raw=tmp_path / "raw",
        )
        col = Collector(cfg, store)
        summary = await drive(col, lambda: by.done({"orderbook.BTCUSDT", "publicTrade.BTCUSDT"}))
        await by.stop()
        return store, summary

    store, summary = asyncio.run(main())
    assert summary["resyncs"] >= 1 and by.drops == 2
    depth = scan_all(store, "depth", "bybit", SYM)
    _check_rows_once(depth)
    msgs = _messages(depth)
    books = [b for r in _raw(tmp_path, "bybit") if '"orderbook.' in r and (b := _loads(r))]
    by_key = {}
    for b in books:
        snap = b["type"] == "snapshot"
        by_key[(b["ts"] * MS, b["data"]["u"], snap)] = b
    prev = None
    runs = 0
    for m in msgs:
        ts, seq, flags = m["key"]
        snap = bool(flags & DEPTH_SNAPSHOT)
        b = by_key[(ts, seq, snap)]
        assert m["levels"] == _levels(b["data"]["b"], b["data"]["a"])
        if snap:
            runs += 1
        else:
            # deltas continue the stored message before; a resync snapshot carrying the
            # same (ts, u) as the last delta received before the gap reads before it
            # (snapshot rows first) and holds its levels already
            same = prev["key"][:2] == (ts, seq) and prev["key"][2] & DEPTH_SNAPSHOT
            assert seq == prev["key"][1] + 1 or same, (seq, prev["key"])
        prev = m
    # every delta received after a snapshot with no gap since is stored
    stored = {(m["key"][0], m["key"][1]) for m in msgs}
    expect, synced, last = set(), False, None
    for b in books:
        u = b["data"]["u"]
        if b["type"] == "snapshot":
            synced, last = True, u
        elif synced and u == last + 1:
            expect.add((b["ts"] * MS, u))
            last = u
        else:
            synced = False
    assert {k for k in stored if k in expect} == expect
    assert runs == 1 + summary["resyncs"] + summary["reconnects"]
    assert _check_rebuilt_books(store, "bybit", SYM, 10, msgs) >= 20


# ---------------------------------------------------------------------------- hyperliquid
def test_hyperliquid_l2book_messages_are_snapshot_runs(tmp_path):
    hl = hl_server(speed=4, faults=Faults(drop_every=20, max_drops=1))
    books_idx = indexes(hl, "l2Book:BTC")
    hl.faults.malformed = {books_idx[10]}

    async def main():
        await hl.start()
        store = LakeStore(tmp_path)
        cfg = config(
            tmp_path,
            {"hyperliquid": hl},
            streams=("book", "depth"),
            book_interval_ns=IV,
            record_raw=tmp_path / "raw",
        )
        col = Collector(cfg, store)
        summary = await drive(col, lambda: hl.done({"l2Book:BTC"}))
        await hl.stop()
        return store, summary

    store, summary = asyncio.run(main())
    assert summary["malformed"] == 1 and summary["reconnects"] == 1
    depth = scan_all(store, "depth", "hyperliquid", "BTC-USDC-PERP")
    _check_rows_once(depth)
    msgs = _messages(depth)
    books = [
        b["data"]
        for r in _raw(tmp_path, "hyperliquid")
        if (b := _loads(r)) and b.get("channel") == "l2Book"
    ]
    # one run per distinct book the venue sent (the subscription's first push repeats
    # the snapshot it answered with: stored once)
    distinct = []
    for b in books:
        lv = _levels(*([(x["px"], x["sz"]) for x in side] for side in b["levels"]))
        if not distinct or distinct[-1] != (b["time"] * MS, lv):
            distinct.append((b["time"] * MS, lv))
    assert [(m["key"][0], m["levels"]) for m in msgs] == distinct
    assert all(m["key"][1] == -1 and m["key"][2] & DEPTH_SNAPSHOT for m in msgs)
    resync_runs = [m for m in msgs if m["key"][2] & DEPTH_RESYNC]
    assert len(resync_runs) == 2  # the start and the reconnect
    assert _check_rebuilt_books(store, "hyperliquid", "BTC-USDC-PERP", 20, msgs) >= 20
