"""Properties of the simulated market."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.errors import ConfigError
from algo_trade.simulator import funding_rate, simulate

H = 3_600 * 1_000_000_000


@pytest.fixture(scope="module")
def market():
    out: dict[str, list[pa.Table]] = {}
    for kind, _sym, t in simulate(["BTC-USDT-PERP"], days=2, depth=20, seed=7):
        out.setdefault(kind, []).append(t)
    return {k: pa.concat_tables(v) for k, v in out.items()}


def test_deterministic_per_seed():
    a = [t for k, _, t in simulate(["ETH-USDT-PERP"], days=0.02, seed=1) if k == "book"]
    b = [t for k, _, t in simulate(["ETH-USDT-PERP"], days=0.02, seed=1) if k == "book"]
    c = [t for k, _, t in simulate(["ETH-USDT-PERP"], days=0.02, seed=2) if k == "book"]
    assert a[0].equals(b[0])
    assert not a[0].column("bid_px_0").equals(c[0].column("bid_px_0"))


def test_books_are_never_crossed_and_levels_are_ordered(market):
    b = market["book"]
    bid = np.column_stack([b.column(f"bid_px_{i}").to_numpy() for i in range(20)])
    ask = np.column_stack([b.column(f"ask_px_{i}").to_numpy() for i in range(20)])
    assert b.num_rows == 2 * 86_400
    assert np.all(bid[:, 0] < ask[:, 0])  # spread > 0
    assert np.all(np.diff(bid, axis=1) < 0) and np.all(np.diff(ask, axis=1) > 0)
    sz = np.column_stack([b.column(f"bid_sz_{i}").to_numpy() for i in range(20)])
    assert np.all(sz > 0)


def test_spread_widens_with_volatility(market):
    b = market["book"]
    mid = (b.column("bid_px_0").to_numpy() + b.column("ask_px_0").to_numpy()) / 2
    spread = b.column("ask_px_0").to_numpy() - b.column("bid_px_0").to_numpy()
    r = np.abs(np.diff(np.log(mid), prepend=np.log(mid[0])))
    # Realized volatility per 10 minutes vs mean spread per 10 minutes.
    k = 600
    n = len(r) // k * k
    vol = r[:n].reshape(-1, k).mean(axis=1)
    spr = spread[:n].reshape(-1, k).mean(axis=1)
    assert np.corrcoef(vol, spr)[0, 1] > 0.3


def test_volatility_clusters(market):
    mid = market["bar"].column("close").to_numpy()
    r = np.diff(np.log(mid))
    a = np.abs(r)
    # Absolute returns are autocorrelated (GARCH), raw returns hardly.
    ac_abs = np.corrcoef(a[:-1], a[1:])[0, 1]
    ac_raw = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert ac_abs > 0.1 and ac_abs > abs(ac_raw) + 0.05


def test_funding_every_8h_and_bounded(market):
    f = market["funding"]
    settled = f.filter(f.column("settled"))
    ts = settled.column("ts").to_numpy()
    assert len(ts) == 5  # 08, 16, 00, 08, 16 UTC over two days starting 00:00
    assert np.all(ts % (8 * H) == 0)
    assert np.all(np.diff(ts) == 8 * H)
    assert np.all(settled.column("next_ts").to_numpy() == ts + 8 * H)
    rate = f.column("rate").to_numpy()
    assert np.all(np.abs(rate) <= 0.0075)
    predicted = f.filter(pa.compute.invert(f.column("settled")))
    assert predicted.num_rows == 2 * 24 * 60  # one predicted rate a minute


def test_funding_rate_formula_by_hand():
    # Premium 0.0003: interest clamp(0.0001-0.0003) = -0.0002 -> 0.0001.
    # Premium 0.003: clamp(-0.0029) = -0.0005 -> 0.0025. Premium 0.02 is capped at 0.0075.
    np.testing.assert_allclose(
        funding_rate(np.array([0.0003, 0.003, 0.02, -0.0001])), [0.0001, 0.0025, 0.0075, 0.0001]
    )


def test_liquidations_cluster_after_large_moves(market):
    liq = market["liquidation"]
    bars = market["bar"]
    close = bars.column("close").to_numpy()
    ret = np.abs(np.diff(np.log(close), prepend=np.log(close[0])))
    bar_ts = bars.column("ts").to_numpy()
    counts = np.bincount(
        np.searchsorted(bar_ts, liq.column("ts").to_numpy(), side="right") - 1,
        minlength=len(bar_ts),
    )
    big = ret > np.quantile(ret, 0.99)
    assert counts[big].mean() > 5 * counts[~big].mean()
    # The losing side is liquidated: after drops mostly forced sells.
    sides = liq.column("side").to_numpy()
    assert set(np.unique(sides)) <= {-1, 1}


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="--days"):
        next(simulate(["BTC-USDT-PERP"], days=0))
    with pytest.raises(ConfigError, match="--depth"):
        next(simulate(["BTC-USDT-PERP"], days=1, depth=0))


def test_depth_events_rebuild_the_simulated_books_exactly(tmp_path):
    """The simulator's depth events, stored and replayed on its book grid, give its books."""
    import numpy as np

    from algo_trade.data.depth_books import books_from_depth
    from algo_trade.simulator import generate
    from algo_trade.store.base import read_table
    from algo_trade.store.lake import LakeStore

    lake = LakeStore(tmp_path / "home", fsync=False)
    written = generate(lake, ["ETH-USDT-PERP"], 0.02, depth_hours=0.25, seed=3)
    assert written["depth"] > 900 * 20  # every book change: tens of rows per book
    start, end = "2024-01-01", "2024-01-01T00:14:00"  # depth events run to 00:15
    rebuilt = pa.concat_tables(list(books_from_depth(lake, "sim", "ETH-USDT-PERP", start, end,
                                                     1_000_000_000, 20)))  # fmt: skip
    books = read_table(lake, "book", "sim", "ETH-USDT-PERP", start, end)
    assert books.num_rows == 840
    assert rebuilt.num_rows == 840
    assert rebuilt.equals(books.select(rebuilt.column_names))
    trades = read_table(lake, "trade", "sim", "ETH-USDT-PERP", start, end)
    lat = trades.column("ts_local").to_numpy() - trades.column("ts").to_numpy()
    assert lat.min() >= 2_000_000 and np.median(lat) < 10_000_000
    depth = read_table(lake, "depth", "sim", "ETH-USDT-PERP", "2023-12-31", end)
    assert depth.column("flags").to_numpy()[0] == 1  # it starts with a snapshot run
    assert np.all(np.diff(depth.column("ts_local").to_numpy()[depth["flags"].to_numpy() == 0]) >= 0)
