"""`algo-trade import FORMAT PATH...`: load history files into the store.

(The module is not named `import`: that is a Python keyword.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from algo_trade.cli.common import (
    DEFAULT_HOME,
    Db,
    Home,
    Json,
    Profile,
    ProfileMemory,
    console,
    emit_json,
    err_console,
    rich_table,
    run_context,
    store_from,
)
from algo_trade.errors import ConfigError
from algo_trade.importers import FORMATS, ImportOptions, Summary, run_import
from algo_trade.importers.ohlcv import parse_mapping
from algo_trade.schema import check_exchange, check_symbol
from algo_trade.timeutil import fmt_ns, parse_duration_ns, parse_time_ns

HELP = f"""Import history files (or whole directories, recursively) into the store.

FORMAT is one of: {", ".join(FORMATS)}.

\b
  tardis          Tardis.dev CSV(.gz): book_snapshot_N, quotes, trades, liquidations,
                  derivative_ticker, incremental_book_L2 (each update as
                  depth, books at --book-interval)
  binance-vision  data.binance.vision USD-M dumps (.zip with .CHECKSUM, .csv):
                  klines, aggTrades, trades, fundingRate, bookTicker
  capture         raw captures '<recv ts> <raw msg>' (.gz) through the
                  collector's parsers (Binance USD-M, Bybit, Hyperliquid):
                  depth (each accepted update), trades, funding; books
                  only with --book-interval
  ohlcv           generic bars (.csv, .csv.gz, .parquet) with --map
  hftbacktest     hftbacktest event files (.npz): depth and trades;
                  needs --exchange and --symbol

Re-importing the same files stores nothing twice. Bad rows are reported with file, line
and reason and skipped; --strict stops at the first one and writes nothing from that file.

\b
Examples:
  algo-trade import tardis ~/tardis/binance-futures/ --start 2024-01-01 --end 2024-02-01
  algo-trade import binance-vision BTCUSDT-aggTrades-2024-01-01.zip --strict
  algo-trade import capture raw/binance/ --book-interval 100ms --depth 20
  algo-trade import ohlcv bars.csv --exchange ftx --symbol BTC-USD-PERP --map ts=Date,close=Close
  algo-trade import hftbacktest btcusdt_20240808.npz --exchange binance --symbol BTC-USDT-PERP
"""


def _progress_factory(bar: Progress):  # noqa: ANN202 - returns a callback factory
    def on_file(path: Path, size: int):  # noqa: ANN202
        task = bar.add_task(path.name, total=size or None)
        return lambda done, total: bar.update(task, completed=done, total=total or None)

    return on_file


def _print_summary(summary: Summary) -> None:
    d = summary.to_dict()
    rows = [
        {
            "file": Path(f["path"]).name,
            "dataset": f["dataset"],
            "written": ", ".join(f"{k} {v:,}" for k, v in f["written"].items()) or "-",
            "duplicates": f["duplicates"],
            "rejected": sum(f["rejected"].values()),
            "from": fmt_ns(f["first_ts"]),
            "to": fmt_ns(f["last_ts"]),
        }
        for f in d["files"]
    ]
    console.print(rich_table("import", rows))
    written = ", ".join(f"{k} {v:,}" for k, v in d["written"].items()) or "nothing new"
    console.print(
        f"rows written: {written}; duplicates skipped: {d['duplicates']:,}; "
        f"time range: {fmt_ns(d['first_ts'])} .. {fmt_ns(d['last_ts'])}; {d['seconds']:.1f} s"
    )
    if d["rejected"]:
        console.print(
            rich_table(
                "rejected rows", [{"reason": k, "rows": v} for k, v in d["rejected"].items()]
            )
        )
        for f in summary.files:
            for b in f.samples:
                err_console.print(f"  bad row {b}", markup=False, highlight=False, soft_wrap=True)
    for f in summary.files:
        for note in f.notes:
            console.print(
                f"  {Path(f.path).name}: {note}", markup=False, highlight=False, soft_wrap=True
            )


def check_zone(tz: str) -> str:
    """--tz must name an IANA zone (Europe/Berlin) or UTC."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--tz {tz!r} is not a known time zone: use e.g. UTC or Europe/Berlin"
        ) from None
    return tz


