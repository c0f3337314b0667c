"""Options and helpers shared by every command: store selection, JSON output, profiling."""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from algo_trade.errors import ConfigError
from algo_trade.fileio import write_text_atomic
from algo_trade.profiling import Stages
from algo_trade.schema import check_symbol
from algo_trade.store.base import Store, open_store, postgres_target
from algo_trade.values import json_safe

console = Console(stderr=False)
err_console = Console(stderr=True)

Home = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="ALGO_TRADE_HOME",
        help="Data home of the embedded lake store (env ALGO_TRADE_HOME).",
        show_default=True,
    ),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="ALGO_TRADE_DB",
        help="postgresql://user@host/db to use PostgreSQL instead of the lake (env ALGO_TRADE_DB).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
Profile = Annotated[
    Path | None,
    typer.Option("--profile", help="Write a pyinstrument HTML profile of the run to this file."),
]
ProfileMemory = Annotated[
    bool,
    typer.Option("--profile-memory", help="Print peak memory and the top allocation sites."),
]
DEFAULT_HOME = Path("algo-trade-data")


def store_from(home: Path, db: str | None) -> Store:
    """The store the user chose: --db (a PostgreSQL target, checked) if given, else the
    lake in --home."""
    if db is not None and db.strip():
        return open_store(postgres_target(db))
    return open_store(Path(home))


def check_output(
    path: Path | None, option: str, suffixes: tuple[str, ...] | None = None
) -> Path | None:
    """Refuse an output path that cannot be written, before any work is done: a directory,
    a wrong suffix, or a place without write permission."""
    if path is None:
        return None
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: the file must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot write in {parent}; choose another place")
    return path


def split_option(text: str, option: str) -> list[str]:
    """A comma-separated option's items, stripped, duplicates dropped; empty is an error."""
    items = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not items:
        raise ConfigError(f"--{option} is empty: give a comma-separated list")
    return items


def parse_symbols(text: str) -> list[str]:
    """--symbols BTC-USDT-PERP,ETH-USDT-PERP, upper-cased and checked against the symbol rule."""
    return [check_symbol(s.upper()) for s in split_option(text, "symbols")]


def emit_json(obj: Any) -> None:
    """Strict JSON on stdout: NaN and infinities (not JSON) are null (values.json_safe)."""
    sys.stdout.write(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def rich_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    table = Table(title=title)
    columns = columns or (list(rows[0]) if rows else [])
    for c in columns:
        table.add_column(
            c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left"
        )
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    return table


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


@contextmanager
def run_context(
    profile: Path | None = None, profile_memory: bool = False, json_mode: bool = False
) -> Iterator[Stages]:
    """Wraps a command: optional CPU profile, optional memory profile, per-stage timings."""
    stages = Stages()
    profiler = None
    check_output(profile, "--profile")
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    if profile_memory:
        tracemalloc.start(1)  # one frame per site: deeper tracebacks slow numba's cache loads ~5x
    try:
        yield stages
    finally:
        out = err_console if json_mode else console
        if profiler is not None:
            profiler.stop()
            write_text_atomic(profile, profiler.output_html())
            out.print(f"profile written to {profile}")
        if profile is not None or profile_memory:
            if stages.records:
                out.print(rich_table("stages", stages.as_dicts()))
        if profile_memory:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [
                    tracemalloc.Filter(False, "*pyinstrument*"),
                    tracemalloc.Filter(False, tracemalloc.__file__),
                ]
            )  # the profiler's own samples are not the user's memory
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out.print(f"peak traced Python memory: {peak / 2**20:.1f} MB")
            top = snapshot.statistics("lineno")[:10]
            out.print(
                rich_table(
                    "top allocation sites",
                    [
                        {
                            "site": str(s.traceback[0]),
                            "MB": round(s.size / 2**20, 2),
                            "blocks": s.count,
                        }
                        for s in top
                    ],
                )
            )
