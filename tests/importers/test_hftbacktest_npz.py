"""hftbacktest .npz event files -> depth and trade rows: exact counts against an independent
count of the file's events (np.load), both clocks, idempotent re-import, bounded reads."""

from __future__ import annotations

import numpy as np
import pytest

from algo_trade.errors import ConfigError
from algo_trade.importers import ImportOptions, run_import
from algo_trade.importers.hftbacktest import _nth_at_time, read_blocks
from tests.importers.conftest import stored
from tests.importers.helpers import DATA

NPZ = DATA / "hftbacktest_binance_usdm_btcusdt_20240808_head4000.npz"
OPTS = ImportOptions(exchange="binance", symbol="BTC-USDT-PERP")
EXCH, BUY = 1 << 31, 1 << 29


def events() -> np.ndarray:
    return np.load(NPZ)["data"]


def test_exact_rows_against_an_independent_count(lake):
    ev = events()
    exch = (ev["ev"] & EXCH) != 0
    kind = ev["ev"] & 0xFF
    snaps = ev[exch & (kind == 4)]
    diffs = ev[exch & (kind == 1)]
    trades = ev[exch & (kind == 2)]
    # Written twice by the converter (exchange and local order differ): read once.
    assert len(ev) == 23_156 and (kind == 4).sum() == 4_000 and len(snaps) == 2_000
    snap_ts = int(np.unique(snaps["exch_ts"])[0])
    before = diffs["exch_ts"] < snap_ts  # no book yet: rejected, counted
    summary = run_import(lake, "hftbacktest", [NPZ], OPTS)
    reason = "depth diff with no valid snapshot before it (replay would invent a book)"
    assert summary.rows() == {"depth": 2_000 + int((~before).sum()), "trade": len(trades)}
    assert summary.rows() == {"depth": 20_323, "trade": 569}
    assert summary.files[0].rejected == {reason: int(before.sum())} == {reason: 259}
    got = stored(lake, "depth", "binance", "BTC-USDT-PERP").to_pydict()
    want = sorted(
        (int(e["exch_ts"]), int(e["local_ts"]), 1 if e["ev"] & BUY else -1, e["px"], e["qty"], f)
        for part, f in ((snaps, 1), (diffs[~before], 0))
        for e in part
    )
    cols = ("ts", "ts_local", "side", "price", "qty", "flags")
    assert sorted(zip(*(got[c] for c in cols), strict=True)) == want
    t = stored(lake, "trade", "binance", "BTC-USDT-PERP").to_pydict()
    assert sorted(zip(t["ts"], t["ts_local"], t["price"], strict=True)) == sorted(
        (int(e["exch_ts"]), int(e["local_ts"]), e["px"]) for e in trades
    )
    assert sorted(t["side"]) == sorted(1 if e["ev"] & BUY else -1 for e in trades)
    again = run_import(lake, "hftbacktest", [NPZ], OPTS)
    assert sum(again.rows().values()) == 0
    assert again.files[0].duplicates == 20_323 + 569


def test_blocks_are_bounded_and_complete():
    ev = events()
    parts = list(read_blocks(NPZ, block=1000))
    assert max(len(p) for p in parts) == 1000 and len(parts) == 24
    np.testing.assert_array_equal(np.concatenate(parts)["exch_ts"], ev["exch_ts"])


def test_trade_ids_count_trades_at_one_time_across_blocks():
    last: dict[int, int] = {}
    assert _nth_at_time(np.array([5, 5, 7]), last).tolist() == [0, 1, 0]
    assert _nth_at_time(np.array([7, 7, 9]), last).tolist() == [1, 2, 0]
    assert _nth_at_time(np.array([9]), last).tolist() == [1]


def test_needs_exchange_and_symbol(lake):
    with pytest.raises(ConfigError, match="--exchange and --symbol"):
        from algo_trade.importers import format_for

        list(format_for("hftbacktest").pieces(NPZ, ImportOptions(), None))  # type: ignore[arg-type]


def test_cli_imports_npz(tmp_path, capsys):
    from tests.importers.test_cli_import import run

    home = str(tmp_path / "h")
    argv = ["import", "hftbacktest", str(NPZ), "--exchange", "binance"]
    code, _out, err = run([*argv, "--symbol", "BTC-USDT-PERP", "--home", home, "--json"], capsys)
    assert code == 0, err
    code, _out, err = run([*argv, "--home", home], capsys)
    assert code == 2 and err.count("\n") == 1 and "--symbol" in err


def test_events_without_side_flags_are_read_once(lake, tmp_path):
    """A file written before hftbacktest's order correction (no exchange/local flags):
    every event is read, once."""
    ev = events()
    exch = ev[(ev["ev"] & EXCH) != 0].copy()
    exch["ev"] &= ~np.uint64(EXCH | (1 << 30))
    path = tmp_path / "noflags.npz"
    np.savez_compressed(path, data=exch)
    s = run_import(lake, "hftbacktest", [path], OPTS)
    assert s.rows() == {"depth": 20_323, "trade": 569}
