"""`algo-trade generate`: write a simulated perps market into the store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from algo_trade.cli.common import (
    DEFAULT_HOME,
    Db,
    Home,
    Json,
    Profile,
    ProfileMemory,
    console,
    emit_json,
    parse_symbols,
    rich_table,
    run_context,
    store_from,
)
from algo_trade.simulator import DEFAULT_START, check_run, generate
from algo_trade.timeutil import parse_duration_ns


def generate_into(
    store, symbols, days, interval_ns, depth, seed, start, quiet=False, depth_hours=1.0
) -> dict[str, int]:
    total = check_run(days, interval_ns, depth, start)[1] * len(symbols)
    with Progress(
        TextColumn("generating {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("book snapshots", total=total)
        return generate(
            store,
            symbols,
            days,
            interval_ns,
            depth,
            seed,
            start,
            progress=lambda _sym, n: bar.advance(task, n),
            depth_hours=depth_hours,
        )


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(
        symbols: Annotated[
            str, typer.Option(help="Comma-separated symbols.")
        ] = "BTC-USDT-PERP,ETH-USDT-PERP",
        days: Annotated[float, typer.Option(help="Days to simulate.")] = 7.0,
        book_interval: Annotated[
            str, typer.Option(help="Time between book snapshots (e.g. 1s, 100ms).")
        ] = "1s",
        depth: Annotated[int, typer.Option(help="Book levels per side.")] = 20,
        seed: Annotated[int, typer.Option(help="Random seed: same seed, same market.")] = 42,
        start: Annotated[str, typer.Option(help="First timestamp (UTC).")] = DEFAULT_START,
        depth_hours: Annotated[
            float,
            typer.Option(
                help="Hours (from --start) with depth events too: every book change, ~4 x depth rows per book interval; 0: none."
            ),
        ] = 1.0,
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Simulate a perps market (books, trades, funding, liquidations, 1m bars) into the store.

        Example: algo-trade generate --symbols BTC-USDT-PERP,ETH-USDT-PERP --days 7 --book-interval 1s --depth 20 --seed 42
        """
        syms = parse_symbols(symbols)
        interval = parse_duration_ns(book_interval)
        check_run(days, interval, depth, start)  # before the store is opened or created
        with run_context(profile, profile_memory, json) as stages:
            store = store_from(home, db)
            with stages.stage("generate+write"):
                if depth_hours < 0:
                    from algo_trade.errors import ConfigError

                    raise ConfigError(f"--depth-hours must be >= 0, got {depth_hours}")
                written = generate_into(store, syms, days, interval, depth, seed, start,
                                        quiet=json, depth_hours=depth_hours)  # fmt: skip
        if json:
            emit_json({"written": written, "store": str(getattr(store, "url", store))})
        else:
            console.print(
                rich_table("rows written", [{"kind": k, "rows": v} for k, v in written.items()])
            )
