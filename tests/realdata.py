"""Real data whose licence does not let it ship in this MIT repository (GPL, AGPL, LGPL sets).

Tests read such files from the shared real-data folder at run time, never copy them into
tests/data. The folder is `../shared/realdata` beside the repository (as on the developers'
machines and in CI) or `$ALGO_TRADE_REALDATA`; a test that needs a missing file is skipped
with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REALDATA = Path(
    os.environ.get(
        "ALGO_TRADE_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"
    )
)

# tests/data-style names used by the tests -> (path under realdata/, licence of its source)
NOT_SHIPPED: dict[str, tuple[str, str]] = {
    "ftx_btc-perp_20211231-20220201_1m.csv.gz": (
        "nautilus_trader/ftx/ftx_btc-perp_20211231-20220201_1m.csv.gz", "LGPL-3.0"),
    "tardis_binance-futures_book_snapshot_25_BTCUSDT.csv": (
        "nautilus_trader/tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", "LGPL-3.0"),
    "tardis_binance-futures_book_snapshot_5_BTCUSDT.csv": (
        "nautilus_trader/tardis/binance-futures_book_snapshot_5_BTCUSDT.csv", "LGPL-3.0"),
    "tardis_binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz": (
        "nautilus_trader/tardis/binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz", "LGPL-3.0"),
    "tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv.gz": (
        "nautilus_trader/tardis/binance-futures_trades_BTCUSDT_2020-02-22.csv.gz", "LGPL-3.0"),
    "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv": (
        "nautilus_trader/tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv", "LGPL-3.0"),
    "freqtrade_XRP_USDT_USDT-8h-funding_rate.csv": (
        "freqtrade/futures/XRP_USDT_USDT-8h-funding_rate.csv", "GPL-3.0"),
    "freqtrade_XRP_USDT_USDT-1h-futures.csv": (
        "freqtrade/futures/XRP_USDT_USDT-1h-futures.csv", "GPL-3.0"),
    "backtesting_py_BTCUSD_monthly.csv": ("backtesting_py/BTCUSD_monthly.csv", "AGPL-3.0"),
    "nautilus_hyperliquid_all_dexs_asset_ctxs.json": (
        "nautilus_trader/hyperliquid/ws_all_dexs_asset_ctxs.json", "LGPL-3.0"),
}  # fmt: skip


def realdata(name: str) -> Path:
    """The path of a not-shipped file by its tests/data-style name; skips the test if absent."""
    rel, licence = NOT_SHIPPED[name]
    path = REALDATA / rel
    if not path.is_file():
        pytest.skip(
            f"{rel} ({licence}, not shipped) is not under {REALDATA}: set ALGO_TRADE_REALDATA"
        )
    return path


def data_path(data_dir: Path, name: str) -> Path:
    """tests/data/<name>, or the shared real-data file for a name that may not ship."""
    return realdata(name) if name in NOT_SHIPPED else data_dir / name


def hyperliquid_main_dex_ctxs() -> list[dict]:
    """The main dex's first 28 asset contexts of a real `allDexsAssetCtxs` message, in `meta`
    universe order (BTC at 0, ETH at 1): used as the ctxs half of a `metaAndAssetCtxs` body."""
    import json

    msg = json.loads(realdata("nautilus_hyperliquid_all_dexs_asset_ctxs.json").read_text())
    return main_dex(msg)[:28]


def main_dex(msg) -> list[dict]:
    data = msg.get("data", msg) if isinstance(msg, dict) else msg
    ctxs = data.get("ctxs", data) if isinstance(data, dict) else data
    for dex, items in ctxs:
        if dex == "":
            return items
    raise ValueError("no main dex in the asset contexts message")
