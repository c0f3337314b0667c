"""Import history files into a store: Tardis CSVs, Binance public data, raw captures, OHLCV,
hftbacktest event files.

>>> from algo_trade import open_store
>>> from algo_trade.importers import ImportOptions, run_import
>>> summary = run_import(open_store("data"), "tardis", ["tardis/"], ImportOptions())  # doctest: +SKIP
>>> summary.rows()  # doctest: +SKIP
{'book': 86400, 'trade': 1203344}

Each format yields normalized Arrow tables in chunks (constant memory); the shared
driver (`base.import_files`) filters, validates, reports bad rows with file and line,
and writes through `Store.write`, which skips keys already stored (re-imports add
nothing). See docs/data.md for what each format maps to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from algo_trade.errors import ConfigError
from algo_trade.importers.base import Format, ImportOptions, Progress, Summary, import_files
from algo_trade.importers.reader import FileReport, discover
from algo_trade.store.base import Store

FORMATS = ("tardis", "binance-vision", "capture", "ohlcv", "hftbacktest")


def format_for(name: str) -> Format:
    """A fresh reader for a format name (see FORMATS)."""
    if name == "tardis":
        from algo_trade.importers.tardis import TardisFormat

        return TardisFormat()
    if name == "binance-vision":
        from algo_trade.importers.binance_vision import BinanceVisionFormat

        return BinanceVisionFormat()
    if name == "capture":
        from algo_trade.importers.capture import CaptureFormat

        return CaptureFormat()
    if name == "ohlcv":
        from algo_trade.importers.ohlcv import OhlcvFormat

        return OhlcvFormat()
    if name == "hftbacktest":
        from algo_trade.importers.hftbacktest import HftbacktestFormat

        return HftbacktestFormat()
    raise ConfigError(f"unknown import format {name!r}: choose one of {', '.join(FORMATS)}")


def run_import(
    store: Store,
    format_name: str,
    paths: Iterable[str | Path],
    opts: ImportOptions,
    on_file: Callable[[Path, int], Progress | None] | None = None,
) -> Summary:
    """Import files and directories (recursively) of one format into `store`."""
    fmt = format_for(format_name)
    files = discover(list(paths), fmt.suffixes)
    return import_files(store, fmt, files, opts, on_file)


__all__ = ["FORMATS", "FileReport", "ImportOptions", "Summary", "format_for", "run_import"]
