"""Helpers shared by the importer tests and benchmarks/bench_import.py."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

from tests.realdata import data_path

DATA = Path(__file__).resolve().parent.parent / "data"


def write_tardis_book_csv(
    path: Path, rows: int, levels: int = 25, seed: int = 0, start_us: int = 1_598_918_403_696_000
) -> Path:
    """A large Tardis book_snapshot_<levels> file in the header layout of the real sample
    (tests/data/tardis_binance-futures_book_snapshot_25_BTCUSDT.csv): asks[i] then bids[i]
    per level, prices on a 0.01 tick near a random-walk mid, amounts on a 0.001 lot.
    Written in blocks, gzip when the name ends in .gz. For size and speed tests only."""
    rng = np.random.default_rng(seed)
    block = 20_000
    opener = gzip.open if path.name.endswith(".gz") else open
    header = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for i in range(levels):
        header += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    mid = 1_165_700
    with opener(path, "wb", **({"compresslevel": 3} if path.name.endswith(".gz") else {})) as out:  # type: ignore[operator]
        out.write((",".join(header) + "\n").encode())
        for a in range(0, rows, block):
            n = min(block, rows - a)
            mids = mid + np.cumsum(rng.integers(-3, 4, n))
            mid = int(mids[-1])
            ts = start_us + (a + np.arange(n, dtype=np.int64)) * 100_000
            cols: dict[str, pa.Array] = {
                "exchange": pa.array(["binance-futures"] * n),
                "symbol": pa.array(["BTCUSDT"] * n),
                "timestamp": pa.array(ts),
                "local_timestamp": pa.array(ts + rng.integers(1_000, 90_000, n)),
            }
            ask_gap = np.cumsum(rng.geometric(0.5, (n, levels)), axis=1)
            bid_gap = np.cumsum(rng.geometric(0.5, (n, levels)), axis=1) - 1
            for i in range(levels):
                # Two-decimal prices and three-decimal amounts, as Tardis writes them.
                cols[f"asks[{i}].price"] = pa.array(np.round((mids + ask_gap[:, i]) / 100.0, 2))
                cols[f"asks[{i}].amount"] = pa.array(rng.integers(1, 20_000, n) / 1000.0)
                cols[f"bids[{i}].price"] = pa.array(np.round((mids - bid_gap[:, i]) / 100.0, 2))
                cols[f"bids[{i}].amount"] = pa.array(rng.integers(1, 20_000, n) / 1000.0)
            table = pa.table(cols)
            sink = pa.BufferOutputStream()
            pv.write_csv(table, sink, pv.WriteOptions(include_header=False, quoting_style="none"))
            out.write(sink.getvalue().to_pybytes())
    return path


def copy_data(name: str, dest: Path) -> Path:
    """Copy tests/data/<name> into dest (tests corrupt or rename copies, never the original)."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(data_path(DATA, name), dest / name))
