"""Books rebuilt from depth rows equal the venue's book after every message (an independent
dict replay of the captures), across gaps and resyncs, and equal the collector's own
sampled book rows on its grid."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from algo_trade.data.depth_books import BookReplayer, books_from_depth
from algo_trade.exchanges import binance
from algo_trade.schema import DEPTH_RESYNC, validate
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore
from tests.depth.capture import Replay, depth_table, read_lines, state_matrix
from tests.realdata import REALDATA

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
REAL = str(REALDATA)  # ../shared/realdata beside the repository, or $ALGO_TRADE_REALDATA
REAL = os.environ.get("ALGO_TRADE_REALDATA", REAL)
SYM = "BTC-USDT-PERP"
COLS = ("ts", "side", "price", "qty", "seq", "flags")

CAPTURES = [
    os.path.join(DATA, "binance_usdm_btcusdt_20230404.dat.gz"),
    os.path.join(DATA, "binance_usdm_btcusdt_20230404_head3000.gz"),
]
for name in ("usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz", "cm_btcusd_perp_20240808.gz"):
    CAPTURES.append(os.path.join(REAL, "hftbacktest", name))


def kernel_books(rows, interval_ns=0, batch=None, depth=20):
    """Validated depth rows through the kernel; batch: feed in pieces of that many rows."""
    v = validate("depth", depth_table(rows, "binance", SYM))
    assert v.rejected == {}
    cols = {c: v.table.column(c).to_numpy(zero_copy_only=False) for c in COLS}
    rep = BookReplayer(depth, interval_ns)
    parts = []
    n = len(cols["ts"])
    step = batch or n
    for a in range(0, n, step):
        parts += rep.feed({c: x[a : a + step] for c, x in cols.items()})
    parts += rep.finish(-1)
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 4, depth))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def with_resyncs(msgs, drops):
    """The capture with the diff messages at `drops` lost; each loss is followed, a few
    messages later, by a REST-like snapshot of the venue's true book at that point."""
    truth = Replay()
    out = []
    diff_i = -1
    resync_at = set()
    for recv, d in msgs:
        truth.feed([(recv, d)])
        if "lastUpdateId" in d:
            out.append((recv, d))
            continue
        diff_i += 1
        if diff_i in drops:
            resync_at.add(diff_i + 5)
            continue
        out.append((recv, d))
        if diff_i in resync_at and truth.synced:
            out.append((recv + 1, truth.snapshot_now(int(d["u"]), int(d["E"]))))
    return out


@pytest.mark.parametrize("path", CAPTURES, ids=os.path.basename)
def test_every_update_equals_the_venue_book(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here (../shared/realdata)")
    rep = Replay().feed(read_lines(path))
    assert rep.states, "the capture never synced"
    ts, books = kernel_books(rep.rows, batch=777)  # batches cut messages: held back whole
    assert np.array_equal(ts, [s[0] for s in rep.states])
    assert np.array_equal(books, state_matrix(rep.states, 20), equal_nan=True)


def test_every_update_equals_the_venue_book_across_gaps_and_resyncs():
    msgs = read_lines(CAPTURES[0])
    lossy = with_resyncs(msgs, drops={100, 1500, 3000})
    rep = Replay().feed(lossy)
    assert (rep.gaps, rep.resyncs) == (3, 3)
    ts, books = kernel_books(rep.rows, batch=5000)
    assert len(ts) == len(rep.states)
    assert np.array_equal(ts, [s[0] for s in rep.states])
    assert np.array_equal(books, state_matrix(rep.states, 20), equal_nan=True)
    # Fewer states than messages: nothing was replayed while the book was out of sync.
    assert len(rep.states) < sum(1 for _, d in msgs if "lastUpdateId" not in d)


def _normalizer_books(msgs, interval_ns):
    n = binance.Normalizer([SYM], depth=20, book_interval_ns=interval_ns)
    for recv, d in msgs:
        n.feed(recv, json.dumps(d))
    t = n.drain().get("book")
    return t


@pytest.mark.parametrize("interval_ns", [100_000_000, 10_000_000])
def test_grid_books_equal_the_collectors_sampled_books(interval_ns):
    msgs = read_lines(CAPTURES[0])
    lossy = with_resyncs(msgs, drops={700, 2500})
    rep = Replay().feed(lossy)
    ts, books = kernel_books(rep.rows, interval_ns=interval_ns)
    coll = _normalizer_books(lossy, interval_ns)
    cts = coll.column("ts").to_numpy()
    assert len(cts) > 100
    assert np.all(ts % interval_ns == 0) and np.all(np.diff(ts) > 0)
    # Every row the collector sampled is rebuilt, with the same 20 levels.
    pos = np.searchsorted(ts, cts)
    assert np.all(pos < len(ts)) and np.array_equal(ts[pos], cts)
    flat = np.ascontiguousarray(books[pos].transpose(0, 1, 2)).reshape(len(cts), -1)
    names = [f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "sz") for i in range(20)]
    theirs = np.column_stack([coll.column(c).to_numpy() for c in names])
    assert np.array_equal(flat, theirs, equal_nan=True)
    # Rows only the rebuild has: the first grid points after a (re)sync, where the run is
    # stamped with the first bridged diff's time rather than the REST reply's.
    extra = np.setdiff1d(ts, cts)
    run_ts = np.unique([r[0] for r in rep.rows if r[6]])
    assert all(np.any((run_ts < g) & (g <= run_ts + interval_ns)) for g in extra)
    # No row inside a gap: between the last diff before a resync and the resync itself.
    resync_ts = sorted({r[0] for r in rep.rows if r[6] & DEPTH_RESYNC})
    all_ts = np.array(sorted({r[0] for r in rep.rows}))
    for t in resync_ts:
        before = all_ts[all_ts < t][-1]
        assert not np.any((ts > before) & (ts <= t))


