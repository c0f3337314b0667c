"""Sweep fixtures: real FTX BTC-PERP 1-minute bars (tests/data, 45,031 bars) as frames and in a lake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from algo_trade.schema import label_array
from tests.realdata import realdata

FTX_BARS = "ftx_btc-perp_20211231-20220201_1m.csv.gz"  # LGPL: read from the shared folder
EXCHANGE, SYMBOL = "ftx", "BTC-USD-PERP"


def read_ftx_bars() -> pd.DataFrame:
    df = pd.read_csv(realdata(FTX_BARS))
    df.insert(
        0, "ts", pd.to_datetime(df.pop("timestamp"), utc=True).dt.as_unit("ns").astype("int64")
    )
    return df


@pytest.fixture(scope="session")
def ftx_bars() -> pd.DataFrame:
    return read_ftx_bars()


@pytest.fixture
def short_bars(ftx_bars) -> pd.DataFrame:
    """The first 6,000 bars (about 4 days): enough for every feature, quick to sweep."""
    return ftx_bars.iloc[:6000].reset_index(drop=True)


def bar_table(df: pd.DataFrame) -> pa.Table:
    n = len(df)
    return pa.table(
        {
            "ts": pa.array(df["ts"].to_numpy(np.int64)),
            "exchange": label_array(EXCHANGE, n),
            "symbol": label_array(SYMBOL, n),
            **{
                c: pa.array(df[c].to_numpy(np.float64))
                for c in ("open", "high", "low", "close", "volume")
            },
        }
    )


@pytest.fixture
def bar_lake(tmp_path, ftx_bars):
    """A real lake under tmp_path/home holding the first 10,000 FTX bars."""
    from algo_trade.store.lake import LakeStore

    store = LakeStore(tmp_path / "home")
    store.write("bar", bar_table(ftx_bars.iloc[:10_000]))
    return store
