"""algo_trade.load from a real lake store: one timeline, alignment without look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.errors import AlgoTradeError, ConfigError, DataError
from algo_trade.simulator import generate
from algo_trade.store.base import read_table
from algo_trade.store.lake import LakeStore

SYM = "BTC-USDT-PERP"
START, END = "2024-01-01T23:40:00", "2024-01-02T00:09:00"
SETTLE = pd.Timestamp("2024-01-02T00:00:00", tz="UTC").value


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("lake")
    store = LakeStore(home)
    generate(store, [SYM], days=0.02, seed=3, start=START)  # crosses the 00:00 funding settlement
    store.close()
    return home


def table(home, kind):
    store = LakeStore(home)
    try:
        return read_table(store, kind, "sim", SYM, START, END).to_pandas()
    finally:
        store.close()


def test_bars_with_funding_liquidations_and_trades(home):
    md = algo_trade.load(
        str(home), "sim", SYM, START, END, kinds=("bar", "funding", "liquidation", "trade")
    )
    bars = table(home, "bar")
    assert md.mode == "bars" and len(md) == len(bars) > 20
    np.testing.assert_array_equal(md.ts, bars["ts"].to_numpy())
    np.testing.assert_array_equal(md["close"], bars["close"].to_numpy())
    # the settlement at 00:00 is paid in the bar that contains it
    settle = np.flatnonzero(~np.isnan(md["fund_settle_rate"]))
    fund = table(home, "funding")
    row = fund[fund["settled"] & (fund["ts"] == SETTLE)].iloc[0]
    assert list(md.ts[settle]) == [SETTLE]
    assert md["fund_settle_rate"][settle[0]] == row["rate"]
    assert md["fund_settle_mark"][settle[0]] == row["mark_px"]
    # the signal column: the last rate published before each bar's close
    bar_ns = 60_000_000_000
    for i in (0, 5, len(md) - 1):
        known = fund[fund["ts"] < md.ts[i] + bar_ns]
        assert md["funding_rate"][i] == known.sort_values("ts")["rate"].iloc[-1]
    # trades summed per bar by side equal a pandas groupby
    tr = table(home, "trade")
    tr["bar"] = (tr["ts"] // bar_ns) * bar_ns
    buys = tr[tr["side"] > 0].groupby("bar")["qty"].sum().reindex(md.ts, fill_value=0.0)
    np.testing.assert_allclose(md["trade_buy_qty"], buys.to_numpy())
    liq = table(home, "liquidation")
    assert md["liq_sell_notional"].sum() + md["liq_buy_notional"].sum() == pytest.approx(
        (liq["price"] * liq["qty"]).sum()
    )


def test_books_timeline(home):
    md = algo_trade.load(home, "sim", SYM, START, END, kinds=["book", "funding", "liquidation"])
    books = table(home, "book")
    assert md.mode == "book" and len(md) == len(books) and md.depth == 20
    assert md["bid_px"].shape == (len(md), 20) and md["bid_px"].flags.c_contiguous
    np.testing.assert_array_equal(md["ask_sz"][:, 7], books["ask_sz_7"].to_numpy())
    np.testing.assert_allclose(md["close"], (books["bid_px_0"] + books["ask_px_0"]) / 2)
    # settlement: paid at the last snapshot at or before it (the position held then)
    i = int(np.flatnonzero(~np.isnan(md["fund_settle_rate"]))[0])
    assert md.ts[i] <= SETTLE < md.ts[i + 1]
    # a liquidation counts at the first snapshot at or after it (known from then on)
    liq = table(home, "liquidation")
    first = liq.sort_values("ts").iloc[0]
    j = int(np.searchsorted(md.ts, first["ts"], side="left"))
    total = md["liq_sell_notional"][j] + md["liq_buy_notional"][j]
    assert total >= first["price"] * first["qty"] - 1e-9
    assert md.ts[j] >= first["ts"]


def test_backtests_on_loaded_data_pay_the_stored_funding(home):
    md = algo_trade.load(home, "sim", SYM, START, END, kinds=("bar", "funding"))
    res = algo_trade.backtest(md, lambda data: np.ones(len(data)), fill_at="close", fee_taker_bps=0)
    pay = res.funding
    assert len(pay) == 1 and pay.index[0] == pd.Timestamp(SETTLE, tz="UTC")
    qty = res.positions["qty"].iloc[0]
    i = int(np.flatnonzero(md.ts == SETTLE)[0])
    assert pay["rate"].iloc[0] == md["fund_settle_rate"][i]
    assert pay["payment"].iloc[0] == pytest.approx(
        qty * md["fund_settle_mark"][i] * md["fund_settle_rate"][i]
    )
    assert res.stats["funding_pnl"] == pytest.approx(-pay["payment"].iloc[0])
    books = algo_trade.load(home, "sim", SYM, START, END, kinds=("book",))
    res = algo_trade.backtest(books, "book_imbalance", latency_ms=100)
    assert res.mode == "book" and res.stats["orders"] > 0
    assert res.symbol == SYM and res.exchange == "sim"


def test_resampled_bars_and_bars_from_books(home):
    md = algo_trade.load(home, "sim", SYM, START, END, kinds="bar", bar="5m")
    bars = table(home, "bar")
    bars.index = pd.to_datetime(bars["ts"], unit="ns", utc=True)
    want = bars.resample("5min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    want = want.dropna()
    np.testing.assert_array_equal(md.ts, want.index.as_unit("ns").asi8)
    for c in ("open", "high", "low", "close"):
        np.testing.assert_allclose(md[c], want[c].to_numpy())
    with pytest.raises(ConfigError, match="multiple of the stored bar length"):
        algo_trade.load(home, "sim", SYM, START, END, kinds="bar", bar="90s")


def test_bad_requests(home):
    with pytest.raises(DataError, match="no bar data for sim/BTC-USDT-PERP"):
        algo_trade.load(home, "sim", SYM, "2023-01-01", "2023-01-02")
    with pytest.raises(AlgoTradeError, match="bar"):
        algo_trade.load(home, "binance", SYM, START, END)
    with pytest.raises(ConfigError, match="must include 'book' or 'bar'"):
        algo_trade.load(home, "sim", SYM, START, END, kinds=("funding",))
    with pytest.raises(ConfigError, match="unknown kind 'quotes'"):
        algo_trade.load(home, "sim", SYM, START, END, kinds=("bar", "quotes"))
    with pytest.raises(ConfigError, match="time range"):
        algo_trade.load(home, "sim", SYM, None, END)


def test_bars_built_from_books_when_none_are_stored(home, tmp_path):
    """A lake with books only: bar="1m" builds OHLC of the mid."""
    store = LakeStore(home)
    books = read_table(store, "book", "sim", SYM, START, END)
    store.close()
    only_books = LakeStore(tmp_path / "books-only")
    only_books.write("book", books)
    md = algo_trade.load(only_books, "sim", SYM, START, END, kinds="bar", bar="1m")
    only_books.close()
    df = books.select(["ts", "bid_px_0", "ask_px_0"]).to_pandas()
    mid = pd.Series(
        ((df["bid_px_0"] + df["ask_px_0"]) / 2).to_numpy(),
        index=pd.to_datetime(df["ts"], unit="ns", utc=True),
    )
    want = mid.resample("1min").ohlc().dropna()
    np.testing.assert_array_equal(md.ts, want.index.as_unit("ns").asi8)
    for c in ("open", "high", "low", "close"):
        np.testing.assert_allclose(md[c], want[c].to_numpy())
    with pytest.raises(DataError, match="no bar data"):
        algo_trade.load(tmp_path / "books-only", "sim", SYM, START, END, kinds="bar")
