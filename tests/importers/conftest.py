"""Fixtures for the importer tests: a fresh lake and a helper to read a dataset back."""

from __future__ import annotations

import pyarrow as pa
import pytest

from algo_trade.store.base import read_table

ALL_TIME = (0, 4_000_000_000_000_000_000)


def stored(store, kind: str, exchange: str, symbol: str) -> pa.Table:
    """Every row of one dataset, oldest first."""
    return read_table(store, kind, exchange, symbol, *ALL_TIME)


@pytest.fixture
def lake(tmp_path):
    from algo_trade.store.lake import LakeStore

    return LakeStore(tmp_path / "home", fsync=False)
