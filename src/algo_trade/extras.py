"""Optional parts of the package and the pip extra that brings each one.

The core (lake, engine, local sweeps, importers) needs none of them. A feature that needs one
calls `require` first, so a missing extra is one clear line naming what to install, not an
ImportError from deep inside.
"""

from __future__ import annotations

import importlib

from algo_trade.errors import ConfigError

# extra -> (modules it provides, what it is for)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "postgres": (("psycopg", "psycopg_pool"), "the PostgreSQL/TimescaleDB store"),
    "collect": (("aiohttp", "prometheus_client"), "live collection"),
    "dask": (("distributed",), "sweeps on a Dask cluster"),
}


def require(extra: str) -> None:
    """Raise ConfigError naming `extra` when one of its modules cannot be imported.

    >>> require("postgres")  # doctest: +SKIP
    """
    modules, what = EXTRAS[extra]
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(
                f"{what} needs the '{extra}' extra ({name} is not installed): "
                f"pip install 'algo-trade[{extra}]'"
            ) from None
