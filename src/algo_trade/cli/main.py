"""Entry point: builds the Typer app from the command modules and maps errors to exit 2."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click
import typer

from algo_trade.errors import AlgoTradeError

app = typer.Typer(
    name="algo-trade",
    help="Collect, store, backtest and sweep crypto-perpetual strategies.\n\n"
    "Start with `algo-trade demo`; every command has --help with examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines register(app). Modules land with their capability.
_COMMAND_MODULES = ("demo", "generate", "db", "backtest", "sweep", "cache", "collect", "importcmd")
for _name in _COMMAND_MODULES:
    _full = f"algo_trade.cli.{_name}"
    if importlib.util.find_spec(_full) is not None:
        importlib.import_module(_full).register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one line and exit 2; bugs keep their traceback."""
    try:
        rv = app(args=argv, prog_name="algo-trade", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "algo-trade"
        print(f"error: {exc.format_message()} (see '{where} --help')", file=sys.stderr)
        sys.exit(2)
    except AlgoTradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
