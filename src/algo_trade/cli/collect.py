"""`algo-trade collect` (live exchange data) and `algo-trade db coverage` (holes per hour)."""

from __future__ import annotations

import inspect
import json as jsonlib
import logging
import sys
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
    console,
    emit_json,
    parse_symbols,
    rich_table,
    run_context,
    split_option,
    store_from,
)
from algo_trade.errors import ConfigError
from algo_trade.exchanges import EXCHANGES, adapter_for
from algo_trade.exchanges.adapter import NETWORKS, VenueSettings
from algo_trade.schema import check_exchange, check_symbol
from algo_trade.timeutil import fmt_ns, parse_duration_ns


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return jsonlib.dumps(
            {
                "ts": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def _url_options() -> list[inspect.Parameter]:
    """--<venue>-ws-url / --<venue>-rest-url (env ALGO_TRADE_<VENUE>_WS_URL, ...) for every
    registered venue: the options come from the registry, so a new venue gets its own."""
    params = []
    for ex in EXCHANGES:
        live = adapter_for(ex).endpoints("live")
        for part, default in (("ws", live.ws_url), ("rest", live.rest_url)):
            opt = typer.Option(
                f"--{ex}-{part}-url",
                envvar=f"ALGO_TRADE_{ex.upper()}_{part.upper()}_URL",
                help=f"{adapter_for(ex).title} {part} base URL (default: {default}, or the "
                "test network's with --network test).",
                show_default=False,
            )
            params.append(
                inspect.Parameter(
                    f"{ex}_{part}_url",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[str | None, opt],
                )
            )
    return params


def _unsupported() -> str:
    """'Venue: no stream' for every registered venue lacking a stream (for --help)."""
    gaps = [
        f"{adapter_for(ex).title}: no {st}"
        for ex in EXCHANGES
        for st in adapter_for(ex).unsupported
    ]
    return "; ".join(gaps) or "none"


def with_url_options(func):  # noqa: ANN001, ANN201 - a typer command callback
    """Give `func` (ending in **venue_urls) one URL option pair per registered venue."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=own + _url_options())
    return func


def venue_settings(network: str, venue_urls: dict[str, str | None]) -> dict[str, VenueSettings]:
    """One VenueSettings per venue from the URL options (unset: the network's endpoints)."""
    out = {}
    for ex in EXCHANGES:
        ep = adapter_for(ex).endpoints(network)
        ws = venue_urls.get(f"{ex}_ws_url") or ep.ws_url
        rest = venue_urls.get(f"{ex}_rest_url") or ep.rest_url
        out[ex] = VenueSettings(ws, rest)
    return out


def register(app: typer.Typer) -> None:
    @app.command("collect")
    @with_url_options
    def collect_cmd(
        exchange: Annotated[
            str, typer.Option("--exchange", help=f"Comma-separated: {', '.join(EXCHANGES)}.")
        ] = EXCHANGES[0],  # the first registered venue
        symbols: Annotated[
            str, typer.Option(help="Comma-separated symbols (BTC-USDT-PERP rule).")
        ] = "BTC-USDT-PERP",
        streams: Annotated[
            str,
            typer.Option(
                help="Comma-separated: book (sampled snapshots), depth (every book update, "
                "snapshot runs at each (re)sync), funding, liquidation, trade. Refused where "
                f"a venue does not publish one ({_unsupported()})."
            ),
        ] = "book,funding,trade",
        depth: Annotated[int, typer.Option(help="Book levels per side in each snapshot.")] = 20,
        book_interval: Annotated[
            str, typer.Option(help="Time between book snapshots (e.g. 1s, 100ms).")
        ] = "1s",
        duration: Annotated[
            str | None, typer.Option(help="Stop after this long (e.g. 1h); default: until Ctrl-C.")
        ] = None,
        queue_size: Annotated[
            int, typer.Option(help="Messages buffered per exchange before backpressure.")
        ] = 1000,
        flush_rows: Annotated[
            int, typer.Option(help="Flush a batch to the spool at this many rows...")
        ] = 5000,
        flush_interval: Annotated[
            str,
            typer.Option(help="...and write to the store at most this long after a row arrives."),
        ] = "1s",
        durable_window: Annotated[
            str,
            typer.Option(
                help="Rows are fsynced in the spool within about this long (group commit): "
                "what a crash can lose."
            ),
        ] = "100ms",
        metrics_port: Annotated[
            int | None, typer.Option(help="Serve Prometheus metrics on this port.")
        ] = None,
        metrics_host: Annotated[
            str,
            typer.Option(help="Address the metrics server binds (0.0.0.0: every interface)."),
        ] = "127.0.0.1",
        record_raw: Annotated[
            Path | None,
            typer.Option(
                help="Also write every raw frame to DIR/<exchange>/<day>.gz ('<recv ns> <raw>')."
            ),
        ] = None,
        spool: Annotated[
            Path | None, typer.Option(help="Write-ahead spool directory (default HOME/spool).")
        ] = None,
        stale_after: Annotated[
            str, typer.Option(help="Reconnect a stream silent for this long.")
        ] = "30s",
        network: Annotated[
            str, typer.Option(help=f"Venue network: {', '.join(NETWORKS)} (testnets).")
        ] = "live",
        no_status: Annotated[
            bool, typer.Option("--no-status", help="No live table (logs only).")
        ] = False,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
        **venue_urls: str | None,
    ) -> None:
        """Collect live order books, funding, liquidations and trades until Ctrl-C/SIGTERM or --duration.

        Every exchange and stream runs concurrently; batches go through a write-ahead spool
        (HOME/spool), so a store outage, Ctrl-C or a crash loses nothing (the next start
        replays the spool first). Hyperliquid has no public liquidation stream.

        Example: algo-trade collect --exchange binance,bybit,hyperliquid --symbols BTC-USDT-PERP,ETH-USDT-PERP
        --streams book,funding,trade --depth 20 --book-interval 1s --duration 1h --metrics-port 9108
        """
        from algo_trade.collect.config import CollectConfig
        from algo_trade.collect.instruments import check_listed
        from algo_trade.collect.pipeline import run_collector

        exs = split_option(exchange, "exchange")
        sts = split_option(streams, "streams")
        syms = parse_symbols(symbols)
        if network not in NETWORKS:
            raise ConfigError(f"--network {network}: choose from {', '.join(NETWORKS)}")
        level = getattr(logging, log_level.upper(), None)
        if not isinstance(level, int):
            raise ConfigError(f"bad --log-level {log_level!r}")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
        logger = logging.getLogger("algo_trade.collect")
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
        cfg = CollectConfig(
            exchanges=tuple(exs),
            symbols=tuple(syms),
            streams=tuple(sts),
            home=Path(home),
            depth=depth,
            book_interval_ns=parse_duration_ns(book_interval),
            duration_s=parse_duration_ns(duration) / 1e9 if duration else None,
            queue_size=queue_size,
            flush_rows=flush_rows,
            flush_interval_s=parse_duration_ns(flush_interval) / 1e9,
            durable_window_s=parse_duration_ns(durable_window) / 1e9,
            venues=venue_settings(network, venue_urls),
            network=network,
            spool_dir=spool,
            record_raw=record_raw,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            stale_s=parse_duration_ns(stale_after) / 1e9,
        )
        cfg.validate()
        cfg.check_local()
        for ex in exs:  # each venue's symbol mapping, before any network call
            adapter_for(ex).normalizer(syms, depth, cfg.book_interval_ns, sts)
        check_listed(cfg)
        with run_context(profile, profile_memory, json) as stages, stages.stage("collect"):
            store = store_from(home, db)
            summary = run_collector(
                cfg, store, status=not (no_status or json) and sys.stdout.isatty()
            )
        if json:
            emit_json(summary)
        else:
            streams_rows = summary.pop("streams")
            cols = [
                "exchange",
                "stream",
                "messages",
                "rows_written",
                "reconnects",
                "resyncs",
                "malformed",
            ]
            console.print(rich_table("collected", streams_rows, cols))
            p99 = summary["lag_p99_s"]
            rejected = sum(summary["rejected"].values())
            console.print(
                f"rows written {summary['rows_written']:,} · rejected {rejected:,} · "
                f"malformed {summary['malformed']} · resyncs {summary['resyncs']} · "
                f"reconnects {summary['reconnects']} · left in spool {summary['left_in_spool']:,} · "
                f"lag p99 {'-' if p99 is None else f'{p99:.2f} s'}"
            )
            if summary["left_in_spool"]:
                console.print(
                    f"{summary['left_in_spool']:,} rows wait in the spool (the store did not take "
                    "them in time); the next `algo-trade collect` writes them first"
                )

    from algo_trade.cli.db import db_app

    @db_app.command("coverage")
    def coverage_cmd(
        exchange: Annotated[
            str, typer.Option("--exchange", help=f"Exchange name: {', '.join(EXCHANGES)}.")
        ],
        symbol: Annotated[str, typer.Option("--symbol", help="Our symbol, e.g. BTC-USDT-PERP.")],
        start: Annotated[str, typer.Option(help="First time (UTC), e.g. 2024-01-01.")],
        end: Annotated[str, typer.Option(help="End time (UTC, exclusive).")],
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
    ) -> None:
        """Per hour and stream: rows stored, seconds inside collector gaps, covered fraction.

        Gaps come from the collector's event log (HOME/events): disconnects, stalls and
        book resyncs.

        Example: algo-trade db coverage --exchange binance --symbol BTC-USDT-PERP --start 2024-01-01 --end 2024-01-02
        """
        from algo_trade.collect.coverage import coverage

        check_exchange(exchange)
        rows = coverage(store_from(home, db), home, exchange, check_symbol(symbol), start, end)
        if json:
            emit_json(rows)
        elif not rows:
            console.print(f"no {exchange} {symbol} data or gaps between {start} and {end}")
        else:
            for r in rows:
                r["hour"] = fmt_ns(r["hour"])
            console.print(rich_table(f"coverage {exchange} {symbol}", rows))
