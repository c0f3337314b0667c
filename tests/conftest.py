"""Shared fixtures: small simulated tables and a temporary lake."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from algo_trade.schema import book_columns, label_array
from tests.pg import (  # noqa: F401  (here once: one PostgreSQL server per test session)
    pg_db,
    pg_server,
    pg_url,
    pg_url_unloaded,
    ts_db,
    unloaded_db,
)

T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
SEC = 1_000_000_000


def make_books(
    n: int,
    start_ns: int = T0,
    step_ns: int = SEC,
    depth: int = 5,
    symbol: str = "BTC-USDT-PERP",
    exchange: str = "sim",
    seed: int = 0,
) -> pa.Table:
    """n valid book rows on a 0.1 tick grid, sizes on a 0.001 lot grid."""
    rng = np.random.default_rng(seed)
    mid_ticks = 600_000 + np.cumsum(rng.integers(-3, 4, n))
    cols: dict[str, object] = {
        "ts": pa.array(start_ns + np.arange(n, dtype=np.int64) * step_ns),
        "exchange": label_array(exchange, n),
        "symbol": label_array(symbol, n),
    }
    for side, sign in (("bid", -1), ("ask", 1)):
        for i in range(depth):
            cols[f"{side}_px_{i}"] = pa.array((mid_ticks + sign * (i + 1)) / 10.0)
        for i in range(depth):
            cols[f"{side}_sz_{i}"] = pa.array(rng.integers(1, 5000, n) / 1000.0)
    return pa.table({c: cols[c] for c in ["ts", "exchange", "symbol", *book_columns(depth)]})


def make_trades(
    n: int, start_ns: int = T0, step_ns: int = SEC, symbol: str = "BTC-USDT-PERP", id0: int = 1
) -> pa.Table:
    rng = np.random.default_rng(id0)
    return pa.table(
        {
            "ts": pa.array(start_ns + np.arange(n, dtype=np.int64) * step_ns),
            "exchange": label_array("sim", n),
            "symbol": label_array(symbol, n),
            "side": pa.array(np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)),
            "price": pa.array(rng.integers(599_000, 601_000, n) / 10.0),
            "qty": pa.array(rng.integers(1, 1000, n) / 1000.0),
            "trade_id": pa.array([str(i) for i in range(id0, id0 + n)]),
        }
    )


@pytest.fixture
def lake(tmp_path):
    from algo_trade.store.lake import LakeStore

    return LakeStore(tmp_path / "home")
