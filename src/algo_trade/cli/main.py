"""Entry point: builds the Typer app from the command modules and maps errors to exit 2."""

from __future__ import annotations

import math
import signal
import sys

import typer
import typer.main

from algo_trade.cli import (
    backtest,
    books,
    cache,
    collect,
    db,
    demo,
    generate,
    importcmd,
    sweep,
)
from algo_trade.errors import AlgoTradeError

try:  # Typer >= 0.29 vendors click; older versions use click itself
    from typer._click.core import Command  # type: ignore[import-not-found]
    from typer.exceptions import BadParameter  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    from click import BadParameter, Command

# Typer >= 0.29 vendors click; older versions raise click's own classes.
_USAGE_ERRORS: tuple[type[BaseException], ...] = (typer.exceptions.TyperException,)
try:
    import click as _real_click

    _USAGE_ERRORS += (_real_click.ClickException,)
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

# Every command module, named explicitly: a typo is an ImportError at start, not a
# command that silently disappears.
for _module in (demo, generate, db, books, backtest, sweep, cache, collect, importcmd):
    _module.register(app)


def _finite_floats(command: Command) -> Command:
    """Every float option of every command refuses nan and inf (float() takes them): one
    place instead of a check per option; options keep their own range checks."""
    stack = [command]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            param.process_value = _finite_process(param, param.process_value)  # type: ignore[method-assign]
    return command


def _finite_process(param, process):
    def checked(ctx, value):
        out = process(ctx, value)
        values = out if isinstance(out, (list, tuple)) else (out,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            name = param.opts[0] if param.opts else param.name
            raise BadParameter(f"{name} must be a finite number, got {value!r}", ctx=ctx)
        return out

    return checked


_COMMAND: Command | None = None


def _command() -> Command:
    global _COMMAND
    if _COMMAND is None:
        _COMMAND = _finite_floats(typer.main.get_command(app))
    return _COMMAND


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so every long loop stops the same way."""


_TERMINATED: list[bool] = []  # Typer returns Ctrl-C as exit code 130, losing the cause


def _on_sigterm(_signum, _frame) -> None:
    _TERMINATED.append(True)
    raise _Terminated


def _interrupted(cause: BaseException | None) -> None:
    """Ctrl-C exits 130, SIGTERM 143, each with one line; what was written stays whole."""
    if isinstance(cause, _Terminated) or _TERMINATED:
        print("terminated (SIGTERM)", file=sys.stderr)
        sys.exit(143)
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one line and exit 2; bugs keep their traceback."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # (the collector installs its own graceful handler over this one)
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = _command().main(args=argv, prog_name="algo-trade", standalone_mode=False)
    except typer.Exit as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Typer turns Ctrl-C into Exit(130)
            _interrupted(exc.__cause__)
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        _interrupted(exc.__cause__)
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
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    if rv == 130:  # Typer's answer to a KeyboardInterrupt (Ctrl-C, or our SIGTERM)
        _interrupted(None)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
