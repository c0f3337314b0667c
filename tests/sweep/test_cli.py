"""`algo-trade sweep` and `algo-trade cache`: real runs on a lake of real bars; bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algo_trade.cli.main import main

from .conftest import EXCHANGE, SYMBOL

BASE = [
    "sweep",
    "--exchange",
    EXCHANGE,
    "--symbol",
    SYMBOL,
    "--start",
    "2021-12-31",
    "--end",
    "2022-01-08",
]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_sweep_json_report_resume_and_cache(bar_lake, capsys):
    home = str(bar_lake.home)
    argv = [*BASE, "--grid", "fast=5:30:5", "--grid", "slow=20:100:20", "--where", "fast<slow",
            "--top", "5", "--home", home, "--json"]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    rep = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert (
        rep["combinations"] == rep["computed"] == 27
    )  # 6 x 5 = 30 less fast 20, 25, 30 vs slow 20
    assert len(rep["top"]) == 5
    sharpes = [r["sharpe"] for r in rep["top"]]
    assert sharpes == sorted(sharpes, reverse=True) and rep["best"]["sharpe"] == sharpes[0]
    assert 0.0 <= rep["pbo"]["pbo"] <= 1.0 and 0.0 <= rep["deflated_sharpe"]["dsr"] <= 1.0
    html = Path(rep["report"]).read_text()
    assert "<html" in html.lower() and "heatmap" in html.lower()
    # the same command again resumes: nothing left to compute
    code, out, _ = run(argv, capsys)
    again = json.loads(out)
    assert code == 0 and again["computed"] == 0 and again["best"] == rep["best"]
    code, out, _ = run(["cache", "ls", "--home", home, "--json"], capsys)
    (entry,) = json.loads(out)
    assert code == 0 and entry["symbol"] == SYMBOL and entry["rows"] > 0
    code, out, _ = run(["cache", "clear", "--home", home, "--json"], capsys)
    assert code == 0 and json.loads(out)["removed"] == 1


def test_sweep_table_output_with_random_search(bar_lake, capsys):
    argv = [*BASE, "--grid", "fast=2:60", "--grid", "slow=10:300:10", "--where", "fast < slow",
            "--random", "40", "--seed", "1", "--home", str(bar_lake.home)]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "top 20 by sharpe" in out and "40 combinations" in out
    assert "deflated Sharpe ratio" in out and "probability of backtest overfitting" in out


def test_walk_forward_cli(bar_lake, capsys):
    argv = [*BASE, "--grid", "fast=5,10", "--grid", "slow=30,60", "--walk-forward", "train=2d,test=1d",
            "--home", str(bar_lake.home), "--json"]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    rep = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    wf = rep["walk_forward"]
    assert wf["overall"]["windows"] == len(wf["windows"]) >= 3
    assert Path(rep["report"]).is_file()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--grid", "fast="], "empty grid axis"),
        (
            ["--grid", "fast=10", "--grid", "slow=5", "--where", "fast < slow"],
            "removes every combination",
        ),
        (
            ["--grid", "fast=10", "--grid", "slow=50", "--grid", "speed=3"],
            "unknown parameter 'speed'",
        ),
        (
            ["--grid", "fast=10", "--grid", "slow=50", "--where", "__import__('os')"],
            "bad constraint",
        ),
        (
            ["--grid", "fast=10", "--grid", "slow=50", "--where", "fast < slwo"],
            "unknown parameter(s) slwo",
        ),
        (
            [
                "--grid",
                "fast=10",
                "--grid",
                "slow=50",
                "--executor",
                "dask",
                "--cluster",
                "tcp://127.0.0.1:1",
            ],
            "cannot reach the Dask cluster",
        ),
        (["--grid", "fast=10", "--grid", "slow=50", "--metric", "luck"], "unknown metric"),
        (["--grid", "fast=10", "--grid", "slow=50", "--strategy", "moon"], "unknown strategy"),
        (["--grid", "fast=60"], "fast (60) must be smaller than slow (50)"),
        (["--grid", "fast=1.5", "--grid", "slow=50"], "must be int"),
        (["--grid", "fast=5:20", "--where", "1 < 2"], "names no parameter"),
        (["--grid", "fast=5:20", "--where", "fast < slow; import os"], "bad constraint"),
        (["--grid", "fast=5:20", "--where", "open('x')"], "bad constraint"),
        (
            ["--grid", "fast=10", "--search", "optuna", "--trials", "5"],
            "optuna search needs bounds",
        ),
        (["--grid", "fast=5:20", "--search", "optuna"], "needs a number of trials"),
        (["--grid", "fast=5:20", "--search", "annealing"], "unknown search"),
        (
            ["--grid", "fast=10", "--grid", "slow=50", "--walk-forward", "train=30d"],
            "bad walk-forward",
        ),
        (
            ["--grid", "fast=10", "--grid", "slow=50", "--random", "0"],
            "--trials must be at least 1",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(bar_lake, capsys, extra, needle):
    code, out, err = run([*BASE, *extra, "--home", str(bar_lake.home)], capsys)
    lines = [
        x
        for x in err.splitlines()
        if x.strip() and not x.startswith(("connecting to", "starting Dask"))
    ]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_a_sweep_id_of_another_spec_exits_2(bar_lake, capsys):
    home = str(bar_lake.home)
    code, _, err = run(
        [*BASE, "--grid", "fast=10", "--grid", "slow=50", "--id", "x1", "--home", home, "--json"],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(
        [*BASE, "--grid", "fast=10", "--grid", "slow=60", "--id", "x1", "--home", home], capsys
    )
    assert code == 2 and err.strip().count("\n") == 0 and "belongs to a different sweep spec" in err


def test_no_data_in_range_exits_2(bar_lake, capsys):
    argv = ["sweep", "--exchange", EXCHANGE, "--symbol", SYMBOL, "--start", "2023-01-01", "--end", "2023-01-02",
            "--grid", "fast=10", "--grid", "slow=50", "--home", str(bar_lake.home)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0
