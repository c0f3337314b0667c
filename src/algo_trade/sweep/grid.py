"""Parameter grids: axis specs, the cartesian product, random search, safe constraints.

Axis specs (CLI ``--grid name=SPEC`` or a Python value in ``grid={...}``):

- ``5:50:5``            inclusive integer/float range (start:stop:step)
- ``10,20,50``          a list
- ``log:1:1000:7``      7 points log-spaced from 1 to 1000 (integers stay integers, deduplicated)
- a Python list/tuple/range/ndarray is taken as the list of values

Constraints (``where="fast < slow and slow - fast >= 10"``) are parsed with `ast` and
evaluated over whole parameter columns; only names, numbers, arithmetic, comparisons,
``and``/``or``/``not`` and ``abs``/``min``/``max`` are allowed. User text is never `eval`-ed.

>>> parse_axis("5:20:5")
[5, 10, 15, 20]
>>> g = Grid({"fast": [5, 10], "slow": [10, 20]}, where="fast < slow")
>>> g.combinations().to_dict("list")
{'fast': [5, 5, 10], 'slow': [10, 20, 20]}
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from algo_trade.errors import ConfigError
from algo_trade.values import FALSE_WORDS, TRUE_WORDS, parse_bool

MAX_AXIS_VALUES = 1_000_000  # values of one axis
MAX_COMBINATIONS = 50_000_000  # a full product built in memory (--random samples bigger ones)
MAX_WHERE_CHARS = 1_000  # --where: text, AST nodes; Pow runs on floats (no huge ints)
MAX_WHERE_NODES = 400


def _too_many(spec: object, n: int) -> None:
    if n > MAX_AXIS_VALUES:
        raise ConfigError(
            f"grid axis {spec!r} has {n:,} values, more than {MAX_AXIS_VALUES:,}; use a coarser step"
        )


def _num(text: str) -> int | float:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
    except ValueError:
        raise ConfigError(f"bad number {text!r} in a grid spec") from None
    if not math.isfinite(v):
        raise ConfigError(f"bad number {text!r} in a grid spec: must be finite")
    return v


def _value(text: str) -> int | float | str | bool:
    t = text.strip()
    if t.lower() in TRUE_WORDS + FALSE_WORDS and not t.isdigit():
        return parse_bool(t)
    try:
        return _num(t)
    except ConfigError:
        return t


def parse_axis(spec: object) -> list:
    """The values of one axis from a spec string or a Python sequence."""
    if isinstance(spec, str):
        s = spec.strip()
        if not s:
            raise ConfigError("empty grid axis: give a range like 5:50:5 or a list like 5,10,20")
        if s.startswith("log:"):
            parts = s[4:].split(":")
            if len(parts) != 3:
                raise ConfigError(
                    f"bad log range {spec!r}: use log:START:STOP:COUNT, e.g. log:1:1000:7"
                )
            lo, hi, n = _num(parts[0]), _num(parts[1]), _num(parts[2])
            if lo <= 0 or hi <= 0 or not isinstance(n, int) or n < 1:
                raise ConfigError(
                    f"bad log range {spec!r}: START, STOP > 0 and COUNT a positive integer"
                )
            _too_many(spec, n)
            vals = np.geomspace(lo, hi, n)
            if isinstance(lo, int) and isinstance(hi, int):
                return sorted({int(round(v)) for v in vals})
            return [float(v) for v in vals]
        if ":" in s:
            parts = s.split(":")
            if len(parts) not in (2, 3):
                raise ConfigError(f"bad range {spec!r}: use START:STOP[:STEP], e.g. 5:50:5")
            lo, hi = _num(parts[0]), _num(parts[1])
            step = _num(parts[2]) if len(parts) == 3 else 1
            if step <= 0:
                raise ConfigError(f"bad range {spec!r}: STEP must be positive")
            if hi < lo:
                raise ConfigError(f"bad range {spec!r}: STOP is below START")
            n = int(math.floor((hi - lo) / step + 1e-9)) + 1
            _too_many(spec, n)
            if all(isinstance(x, int) for x in (lo, hi, step)):
                return list(range(lo, hi + 1, step))
            return [round(lo + i * step, 12) for i in range(n)]
        return [_value(x) for x in s.split(",") if x.strip() != ""] or _empty(spec)
    if isinstance(spec, (int, float, bool)) and not isinstance(spec, np.ndarray):
        return [spec]
    if isinstance(spec, (Sequence, range, np.ndarray)):
        vals = [v.item() if isinstance(v, np.generic) else v for v in spec]
        return vals or _empty(spec)
    raise ConfigError(f"bad grid axis {spec!r}: use a spec string or a list of values")


def _empty(spec: object) -> list:
    raise ConfigError(f"grid axis {spec!r} has no values")


def parse_grid_options(items: Sequence[str]) -> dict[str, list]:
    """CLI ``--grid fast=5:50:5`` options into {name: values}."""
    out: dict[str, list] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"bad --grid {item!r}: use NAME=SPEC, e.g. fast=5:50:5")
        out[name.strip()] = parse_axis(spec)
    return out


# ----------------------------------------------------------------------------- constraints
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCS = {"abs": np.abs, "min": np.minimum, "max": np.maximum}


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint expression over parameter names (safe: a whitelist of AST nodes)."""

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if len(text) > MAX_WHERE_CHARS:
            raise ConfigError(
                f"the constraint is {len(text):,} characters long, more than {MAX_WHERE_CHARS:,};"
                " write a shorter condition"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"bad constraint {text!r}: {exc.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise ConfigError(f"bad constraint {text!r}: nested too deeply") from None
        nodes = list(ast.walk(tree))
        if len(nodes) > MAX_WHERE_NODES:
            raise ConfigError(
                f"bad constraint {text!r}: {len(nodes)} terms, more than {MAX_WHERE_NODES}"
            )
        names: set[str] = set()
        for node in nodes:
            _check_node(node, text)
            if isinstance(node, ast.Name) and node.id not in _FUNCS:
                names.add(node.id)
        return cls(text, tree, frozenset(names))

    def mask(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Evaluate over whole columns; True where the combination is kept."""
        unknown = self.names - set(columns)
        if unknown:
            raise ConfigError(
                f"constraint {self.text!r} names unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"the grid has {', '.join(columns)}"
            )
        try:
            with np.errstate(all="ignore"):
                out = _eval(self.tree.body, columns)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ConfigError(f"constraint {self.text!r} cannot be evaluated: {exc}") from None
        except RecursionError:
            raise ConfigError(f"bad constraint {self.text!r}: nested too deeply") from None
        out = np.asarray(out)
        if out.dtype != bool:
            raise ConfigError(f"constraint {self.text!r} is not a true/false condition")
        return np.broadcast_to(out, (n,)).copy()


def _check_node(node: ast.AST, text: str) -> None:
    ok = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
        ast.BinOp, ast.Compare, ast.Name, ast.Load, ast.Constant, ast.Call,
        *_BINOPS, *_CMPOPS,
    )  # fmt: skip
    if not isinstance(node, ok):
        raise ConfigError(f"bad constraint {text!r}: {type(node).__name__} is not allowed")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
        raise ConfigError(f"bad constraint {text!r}: only numbers are allowed as constants")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise ConfigError(f"bad constraint {text!r}: only abs(), min(), max() may be called")


def _eval(node: ast.AST, env: Mapping[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Pow):
            # on floats: 9**9**9**9 overflows to inf at once instead of building a huge
            # int for hours, and int ** -1 is 1.0 instead of an error
            return np.power(np.asarray(left, dtype=float), np.asarray(right, dtype=float))
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return np.logical_not(v)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, env) for v in node.values]
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        out = True
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env)
            out = np.logical_and(out, _CMPOPS[type(op)](left, right))
            left = right
        return out
    if isinstance(node, ast.Call):
        args = [_eval(a, env) for a in node.args]
        fn = _FUNCS[node.func.id]  # type: ignore[attr-defined]
        if fn is np.abs:
            if len(args) != 1:
                raise ConfigError("abs() takes one argument")
            return np.abs(args[0])
        if len(args) < 2:
            raise ConfigError(f"{node.func.id}() takes at least two arguments")  # type: ignore[attr-defined]
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out
    raise ConfigError(
        f"unsupported expression {ast.dump(node)}"
    )  # pragma: no cover - checked at parse


# ----------------------------------------------------------------------------- grids
@dataclass
class Grid:
    """A parameter grid: axes, an optional constraint, optional random sampling.

    ``random=N`` draws N distinct combinations (seeded) from the constrained product
    instead of running all of it.
    """

    axes: dict[str, list]
    where: str | None = None
    random: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.axes:
            raise ConfigError("empty grid: give at least one parameter, e.g. --grid fast=5:50:5")
        self.axes = {str(k): parse_axis(v) for k, v in self.axes.items()}
        self.constraint = (
            Constraint.parse(self.where) if self.where and self.where.strip() else None
        )
        if self.random is not None and self.random < 1:
            raise ConfigError(f"--random must be at least 1, got {self.random}")
        if self.random is not None and self.random > MAX_COMBINATIONS:
            raise ConfigError(f"--random must be at most {MAX_COMBINATIONS:,}, got {self.random:,}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be between 0 and 2**63-1, got {self.seed}")

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def combinations(self) -> pd.DataFrame:
        """One row per kept combination, one column per parameter (a stable order)."""
        names = list(self.axes)
        sizes = [len(self.axes[n]) for n in names]
        total = math.prod(sizes)
        if total > MAX_COMBINATIONS:
            if self.random is None:
                raise ConfigError(f"the grid has {total:,} combinations; narrow it or use --random")
            return self._sampled(names, sizes, total)
        idx = np.indices(sizes).reshape(len(sizes), -1)
        cols = self._constrained(
            {n: np.asarray(self.axes[n])[idx[i]] for i, n in enumerate(names)},
            total,
            f"the constraint {self.where!r} removes every combination of the grid",
        )
        return pd.DataFrame(self._picked(cols, np.random.default_rng(self.seed)))

    def _sampled(self, names: list[str], sizes: list[int], total: int) -> pd.DataFrame:
        """--random on a product too big to build: draw distinct flat indices (8x the
        request, to leave room for the constraint), keep those the constraint allows, then
        pick --random of them."""
        if total >= 2**62:
            raise ConfigError(f"the grid has {total:.3g} combinations; narrow it")
        assert self.random is not None
        rng = np.random.default_rng(self.seed)
        draw = min(total, self.random * 8)
        flat = np.sort(rng.choice(total, size=draw, replace=False))
        idx = np.unravel_index(flat, sizes)
        cols = self._constrained(
            {n: np.asarray(self.axes[n])[idx[i]] for i, n in enumerate(names)},
            draw,
            f"the constraint {self.where!r} removed every sampled combination; loosen it",
        )
        return pd.DataFrame(self._picked(cols, rng))

    def _constrained(
        self, cols: dict[str, np.ndarray], count: int, none_left: str
    ) -> dict[str, np.ndarray]:
        """The combinations the constraint allows; ConfigError(none_left) if it allows none."""
        if self.constraint is None:
            return cols
        keep = self.constraint.mask(cols, count)
        if not keep.any():
            raise ConfigError(none_left)
        return {n: c[keep] for n, c in cols.items()}

    def _picked(
        self, cols: dict[str, np.ndarray], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """--random of the combinations (distinct, in grid order), or all when fewer."""
        n = len(next(iter(cols.values())))
        if self.random is None or self.random >= n:
            return cols
        pick = np.sort(rng.choice(n, size=self.random, replace=False))
        return {k: c[pick] for k, c in cols.items()}
