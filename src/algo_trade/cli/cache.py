"""`algo-trade cache ls|clear`: the memory-mapped data cache of sweeps."""

from __future__ import annotations

import typer

from algo_trade.cli.common import DEFAULT_HOME, Home, Json, console, emit_json, rich_table
from algo_trade.timeutil import fmt_ns

cache_app = typer.Typer(
    help="The sweep data cache in <home>/cache (memory-mapped columns).", no_args_is_help=True
)


@cache_app.command("ls")
def ls_cmd(home: Home = DEFAULT_HOME, json: Json = False) -> None:
    """List cache entries: dataset, range, rows, size on disk, age.

    Example: algo-trade cache ls --home ./algo-trade-data
    """
    from algo_trade.data.cache import cache_entries

    rows = cache_entries(home)
    if json:
        emit_json(rows)
        return
    if not rows:
        console.print(f"the cache in {home}/cache is empty")
        return
    for r in rows:
        r["start"] = fmt_ns(r.pop("start_ns")) if r.get("start_ns") is not None else ""
        r["end"] = fmt_ns(r.pop("end_ns")) if r.get("end_ns") is not None else ""
    console.print(rich_table(f"cache {home}/cache", rows))


@cache_app.command("clear")
def clear_cmd(home: Home = DEFAULT_HOME, json: Json = False) -> None:
    """Remove every cache entry (it is rebuilt from the store when next needed).

    Example: algo-trade cache clear
    """
    from algo_trade.data.cache import clear_cache

    rep = clear_cache(home)
    if json:
        emit_json(rep)
    else:
        console.print(f"removed {rep['removed']} entries ({rep['bytes'] / 2**20:.1f} MB)")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
