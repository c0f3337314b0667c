"""`algo-trade demo`: the main job end to end on the embedded store."""

from __future__ import annotations

import time

import typer

from algo_trade.cli.common import DEFAULT_HOME, Home, Json, Profile, ProfileMemory, console, emit_json, run_context
from algo_trade.cli.db import print_stats, stats_rows
from algo_trade.cli.generate import generate_into
from algo_trade.store.lake import LakeStore
from algo_trade.timeutil import NS_PER_S

DEMO_SYMBOLS = ["BTC-USDT-PERP", "ETH-USDT-PERP"]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        home: Home = DEFAULT_HOME,
        days: float = typer.Option(1.0, help="Days of simulated market to generate."),
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Generate a day of two simulated perps, then show what the store holds.

        Example: algo-trade demo --home /tmp/algo-demo
        """
        t0 = time.perf_counter()
        summary: dict = {}
        with run_context(profile, profile_memory, json) as stages:
            store = LakeStore(home)
            with stages.stage("generate"):
                if not json:
                    console.rule("1. simulated market → lake")
                summary["generated"] = generate_into(store, DEMO_SYMBOLS, days, NS_PER_S, 20, 42, "2024-01-01", quiet=json)
            if not json:
                print_stats(store, False)
            summary["stats"] = stats_rows(store)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        if json:
            emit_json(summary)
        else:
            console.print(f"demo finished in {summary['seconds']} s; data in {home}")
