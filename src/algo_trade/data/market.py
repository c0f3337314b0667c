"""`MarketData`: one instrument's data as columnar arrays aligned on one timeline.

Built by `algo_trade.load` (from a store) or `MarketData.from_bars` (from a DataFrame);
consumed by `algo_trade.backtest`. Kept free of store imports so the engine can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from algo_trade.errors import DataError

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
BOOK_ARRAYS = ("bid_px", "bid_sz", "ask_px", "ask_sz")


@dataclass
class MarketData:
    """Arrays of length n on the timeline `ts` (int64 since the epoch, UTC, strictly
    increasing, in units of `ts_unit_ns` nanoseconds: 1 from `load`; a DataFrame's own unit,
    e.g. 1,000 for pandas' default microseconds, so that no 8-byte-per-row copy is made;
    `ts_ns` converts).

    mode: "book" (events are book snapshots; ``close`` etc. hold the mid) or "bars" (events
    are bars, ts = bar open time). columns: name -> NumPy array (see `strategies.Inputs`);
    ``fund_settle_rate`` / ``fund_settle_mark`` (NaN where no settlement) carry the funding
    payments the engine books at each event.
    """

    ts: np.ndarray
    columns: dict[str, np.ndarray]
    mode: str = "bars"
    exchange: str = ""
    symbol: str = ""
    kinds: tuple[str, ...] = ()
    bar_ns: int | None = None
    meta: dict[str, object] = field(default_factory=dict)
    ts_unit_ns: int = 1

    @property
    def ts_ns(self) -> np.ndarray:
        """`ts` in nanoseconds (a copy unless ts is already in ns)."""
        return self.ts if self.ts_unit_ns == 1 else self.ts * self.ts_unit_ns

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "ts":
            return self.ts
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name == "ts" or name in self.columns

    @property
    def depth(self) -> int:
        bp = self.columns.get("bid_px")
        return int(bp.shape[1]) if bp is not None else 0

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.ts_ns, unit="ns", utc=True), name="ts")

    @property
    def nbytes(self) -> int:
        return int(self.ts.nbytes + sum(a.nbytes for a in self.columns.values()))

    def __repr__(self) -> str:
        span = ""
        if len(self):
            span = f" {self.index[0]} .. {self.index[-1]}"
        return (
            f"MarketData({self.mode}, {self.exchange} {self.symbol}, {len(self)} events{span}, "
            f"columns={sorted(self.columns)})"
        )

    @classmethod
    def from_bars(cls, df: pd.DataFrame) -> MarketData:
        """Bars from a DataFrame: open/high/low/close[/volume] columns and a UTC DatetimeIndex
        (or a ``ts`` column of ns). Optional ``funding_rate`` (settled in that bar, NaN
        elsewhere) and ``mark_px`` columns add funding payments. Prices and timestamps are
        checked by the engine as it reads them (`bad_bar_message`), not in an extra pass."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"bars must be a pandas DataFrame, got {type(df).__name__}")
        cols = {str(c).lower(): c for c in df.columns}
        missing = [c for c in ("open", "close") if c not in cols]
        if missing:
            raise DataError(
                f"bars have no {missing[0]!r} column: give open, high, low, close[, volume] "
                f"(got {', '.join(map(str, df.columns)) or 'none'})"
            )
        if len(df) == 0:
            raise DataError("no data: the bars DataFrame is empty")
        _refuse_unknown_funding(cols)
        ts, unit_ns = _timestamps(df, cols)

        def col(name: str) -> np.ndarray:
            a = df[cols[name]].to_numpy(dtype=np.float64, copy=False)
            return np.ascontiguousarray(a)

        out = {"open": col("open"), "close": col("close")}
        out["high"] = col("high") if "high" in cols else np.maximum(out["open"], out["close"])
        out["low"] = col("low") if "low" in cols else np.minimum(out["open"], out["close"])
        if "volume" in cols:
            out["volume"] = col("volume")
        kinds = ["bar"]
        if "funding_rate" in cols:
            rate = col("funding_rate")
            out["fund_settle_rate"] = rate
            out["fund_settle_mark"] = (
                col("mark_px") if "mark_px" in cols else np.full(len(ts), np.nan)
            )
            out["funding_rate"] = pd.Series(rate).ffill().to_numpy()
            kinds.append("funding")
        step = int(np.median(np.diff(ts[:1_000]))) * unit_ns if len(ts) > 1 else None
        return cls(ts, out, "bars", kinds=tuple(kinds), bar_ns=step, ts_unit_ns=unit_ns)


# The one input convention of `backtest` and `sweep` for funding in a bars DataFrame.
FUNDING_COLUMNS = ("funding_rate", "mark_px")


def _refuse_unknown_funding(cols: dict[str, object]) -> None:
    """A column that looks like funding but is not one the engine reads would be ignored
    silently, and its payments missed: refuse it instead."""
    for name in cols:
        if name in FUNDING_COLUMNS:
            continue
        if "fund" in name or "mark" in name:
            raise DataError(
                f"bars column {cols[name]!r} looks like funding but is not read: give the rate "
                "settled in each bar as 'funding_rate' (NaN where none settles) and its mark "
                "price as 'mark_px', or drop the column"
            )


def _timestamps(df: pd.DataFrame, cols: dict[str, object]) -> tuple[np.ndarray, int]:
    """(int64 times, nanoseconds per unit) without copying a DatetimeIndex's values."""
    if "ts" in cols:
        raw = df[cols["ts"]]
        if pd.api.types.is_datetime64_any_dtype(raw):
            return _epoch(pd.DatetimeIndex(raw))
        return np.ascontiguousarray(raw.to_numpy(dtype=np.int64)), 1
    if isinstance(df.index, pd.DatetimeIndex):
        return _epoch(df.index)
    raise DataError(
        "bars need a DatetimeIndex (UTC) or a 'ts' column of ns since epoch; "
        f"got a {type(df.index).__name__}"
    )


_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _epoch(idx: pd.DatetimeIndex) -> tuple[np.ndarray, int]:
    # asi8 counts from the epoch in UTC whatever the index's zone: no conversion, no copy
    return np.ascontiguousarray(idx.asi8), _NS_PER[idx.unit]


def bad_bar_message(ts: np.ndarray, row: int, column: int, unit_ns: int = 1) -> str:
    """The error for a bar the engine refused (column: 0-3 open/high/low/close, 4 ts)."""
    when = pd.Timestamp(int(ts[row]) * unit_ns, tz="UTC")
    if column == 4:
        return (
            f"bar timestamps must strictly increase; row {row} ({when}) does not: "
            "sort the bars and drop duplicates"
        )
    name = ("open", "high", "low", "close")[column]
    return (
        f"bars column {name!r} has a missing or non-positive price at row {row} ({when}); "
        "drop or fill those rows first"
    )
