"""Strategy registry: name -> parameters (types, defaults, ranges) and a signal function.

A strategy turns market data into a target position per event (a fraction of equity:
1 all-in long, -1 all-in short, 0 flat), using only data up to that event. Its function
takes an `Inputs` (columnar arrays on one timeline, plus a per-run indicator cache) and
the parameters as keywords, and returns float64[n]:

>>> import numpy as np
>>> from algo_trade import strategies
>>> @strategies.register("close_above_sma", params={"window": strategies.Param(int, 20, 1, 10_000)})
... def close_above_sma(data, window):
...     return (data["close"] > data.sma("close", window)).astype(np.float64)
>>> strategies.get("close_above_sma").params["window"].default
20

From the CLI a user strategy is named ``module:function`` (``--strategy mypkg.sig:fn``);
its parameters come from the function's keyword defaults (types taken from the defaults).
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from algo_trade.errors import ConfigError
from algo_trade.values import parse_bool

_TYPES = {int: "int", float: "float", bool: "bool", str: "str"}


@dataclass(frozen=True)
class Param:
    """One strategy parameter: type, default and inclusive range (None: unbounded)."""

    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    doc: str = ""

    def describe(self) -> str:
        rng = ""
        if self.min is not None or self.max is not None:
            rng = f" in [{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"
        return f"{_TYPES.get(self.type, self.type.__name__)}{rng} (default {self.default})"


@dataclass(frozen=True)
class Strategy:
    """A registered strategy. `needs` names the data it reads: "bar" (OHLC; in book mode the
    mid stands in), "book", "funding", "liquidation" or "trade"."""

    name: str
    fn: Callable[..., np.ndarray]
    params: Mapping[str, Param] = field(default_factory=dict)
    needs: tuple[str, ...] = ("bar",)
    doc: str = ""
    check: Callable[[dict], str | None] | None = None  # cross-parameter rule -> error text

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in, strings parsed, types and ranges checked (ConfigError)."""
        out = resolve_params(self.name, self.params, params)
        if self.check is not None:
            problem = self.check(out)
            if problem:
                raise ConfigError(f"strategy {self.name!r}: {problem}")
        return out


def resolve_params(
    strategy: str, specs: Mapping[str, Param], params: Mapping[str, Any] | None
) -> dict[str, Any]:
    """`params` checked against `specs` (ConfigError on an unknown name or a bad value),
    defaults filled in, strings parsed: for bar and order-level strategies alike."""
    given = dict(params or {})
    unknown = [k for k in given if k not in specs]
    if unknown:
        valid = ", ".join(f"{k}: {p.describe()}" for k, p in specs.items()) or "none"
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for strategy {strategy!r}; valid: {valid}"
        )
    return {k: _coerce(strategy, k, s, given.get(k, s.default)) for k, s in specs.items()}


def _coerce(strategy: str, name: str, spec: Param, value: Any) -> Any:
    where = f"parameter {name!r} of {strategy!r}"
    typ = spec.type
    if isinstance(value, np.generic):  # a value read from a results frame (np.bool_, np.int64)
        value = value.item()
    try:
        if isinstance(value, str) and typ is not str:
            text = value.strip().lower()
            if typ is bool:
                value = parse_bool(text)
            elif typ is int:
                value = int(text)
            else:
                value = float(text)
        elif typ is bool:
            value = parse_bool(value)
        elif typ is int:
            if isinstance(value, bool) or not float(value).is_integer():
                raise ValueError
            value = int(value)
        elif typ is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where} must be {_TYPES.get(typ, typ.__name__)}, got {value!r} ({spec.describe()})"
        ) from None
    if typ in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise ConfigError(f"{where} is {value}, out of range: {spec.describe()}")
    return value


_REGISTRY: dict[str, Strategy] = {}


