"""`algo-trade db …`: inspect and maintain the store."""

from __future__ import annotations

from pathlib import Path

import typer

from algo_trade.cli.common import (
    DEFAULT_HOME,
    Db,
    Home,
    Json,
    console,
    emit_json,
    rich_table,
    store_from,
)
from algo_trade.store.base import stats_rows

db_app = typer.Typer(
    help="Inspect and maintain the store (lake or PostgreSQL).", no_args_is_help=True
)


def print_stats(store, json_mode: bool) -> None:
    rows = stats_rows(store)
    if json_mode:
        emit_json(rows)
    elif not rows:
        console.print(
            f"the store {getattr(store, 'url', '')} holds no data yet; try `algo-trade generate`"
        )
    else:
        console.print(rich_table(f"store {getattr(store, 'url', '')}", rows))
    table_stats = getattr(store, "table_stats", None)
    if table_stats is not None and not json_mode:
        console.print(
            rich_table(
                "tables (partitions or chunks, bytes before/after compression)", table_stats()
            )
        )


@db_app.command("stats")
def stats_cmd(
    home: Home = DEFAULT_HOME, db: Db = None, json: bool = typer.Option(False, "--json")
) -> None:
    """Rows, time span and bytes on disk per kind/exchange/symbol.

    Example: algo-trade db stats --json
    """
    store = store_from(home, db)
    try:
        if json and hasattr(store, "table_stats"):
            emit_json({"datasets": stats_rows(store), "tables": store.table_stats()})  # type: ignore[attr-defined]
        else:
            print_stats(store, json)
    finally:
        store.close()


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


@db_app.command("check")
def check_cmd(
    home: Home = DEFAULT_HOME,
    deep: bool = typer.Option(False, "--deep", help="Decode every row too (reads everything)."),
    quarantine: bool = typer.Option(
        False, "--quarantine", help="Move what is found under <home>/quarantine/."
    ),
    json: Json = False,
) -> None:
    """List lake files that reads cannot use (damaged, wrong schema, stray); exit 1 if any remain.

    Example: algo-trade db check --home ./algo-trade-data --quarantine
    """
    from algo_trade.errors import ConfigError
    from algo_trade.store.lake import LakeStore

    if not (Path(home) / "lake").is_dir():
        raise ConfigError(f"no lake in {home}: give the data home with --home")
    found = LakeStore(home).check(deep=deep, quarantine=quarantine)
    if json:
        emit_json(found)
    elif not found:
        console.print(f"no damaged or stray files in {home}")
    else:
        console.print(rich_table("damaged or stray lake files", found))
    if found and not quarantine:
        raise typer.Exit(1)


def _require_db(db: str | None, command: str) -> str:
    from algo_trade.errors import ConfigError
    from algo_trade.store.base import postgres_target

    if not db or not db.strip():
        raise ConfigError(
            f"`algo-trade db {command}` works on PostgreSQL: give --db postgresql://user@host/dbname"
            " (or set ALGO_TRADE_DB); the lake needs no init and is not compressed by chunks"
        )
    return postgres_target(db)


@db_app.command("init")
def init_cmd(
    db: Db = None,
    chunk_interval: str | None = typer.Option(
        None,
        "--chunk-interval",
        help="Time span of one chunk/partition, 1m to 366d (new database: 1d; omitted: kept).",
    ),
    compress_after: str | None = typer.Option(
        None,
        "--compress-after",
        help="Compress chunks older than this (TimescaleDB; new database: 7d; omitted: kept).",
    ),
    retain: str | None = typer.Option(
        None,
        "--retain",
        help="Drop chunks older than this (TimescaleDB), e.g. 365d; 'off' removes the policy;"
        " omitted: the policy in place (yours too) is kept.",
    ),
    no_timescale: bool = typer.Option(
        False, "--no-timescale", help="Plain partitioned tables even if TimescaleDB is there."
    ),
    json: Json = False,
) -> None:
    """Create the schema in a PostgreSQL database (idempotent; re-running applies the options given).

    Example: algo-trade db init --db postgresql://me@localhost/algo_trade --compress-after 3d --retain 365d
    """
    import psycopg

    from algo_trade.store.postgres import InitOptions, connect_error, describe, migrate
    from algo_trade.timeutil import parse_duration_ns

    url = _require_db(db, "init")
    opts = InitOptions(
        chunk_interval_ns=parse_duration_ns(chunk_interval) if chunk_interval else None,
        compress_after_ns=parse_duration_ns(compress_after) if compress_after else None,
        retain_ns=(
            0 if retain.strip().lower() in ("off", "none", "0") else parse_duration_ns(retain)
        )
        if retain
        else None,
        timescale=not no_timescale,
    )
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            report = migrate(conn, opts, reconfigure=True)
    except psycopg.OperationalError as exc:
        raise connect_error(exc, url) from None
    if json:
        emit_json(
            {
                "backend": report.backend,
                "version": report.version,
                "applied": report.applied,
                "notes": report.notes,
            }
        )
        return
    console.print(describe(report))
    for note in report.notes:
        console.print(note)


