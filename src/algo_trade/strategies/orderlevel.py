"""Order-level strategies (events mode): numba functions ``fn(ctx, p)`` that own their loop.

``p`` is a NamedTuple of parameters (its class declares names and defaults); ranges and
docs come from `Param` entries, so they are checked and swept like the target strategies'.

>>> from typing import NamedTuple
>>> from numba import njit
>>> from algo_trade.engine import orderapi as oa
>>> from algo_trade.strategies import orderlevel
>>> class Idle(NamedTuple):
...     every_ms: float = 100.0
>>> @orderlevel.register("idle", Idle)
... @njit
... def idle(ctx, p):
...     oa.set_wake(ctx, int(p.every_ms * 1e6), False)
...     while oa.wait(ctx):
...         pass
>>> orderlevel.get("idle").resolve({"every_ms": "50"})
{'every_ms': 50.0}

From the CLI a user strategy is ``module:function``: the module registers it with
`register` when imported, or defines a NamedTuple class ``Params`` for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from algo_trade.errors import ConfigError
from algo_trade.strategies import Param, load_module_attr, resolve_params

_TYPES = (int, float, bool)


@dataclass(frozen=True)
class OrderStrategy:
    name: str
    fn: Callable[..., Any]
    ptype: type
    params: Mapping[str, Param] = field(default_factory=dict)
    doc: str = ""

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return resolve_params(self.name, self.params, params)


_REGISTRY: dict[str, OrderStrategy] = {}


def _spec(ptype: type, ranges: Mapping[str, Param] | None) -> dict[str, Param]:
    fields = getattr(ptype, "_field_defaults", None)
    if fields is None or len(fields) != len(ptype._fields):
        raise ConfigError(
            f"parameters of an order-level strategy must be a NamedTuple with defaults, got {ptype!r}"
        )
    out = {}
    for k in ptype._fields:
        d = fields[k]
        out[k] = (ranges or {}).get(k) or Param(type(d) if type(d) in _TYPES else float, d)
    return out


def register(name: str, ptype: type, params: Mapping[str, Param] | None = None,
             doc: str = "") -> Callable[[Any], Any]:  # fmt: skip
    """Decorator registering a jitted ``fn(ctx, p)`` under `name` with parameter class ptype."""

    def deco(fn: Any) -> Any:
        text = doc or (inspect.getdoc(getattr(fn, "py_func", fn)) or "").split("\n")[0]
        _REGISTRY[name] = OrderStrategy(name, fn, ptype, _spec(ptype, params), text)
        return fn

    return deco


def _load_builtins() -> None:
    import algo_trade.strategies.market_making  # noqa: F401  (registers)


def is_order_strategy(name: Any) -> bool:
    """True for a registered order-level strategy or one named module:function."""
    if isinstance(name, OrderStrategy):
        return True
    _load_builtins()
    if isinstance(name, str) and name in _REGISTRY:
        return True
    if isinstance(name, str) and ":" in name:
        try:
            get(name)
            return True
        except ConfigError:
            return False
    return any(s.fn is name for s in _REGISTRY.values())


def get(name: Any) -> OrderStrategy:
    if isinstance(name, OrderStrategy):
        return name
    _load_builtins()
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    for s in _REGISTRY.values():
        if s.fn is name:
            return s
    if isinstance(name, str) and ":" in name:
        mod, fn = load_module_attr(name)
        for s in _REGISTRY.values():
            if s.fn is fn:
                return s
        ptype = getattr(mod, "Params", None)
        if ptype is None or not hasattr(fn, "py_func"):
            raise ConfigError(
                f"{name!r} is not an order-level strategy: register it with "
                "strategies.orderlevel.register or define a NamedTuple Params in its module, and @njit it"
            )
        return OrderStrategy(name, fn, ptype, _spec(ptype, None))
    raise ConfigError(
        f"unknown order-level strategy {name!r}: choose one of {', '.join(sorted(_REGISTRY))}, or give module:function"
    )


def registry() -> dict[str, OrderStrategy]:
    _load_builtins()
    return dict(_REGISTRY)
