"""Hand-computed cases: book walking, fees, funding signs, liquidation, fill timing, sizing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.engine import kernels as K


def bars_df(open_, close, high=None, low=None, **extra) -> pd.DataFrame:
    open_ = np.asarray(open_, dtype=float)
    close = np.asarray(close, dtype=float)
    cols = {
        "open": open_,
        "high": np.maximum(open_, close) if high is None else np.asarray(high, dtype=float),
        "low": np.minimum(open_, close) if low is None else np.asarray(low, dtype=float),
        "close": close,
        **extra,
    }
    idx = pd.date_range("2024-01-01", periods=len(close), freq="1min", tz="UTC")
    return pd.DataFrame(cols, index=idx)


def targets(values):
    """A strategy function returning fixed targets (ignores the data)."""
    arr = np.asarray(values, dtype=float)

    def fixed(data):
        return arr.copy()

    return fixed


# ----------------------------------------------------------------------------- book walking
ASK_PX = np.array([100.0, 101.0, 102.0])
ASK_SZ = np.array([1.0, 2.0, 5.0])


def test_market_order_across_three_levels_vwap():
    # 1 @ 100 + 2 @ 101 + 1 @ 102 = 404 for 4 units: VWAP 101
    got, vwap = K.walk_book_nb(ASK_PX, ASK_SZ, 4.0, 1.0, K.OVERFLOW_PENALTY, 0.001)
    assert got == 4.0
    assert vwap == pytest.approx(101.0, rel=1e-15)


def test_order_deeper_than_book_penalty_or_unfilled():
    # 8 displayed: 100 + 202 + 510 = 812; 2 more at 102 * 1.001 = 102.102 -> 204.204
    got, vwap = K.walk_book_nb(ASK_PX, ASK_SZ, 10.0, 1.0, K.OVERFLOW_PENALTY, 0.001)
    assert got == 10.0
    assert vwap == pytest.approx((812.0 + 204.204) / 10.0, rel=1e-13)
    got, vwap = K.walk_book_nb(ASK_PX, ASK_SZ, 10.0, 1.0, K.OVERFLOW_UNFILLED, 0.001)
    assert got == 8.0
    assert vwap == pytest.approx(812.0 / 8.0, rel=1e-15)
    # sells walk the bids; the penalty moves the price down; NaN padding ends the book
    bid_px = np.array([99.0, 98.0, np.nan])
    bid_sz = np.array([1.0, 1.0, np.nan])
    got, vwap = K.walk_book_nb(bid_px, bid_sz, 3.0, -1.0, K.OVERFLOW_PENALTY, 0.01)
    assert got == 3.0
    assert vwap == pytest.approx((99.0 + 98.0 + 98.0 * 0.99) / 3.0, rel=1e-13)


def test_fill_books_fee_cash_and_position():
    st = K.new_state_nb(1_000.0, 0)
    ledger = np.empty(8, K.LEDGER_DTYPE)
    no_trades = np.empty(0, K.TRADE_DTYPE)
    got, vwap = K.walk_book_nb(ASK_PX, ASK_SZ, 4.0, 1.0, K.OVERFLOW_PENALTY, 0.0)
    K.fill_nb(st, ledger, no_trades, 0, got, vwap, got * vwap * 5e-4, K.KIND_TAKER, 0.0)
    # notional 404, fee 5 bp = 0.202
    assert st[K.S_QTY] == 4.0
    assert st[K.S_FEES] == pytest.approx(0.202, rel=1e-12)
    assert st[K.S_CASH] == pytest.approx(1_000.0 - 404.0 - 0.202, rel=1e-12)
    assert st[K.S_NLEDGER] == 1 and ledger[0]["qty"] == 4.0 and ledger[0]["px"] == 101.0
    # the replay rebuilds the same state from the ledger row
    after, trades = K.replay_ledger_nb(ledger[:1], 1_000.0, 0)
    assert after[0]["cash"] == st[K.S_CASH] and after[0]["pos"] == 4.0
    assert after[0]["avg"] == 101.0 and len(trades) == 0
    rec = K.state_record(st)  # the same state, by name
    assert rec["qty"] == st[K.S_QTY] and rec["fees"] == st[K.S_FEES] and rec["nledger"] == 1


def test_book_backtest_walks_levels_and_charges_taker_fee():
    """A whole book-mode run: the order sent at snapshot 0 fills at snapshot 1's levels."""
    n = 3
    ts = 1_704_067_200_000_000_000 + np.arange(n, dtype=np.int64) * 1_000_000_000
    bid_px = np.tile([99.0, 98.0, 97.0], (n, 1))
    ask_px = np.tile([100.0, 101.0, 102.0], (n, 1))
    bid_sz = np.tile([1.0, 2.0, 5.0], (n, 1))
    ask_sz = np.tile([1.0, 2.0, 5.0], (n, 1))
    mid = np.full(n, 99.5)
    md = algo_trade.MarketData(ts, {"bid_px": bid_px, "bid_sz": bid_sz, "ask_px": ask_px, "ask_sz": ask_sz,
                                    "open": mid, "high": mid, "low": mid, "close": mid}, "book")  # fmt: skip
    res = algo_trade.backtest(
        md, targets([1.0, 1.0, 1.0]), init_cash=400.0, fee_taker_bps=5, book_overflow="unfilled"
    )
    fills = res.fills
    assert len(fills) == 1 and fills.index[0] == pd.Timestamp(ts[1], tz="UTC")
    # sizing at the mid with fee + half spread as cost: notional = 400 / (1 + c)
    c = 5e-4 + 0.5 / 99.5
    want = 400.0 / (1 + c) / 99.5
    assert fills["qty"].iloc[0] == pytest.approx(want, rel=1e-12)
    # want is ~3.98: 1 @ 100 + 2 @ 101 + rest @ 102
    rest = want - 3.0
    assert fills["price"].iloc[0] == pytest.approx((100 + 202 + rest * 102) / want, rel=1e-12)
    assert fills["fee"].iloc[0] == pytest.approx(want * fills["price"].iloc[0] * 5e-4, rel=1e-12)


