"""hftbacktest event files (``.npz``) -> `depth` and `trade` rows, read in bounded memory.

hftbacktest stores a market-data day as one structured array (``np.savez_compressed(...,
data=events)``) of its event dtype: ``ev`` u8 (event kind in the low byte, flag bits
above), ``exch_ts`` / ``local_ts`` i8 (ns), ``px`` / ``qty`` f8, ``order_id`` u8, ``ival``
i8, ``fval`` f8. Kinds: 1 depth change, 2 trade, 3 depth clear, 4 depth snapshot row,
5 best bid/offer; flag bits: 1<<31 exchange-side event, 1<<30 local-side event, 1<<29
buy (bid side, or a buying taker), 1<<28 sell.

Mapping (`exch_ts` -> `ts`, `local_ts` -> `ts_local`):

- its converters may write an event twice when the exchange and local orders differ
  (once with each side flag): only rows with the exchange flag are read, so every event
  is imported once, in the file's exchange-time order (a file with neither flag on any
  event holds each event once: all are read);
- depth change -> a diff row (`seq` -1: the files keep no update ids); depth snapshot
  rows -> a snapshot run (they share the snapshot's time). A depth clear only marks where
  a snapshot starts: our snapshot runs clear the whole book (hftbacktest clears up to
  the clear's price, which for a venue's full snapshot is the same book);
- trade -> a trade row; the files keep no trade id, so the id is ``h<exch_ts>.<k>`` (the
  k-th trade at that time in the file): stable, so a re-import adds nothing;
- best bid/offer and custom kinds (>= 100) are counted in the report and skipped.

The files name no venue or instrument: --exchange and --symbol are required. The array
is read from the zip member a block at a time (never whole), so memory is bounded.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algo_trade.errors import ConfigError, DataError
from algo_trade.importers.base import ImportOptions, Piece
from algo_trade.importers.reader import FileReport
from algo_trade.schema import DEPTH_SNAPSHOT, label_array, schema_for

EVENT = np.dtype(
    {
        "names": ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval"],
        "formats": ["<u8", "<i8", "<i8", "<f8", "<f8", "<u8", "<i8", "<f8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
    }
)
DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT = 1, 2, 3, 4, 5
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28
BLOCK_EVENTS = 1 << 18  # events read per block (16 MB)


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _member(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    names = [i for i in zf.infolist() if i.filename.endswith(".npy")]
    if not names:
        raise DataError(f"{path}: no .npy array inside (not an hftbacktest event file)")
    data = [i for i in names if i.filename == "data.npy"]
    return data[0] if data else names[0]


def read_blocks(
    path: Path, block: int = BLOCK_EVENTS, total: list[int] | None = None
) -> Iterator[np.ndarray]:
    """The event array of an .npz (or .npy) file, `block` events at a time (`total[0]`
    is set to the array's length once its header is read). Reports below number events
    from 1 in file order."""
    try:
        if path.suffix == ".npy":
            fh = open(path, "rb")  # noqa: SIM115 - closed below
            zf = None
        else:
            zf = zipfile.ZipFile(path)
            fh = zf.open(_member(zf, path))
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    try:
        try:
            version = np.lib.format.read_magic(fh)
            # the public readers (the private one that takes a version is gone in NumPy 2.4)
            read_header = _HEADER_READERS.get(version)
            if read_header is None:
                raise ValueError(f"format version {version} is not supported")
            shape, fortran, dtype = read_header(fh)
        except ValueError as exc:
            raise DataError(f"{path}: not a NumPy array file ({exc})") from None
        if dtype.names is None or not {"ev", "exch_ts", "local_ts", "px", "qty"} <= set(
            dtype.names
        ):
            raise DataError(
                f"{path}: the array has dtype {dtype}, not hftbacktest's event dtype "
                "(ev, exch_ts, local_ts, px, qty, ...)"
            )
        if fortran or len(shape) != 1:
            raise DataError(f"{path}: expected a 1-d event array, found shape {shape}")
        left = shape[0]
        if total is not None:
            total[0] = left
        while left:
            n = min(block, left)
            raw = fh.read(n * dtype.itemsize)
            if len(raw) != n * dtype.itemsize:
                raise DataError(f"{path}: the file is truncated ({left} events missing)")
            left -= n
            yield np.frombuffer(raw, dtype=dtype)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: corrupt compressed data ({exc})") from None
    finally:
        fh.close()
        if zf is not None:
            zf.close()


def _nth_at_time(ts: np.ndarray, last: dict[int, int]) -> np.ndarray:
    """k for each trade: how many trades at the same ts came before it in the file.
    ts is in file (exchange-time) order; `last` holds {ts: count} of the previous block's
    final time, so a time cut by a block boundary continues its count."""
    n = len(ts)
    if n == 0:
        return np.zeros(0, np.int64)
    pos = np.arange(n)
    first = np.concatenate(([True], ts[1:] != ts[:-1]))
    k = pos - np.maximum.accumulate(np.where(first, pos, 0))
    prev = last.get(int(ts[0]), 0)
    if prev:
        run0 = ts == ts[0]
        run0 &= np.cumsum(~run0) == 0  # only the leading run
        k[run0] += prev
    last.clear()
    last[int(ts[-1])] = int(k[-1]) + 1
    return k


class HftbacktestFormat:
    name = "hftbacktest"
    suffixes = (".npz", ".npy")

    def __init__(self) -> None:
        self._done = (0, 0)

    def progress(self) -> tuple[int, int]:
        return self._done

    def pieces(self, path: Path, opts: ImportOptions, report: FileReport) -> Iterator[Piece]:
        if not opts.exchange or not opts.symbol:
            raise ConfigError(
                f"{path.name}: an hftbacktest event file names no venue or instrument; give "
                "--exchange and --symbol (e.g. --exchange binance --symbol BTC-USDT-PERP)"
            )
        report.dataset = f"hftbacktest events {opts.exchange} {opts.symbol}"
        size = path.stat().st_size
        skipped: dict[str, int] = {}
        trade_k: dict[int, int] = {}  # trades at the last block's last exch_ts (for ids)
        base = 0
        total = [0]
        for ev in read_blocks(path, total=total):
            yield from self._block(ev, base, opts, report, skipped, trade_k)
            base += len(ev)
            self._done = (size * base // max(total[0], 1), size)
        for what, n in skipped.items():
            report.notes.append(f"{what}: {n:,} events skipped")

    @staticmethod
    def _block(
        ev: np.ndarray,
        base: int,
        opts: ImportOptions,
        report: FileReport,
        skipped: dict[str, int],
        trade_k: dict[int, int],
    ) -> Iterator[Piece]:
        flags = ev["ev"]
        mine = (flags & EXCH_EVENT) != 0
        if not mine.any() and not ((flags & LOCAL_EVENT) != 0).any():
            # Events written without the side flags (before its order correction): each
            # event is in the file once.
            mine = np.ones(len(ev), dtype=bool)
        kind = (flags & 0xFF).astype(np.int64)
        buy = (flags & BUY_EVENT) != 0
        sell = (flags & SELL_EVENT) != 0
        for k, what in ((DEPTH_BBO_EVENT, "best bid/offer"), (DEPTH_CLEAR_EVENT, "depth clear")):
            n = int((mine & (kind == k)).sum())
            if n:
                skipped[what] = skipped.get(what, 0) + n
        other = mine & ~np.isin(kind, (1, 2, 3, 4, 5))
        if other.any():
            skipped["other kinds"] = skipped.get("other kinds", 0) + int(other.sum())
        no_side = mine & np.isin(kind, (1, 2, 4)) & (buy == sell)
        if no_side.any():
            pos = np.flatnonzero(no_side)
            report.bad("event with neither (or both) buy and sell flags", None, len(pos))
        ex, sym = opts.exchange or "", opts.symbol or ""
        depth = mine & np.isin(kind, (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT)) & ~no_side
        idx = np.flatnonzero(depth)
        if len(idx):
            n = len(idx)
            d = ev[idx]
            table = pa.Table.from_arrays(
                [
                    pa.array(d["exch_ts"]),
                    pa.array(d["local_ts"]),
                    label_array(ex, n),
                    label_array(sym, n),
                    pa.array(np.where(buy[idx], 1, -1).astype(np.int8)),
                    pa.array(d["px"]),
                    pa.array(d["qty"]),
                    pa.array(np.full(n, -1, np.int64)),
                    pa.array(
                        np.where(kind[idx] == DEPTH_SNAPSHOT_EVENT, DEPTH_SNAPSHOT, 0).astype(
                            np.uint8
                        )
                    ),
                ],
                schema=schema_for("depth"),
            )
            yield Piece("depth", table, base + idx + 1, lines=True)
        trade = mine & (kind == TRADE_EVENT) & ~no_side
        idx = np.flatnonzero(trade)
        if len(idx):
            t = ev[idx]
            ts = t["exch_ts"]
            k = _nth_at_time(ts, trade_k)
            n = len(idx)
            ids = pc.binary_join_element_wise(
                pc.cast(pa.array(ts), pa.string()), pc.cast(pa.array(k), pa.string()), "."
            )
            cols = {
                "ts": pa.array(ts),
                "exchange": label_array(ex, n),
                "symbol": label_array(sym, n),
                "side": pa.array(np.where(buy[idx], 1, -1).astype(np.int8)),
                "price": pa.array(t["px"]),
                "qty": pa.array(t["qty"]),
                "trade_id": pc.binary_join_element_wise("h", ids, ""),
                "ts_local": pa.array(t["local_ts"]),
            }
            schema = schema_for("trade")
            yield Piece(
                "trade",
                pa.Table.from_arrays([cols[f] for f in schema.names], schema=schema),
                base + idx + 1,
                lines=True,
            )
