"""The core works without the optional extras; each feature that needs one names it in one line.

The CLI runs in a child interpreter whose import system refuses the extras' modules, as on a
machine where only `pip install algo-trade` was run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

BLOCKED = ("psycopg", "psycopg_pool", "aiohttp", "prometheus_client", "distributed", "dask")

RUNNER = textwrap.dedent(
    f"""
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"No module named {{name!r}}")
            return None

    sys.meta_path.insert(0, Refuse())
    from algo_trade.cli.main import main

    sys.argv = ["algo-trade", *sys.argv[1:]]
    main()
    """
)


def run_without_extras(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_core_commands_run_without_extras(tmp_path):
    home = tmp_path / "lake"
    gen = run_without_extras(
        "generate", "--symbols", "BTC-USDT-PERP", "--days", "1", "--seed", "3", home=home
    )
    assert gen.returncode == 0, gen.stderr
    bt = run_without_extras(
        "backtest", "--strategy", "sma_cross", "--symbol", "BTC-USDT-PERP",
        "--start", "2024-01-01", "--end", "2024-01-02", "--param", "fast=5", "--param",
        "slow=20", "--json", home=home,
    )  # fmt: skip
    assert bt.returncode == 0, bt.stderr
    assert '"sharpe"' in bt.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("db", "stats", "--db", "postgresql://nobody@127.0.0.1:1/none"), "postgres"),
        (
            ("collect", "--exchange", "binance", "--symbols", "BTC-USDT-PERP", "--duration", "1s"),
            "collect",
        ),  # fmt: skip
        (
            (
                "sweep",
                "--strategy",
                "sma_cross",
                "--symbol",
                "BTC-USDT-PERP",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-02",
                "--grid",
                "fast=5,10",
                "--grid",
                "slow=20",
                "--executor",
                "dask",
                "--cluster",
                "tcp://127.0.0.1:1",
            ),
            "dask",
        ),  # fmt: skip
    ],
)
def test_missing_extra_is_one_line_naming_it(tmp_path, args, extra):
    home = tmp_path / "lake"
    if args[0] == "sweep":
        gen = run_without_extras(
            "generate", "--symbols", "BTC-USDT-PERP", "--days", "1", "--seed", "3", home=home
        )
        assert gen.returncode == 0, gen.stderr
    res = run_without_extras(*args, home=home)
    assert res.returncode == 2, (res.stdout, res.stderr)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert f"algo-trade[{extra}]" in errors[0]
    assert "Traceback" not in res.stderr
