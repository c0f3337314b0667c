"""`algo-trade db …`: inspect and maintain the store."""

from __future__ import annotations

import typer

from algo_trade.cli.common import DEFAULT_HOME, Db, Home, Json, console, emit_json, rich_table, store_from
from algo_trade.timeutil import fmt_ns

db_app = typer.Typer(help="Inspect and maintain the store (lake or PostgreSQL).", no_args_is_help=True)


def stats_rows(store) -> list[dict]:
    rows = []
    for s in store.stats():
        row = {
            "kind": s.kind,
            "exchange": s.exchange,
            "symbol": s.symbol,
            "rows": s.rows,
            "first": fmt_ns(s.first_ts),
            "last": fmt_ns(s.last_ts),
            "bytes": s.bytes,
            "bytes_per_row": round(s.bytes / s.rows, 1) if s.rows else None,
            "parts": s.parts,
        }
        row.update(s.extra)
        rows.append(row)
    return rows


def print_stats(store, json_mode: bool) -> None:
    rows = stats_rows(store)
    if json_mode:
        emit_json(rows)
    elif not rows:
        console.print(f"the store {getattr(store, 'url', '')} holds no data yet; try `algo-trade generate`")
    else:
        console.print(rich_table(f"store {getattr(store, 'url', '')}", rows))


@db_app.command("stats")
def stats_cmd(home: Home = DEFAULT_HOME, db: Db = None, json: bool = typer.Option(False, "--json")) -> None:
    """Rows, time span and bytes on disk per kind/exchange/symbol.

    Example: algo-trade db stats --json
    """
    print_stats(store_from(home, db), json)


@db_app.command("compact")
def compact_cmd(home: Home = DEFAULT_HOME, db: Db = None, json: Json = False) -> None:
    """Merge each day's small files into one and drop duplicate rows (safe while others read).

    Example: algo-trade db compact --home ./algo-trade-data
    """
    report = store_from(home, db).compact()
    if json:
        emit_json(report)
    else:
        console.print(rich_table("compaction", [report]))


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
