"""The dust rule (docs/engine.md): no order is dropped without trace; closing and flipping
orders always execute, however small the account has become."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import algo_trade
from algo_trade.engine import kernels as K


def _bars(close: list[float]) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(close), freq="1min", tz="UTC")
    c = np.asarray(close, dtype=np.float64)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c}, index=idx)


def _fixed(targets: list[float]):
    def strategy(data, scale: float = 1.0) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64) * scale

    return strategy


def test_a_ruined_account_keeps_trading_hand_checked():
    """The shape of the vectorbt (5,20)/(10,20)/(15,20) rows: after a crash to 1e-13 of the
    entry price, equity (~1e-9) is far below 1e-12 x init_cash (1e-8), the size the old rule
    skipped. Every order still executes; final equity worked out by hand."""
    close = [100.0, 1e-11, 1e-11, 2e-11, 2e-11]
    res = algo_trade.backtest(_bars(close), _fixed([1, 0, 1, 0, 0]), fill_at="close",
                              fee_taker_bps=10, maintenance_margin=0)  # fmt: skip
    f = 1e-3
    # buy all-in at 100, sell at 1e-11, buy all-in at 1e-11, sell at 2e-11
    want = 10_000 / (100 * (1 + f)) * 1e-11 * (1 - f) / (1e-11 * (1 + f)) * 2e-11 * (1 - f)
    assert res.stats["final_equity"] == pytest.approx(want, rel=1e-9)
    assert want < 1e-12 * 10_000  # the case the old rule got wrong
    assert res.stats["orders"] == 4
    assert res.stats["trades"] == 2
    assert res.stats["dust_orders"] == 0
    assert list(res.fills["kind"]) == ["taker"] * 4
    assert res.positions["qty"].iloc[-1] == 0.0


def test_a_flip_always_executes():
    """Long, crash, then the target flips to -1: the flip goes through (the old rule left
    the long open); the short's size is the ruined equity's, by hand."""
    close = [100.0, 1e-11, 1e-11, 1e-11]
    res = algo_trade.backtest(_bars(close), _fixed([1, 1, -1, -1]), fill_at="close",
                              fee_taker_bps=0, maintenance_margin=0)  # fmt: skip
    eq = 10_000 / 100 * 1e-11  # the long's value after the crash (no fees)
    qty = res.positions["qty"].to_numpy()
    assert qty[1] == pytest.approx(100.0)
    assert qty[2] == pytest.approx(-eq / 1e-11, rel=1e-9)  # short, all-in
    assert res.stats["orders"] == 2


def test_a_too_small_order_is_booked_as_dust():
    """A target change of 1e-14 of equity is float noise: not executed, but a ledger row
    (kind dust, the wanted qty) and a count in the stats."""
    close = [100.0, 100.0, 100.0]
    res = algo_trade.backtest(_bars(close), _fixed([0.5, 0.5 + 1e-14, 0.5 + 1e-14]),
                              fill_at="close", fee_taker_bps=0, maintenance_margin=0)  # fmt: skip
    assert res.stats["orders"] == 1
    assert res.stats["dust_orders"] == 1
    fills = res.fills
    assert list(fills["kind"]) == ["taker", "dust"]
    dust = fills.iloc[1]
    assert dust["qty"] == 0.0 and dust["fee"] == 0.0
    assert dust["side"] == 1
    # wanted: 1e-14 x 10,000 of notional at 100
    assert dust["unfilled"] == pytest.approx(1e-14 * 10_000 / 100, rel=1e-2)
    assert res.positions["qty"].iloc[-1] == pytest.approx(50.0)


def test_rule_in_the_kernel_helper():
    assert not K.is_dust_nb(1.0, -1.0, 1e-20, 1e-20)  # closing: always
    assert not K.is_dust_nb(1.0, -2.0, 1e-20, 1e-20)  # flipping: always
    assert not K.is_dust_nb(
        -1.0, 3e-30, 1.0, 1e-20
    )  # tiny short cover but larger than 1e-12 x equity
    assert K.is_dust_nb(1.0, 1e-13, 1.0, 1.0)  # adding 1e-13 of equity
    assert K.is_dust_nb(0.0, 0.0, 1.0, 0.0)  # opening with nothing: reported, not executed


def test_book_mode_closes_a_ruined_position():
    """Book mode follows the same rule: the closing order of a position worth ~1e-9 executes."""
    n = 4
    mid = np.array([100.0, 1e-11, 1e-11, 1e-11])
    bid_px = (mid * (1 - 1e-6))[:, None].copy()
    ask_px = (mid * (1 + 1e-6))[:, None].copy()
    sz = np.full((n, 1), 1e12)
    ts = np.arange(n, dtype=np.int64) * 1_000_000_000
    target = np.array([1.0, 0.0, 0.0, 0.0])
    equity = np.empty(n)
    ledger = np.empty(64, K.LEDGER_DTYPE)
    st = K.simulate_book_nb(ts, bid_px, sz, ask_px, sz, target, np.empty(0), np.empty(0), 0,
                            10_000.0, 0.0, 1.0, 0.0, 0.0, False, K.OVERFLOW_PENALTY, 0.0, equity,
                            ledger)  # fmt: skip
    assert st[K.S_NFILL] == 2
    assert st[K.S_QTY] == 0.0
    assert st[K.S_NDUST] == 0
    assert list(ledger[:2]["kind"]) == [K.KIND_TAKER, K.KIND_TAKER]
