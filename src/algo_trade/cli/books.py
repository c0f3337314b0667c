"""`algo-trade db books --from-depth`: book rows rebuilt from depth events."""

from __future__ import annotations

from pathlib import Path

import typer

from algo_trade.cli.common import DEFAULT_HOME, Db, Home, Json, console, emit_json, store_from


def books_cmd(
    exchange: str = typer.Option(..., "--exchange", help="Exchange of the depth events."),
    symbol: str = typer.Option(..., "--symbol", help="Symbol, e.g. BTC-USDT-PERP."),
    start: str = typer.Option(..., "--start", help="First book time (UTC, inclusive)."),
    end: str = typer.Option(..., "--end", help="End of the range (UTC, exclusive)."),
    from_depth: bool = typer.Option(
        True, "--from-depth", help="Rebuild from stored depth events (the only source)."
    ),
    interval: str | None = typer.Option(
        None, "--interval", help="Book grid, e.g. 10ms or 1s; omitted: a book after every update."
    ),
    depth: int = typer.Option(20, "--depth", help="Levels per side."),
    out: Path | None = typer.Option(
        None, "--out", help="Write the books to this Parquet file instead of the store."
    ),
    depth_file: Path | None = typer.Option(
        None, "--depth-file", help="Read depth events from this Parquet file, not the store."
    ),
    home: Home = DEFAULT_HOME,
    db: Db = None,
    json: Json = False,
) -> None:
    """Rebuild order books from depth events and store them as `book` rows (or a file).

    Without --out the rows go to the store's book dataset of the same exchange and symbol
    (existing rows with the same ts are kept). Nothing is sampled before the first depth
    snapshot run: books are never invented.

    Example: algo-trade db books --from-depth --exchange binance --symbol BTC-USDT-PERP --start 2024-08-08 --end 2024-08-09 --interval 10ms --out books.parquet
    """
    from algo_trade.data import book_build

    report = book_build.run(
        exchange, symbol, start, end, interval, depth, out, depth_file,
        lambda: store_from(home, db),
    )  # fmt: skip
    if json:
        emit_json(report)
        return
    where = report["out"]
    rej = report["rejected"]
    console.print(
        f"{report['books']:,} book rows from {report['depth_rows']:,} depth rows -> {where}"
        + (f"; rejected {sum(rej.values()):,} depth rows ({rej})" if rej else "")
    )


def register(app: typer.Typer) -> None:
    from algo_trade.cli.db import db_app

    db_app.command("books")(books_cmd)
