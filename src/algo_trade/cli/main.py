"""Entry point: builds the Typer app from the command modules and maps errors to exit 2."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from algo_trade.errors import AlgoTradeError

# Typer >= 0.29 vendors click; older versions raise click's own classes.
_USAGE_ERRORS: tuple[type[BaseException], ...] = (typer.exceptions.TyperException,)
try:
    import click

    _USAGE_ERRORS += (click.ClickException,)
except ImportError:  # pragma: no cover
    pass

app = typer.Typer(
    name="algo-trade",
    help="Collect, store, backtest and sweep crypto-perpetual strategies.\n\n"
    "Start with `algo-trade demo`; every command has --help with examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines register(app). Modules land with their capability.
_COMMAND_MODULES = (
    "demo", "generate", "db", "books", "backtest", "sweep", "cache", "collect", "importcmd",
)  # fmt: skip
for _name in _COMMAND_MODULES:
    _full = f"algo_trade.cli.{_name}"
    if importlib.util.find_spec(_full) is not None:
        importlib.import_module(_full).register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one line and exit 2; bugs keep their traceback."""
    try:
        rv = app(args=argv, prog_name="algo-trade", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        if hasattr(exc, "exit_code") and not hasattr(exc, "format_message"):
            sys.exit(exc.exit_code)  # a vendored Exit
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "algo-trade"
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message.strip():  # no arguments: the help was already printed
            sys.exit(getattr(exc, "exit_code", 2))
        print(f"error: {message} (see '{where} --help')", file=sys.stderr)
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
