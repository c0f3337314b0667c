"""Stores: the embedded Parquet lake (default) and PostgreSQL/TimescaleDB."""

from algo_trade.store.base import DatasetStats, Store, WriteResult, open_store, read_table

__all__ = ["DatasetStats", "Store", "WriteResult", "open_store", "read_table"]
