"""`algo-trade collect` (live exchange data) and `algo-trade db coverage` (holes per hour)."""

from __future__ import annotations

import asyncio
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
from algo_trade.errors import ConfigError, ExchangeError
from algo_trade.exchanges import EXCHANGES, binance, bybit, hyperliquid, normalizer_for
from algo_trade.exchanges.base import STREAMS
from algo_trade.schema import check_symbol
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


async def _instruments(exchange: str, rest: str) -> set[str]:
    import aiohttp

    rest = rest.rstrip("/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            if exchange == "binance":
                async with http.get(rest + binance.INSTRUMENTS_PATH) as r:
                    r.raise_for_status()
                    return binance.parse_instruments(await r.read())
            if exchange == "bybit":
                async with http.get(rest + bybit.INSTRUMENTS_PATH) as r:
                    r.raise_for_status()
                    return bybit.parse_instruments(await r.read())
            async with http.post(rest + hyperliquid.INFO_PATH, json={"type": "meta"}) as r:
                r.raise_for_status()
                return hyperliquid.parse_instruments(await r.read())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ExchangeError(
            f"cannot reach {exchange} at {rest}: {exc or type(exc).__name__}"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExchangeError(
            f"{exchange} at {rest} answered an unusable instrument list: {exc}"
        ) from None


def preflight(exchanges: list[str], symbols: list[str], urls: dict[str, tuple[str, str]]) -> None:
    """Check symbols against each venue's instrument list; unreachable venues fail here."""

    async def run() -> list[set[str]]:
        return await asyncio.gather(*(_instruments(ex, urls[ex][1]) for ex in exchanges))

    listed = asyncio.run(run())
    for ex, names in zip(exchanges, listed, strict=True):
        for s in normalizer_for(ex, symbols).symbols:
            if s not in names:
                raise ConfigError(f"{s} is not listed on {ex} (checked its instrument list)")


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect_cmd(
        exchange: Annotated[
            str, typer.Option("--exchange", help=f"Comma-separated: {', '.join(EXCHANGES)}.")
        ] = "binance",
        symbols: Annotated[
            str, typer.Option(help="Comma-separated symbols (BTC-USDT-PERP rule).")
        ] = "BTC-USDT-PERP",
        streams: Annotated[
            str,
            typer.Option(
                help="Comma-separated: book, funding, liquidation, trade. Hyperliquid publishes no "
                "public liquidation stream, so 'liquidation' is refused for it."
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
        binance_ws_url: Annotated[
            str, typer.Option(envvar="ALGO_TRADE_BINANCE_WS_URL")
        ] = binance.WS_URL,
        binance_rest_url: Annotated[
            str, typer.Option(envvar="ALGO_TRADE_BINANCE_REST_URL")
        ] = binance.REST_URL,
        bybit_ws_url: Annotated[str, typer.Option(envvar="ALGO_TRADE_BYBIT_WS_URL")] = bybit.WS_URL,
        bybit_rest_url: Annotated[
            str, typer.Option(envvar="ALGO_TRADE_BYBIT_REST_URL")
        ] = bybit.REST_URL,
        hyperliquid_ws_url: Annotated[
            str, typer.Option(envvar="ALGO_TRADE_HYPERLIQUID_WS_URL")
        ] = hyperliquid.WS_URL,
        hyperliquid_rest_url: Annotated[
            str, typer.Option(envvar="ALGO_TRADE_HYPERLIQUID_REST_URL")
        ] = hyperliquid.REST_URL,
        no_status: Annotated[
            bool, typer.Option("--no-status", help="No live table (logs only).")
        ] = False,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
        home: Home = DEFAULT_HOME,
        db: Db = None,
        json: Json = False,
        profile: Profile = None,
        profile_memory: ProfileMemory = False,
    ) -> None:
        """Collect live order books, funding, liquidations and trades until Ctrl-C/SIGTERM or --duration.

        Every exchange and stream runs concurrently; batches go through a write-ahead spool
        (HOME/spool), so a store outage, Ctrl-C or a crash loses nothing (the next start
        replays the spool first). Hyperliquid has no public liquidation stream.

        Example: algo-trade collect --exchange binance,bybit,hyperliquid --symbols BTC-USDT-PERP,ETH-USDT-PERP
        --streams book,funding,trade --depth 20 --book-interval 1s --duration 1h --metrics-port 9108
        """
        from algo_trade.collect.config import CollectConfig
        from algo_trade.collect.pipeline import run_collector

        exs = split_option(exchange, "exchange")
        for ex in exs:
            if ex not in EXCHANGES:
                raise ConfigError(f"unknown exchange {ex!r}: choose from {', '.join(EXCHANGES)}")
        sts = split_option(streams, "streams")
        for st in sts:
            if st not in STREAMS:
                raise ConfigError(f"unknown stream {st!r}: choose from {', '.join(STREAMS)}")
        if "hyperliquid" in exs and "liquidation" in sts:
            raise ConfigError(hyperliquid.NO_LIQUIDATIONS)
        syms = parse_symbols(symbols)
        urls = {
            "binance": (binance_ws_url, binance_rest_url),
            "bybit": (bybit_ws_url, bybit_rest_url),
            "hyperliquid": (hyperliquid_ws_url, hyperliquid_rest_url),
        }
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
            urls=urls,
            spool_dir=spool,
            record_raw=record_raw,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            stale_s=parse_duration_ns(stale_after) / 1e9,
        )
        cfg.validate()
        for ex in exs:  # each venue's symbol mapping, before any network call
            normalizer_for(ex, syms, depth, cfg.book_interval_ns)
        preflight(exs, syms, urls)
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
        exchange: Annotated[str, typer.Option("--exchange", help="Exchange name, e.g. binance.")],
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

        rows = coverage(store_from(home, db), home, exchange, check_symbol(symbol), start, end)
        if json:
            emit_json(rows)
        elif not rows:
            console.print(f"no {exchange} {symbol} data or gaps between {start} and {end}")
        else:
            for r in rows:
                r["hour"] = fmt_ns(r["hour"])
            console.print(rich_table(f"coverage {exchange} {symbol}", rows))
