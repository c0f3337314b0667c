"""`algo-trade sweep`: run a strategy over a parameter grid on cached store data."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from algo_trade.cli.common import (
    DEFAULT_HOME,
    Db,
    Home,
    Json,
    Profile,
    ProfileMemory,
    check_output,
    console,
    emit_json,
    err_console,
    rich_table,
    run_context,
    store_from,
)
from algo_trade.values import json_safe


def run_sweep_cli(home: Path, db: str | None, strategy: str, exchange: str, symbol: str, start: str, end: str,
                  grid: list[str], where: str | None, random: int | None, seed: int, metric: str, top: int,
                  executor: str, workers: int | None, cluster: str | None, sweep_id: str | None,
                  walk_forward: str | None, settings: dict, report: Path | None, json: bool, stages=None,
                  *, search: str = "grid", trials: int | None = None, mode: str | None = None):  # fmt: skip
    """The command's work, shared with `algo-trade demo`."""
    from contextlib import nullcontext

    from algo_trade.data.cache import load_market_cached
    from algo_trade.strategies import get as get_strategy
    from algo_trade.sweep.api import sweep
    from algo_trade.sweep.grid import parse_grid_options

    check_output(report, "--report")
    axes = parse_grid_options(grid)
    if where and where.strip():
        from algo_trade.sweep.grid import Constraint

        Constraint.parse(where)  # refused before any data is loaded or cached
    stage = stages.stage if stages is not None else (lambda _n: nullcontext())
    if mode == "events":  # streamed from the store day by day, once per trial
        from algo_trade.data.events import from_store

        store = store_from(home, db)

        def data():
            return from_store(store, exchange, symbol, start, end)
    else:
        strat = get_strategy(strategy)
        # what the strategy reads decides what is loaded (book mode: the book is the timeline)
        timeline = "book" if (mode == "book" or "book" in strat.needs) else "bar"
        kinds = tuple(
            dict.fromkeys(
                [timeline, "funding", *(k for k in strat.needs if k not in ("bar", "book"))]
            )
        )
        with stage("load (cache)"):
            store = store_from(home, db)
            data = load_market_cached(store, exchange, symbol, start, end, home, kinds)
    with stage("sweep"), _progress_bar(not json) as progress:
        res = sweep(data, strategy, axes, where=where, metric=metric, executor=executor, workers=workers,
                    random=random, search=search, trials=trials, mode=mode, seed=seed, home=home,
                    sweep_id=sweep_id, cluster=cluster, progress=progress, walk_forward=walk_forward,
                    **settings)  # fmt: skip
    with stage("report"):
        if report is None and res.path is not None:
            report = res.path / "report.html"
        elif report is None:
            report = (
                Path(home) / "sweeps" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}" / "report.html"
            )
        res.to_html(report)
    out = res.summary()
    out["report"] = str(report) if report else None
    out["top"] = res.ranked(top).to_dict("records")
    if res.walk_forward is not None:
        out["walk_forward"] = {
            "windows": res.walk_forward.windows.to_dict("records"),
            "overall": res.walk_forward.stats,
        }
    if not json:
        console.print(
            rich_table(
                f"{strategy} on {exchange}/{symbol}: top {top} by {metric}",
                out["top"],
                _shown(res, metric),
            )  # fmt: skip
        )
        if res.walk_forward is not None:
            console.print(
                rich_table(
                    "walk-forward windows (out of sample)",
                    out["walk_forward"]["windows"],
                    _shown_windows(res, metric),
                )  # fmt: skip
            )
            o = res.walk_forward.stats
            console.print(f"walk-forward out of sample: total return {o['total_return']:+.2%}, Sharpe "
                          f"{o['sharpe']:.2f}, max drawdown {o['max_drawdown']:.2%} over {o['windows']} windows, "
                          f"{o['bars']:,} bars")  # fmt: skip
        if res.dsr:
            console.print(
                f"deflated Sharpe ratio of the best: {res.dsr['dsr']:.4f} over {res.dsr['trials']} trials"
            )
        if res.pbo:
            console.print(
                f"probability of backtest overfitting (CSCV, {res.pbo['splits']} splits): {res.pbo['pbo']:.3f}"
            )
        console.print(f"{len(res.results):,} combinations ({res.computed:,} computed now) in {res.seconds:.2f} s"
                      + (f"; results in {res.path}/results.parquet" if res.path else "")
                      + (f"; report {report}" if report else ""))  # fmt: skip
    return res, json_safe(out)