# ----------------------------------------------------------------------------- sizing
def test_all_in_sizing_notional_plus_fee_equals_equity():
    df = bars_df([100.0] * 3, [100.0] * 3)
    res = algo_trade.backtest(
        df, targets([1, 1, 1]), fill_at="close", fee_taker_bps=10, init_cash=1_000
    )
    f = res.fills.iloc[0]
    assert f["notional"] + f["fee"] == pytest.approx(1_000.0, rel=1e-12)
    assert f["qty"] == pytest.approx(1_000.0 / (100.0 * 1.001), rel=1e-12)


def test_flip_long_to_short_keeps_all_in():
    # long all-in at 100, then -1 at 100: one fill of 2x the size (less fees)
    df = bars_df([100.0] * 3, [100.0] * 3)
    res = algo_trade.backtest(
        df, targets([1, -1, -1]), fill_at="close", fee_taker_bps=10, init_cash=1_000
    )
    assert len(res.fills) == 2
    q_long = 1_000 / (100 * 1.001)
    cash_after_long = 1_000 - q_long * 100 * 1.001
    eq = cash_after_long + q_long * 100  # equity before the flip
    # short: n1 = -(eq - c * n0) / (1 + c) with n0 = q_long * 100, c = 0.001
    n1 = -(eq - 0.001 * q_long * 100) / (1 - (-1) * 0.001)
    assert res.positions["qty"].iloc[-1] == pytest.approx(n1 / 100, rel=1e-12)
    assert len(res.trades) == 1 and res.trades["side"].iloc[0] == 1


# ----------------------------------------------------------------------------- fill timing
def test_fill_at_next_vs_close_by_hand():
    open_ = [10.0, 11.0, 12.0, 13.0]
    close = [10.5, 11.5, 12.5, 13.5]
    df = bars_df(open_, close)
    tg = targets([1, 1, 0, 0])
    at_close = algo_trade.backtest(df, tg, fill_at="close", fee_taker_bps=0, init_cash=1_000)
    at_next = algo_trade.backtest(df, tg, fill_at="next", fee_taker_bps=0, init_cash=1_000)
    # close: buy at close[0] 10.5, sell at close[2] 12.5; next: buy at open[1] 11, sell at open[3] 13
    assert at_close.stats["final_equity"] == pytest.approx(1_000 * 12.5 / 10.5, rel=1e-12)
    assert at_next.stats["final_equity"] == pytest.approx(1_000 * 13 / 11, rel=1e-12)
    assert list(at_close.fills["price"]) == [10.5, 12.5]
    assert list(at_next.fills["price"]) == [11.0, 13.0]
    assert list(at_close.fills.index) == list(df.index[[0, 2]])
    assert list(at_next.fills.index) == list(df.index[[1, 3]])
    # with a 10 bp fee on both legs
    fee = algo_trade.backtest(df, tg, fill_at="close", fee_taker_bps=10, init_cash=1_000)
    assert fee.stats["final_equity"] == pytest.approx(
        1_000 * 12.5 * 0.999 / (10.5 * 1.001), rel=1e-12
    )


def test_slippage_moves_fills_against_the_order():
    df = bars_df([100.0, 100.0, 100.0], [100.0, 100.0, 100.0], high=[101.0] * 3, low=[99.0] * 3)
    res = algo_trade.backtest(
        df, targets([1, 0, 0]), fill_at="close", fee_taker_bps=0, slippage_bps=10
    )
    assert list(res.fills["price"]) == pytest.approx([100.1, 99.9])
    # a fraction of the bar's range: 0.25 * (101 - 99) = 0.5
    res = algo_trade.backtest(
        df, targets([1, 0, 0]), fill_at="close", fee_taker_bps=0, slippage_range=0.25
    )
    assert list(res.fills["price"]) == pytest.approx([100.5, 99.5])