def register(app: typer.Typer) -> None:
    @app.command("import", help=HELP)
    def import_cmd(
        format: Annotated[str, typer.Argument(help=f"One of {', '.join(FORMATS)}.")],
        paths: Annotated[
            list[Path], typer.Argument(help="Files or directories (searched recursively).")
        ],
        exchange: Annotated[
            str | None, typer.Option(help="Exchange name to store under (default: from the data).")
        ] = None,
        symbol: Annotated[
            str | None,
            typer.Option(
                help="Only this symbol (BTC-USDT-PERP); a file holding others is an error."
            ),
        ] = None,
        start: Annotated[
            str | None, typer.Option(help="Keep rows at or after this time (UTC).")
        ] = None,
        end: Annotated[str | None, typer.Option(help="Keep rows before this time (UTC).")] = None,
        strict: Annotated[
            bool, typer.Option(help="Stop at the first bad row; nothing from that file is written.")
        ] = False,
        book_interval: Annotated[
            str | None,
            typer.Option(
                help="Grid of sampled book rows (default: Tardis incremental 1s; captures none: "
                "they store every update as depth, rebuilt into books on load)."
            ),
        ] = None,
        depth: Annotated[
            int | None,
            typer.Option(
                help="Book levels per side (default: the file's, or 20 for rebuilt books)."
            ),
        ] = None,
        map: Annotated[
            str | None,
            typer.Option("--map", help="ohlcv columns: ts=Date,open=Open,...,volume=Vol"),
        ] = None,
        ts_unit: Annotated[
            str, typer.Option(help="ohlcv numeric times: auto, s, ms, us or ns.")
        ] = "auto",
        tz: Annotated[str, typer.Option(help="ohlcv: zone of times written without one.")] = "UTC",
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
        if symbol:
            symbol = check_symbol(symbol.strip().upper())
        if exchange is not None:
            check_exchange(exchange)
        check_zone(tz)
        if depth is not None and not 1 <= depth <= 1000:
            raise ConfigError(f"--depth must be between 1 and 1000, got {depth}")
        if book_interval and not 10**6 <= parse_duration_ns(book_interval) <= 86_400 * 10**9:
            raise ConfigError("--book-interval must be between 1ms and 1d, e.g. 1s")
        opts = ImportOptions(
            exchange=exchange,
            symbol=symbol,
            start_ns=parse_time_ns(start) if start else None,
            end_ns=parse_time_ns(end) if end else None,
            strict=strict,
            book_interval_ns=parse_duration_ns(book_interval) if book_interval else None,
            depth=depth,
            mapping=parse_mapping(map),
            ts_unit=ts_unit,
            tz=tz,
        )
        if opts.start_ns is not None and opts.end_ns is not None and opts.end_ns <= opts.start_ns:
            raise ConfigError(f"--end ({end}) must be after --start ({start})")
        with run_context(profile, profile_memory, json) as stages:
            store = store_from(home, db)
            try:
                with (
                    stages.stage("import"),
                    Progress(
                        TextColumn("{task.description}"),
                        BarColumn(),
                        DownloadColumn(),
                        TransferSpeedColumn(),
                        TimeRemainingColumn(),
                        console=err_console,
                        disable=json or not err_console.is_terminal,
                        transient=True,
                    ) as bar,
                ):
                    summary = run_import(store, format, paths, opts, _progress_factory(bar))
            finally:
                store.close()
        failed = [f for f in summary.files if f.error]
        d = summary.to_dict()
        if json:
            emit_json(d)
        nothing = not failed and not any(d["written"].values()) and not d["duplicates"]
        if nothing and d["rejected"]:
            # Every row broke a rule: one line with the reasons, and a failing exit code.
            reasons = "; ".join(f"{k}: {v:,}" for k, v in d["rejected"].items())
            err_console.print(
                f"error: nothing valid to import, every row was rejected ({reasons}); "
                "fix the input (docs/data.md, Importing history, says what each format needs)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2)
        if not json:
            _print_summary(summary)
        for f in failed:
            err_console.print(f"error: {f.error}", markup=False, highlight=False, soft_wrap=True)
        if failed:
            raise typer.Exit(2)
