"""`algo-trade backtest`: one strategy on one instrument from the store, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    rich_table,
    run_context,
    store_from,
)
from algo_trade.errors import ConfigError
from algo_trade.strategies import kinds_for


def parse_params(pairs: list[str]) -> dict[str, str]:
    """--param NAME=VALUE (repeatable) → {NAME: VALUE}; the strategy parses and checks types."""
    out: dict[str, str] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--param {p!r} must look like NAME=VALUE, e.g. --param fast=10")
        out[name.strip()] = value.strip()
    return out


def write_table(df: Any, path: Path) -> Path:
    """Trades/equity to .parquet or .csv, atomically (write then rename)."""
    from algo_trade.fileio import atomic_path

    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"{path}: output must end in .parquet or .csv")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            df.to_parquet(tmp)
        else:
            df.to_csv(tmp)
    return path


def run_backtest_cli(
    store: Any, strategy: str, exchange: str, symbol: str, start: str, end: str, params: dict[str, Any],
    mode: str, bar: str | None, settings: dict[str, Any], stages: Any = None,
) -> Any:  # fmt: skip
    """Load, run and return the Result; shared with `algo-trade demo`."""
    import algo_trade

    if mode == "events":
        return _run_events(store, strategy, exchange, symbol, start, end, params, settings, stages)
    if mode not in ("bars", "book"):
        raise ConfigError(f"--mode must be bars, book or events, got {mode!r}")
    kinds = kinds_for(strategy, mode)
    with stages.stage("load"):
        data = algo_trade.load(
            store, exchange, symbol, start, end, kinds=kinds, bar=bar if mode == "bars" else None
        )
    res = algo_trade.backtest(data, strategy, params=params, mode=mode, stages=stages, **settings)
    res.exchange, res.symbol = exchange, symbol
    return res


def _run_events(store: Any, strategy: str, exchange: str, symbol: str, start: str, end: str,
                params: dict[str, Any], settings: dict[str, Any], stages: Any) -> Any:  # fmt: skip
    """Events mode: depth + trade + funding streamed day by day (docs/engine.md)."""
    import algo_trade
    from algo_trade.data.events import from_store
    from algo_trade.strategies import orderlevel

    keep = ("init_cash", "fee_taker_bps", "fee_maker_bps", "leverage", "maintenance_margin")
    ev = {k: settings[k] for k in keep if k in settings}
    ev["entry_latency_ms"] = settings.get("latency_ms", 0.0)
    ev.update(settings.get("events") or {})
    if not orderlevel.is_order_strategy(strategy):
        with stages.stage("load"):
            ev["targets_from"] = algo_trade.load(store, exchange, symbol, start, end,
                                                 kinds=kinds_for(strategy, "book"))  # fmt: skip
    with stages.stage("simulate"):
        src = from_store(store, exchange, symbol, start, end, float(ev.get("feed_latency_ms", 0.0)))
        res = algo_trade.backtest(src, strategy, params=params, mode="events", **ev)
    res.exchange, res.symbol = exchange, symbol
    return res


def print_result(res: Any) -> None:
    rows = [{"stat": k, "value": v} for k, v in res.summary()["stats"].items()]
    title = f"{res.strategy} {res.params} on {res.exchange}/{res.symbol} ({res.mode})"
    console.print(rich_table(title, rows))


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest_cmd(
        strategy: Annotated[
            str,
            typer.Option(help="Strategy name (see --list) or module:function of your own."),
        ] = "sma_cross",
        symbol: Annotated[str | None, typer.Option(help="Symbol, e.g. BTC-USDT-PERP.")] = None,
        start: Annotated[
            str | None, typer.Option(help="Start (UTC, inclusive), e.g. 2024-01-01.")
        ] = None,
        end: Annotated[str | None, typer.Option(help="End (UTC, exclusive).")] = None,
        exchange: Annotated[str, typer.Option(help="Exchange of the data.")] = "sim",
        param: Annotated[
            list[str] | None, typer.Option("--param", help="NAME=VALUE strategy parameter; repeat.")
        ] = None,
        mode: Annotated[
            str, typer.Option(help="bars (OHLC), book (L2 snapshots) or events (depth + trades).")
        ] = "bars",
        events_setting: Annotated[
            list[str] | None,
            typer.Option(
                "--events-setting",
                help="Events mode NAME=VALUE (queue_model, tick_size, entry_latency_ms, "
                "response_latency_ms, latency_file, partial_fills, ...); repeat.",
            ),
        ] = None,
        bar: Annotated[
            str | None,
            typer.Option(help="Bar length in bars mode (1m, 5m, 1h); default: as stored."),
        ] = None,
        init_cash: Annotated[float, typer.Option(help="Starting equity.")] = 10_000.0,
        fee_taker_bps: Annotated[
            float, typer.Option(help="Taker fee, bps of traded notional.")
        ] = 5.0,
        fee_maker_bps: Annotated[
            float, typer.Option(help="Maker fee, bps (no limit orders yet).")
        ] = 2.0,
        fill_at: Annotated[
            str,
            typer.Option(
                help="next (next bar's open / next snapshot after latency) or close (bars)."
            ),
        ] = "next",
        slippage_bps: Annotated[float, typer.Option(help="Bars: fill this many bps worse.")] = 0.0,
        leverage: Annotated[
            float, typer.Option(help="Target 1 = notional of leverage x equity.")
        ] = 1.0,
        maintenance_margin: Annotated[
            float, typer.Option(help="Fraction of notional; below it the position is liquidated.")
        ] = 0.005,
        latency_ms: Annotated[
            float, typer.Option(help="Book mode: order reaches the book this late.")
        ] = 0.0,
        rebalance: Annotated[
            bool,
            typer.Option("--rebalance", help="Trade back to the target fraction at every event."),
        ] = False,
        report: Annotated[
            Path | None, typer.Option(help="Write a self-contained HTML report here.")
        ] = None,
        trades_out: Annotated[
            Path | None, typer.Option("--trades-out", help="Write round trips to .parquet or .csv.")
        ] = None,
        equity_out: Annotated[
            Path | None,
            typer.Option("--equity-out", help="Write equity and positions to .parquet or .csv."),
        ] = None,
        list_strategies: Annotated[
            bool, typer.Option("--list", help="List the strategies with their parameters and exit.")
        ] = False,
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Backtest a strategy on stored data (bars or L2 books) with fees, funding and liquidation.

        Example: algo-trade backtest --strategy sma_cross --symbol BTC-USDT-PERP --start 2024-01-01 --end 2024-01-02 --param fast=10 --param slow=50 --report out.html
        """
        from algo_trade import strategies

        if list_strategies:
            rows = strategies.describe()
            emit_json(rows) if json else console.print(rich_table("strategies", rows))
            return
        missing = [
            n for n, v in (("--symbol", symbol), ("--start", start), ("--end", end)) if not v
        ]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)}: e.g. --symbol BTC-USDT-PERP --start 2024-01-01 --end 2024-01-02"
            )
        check_output(report, "--report")
        check_output(trades_out, "--trades-out", (".parquet", ".csv"))
        check_output(equity_out, "--equity-out", (".parquet", ".csv"))
        settings = {
            "init_cash": init_cash, "fee_taker_bps": fee_taker_bps, "fee_maker_bps": fee_maker_bps,
            "fill_at": fill_at, "slippage_bps": slippage_bps, "leverage": leverage,
            "maintenance_margin": maintenance_margin, "latency_ms": latency_ms, "rebalance": rebalance,
        }  # fmt: skip
        if mode == "events":
            settings["events"] = parse_params(events_setting or [])
        with run_context(profile, profile_memory, json) as stages:
            store = store_from(home, db)
            res = run_backtest_cli(store, strategy, exchange, symbol, start, end, parse_params(param or []),
                                   mode, bar, settings, stages)  # fmt: skip
            with stages.stage("report"):
                out = res.summary()
                if report is not None:
                    out["report"] = str(res.to_html(report))
                if trades_out is not None:
                    out["trades_file"] = str(write_table(res.trades, trades_out))
                if equity_out is not None:
                    out["equity_file"] = str(
                        write_table(res.equity.join(res.positions), equity_out)
                    )
        if json:
            emit_json(out)
            return
        print_result(res)
        for key in ("report", "trades_file", "equity_file"):
            if key in out:
                console.print(f"{key.replace('_', ' ')}: {out[key]}")