def test_load_and_books_from_depth_stream_from_the_lake(tmp_path):
    msgs = read_lines(CAPTURES[0])
    rep = Replay().feed(msgs)
    lake = LakeStore(tmp_path / "home", fsync=False)
    assert lake.write("depth", depth_table(rep.rows, "binance", SYM)).written == len(rep.rows)
    all_ts = np.array([s[0] for s in rep.states])
    start, end = int(all_ts[len(all_ts) // 3]), int(all_ts[-1])
    # Every update: the book of each message with start <= ts < end (last one per ts).
    got = [t for t in books_from_depth(lake, "binance", SYM, start, end)]
    tab = __import__("pyarrow").concat_tables(got)
    exp = state_matrix(rep.states, 20)
    keep = (all_ts >= start) & (all_ts < end)
    last = np.r_[all_ts[1:] != all_ts[:-1], True]
    sel = keep & last
    assert np.array_equal(tab.column("ts").to_numpy(), all_ts[sel])
    assert np.array_equal(tab.column("ask_px_3").to_numpy(), exp[sel, 2, 3], equal_nan=True)
    assert np.array_equal(tab.column("bid_sz_19").to_numpy(), exp[sel, 1, 19], equal_nan=True)
    # load(): a 10 ms grid, the same rows as the kernel on the whole stream.
    import algo_trade

    md = algo_trade.load(lake, "binance", SYM, start, end, kinds=("book",),
                         book_from="depth", book_interval="10ms")  # fmt: skip
    ts, books = kernel_books(rep.rows, interval_ns=10_000_000)
    sel = (ts >= start) & (ts < end)
    assert np.array_equal(md.ts, ts[sel])
    assert np.array_equal(md["bid_px"], books[sel, 0, :], equal_nan=True)
    assert np.array_equal(md["ask_sz"], books[sel, 3, :], equal_nan=True)
    with pytest.raises(Exception, match="book_from='depth'"):
        algo_trade.load(lake, "binance", SYM, start, end, kinds=("book", "depth"))
    # Nothing before the first snapshot run: a window before it has no book.
    first = int(min(r[0] for r in rep.rows))
    with pytest.raises(Exception, match="no book"):
        algo_trade.load(lake, "binance", SYM, first - 10**9, first, kinds=("book",),
                        book_from="depth", book_interval="10ms")  # fmt: skip
    stored = read_table(lake, "depth", "binance", SYM, first, end + 1)
    assert stored.num_rows == len(rep.rows)


def test_books_from_imported_capture_equal_the_venue_book(tmp_path):
    """The project's capture importer writes the depth rows; replayed, every update equals
    the independent replay (the importer and the kernel agree on rows, stamps and order)."""
    import pyarrow as pa

    from algo_trade.importers import ImportOptions, run_import

    lake = LakeStore(tmp_path / "home", fsync=False)
    run_import(lake, "capture", [CAPTURES[0]], ImportOptions())
    rep = Replay().feed(read_lines(CAPTURES[0]))
    stored = read_table(lake, "depth", "binance", SYM, 0, 2**62)
    assert stored.num_rows == len(rep.rows)
    got = pa.concat_tables(
        list(books_from_depth(lake, "binance", SYM, 0, 2**62, 0, 20, conflate=False))
    )
    assert np.array_equal(got.column("ts").to_numpy(), [s[0] for s in rep.states])
    exp = state_matrix(rep.states, 20)
    for r, (side, what) in enumerate((("bid", "px"), ("bid", "sz"), ("ask", "px"), ("ask", "sz"))):
        mine = np.stack([got.column(f"{side}_{what}_{i}").to_numpy() for i in range(20)], 1)
        assert np.array_equal(mine, exp[:, r, :], equal_nan=True)
