"""The server store: PostgreSQL, with TimescaleDB hypertables and compression when present.

One table per record kind (``book``, ``funding``, ``liquidation``, ``trade``, ``bar``),
keyed by ``(symbol, exchange, ts, ...)``. With the ``timescaledb`` extension each is a
hypertable on ``ts`` (int64 ns, daily chunks by default) compressed by
``symbol, exchange`` ordered by ``ts DESC``; on plain PostgreSQL each is range-partitioned
on ``ts`` with daily partitions created ahead as data arrives.

- Writes are one transaction per call: binary COPY built in bulk from the Arrow columns
  (`pgcopy`). When no stored row of the batch's series falls in its time range the rows
  are copied straight into the table; otherwise (or if a concurrent writer got there
  first) they go through a temporary staging table and ``INSERT ... ON CONFLICT DO
  NOTHING``, so a batch written twice is stored once.
- Book levels are stored as one ``bytea`` per row (bid_px, bid_sz, ask_px, ask_sz,
  ``depth`` values each): the server sends and receives it as-is, ~6x faster than
  ``float8[]`` (measured). Rows whose prices and sizes are decimals (nearly all) are
  packed as int32 mantissas with a decimal scale per row (`pgcopy.pack_levels`, checked
  exact), the rest as little-endian float64: half the bytes, so half the heap and WAL the
  server writes per row. The SQL function ``algo_trade_level(levels, i)`` reads one value
  of either layout for ad-hoc SQL.
- Reads send no user value in SQL text: queries bind parameters; COPY (which takes no
  parameters) reads them back with ``current_setting`` after a parameterized
  ``set_config``; names are fixed identifiers. Book scans read keyset pages of binary
  rows, one page ahead on a worker thread; other kinds stream ``COPY (SELECT ...) TO
  STDOUT (FORMAT BINARY)`` decoded in bulk. Memory stays bounded by the page size.

>>> store = PostgresStore("postgresql://me@localhost/algo_trade")  # doctest: +SKIP
"""

from algo_trade.store.postgres.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    InitOptions,
    InitReport,
    describe,
    migrate,
)
from algo_trade.store.postgres.store import PostgresStore, connect_error, redact
from algo_trade.store.postgres.write import encode_table

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "InitOptions",
    "InitReport",
    "PostgresStore",
    "connect_error",
    "describe",
    "encode_table",
    "migrate",
    "redact",
]