@contextmanager
def _progress_bar(enabled: bool):
    """A rich progress bar on stderr, handed to the library as a (done, total) callback."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:  # drawn at the first report: checks that fail print one line only
            bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), console=err_console)  # fmt: skip
            state["task"] = bar.add_task("sweep", total=total)
            bar.start()
            state["bar"] = bar
        state["bar"].update(state["task"], completed=done, total=total)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()


_KEY_STATS = ("sharpe", "total_return", "max_drawdown", "sortino", "trades", "win_rate", "fees")


def _shown(res, metric: str) -> list[str]:
    """Columns that fit a terminal: the parameters that vary, the metric, a few key stats
    (every column is in --json, results.parquet and the HTML report)."""
    from algo_trade.report.sweep import varied

    return list(dict.fromkeys([*(varied(res) or res.params), metric, *_KEY_STATS]))


def _shown_windows(res, metric: str) -> list[str]:
    from algo_trade.report.sweep import varied

    params = varied(res) or res.params
    return ["window", "test_start", "test_end", *params, f"is_{metric}", "oos_total_return", "oos_sharpe",
            "oos_max_drawdown", "oos_trades"]  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_cmd(
        symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTC-USDT-PERP.")],
        start: Annotated[str, typer.Option(help="First bar time (UTC, inclusive).")],
        end: Annotated[str, typer.Option(help="End time (UTC, exclusive).")],
        grid: Annotated[
            list[str],
            typer.Option(
                "--grid",
                help="NAME=SPEC: 5:50:5 (range), 5,10,20 (list), log:1:1000:7. Repeat per parameter.",
            ),
        ],
        strategy: Annotated[
            str,
            typer.Option(
                help="Any registered strategy (algo-trade strategies) or module:function."
            ),
        ] = "sma_cross",
        search: Annotated[
            str,
            typer.Option(help="grid (every combination), random or optuna (TPE), with --trials."),
        ] = "grid",
        trials: Annotated[
            int | None, typer.Option(help="Trials of a random or optuna search.")
        ] = None,
        mode: Annotated[
            str | None,
            typer.Option(help="bars or book (default: book for book strategies, else bars)."),
        ] = None,
        exchange: Annotated[str, typer.Option(help="Exchange of the bars.")] = "sim",
        where: Annotated[
            str | None, typer.Option(help='Constraint, e.g. "fast < slow and slow - fast >= 10".')
        ] = None,
        random: Annotated[
            int | None, typer.Option(help="Same as --search random --trials N.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the random and optuna searches.")] = 0,
        metric: Annotated[
            str, typer.Option(help="Rank by: sharpe, sortino, total_return, max_drawdown, ...")
        ] = "sharpe",
        top: Annotated[int, typer.Option(help="Rows of the ranked table.")] = 20,
        executor: Annotated[
            str, typer.Option(help="local (this machine's cores), process, or dask.")
        ] = "local",
        workers: Annotated[
            int | None, typer.Option(help="Threads/processes/Dask workers (default: all cores).")
        ] = None,
        cluster: Annotated[
            str | None,
            typer.Option(help="Address of an existing Dask scheduler, e.g. tcp://host:8786."),
        ] = None,
        sweep_id: Annotated[
            str | None,
            typer.Option(
                "--id", help="Name of the sweep (default: a hash of its spec). Re-run to resume."
            ),
        ] = None,
        walk_forward: Annotated[
            str | None, typer.Option("--walk-forward", help="train=30d,test=7d[,step=7d].")
        ] = None,
        short: Annotated[
            bool,
            typer.Option(
                "--short", help="Go short while fast < slow (or --grid short=true,false)."
            ),
        ] = False,
        init_cash: Annotated[
            float | None, typer.Option(help="Starting cash (engine default 10000).")
        ] = None,
        fee_taker_bps: Annotated[
            float | None, typer.Option(help="Taker fee, bps of traded notional (default 5).")
        ] = None,
        fill_at: Annotated[
            str | None,
            typer.Option(help="next (next bar's open, default) or close (the signal bar's close)."),
        ] = None,
        slippage_bps: Annotated[
            float | None, typer.Option(help="Fill this many bps worse (default 0).")
        ] = None,
        slippage_range: Annotated[
            float | None,
            typer.Option(help="Plus this fraction of the bar's high-low range (default 0)."),
        ] = None,
        leverage: Annotated[
            float | None, typer.Option(help="Position notional / equity at target 1 (default 1).")
        ] = None,
        maintenance_margin: Annotated[
            float | None,
            typer.Option(help="Fraction of notional; 0 disables liquidation (default 0.005)."),
        ] = None,
        liquidation_fee_bps: Annotated[
            float | None, typer.Option(help="Fee on a liquidation (default 20).")
        ] = None,
        latency_ms: Annotated[
            float | None, typer.Option(help="Book mode: order latency in ms (default 0).")
        ] = None,
        report: Annotated[
            Path | None,
            typer.Option(help="Write the HTML report here (default: sweeps/<id>/report.html)."),
        ] = None,
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Backtest any strategy over a parameter grid (or a random/Optuna search) on data loaded once.

        Examples:

          algo-trade sweep --symbol BTC-USDT-PERP --start 2024-01-01 --end 2024-01-08 --grid fast=5:50:5 --grid slow=20:200:20 --where "fast < slow"

          algo-trade sweep ... --search random --trials 500 --seed 1 --executor dask --cluster tcp://10.0.0.5:8786

          algo-trade sweep --strategy rsi_reversion ... --search optuna --trials 200 --grid window=5:50 --grid lower=10:40

          algo-trade sweep ... --walk-forward train=30d,test=7d
        """
        _check_counts(top=top, workers=workers, seed=seed)
        if executor == "dask" and not json:
            err_console.print("starting Dask…" if not cluster else f"connecting to {cluster}…")
        settings = {"init_cash": init_cash, "fee_taker_bps": fee_taker_bps, "fill_at": fill_at,
                    "slippage_bps": slippage_bps, "slippage_range": slippage_range, "leverage": leverage,
                    "maintenance_margin": maintenance_margin, "liquidation_fee_bps": liquidation_fee_bps,
                    "latency_ms": latency_ms}  # fmt: skip
        settings = {
            k: v for k, v in settings.items() if v is not None
        }  # unset: the engine's defaults
        if short and not any(g.partition("=")[0].strip() == "short" for g in grid):
            grid = [*grid, "short=true"]
        with run_context(profile, profile_memory, json) as stages:
            _, out = run_sweep_cli(home, db, strategy, exchange, symbol, start, end, grid, where, random, seed, metric,
                                   top, executor, workers, cluster, sweep_id, walk_forward, settings, report, json,
                                   stages, search=search, trials=trials, mode=mode)  # fmt: skip
        if json:
            emit_json(out)


def _check_counts(top: int, workers: int | None, seed: int) -> None:
    """Counts that must be positive (or sane) are refused before any data is loaded."""
    from algo_trade.errors import ConfigError

    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if workers is not None and not 1 <= workers <= 1024:
        raise ConfigError(f"--workers must be between 1 and 1024, got {workers}")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {seed}")
