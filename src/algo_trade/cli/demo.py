"""`algo-trade demo`: the main job end to end on the embedded store:
simulated market → lake (books, depth events, trades, funding) → backtests (bars, books,
every depth event with a market maker's limit orders) → reports → sweep → sweep report."""

from __future__ import annotations

import time

import typer

from algo_trade.cli.common import (
    DEFAULT_HOME,
    Home,
    Json,
    Profile,
    ProfileMemory,
    console,
    emit_json,
    run_context,
)
from algo_trade.cli.db import print_stats, stats_rows
from algo_trade.cli.generate import generate_into
from algo_trade.errors import ConfigError
from algo_trade.store.lake import LakeStore
from algo_trade.timeutil import NS_PER_DAY, NS_PER_S, fmt_ns, parse_time_ns

DEMO_SYMBOLS = ["BTC-USDT-PERP", "ETH-USDT-PERP"]
DEMO_START = "2024-01-01"
BOOK_HOURS = 2  # book mode replays every 1 s snapshot: two hours keep the demo quick
# The market maker in events mode: post-only grid quotes, queue position by the log model,
# 5 ms order entry latency, a 0.5 bp maker rebate and 5 bp taker fee.
MM_PARAMS = {"levels": 3, "step_ticks": 10, "half_spread_ticks": 10, "qty": 0.001}
MM_SETTINGS = {"fee_taker_bps": 5.0, "fee_maker_bps": -0.5, "latency_ms": 5.0,
               "events": {"queue_model": "log"}}  # fmt: skip


def _depth_check(store, sym: str, start: str, end: str) -> dict:
    """Rebuild 1 s books from the stored depth events and compare with the stored books."""
    import numpy as np

    from algo_trade.data.depth_books import books_from_depth
    from algo_trade.store.base import read_table

    t0 = time.perf_counter()
    stats: dict[str, int] = {}
    rebuilt = list(books_from_depth(store, "sim", sym, start, end, NS_PER_S, 20, stats=stats))
    secs = time.perf_counter() - t0
    stored = read_table(store, "book", "sim", sym, start, end)
    rts = np.concatenate([t.column("ts").to_numpy() for t in rebuilt]) if rebuilt else np.zeros(0)
    sts = stored.column("ts").to_numpy()
    common, i, j = np.intersect1d(sts, rts, return_indices=True)
    cols = stored.column_names[3:]
    same = np.ones(len(common), dtype=bool)
    if rebuilt:
        import pyarrow as pa

        rb = pa.concat_tables(rebuilt)
        for c in cols:
            same &= stored.column(c).to_numpy()[i] == rb.column(c).to_numpy()[j]
    (ds,) = [s for s in store.stats() if s.kind == "depth" and s.symbol == sym]
    return {
        "depth_rows": ds.rows,
        "bytes_per_event": round(ds.bytes / max(ds.rows, 1), 2),
        "compared": int(len(sts)),
        "equal": int(same.sum()),
        "events_per_s": stats.get("depth_rows", 0) / max(secs, 1e-9),
    }


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        home: Home = DEFAULT_HOME,
        days: float = typer.Option(1.0, help="Days of simulated market to generate."),
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Generate two simulated perps, backtest on bars and books, sweep, and write the reports.

        Example: algo-trade demo --home /tmp/algo-demo
        """
        from algo_trade.cli.backtest import print_result, run_backtest_cli
        from algo_trade.cli.sweep import run_sweep_cli

        if not 0.05 <= days <= 30:
            raise ConfigError(f"--days must be between 0.05 and 30 for the demo, got {days}")
        t0 = time.perf_counter()
        summary: dict = {}
        quiet = json
        say = (lambda *_a, **_k: None) if quiet else console.print
        s0 = parse_time_ns(DEMO_START)
        end = fmt_ns(s0 + int(days * NS_PER_DAY))
        book_end = fmt_ns(s0 + min(int(days * NS_PER_DAY), BOOK_HOURS * 3600 * NS_PER_S))
        sym = DEMO_SYMBOLS[0]
        reports = home / "reports"
        with run_context(profile, profile_memory, json) as stages:
            store = LakeStore(home)
            with stages.stage("generate"):
                say("[bold]1. simulated market → lake[/bold]")
                summary["generated"] = generate_into(
                    store, DEMO_SYMBOLS, days, NS_PER_S, 20, 42, DEMO_START, quiet=quiet,
                    depth_hours=BOOK_HOURS + 0.01,  # past book_end: its last grid point is reached
                )  # fmt: skip
            if not quiet:
                print_stats(store, False)
            summary["stats"] = stats_rows(store)
            with stages.stage("books from depth"):
                summary["depth_check"] = _depth_check(store, sym, DEMO_START, book_end)
            dc = summary["depth_check"]
            say(
                f"depth events: {dc['depth_rows']:,} rows ({dc['bytes_per_event']} B/event on disk);"
                f" books rebuilt from them on the 1 s grid equal the stored books at"
                f" {dc['equal']:,}/{dc['compared']:,} times ({dc['events_per_s'] / 1e6:.1f}M events/s)"
            )

            say(
                "[bold]2. backtest on 1-minute bars: sma_cross fast=10 slow=60, 5 bp taker, funding[/bold]"
            )
            bars = run_backtest_cli(store, "sma_cross", "sim", sym, DEMO_START, end, {"fast": 10, "slow": 60},
                                    "bars", "1m", {"fee_taker_bps": 5.0}, stages)  # fmt: skip
            with stages.stage("report"):
                bars_report = bars.to_html(reports / "backtest-bars.html")
            if not quiet:
                print_result(bars)
            say(f"report: {bars_report}")

            say(
                f"[bold]3. backtest on L2 books ({BOOK_HOURS} h of 1 s snapshots): book_imbalance, 100 ms latency[/bold]"
            )
            book = run_backtest_cli(store, "book_imbalance", "sim", sym, DEMO_START, book_end,
                                    {"levels": 20, "threshold": 0.5}, "book", None, {"latency_ms": 100.0}, stages)  # fmt: skip
            with stages.stage("report"):
                book_report = book.to_html(reports / "backtest-book.html")
            if not quiet:
                print_result(book)
            say(f"report: {book_report}")

            say(
                f"[bold]4. market making on every depth update and trade ({BOOK_HOURS} h, events mode):"
                " grid_mm, log queue model, 5 ms latency, maker rebate[/bold]"
            )
            mm = run_backtest_cli(store, "grid_mm", "sim", sym, DEMO_START, book_end, MM_PARAMS,
                                  "events", None, MM_SETTINGS, stages)  # fmt: skip
            with stages.stage("report"):
                mm_report = mm.to_html(reports / "market-making.html")
            if not quiet:
                print_result(mm)
            say(f"report: {mm_report}")

            say("[bold]5. sweep sma_cross over a grid (fast < slow), all cores[/bold]")
            _, sweep_out = run_sweep_cli(
                home, None, "sma_cross", "sim", sym, DEMO_START, end, ["fast=5:40:5", "slow=20:200:20"],
                "fast < slow", None, 0, "sharpe", 10, "local", None, None, None, None,
                {"fee_taker_bps": 5.0}, reports / "sweep.html", quiet, stages,
            )  # fmt: skip
        summary["backtest_bars"] = bars.summary() | {"report": str(bars_report)}
        summary["backtest_book"] = book.summary() | {"report": str(book_report)}
        summary["market_making"] = mm.summary() | {"report": str(mm_report)}
        summary["sweep"] = sweep_out
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        if json:
            emit_json(summary)
        else:
            console.print(
                f"demo finished in {summary['seconds']} s; data in {home}, reports in {reports}"
            )