# ----------------------------------------------------------------------------- funding
@pytest.mark.parametrize(("side", "expected_payment"), [(1, 1.0), (-1, -1.0)])
def test_funding_sign_long_pays_short_receives(side, expected_payment):
    # all-in at 100 with 1,000: |qty| 10; rate 0.1% at mark 100 -> 10 * 100 * 0.001 = 1
    rate = [np.nan, 0.001, np.nan]
    df = bars_df([100.0] * 3, [100.0] * 3, funding_rate=rate, mark_px=[np.nan, 100.0, np.nan])
    res = algo_trade.backtest(
        df, targets([side] * 3), fill_at="close", fee_taker_bps=0, init_cash=1_000
    )
    pay = res.funding
    assert len(pay) == 1
    assert pay["payment"].iloc[0] == pytest.approx(expected_payment, rel=1e-12)
    assert res.stats["funding_pnl"] == pytest.approx(-expected_payment, rel=1e-12)
    assert res.stats["final_equity"] == pytest.approx(1_000 - expected_payment, rel=1e-12)
    assert res.positions["funding"].iloc[1] == pytest.approx(expected_payment)


def test_funding_negative_rate_and_mark_defaults_to_open():
    df = bars_df(
        [100.0, 120.0, 120.0], [100.0, 120.0, 120.0], funding_rate=[np.nan, -0.002, np.nan]
    )
    res = algo_trade.backtest(
        df, targets([1, 1, 1]), fill_at="close", fee_taker_bps=0, init_cash=1_000
    )
    # long 10 units; no mark given: the bar's open, 120; negative rate: longs receive 10*120*0.002
    assert res.funding["payment"].iloc[0] == pytest.approx(-2.4, rel=1e-12)
    assert res.stats["funding_pnl"] == pytest.approx(2.4, rel=1e-12)


def test_flat_position_pays_no_funding():
    df = bars_df([100.0] * 3, [100.0] * 3, funding_rate=[0.01, 0.01, 0.01])
    res = algo_trade.backtest(df, targets([0, 0, 0]), fill_at="close")
    assert res.stats["funding_pnl"] == 0.0 and len(res.funding) == 0


# ----------------------------------------------------------------------------- liquidation
def test_long_liquidated_at_the_computed_price():
    # 10x long at 100 with 1,000: qty 100, cash -9,000; liquidation when
    # -9000 + 100 P = 0.05 * 100 P  ->  P = 9000 / 95
    p_liq = 9_000 / 95
    df = bars_df(
        [100.0, 100.0, 100.0], [100.0, 98.0, 98.0], high=[100.0] * 3, low=[100.0, 94.0, 98.0]
    )
    res = algo_trade.backtest(df, targets([1, 1, 1]), fill_at="close", fee_taker_bps=0, leverage=10,
                              maintenance_margin=0.05, liquidation_fee_bps=20, init_cash=1_000)  # fmt: skip
    liq = res.fills[res.fills["kind"] == "liquidation"]
    assert len(liq) == 1 and liq.index[0] == df.index[1]
    assert liq["price"].iloc[0] == pytest.approx(p_liq, rel=1e-12)
    assert liq["fee"].iloc[0] == pytest.approx(100 * p_liq * 0.002, rel=1e-12)
    # what is left: the maintenance margin less the liquidation fee
    assert res.stats["final_equity"] == pytest.approx((0.05 - 0.002) * 100 * p_liq, rel=1e-12)
    assert res.stats["liquidations"] == 1
    assert bool(res.trades["liquidated"].iloc[0])
    # the target did not change, so the engine stays flat after the liquidation
    assert res.positions["qty"].iloc[-1] == 0.0


def test_long_not_liquidated_above_the_price():
    df = bars_df([100.0] * 3, [100.0] * 3, high=[100.0] * 3, low=[100.0, 9_000 / 95 + 0.01, 100.0])
    res = algo_trade.backtest(df, targets([1, 1, 1]), fill_at="close", fee_taker_bps=0, leverage=10,
                              maintenance_margin=0.05, init_cash=1_000)  # fmt: skip
    assert res.stats["liquidations"] == 0


def test_short_liquidated_at_the_computed_price():
    # 10x short at 100: qty -100, cash 11,000; 11000 - 100 P = 0.05 * 100 P -> P = 11000 / 105
    p_liq = 11_000 / 105
    df = bars_df([100.0] * 3, [100.0] * 3, high=[100.0, 105.0, 100.0], low=[100.0] * 3)
    res = algo_trade.backtest(df, targets([-1, -1, -1]), fill_at="close", fee_taker_bps=0, leverage=10,
                              maintenance_margin=0.05, liquidation_fee_bps=0, init_cash=1_000)  # fmt: skip
    liq = res.fills[res.fills["kind"] == "liquidation"]
    assert liq["price"].iloc[0] == pytest.approx(p_liq, rel=1e-12)
    assert res.stats["final_equity"] == pytest.approx(0.05 * 100 * p_liq, rel=1e-12)


def test_liquidation_price_formula():
    assert K.liquidation_px_nb(-9_000.0, 100.0, 0.05) == pytest.approx(9_000 / 95)
    assert K.liquidation_px_nb(11_000.0, -100.0, 0.05) == pytest.approx(11_000 / 105)
