"""Raw captures -> `depth` rows (every accepted update with both clocks), checked against an
independent, obviously-correct Python replay of Binance's book rules on the same lines."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from algo_trade.exchanges import binance
from algo_trade.exchanges.binance_frames import BinanceFrames
from algo_trade.importers import ImportOptions, run_import
from algo_trade.importers import capture as capture_mod
from tests.importers.conftest import stored
from tests.importers.helpers import DATA
from tests.realdata import REALDATA

USDM_2024 = "binance_usdm_btcusdt_20240808_head12000.gz"
USDM_0404 = "binance_usdm_btcusdt_20230404.dat.gz"
REAL = REALDATA / "hftbacktest"


def recv_ns(v: int) -> int:
    return v * 1_000_000 if v < 10**14 else v * 1000 if v < 10**17 else v


def reference(lines: list[bytes]) -> tuple[list[tuple], dict]:
    """Binance USD-M depth rows by the documented rules, one message at a time:
    (ts, ts_local, side, price, qty, seq, snapshot)."""
    rows: list[tuple] = []
    held: list[tuple[int, dict]] = []
    snap: tuple[int, dict] | None = None
    synced = False
    last_u = 0
    floor = 0
    counts = {"stale": 0, "gaps": 0}

    def levels(d: dict, b: str, a: str) -> list[tuple[int, float, float]]:
        return [(-1, float(p), float(q)) for p, q in d[a]] + [
            (1, float(p), float(q)) for p, q in d[b]
        ]

    def diff(recv: int, d: dict) -> None:
        nonlocal snap, synced, last_u, floor
        u = d["u"]
        if synced:
            if d["pu"] != last_u:
                synced = False
                counts["gaps"] += 1
                held.append((recv, d))
                return
            tl = max(recv, floor)
            rows.extend((d["E"] * 10**6, tl, s, p, q, u, 0) for s, p, q in levels(d, "b", "a"))
            last_u = u
            return
        if snap is None:
            held.append((recv, d))
            return
        s_recv, s = snap
        lid = s["lastUpdateId"]
        if u < lid:
            counts["stale"] += 1
            return
        if d["U"] > lid:
            snap = None
            counts["gaps"] += 1
            held.append((recv, d))
            return
        snap = None
        synced = True
        floor = s_recv
        ts = min((s.get("E") or s.get("T")) * 10**6, d["E"] * 10**6)
        rows.extend(
            (ts, s_recv, sd, p, q, lid, 1) for sd, p, q in levels(s, "bids", "asks") if q > 0
        )
        rows.extend(
            (d["E"] * 10**6, max(recv, s_recv), sd, p, q, u, 0) for sd, p, q in levels(d, "b", "a")
        )
        last_u = u

    for line in lines:
        ts_text, raw = line.split(b" ", 1)
        recv = recv_ns(int(ts_text))
        obj = json.loads(raw)
        d = obj.get("data", obj)
        if d.get("e") == "depthUpdate":
            diff(recv, d)
        elif "lastUpdateId" in d:
            synced = False
            snap = (recv, d)
            pending, held[:] = list(held), []
            for r, h in pending:
                diff(r, h)
    return rows, counts


def depth_rows(table) -> list[tuple]:  # noqa: ANN001
    d = table.to_pydict()
    return list(
        zip(
            d["ts"],
            d["ts_local"],
            d["side"],
            d["price"],
            d["qty"],
            d["seq"],
            [f & 1 for f in d["flags"]],
            strict=True,
        )
    )


@pytest.mark.parametrize("name", [USDM_2024, USDM_0404])
def test_binance_depth_equals_independent_replay(lake, name):
    lines = gzip.open(DATA / name).read().splitlines()
    want, counts = reference(lines)
    summary = run_import(lake, "capture", [DATA / name], ImportOptions())
    got = depth_rows(stored(lake, "depth", "binance", "BTC-USDT-PERP"))
    assert summary.rows()["depth"] == len(want) == len(got)
    key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731 - the read order
    assert got == sorted(want, key=key)
    assert not summary.files[0].rejected
    snaps = [r for r in got if r[6]]
    assert len({(r[0], r[5]) for r in snaps}) == 1  # one snapshot run starts the book
    notes = summary.files[0].notes
    assert f"stale_dropped: {counts['stale']}" in notes or counts["stale"] == 0
    assert "book" not in summary.rows()  # books are rebuilt from depth on load
    # Trades carry the receipt time too.
    trades = stored(lake, "trade", "binance", "BTC-USDT-PERP").to_pydict()
    by_id = {}
    for line in lines:
        ts_text, raw = line.split(b" ", 1)
        d = json.loads(raw).get("data", {})
        if d.get("e") == "trade":
            by_id[str(d["t"])] = recv_ns(int(ts_text))
    assert dict(zip(trades["trade_id"], trades["ts_local"], strict=True)) == by_id


def test_small_blocks_give_the_same_rows(lake, tmp_path, monkeypatch):
    """Lines cut into many blocks (the snapshot's fate decided blocks later) change nothing."""
    name = USDM_0404
    run_import(lake, "capture", [DATA / name], ImportOptions())
    whole = depth_rows(stored(lake, "depth", "binance", "BTC-USDT-PERP"))
    from algo_trade.store.lake import LakeStore

    monkeypatch.setattr(capture_mod, "BLOCK_BYTES", 2_000)
    small = LakeStore(tmp_path / "small")
    run_import(small, "capture", [DATA / name], ImportOptions())
    assert depth_rows(stored(small, "depth", "binance", "BTC-USDT-PERP")) == whole


def replay(rows: list[tuple]) -> tuple[dict, dict]:
    """The book after depth rows in read order (a snapshot run clears it first)."""
    bids: dict = {}
    asks: dict = {}
    run = None
    for ts, _tl, side, px, qty, seq, snap in rows:
        if snap and run != (ts, seq):
            bids.clear()
            asks.clear()
        run = (ts, seq) if snap else None
        book = bids if side == 1 else asks
        if qty:
            book[px] = qty
        else:
            book.pop(px, None)
    return bids, asks


def test_gap_then_resync_rebuilds_the_true_book():
    """A lost diff breaks the pu chain: the book is lost (no rows) until a new snapshot
    bridges the held diff; it starts a second snapshot run and the book is the true one."""
    lines = gzip.open(DATA / USDM_0404).read().splitlines()
    snap_i = next(i for i, x in enumerate(lines) if b"lastUpdateId" in x)
    diffs = [i for i, x in enumerate(lines) if b"depthUpdate" in x and i > snap_i]
    drop, nxt = diffs[200], diffs[201]
    # The true book just after diff `nxt` (from every line), as a REST body.
    rows, _ = reference(lines[: nxt + 1])
    bids, asks = replay(sorted(rows, key=lambda r: (r[0], r[5], -r[6], r[2], r[3])))
    d_next = json.loads(lines[nxt].split(b" ", 1)[1])["data"]
    recv = int(lines[nxt].split(b" ", 1)[0]) + 5_000
    body = {
        "lastUpdateId": d_next["u"],
        "E": d_next["E"] + 3,
        "T": d_next["T"],
        "bids": [[repr(p), repr(q)] for p, q in sorted(bids.items(), reverse=True)],
        "asks": [[repr(p), repr(q)] for p, q in sorted(asks.items())],
    }
    snap_line = f"{recv} {json.dumps(body)}".encode()
    edited = lines[:drop] + lines[drop + 1 : nxt + 1] + [snap_line] + lines[nxt + 1 :]
    f = BinanceFrames(binance.Normalizer(["BTC-USDT-PERP"]))
    got = f.feed_lines(b"\n".join(edited) + b"\n")
    ts, ts_local, _sym, side, px, qty, seq, flags = got.depth
    assert f.counters()["gaps"] == 1
    lost = np.flatnonzero(flags & 128)
    assert len(lost) == 1
    runs = {
        (t, s) for t, s, fl in zip(ts.tolist(), seq.tolist(), flags.tolist(), strict=True) if fl & 1
    }
    assert len(runs) == 2 and (d_next["E"] * 10**6, d_next["u"]) in runs
    keep = (flags & 128) == 0
    mine = list(
        zip(
            ts[keep].tolist(),
            ts_local[keep].tolist(),
            side[keep].tolist(),
            px[keep].tolist(),
            qty[keep].tolist(),
            seq[keep].tolist(),
            (flags[keep] & 1).tolist(),
            strict=True,
        )
    )
    # Nothing between the loss and the new snapshot: the diff after the hole is applied
    # only after the snapshot that bridges it (rows in read order replay to the truth).
    truth, _ = reference(lines)
    key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731
    assert replay(sorted(mine, key=key)) == replay(sorted(truth, key=key))
    assert np.all(np.diff(ts_local[keep]) >= 0)


def test_full_hftbacktest_captures_match_the_reference(lake):
    """Every Binance USD-M capture in ../shared/realdata/hftbacktest (skipped when absent)."""
    files = sorted(REAL.glob("usdm_*.gz")) if REAL.exists() else []
    if not files:
        pytest.skip("../shared/realdata/hftbacktest not present")
    for path in files:
        lines = gzip.open(path).read().splitlines()
        want, _ = reference(lines)
        sym = "BTC-USDT-PERP" if "btc" in path.name else "ETH-USDT-PERP"
        f = BinanceFrames(binance.Normalizer([sym]))
        got = f.feed_lines(b"\n".join(lines) + b"\n")
        ts, ts_local, _s, side, px, qty, seq, flags = got.depth
        keep = (flags & 128) == 0
        rows = list(
            zip(
                ts[keep].tolist(),
                ts_local[keep].tolist(),
                side[keep].tolist(),
                px[keep].tolist(),
                qty[keep].tolist(),
                seq[keep].tolist(),
                (flags[keep] & 1).tolist(),
                strict=True,
            )
        )
        key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731
        assert sorted(rows, key=key) == sorted(want, key=key), path.name


def _lines_objs(name: str) -> list[tuple[int, dict]]:
    out = []
    for line in gzip.open(DATA / name).read().splitlines():
        ts_text, raw = line.split(b" ", 1)
        out.append((recv_ns(int(ts_text)), json.loads(raw)))
    return out


def test_bybit_depth_follows_the_u_rule(lake):
    """Bybit v5 orderbook: a snapshot (or u == 1) is a snapshot run of its levels, each
    delta with u = previous u + 1 its levels; rows counted independently per symbol."""
    name = "bybit_v5_linear_btc_eth.jsonl.gz"
    want: dict[str, list[tuple]] = {}
    last: dict[str, int | None] = {}
    for recv, m in _lines_objs(name):
        topic = str(m.get("topic", ""))
        if not topic.startswith("orderbook."):
            continue
        d, sym = m["data"], topic.rpartition(".")[2]
        ts, u = m["ts"] * 10**6, d["u"]
        rows = want.setdefault(sym, [])
        if m["type"] == "snapshot" or u == 1:
            lv = [(1, float(p), float(q)) for p, q in d["b"] if float(q) > 0]
            lv += [(-1, float(p), float(q)) for p, q in d["a"] if float(q) > 0]
            rows += [(ts, recv, s, p, q, u, 1) for s, p, q in lv]
            last[sym] = u
        elif last.get(sym) is not None and u == last[sym] + 1:
            lv = [(1, float(p), float(q)) for p, q in d["b"]]
            lv += [(-1, float(p), float(q)) for p, q in d["a"]]
            rows += [(ts, recv, s, p, q, u, 0) for s, p, q in lv]
            last[sym] = u
        else:
            last[sym] = None  # a gap: nothing until the next snapshot
    summary = run_import(lake, "capture", [DATA / name], ImportOptions())
    key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731
    total = 0
    for venue, ours in (("BTCUSDT", "BTC-USDT-PERP"), ("ETHUSDT", "ETH-USDT-PERP")):
        got = depth_rows(stored(lake, "depth", "bybit", ours))
        assert got == sorted(want[venue], key=key), venue
        total += len(got)
    assert summary.rows()["depth"] == total > 10_000
    assert "book" not in summary.rows()
    again = run_import(lake, "capture", [DATA / name], ImportOptions())
    assert again.rows().get("depth", 0) == 0


def test_hyperliquid_l2book_is_a_snapshot_run_each(lake):
    """Every l2Book is a full book: a snapshot run of its levels (a second book at the
    same time is stored as its changes from the first); trades carry ts_local."""
    name = "hyperliquid_btc_20250126.gz"
    runs = 0
    want_rows = 0
    prev: dict | None = None
    prev_time = None
    trades = {}
    for recv, m in _lines_objs(name):
        if m.get("channel") == "l2Book":
            d = m["data"]
            book = {
                (s, float(x["px"])): float(x["sz"])
                for s, side in ((1, d["levels"][0]), (-1, d["levels"][1]))
                for x in side
            }
            if d["time"] != prev_time:
                runs += 1
                want_rows += len(book)
            else:
                assert prev is not None
                want_rows += sum(1 for k, q in book.items() if prev.get(k) != q)
                want_rows += sum(1 for k in prev if k not in book)
            prev, prev_time = book, d["time"]
        elif m.get("channel") == "trades":
            for t in m["data"]:
                trades[str(t["tid"])] = recv
    summary = run_import(lake, "capture", [DATA / name], ImportOptions())
    got = stored(lake, "depth", "hyperliquid", "BTC-USDC-PERP").to_pydict()
    assert summary.rows()["depth"] == len(got["ts"]) == want_rows
    snap_runs = {(t, s) for t, s, f in zip(got["ts"], got["seq"], got["flags"], strict=True) if f}
    assert len(snap_runs) == runs
    t = stored(lake, "trade", "hyperliquid", "BTC-USDC-PERP").to_pydict()
    assert dict(zip(t["trade_id"], t["ts_local"], strict=True)) == trades


def test_garbage_frames_are_counted_not_guessed(lake, tmp_path):
    """Frames the kernels cannot read exactly (an exponent, text for a number, a cut-off
    frame) are counted with their line; a frame of another symbol is skipped; the depth
    stream stops at the unreadable diff (its pu chain is broken) instead of guessing."""
    lines = gzip.open(DATA / USDM_0404).read().splitlines()
    snap_i = next(i for i, x in enumerate(lines) if b"lastUpdateId" in x)
    diffs = [i for i, x in enumerate(lines) if b"depthUpdate" in x and i > snap_i]
    trades = [i for i, x in enumerate(lines) if b'"e":"trade"' in x]
    bad_diff = next(i for i in diffs[100:] if b'"b":[["' in lines[i])
    bad_trade = trades[50]
    edited = list(lines)
    edited[bad_diff] = edited[bad_diff].replace(b'"b":[["', b'"b":[["1e-5","1"],["', 1)
    edited[bad_trade] = edited[bad_trade].replace(b'"p":"', b'"p":"x', 1)
    # Another symbol's diff after the lines that name the capture's symbols: skipped.
    late = diffs[-1]
    edited.insert(late + 1, edited[late].replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'))
    edited.append(edited[late][: len(edited[late]) // 2])  # a depth frame cut off
    path = tmp_path / "binance" / "cut.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(edited) + b"\n")
    summary = run_import(lake, "capture", [path], ImportOptions())
    report = summary.files[0]
    unusable = "message the venue parser cannot use"
    lines_bad = sorted(s.line for s in report.samples if s.reason == unusable)
    assert lines_bad == sorted([bad_diff + 1, bad_trade + 1, len(edited)])
    assert report.rejected == {unusable: 3}
    # Rows up to the unreadable diff, as the reference gives them; then the book is lost.
    want, _ = reference(lines[:bad_diff])
    got = depth_rows(stored(lake, "depth", "binance", "BTC-USDT-PERP"))
    key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731
    assert got == sorted(want, key=key)
    assert any(n.startswith("gaps: 1") for n in report.notes)
    n_trades = sum(1 for i in trades if i != bad_trade)
    assert summary.rows()["trade"] == n_trades


def test_two_symbols_in_one_capture(lake, tmp_path):
    """Two books in one file (REST snapshots named as the collector records them,
    ``{"s":..,"lastUpdateId":..}``): each symbol's depth equals its own capture's."""
    lines = gzip.open(DATA / USDM_2024).read().splitlines()

    def named(line: bytes, venue: bytes) -> bytes:
        ts, raw = line.split(b" ", 1)
        if b"lastUpdateId" in raw:
            raw = b'{"s":"' + venue + b'",' + raw.lstrip()[1:]
        return ts + b" " + raw.replace(b"BTCUSDT", venue).replace(b"btcusdt", venue.lower())

    # ETH: the same messages renamed, received 1 ns later (lines interleave).
    eth = [
        named(x, b"ETHUSDT").replace(
            x.split(b" ", 1)[0], str(int(x.split(b" ", 1)[0]) + 1).encode(), 1
        )
        for x in lines
    ]
    btc = [named(x, b"BTCUSDT") for x in lines]
    merged = [x for pair in zip(btc, eth, strict=True) for x in pair]
    path = tmp_path / "binance" / "two.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(merged) + b"\n")
    summary = run_import(lake, "capture", [path], ImportOptions())
    assert summary.files[0].dataset == "binance BTC-USDT-PERP,ETH-USDT-PERP"
    want, _ = reference(lines)
    key = lambda r: (r[0], r[5], -r[6], r[2], r[3])  # noqa: E731
    want = sorted(want, key=key)
    got_btc = depth_rows(stored(lake, "depth", "binance", "BTC-USDT-PERP"))
    got_eth = depth_rows(stored(lake, "depth", "binance", "ETH-USDT-PERP"))
    assert got_btc == want
    # ETH's rows are BTC's, received 1 ns later.
    assert [r[:1] + (r[1] - 1,) + r[2:] for r in got_eth] == want
    assert not summary.files[0].rejected


def test_sampled_books_skip_the_gap(lake, tmp_path):
    """With --book-interval, no book row is invented between a sequence gap and the
    snapshot that rebuilds the book (> 2 s later); rows go on before and after."""
    lines = gzip.open(DATA / USDM_0404).read().splitlines()
    snap_i = next(i for i, x in enumerate(lines) if b"lastUpdateId" in x)
    diffs = [i for i, x in enumerate(lines) if b"depthUpdate" in x and i > snap_i]
    ev = {i: json.loads(lines[i].split(b" ", 1)[1])["data"] for i in diffs}
    drop = diffs[300]
    gap_e = ev[diffs[301]]["E"]  # the first diff after the hole: the book is lost here
    back = next(i for i in diffs[302:] if ev[i]["E"] - gap_e > 2_500)
    rows, _ = reference(lines[: back + 1])
    bids, asks = replay(sorted(rows, key=lambda r: (r[0], r[5], -r[6], r[2], r[3])))
    body = {
        "lastUpdateId": ev[back]["u"],
        "E": ev[back]["E"],
        "T": ev[back]["T"],
        "bids": [[repr(p), repr(q)] for p, q in sorted(bids.items(), reverse=True)],
        "asks": [[repr(p), repr(q)] for p, q in sorted(asks.items())],
    }
    recv = int(lines[back].split(b" ", 1)[0]) + 1
    edited = lines[:drop] + lines[drop + 1 : back + 1]
    edited += [f"{recv} {json.dumps(body)}".encode()] + lines[back + 1 :]
    path = tmp_path / "binance" / "gap.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(edited) + b"\n")
    s = run_import(lake, "capture", [path], ImportOptions(book_interval_ns=10**9))
    assert any(n == "gaps: 1" for n in s.files[0].notes)
    ts = stored(lake, "book", "binance", "BTC-USDT-PERP").column("ts").to_pylist()
    lost_ns, back_ns = gap_e * 10**6, ev[back]["E"] * 10**6
    assert not [t for t in ts if lost_ns < t <= back_ns]
    assert [t for t in ts if t <= lost_ns] and [t for t in ts if t > back_ns]
    # Every other second of the file has its row.
    first, last = ts[0], ts[-1]
    hole = {g for g in range(first, last + 1, 10**9) if lost_ns < g <= back_ns}
    assert sorted(set(range(first, last + 1, 10**9)) - hole) == ts
