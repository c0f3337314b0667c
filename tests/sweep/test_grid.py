"""Grids: ranges, lists, log ranges, random search, constraints parsed without eval."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from algo_trade.errors import ConfigError
from algo_trade.sweep.grid import Constraint, Grid, parse_axis, parse_grid_options


def test_ranges_lists_and_logs():
    assert parse_axis("5:50:5") == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert parse_axis("20:200:20") == list(range(20, 201, 20))
    assert parse_axis("3:6") == [3, 4, 5, 6]
    assert parse_axis("0.5:1.5:0.25") == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert parse_axis("10,20,50") == [10, 20, 50]
    assert parse_axis("true,false") == [True, False]
    # 1, 10, 100, 1000 are exactly log-spaced; 7 points from 1 to 1000 step by 10**0.5
    assert parse_axis("log:1:1000:4") == [1, 10, 100, 1000]
    assert parse_axis("log:1:1000:7") == [1, 3, 10, 32, 100, 316, 1000]
    assert parse_axis("log:1.0:100.0:3") == pytest.approx([1.0, 10.0, 100.0])
    assert parse_axis(range(2, 5)) == [2, 3, 4]
    assert parse_axis(np.array([7, 9])) == [7, 9]
    assert parse_axis(4) == [4]


@pytest.mark.parametrize(
    "spec",
    ["", "5:1", "5:50:0", "5:50:-5", "a:b", "log:0:10:3", "log:1:10", "1:2:3:4", [], "inf:5"],
)
def test_bad_axes_are_config_errors(spec):
    with pytest.raises(ConfigError):
        parse_axis(spec)


def test_cli_grid_options():
    assert parse_grid_options(["fast=5:15:5", "slow=20,40"]) == {
        "fast": [5, 10, 15],
        "slow": [20, 40],
    }
    with pytest.raises(ConfigError, match="NAME=SPEC"):
        parse_grid_options(["fast"])


def test_product_and_constraint():
    g = Grid({"fast": "5:50:5", "slow": "20:200:20"}, where="fast < slow")
    df = g.combinations()
    # the grid: 10 x 10 = 100 pairs, 10 of them with fast >= slow (fast 20..50 vs slow 20/40)
    expected = [(f, s) for f in range(5, 51, 5) for s in range(20, 201, 20) if f < s]
    assert sorted(zip(df["fast"], df["slow"], strict=True)) == sorted(expected)
    assert len(df) == 90
    g2 = Grid(
        {"a": "1:10", "b": "1:10"}, where="a < b and b - a >= 3 or abs(a - b) == 0 and not a > 2"
    )
    got = set(zip(g2.combinations()["a"], g2.combinations()["b"], strict=True))
    want = {
        (a, b)
        for a in range(1, 11)
        for b in range(1, 11)
        if (a < b and b - a >= 3) or (a == b and not a > 2)
    }
    assert got == want
    g3 = Grid({"a": [1, 2, 3], "b": [1, 2, 3]}, where="max(a, b) * 2 <= 4 and 1 <= min(a, b)")
    assert set(zip(*g3.combinations().to_dict("list").values(), strict=True)) == {
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    }


def test_random_search_is_seeded_distinct_and_constrained():
    g = Grid({"fast": "1:100", "slow": "1:300"}, where="fast < slow", random=500, seed=1)
    a = g.combinations()
    b = Grid(
        {"fast": "1:100", "slow": "1:300"}, where="fast < slow", random=500, seed=1
    ).combinations()
    c = Grid(
        {"fast": "1:100", "slow": "1:300"}, where="fast < slow", random=500, seed=2
    ).combinations()
    assert len(a) == 500
    assert a.equals(b)
    assert not a.equals(c)
    assert not a.duplicated().any()
    assert (a["fast"] < a["slow"]).all()
    # asking for more than the grid holds runs the whole (constrained) grid
    assert len(Grid({"x": "1:5"}, random=50).combinations()) == 5


@pytest.mark.parametrize(
    "payload",
    [
        "__import__('pathlib').Path({m!r}).touch()",
        "fast < slow or __import__('pathlib').Path({m!r}).touch()",
        "open({m!r}, 'w')",
        "(lambda: open({m!r}, 'w'))()",
        "[open({m!r}, 'w') for x in (1,)]",
        "fast.__class__.__base__",
        "fast if open({m!r}, 'w') else slow",
        "'a' < 'b'",
        "fast < slow; open({m!r}, 'w')",
    ],
)
def test_injection_attempts_are_refused_without_running(payload, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    for name in ("eval", "exec"):  # ast.parse compiles to a tree only; nothing may run it
        monkeypatch.setattr(builtins, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} called"))
    with pytest.raises(ConfigError, match="constraint"):
        Grid({"fast": [1, 2], "slow": [3, 4]}, where=payload.format(m=str(marker))).combinations()
    monkeypatch.undo()
    assert not marker.exists()


def test_constraint_errors():
    with pytest.raises(ConfigError, match="removes every combination"):
        Grid({"fast": [10, 20], "slow": [5]}, where="fast < slow").combinations()
    with pytest.raises(ConfigError, match="unknown parameter"):
        Grid({"fast": [10], "slow": [20]}, where="fast < slwo").combinations()
    with pytest.raises(ConfigError, match="true/false"):
        Grid({"fast": [10], "slow": [20]}, where="fast + slow").combinations()
    with pytest.raises(ConfigError, match="empty grid"):
        Grid({})
    assert Constraint.parse("fast < slow").names == {"fast", "slow"}