@db_app.command("compress")
def compress_cmd(
    db: Db = None,
    older_than: str | None = typer.Option(
        None, "--older-than", help="Compress chunks older than this (default: the policy's age)."
    ),
    json: Json = False,
) -> None:
    """Compress eligible TimescaleDB chunks now and say what was done.

    Example: algo-trade db compress --db postgresql://me@localhost/algo_trade --older-than 1d
    """
    from algo_trade.timeutil import parse_duration_ns

    store = store_from(DEFAULT_HOME, _require_db(db, "compress"))
    try:
        report = store.compress(parse_duration_ns(older_than) if older_than else None)  # type: ignore[attr-defined]
    finally:
        store.close()
    if json:
        emit_json(report)
        return
    if "note" in report:
        console.print(report["note"])
    else:
        per = ", ".join(f"{k} {v}" for k, v in report["per_table"].items() if v)
        line = f"compressed {report['compressed_chunks']} chunks" + (f" ({per})" if per else "")
        if report["recompressed"]:
            line += f"; merged new rows into {report['recompressed']} compressed chunks"
        line += f"; {report['already_compressed']} were already compressed"
        console.print(line)


@db_app.command("copy")
def copy_cmd(
    src: str = typer.Option(..., "--from", help="Source: a postgresql:// URL or a lake data home."),
    dst: str = typer.Option(
        ..., "--to", help="Destination: a postgresql:// URL or a lake data home."
    ),
    start: str = typer.Option(..., "--start", help="First time to copy (UTC, inclusive)."),
    end: str = typer.Option(..., "--end", help="End of the range (UTC, exclusive)."),
    kind: str | None = typer.Option(None, "--kind", help="Only this record kind."),
    exchange: str | None = typer.Option(None, "--exchange", help="Only this exchange."),
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol."),
    json: Json = False,
) -> None:
    """Copy records between the lake and PostgreSQL, either way, streamed; re-running stores nothing twice.

    Example: algo-trade db copy --from ./algo-trade-data --to postgresql://me@localhost/algo_trade --start 2024-01-01 --end 2024-02-01
    """
    from algo_trade.errors import ConfigError
    from algo_trade.schema import check_exchange, check_kind, check_symbol
    from algo_trade.store.base import is_postgres_target, open_store, postgres_target
    from algo_trade.store.transfer import copy_between
    from algo_trade.timeutil import parse_range_ns

    parse_range_ns(start, end)
    if kind is not None:
        check_kind(kind)
    if exchange is not None:
        check_exchange(exchange)
    if symbol is not None:
        check_symbol(symbol)
    src = postgres_target(src, "--from") if is_postgres_target(src) else src
    dst = postgres_target(dst, "--to") if is_postgres_target(dst) else dst
    if src == dst:
        raise ConfigError("--from and --to are the same store; name two different stores")
    if not is_postgres_target(src) and not (Path(src) / "lake").is_dir():
        raise ConfigError(
            f"--from {src}: no lake there (no {Path(src) / 'lake'} directory); give the data home"
            " that holds the records"
        )
    source = open_store(src)
    try:
        target = open_store(dst)
        try:
            rows = copy_between(
                source, target, start, end, [kind] if kind else None, exchange, symbol
            )
        finally:
            target.close()
    finally:
        source.close()
    if json:
        emit_json(rows)
    elif not rows:
        console.print("nothing to copy: the source holds no matching datasets")
    else:
        console.print(
            rich_table(
                f"copied {getattr(source, 'url', src)} -> {getattr(target, 'url', dst)}", rows
            )
        )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