def register(
    name: str,
    params: Mapping[str, Param] | None = None,
    needs: tuple[str, ...] = ("bar",),
    doc: str = "",
    check: Callable[[dict], str | None] | None = None,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator adding a signal function to the registry under `name`."""

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        spec = dict(params) if params is not None else _params_from_signature(fn)
        text = doc or (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = Strategy(name, fn, spec, tuple(needs), text, check)
        return fn

    return deco


def _params_from_signature(fn: Callable[..., Any]) -> dict[str, Param]:
    out = {}
    for i, (pname, p) in enumerate(inspect.signature(fn).parameters.items()):
        if i == 0:
            continue  # the data argument
        if p.default is inspect.Parameter.empty:
            raise ConfigError(
                f"strategy function {fn.__name__!r}: parameter {pname!r} needs a default value"
            )
        d = p.default
        out[pname] = Param(type(d) if type(d) in _TYPES else float, d)
    return out


def from_function(fn: Callable[..., np.ndarray], needs: tuple[str, ...] = ("bar",)) -> Strategy:
    """A Strategy for a plain function `fn(data, **params)` (params from keyword defaults)."""
    name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__name__', 'strategy')}"
    return Strategy(
        name, fn, _params_from_signature(fn), needs, (inspect.getdoc(fn) or "").split("\n")[0]
    )


def get(name: str | Callable[..., np.ndarray] | Strategy) -> Strategy:
    """Look a strategy up by name, ``module:function``, or wrap a function or Strategy."""
    if isinstance(name, Strategy):
        return name
    if callable(name):
        return from_function(name)
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if isinstance(name, str) and ":" in name:
        _mod, fn = load_module_attr(name)
        if isinstance(fn, Strategy):
            return fn
        if name in _REGISTRY:
            return _REGISTRY[name]
        _check_strategy_signature(name, fn)
        return from_function(fn)
    raise ConfigError(
        f"unknown strategy {name!r}: choose one of {', '.join(sorted(_REGISTRY))}, or give module:function"
    )


def load_module_attr(name: str) -> tuple[ModuleType, Any]:
    """(module, object) a "module:attr" strategy name points at; ConfigError if none."""
    mod_name, _, attr = name.partition(":")
    try:
        mod = importlib.import_module(mod_name)
        return mod, getattr(mod, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load strategy {name!r}: {exc}") from None


def _check_strategy_signature(name: str, fn: object) -> None:
    """A module:function strategy is a Python function `fn(data, p1=default, ...)`; anything
    else (a builtin such as os:system, a class, *args/**kwargs catch-alls, parameters without
    defaults) is refused before it is ever called."""
    shape = "a Python function fn(data, param=default, ...)"
    if not inspect.isfunction(fn):
        raise ConfigError(f"strategy {name!r} is not {shape}")
    params = list(inspect.signature(fn).parameters.values())
    kinds = inspect.Parameter
    if not params or params[0].kind not in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
        raise ConfigError(f"strategy {name!r} must take the market data first: {shape}")
    for p in params[1:]:
        if p.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD) or p.default is p.empty:
            raise ConfigError(
                f"strategy {name!r}: parameter {p.name!r} needs a default value: {shape}"
            )


def registry() -> dict[str, Strategy]:
    """Every registered strategy by name (built-ins first)."""
    _load_builtins()
    return dict(_REGISTRY)


def describe() -> list[dict[str, Any]]:
    """Rows for a table: name, data it needs, parameters with types/defaults/ranges, doc."""
    return [
        {
            "name": s.name,
            "needs": ",".join(s.needs),
            "params": "; ".join(f"{k}: {p.describe()}" for k, p in s.params.items()),
            "doc": s.doc,
        }
        for s in registry().values()
    ]


def _load_builtins() -> None:
    from algo_trade.strategies import builtin  # noqa: F401  (registers on import)


from algo_trade.strategies.inputs import Inputs  # noqa: E402

__all__ = [
    "Inputs",
    "Param",
    "Strategy",
    "describe",
    "from_function",
    "get",
    "register",
    "registry",
]


def kinds_for(strategy: str | Strategy, mode: str) -> tuple[str, ...]:
    """The record kinds a run loads: the timeline (bars or books), funding, and what the
    strategy reads (e.g. trades or liquidations).

    >>> kinds_for("sma_cross", "bars")
    ('bar', 'funding')
    """
    strat = get(strategy)
    kinds = ["book" if mode == "book" else "bar", "funding"]
    kinds += [k for k in strat.needs if k in ("book", "liquidation", "trade")]
    return tuple(dict.fromkeys(kinds))
