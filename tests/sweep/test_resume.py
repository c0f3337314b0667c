"""Resume: a sweep killed midway finishes on the next run without redoing finished combinations."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from algo_trade.errors import ConfigError
from algo_trade.sweep.api import sweep

from .conftest import read_ftx_bars

GRID = {"fast": "5:50:5", "slow": "20:200:20"}
ROOT = Path(__file__).parents[2]


def _parts(d: Path) -> list[Path]:
    return sorted((d / "results.parquet").glob("part-*.parquet"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_sweep_resumes_where_it_stopped(tmp_path, sig):
    """A grid search (the random and optuna searches: test_killed_search_resumes)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from algo_trade.sweep.api import sweep
        from tests.sweep.conftest import read_ftx_bars

        bars = read_ftx_bars().iloc[:6000]
        print("go", flush=True)
        sweep(bars, "sma_cross", {GRID!r}, where="fast < slow", home={str(tmp_path)!r}, sweep_id="r1",
              workers=1, on_batch=lambda i, n: time.sleep(0.4))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    out_dir = tmp_path / "sweeps" / "r1"
    deadline = time.monotonic() + 240
    while len(_parts(out_dir)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0, f"the sweep finished before it could be interrupted: {err}"
    before = {p.name for p in _parts(out_dir)}
    done = pd.read_parquet(out_dir / "results.parquet")
    assert 3 <= len(before) and 0 < len(done) < 90
    assert not list((out_dir / "results.parquet").glob(".*.tmp"))  # no half-written part is visible

    bars = read_ftx_bars().iloc[:6000]
    computed: list[int] = []
    res = sweep(bars, "sma_cross", GRID, where="fast < slow", home=tmp_path, sweep_id="r1", workers=1,
                on_batch=lambda i, n: computed.append(n))  # fmt: skip
    assert res.computed == sum(computed) == 90 - len(done)
    new = [p for p in _parts(out_dir) if p.name not in before]
    redone = pd.concat([pd.read_parquet(p) for p in new])["combo"]
    assert set(redone).isdisjoint(done["combo"])  # nothing finished was recomputed
    fresh = sweep(bars, "sma_cross", GRID, where="fast < slow")
    pd.testing.assert_frame_equal(res.results, fresh.results, check_exact=True)
    # a third run has nothing left to do
    again = sweep(bars, "sma_cross", GRID, where="fast < slow", home=tmp_path, sweep_id="r1")
    assert again.computed == 0
    pd.testing.assert_frame_equal(again.results, fresh.results, check_exact=True)


def test_same_spec_without_an_id_resumes_by_its_hash(short_bars, tmp_path):
    a = sweep(short_bars, "sma_cross", GRID, where="fast < slow", home=tmp_path)
    b = sweep(short_bars, "sma_cross", GRID, where="fast < slow", home=tmp_path)
    assert a.sweep_id == b.sweep_id and a.computed == 90 and b.computed == 0
    c = sweep(short_bars, "sma_cross", GRID, where="fast < slow", home=tmp_path, fee_taker_bps=2.0)
    assert c.sweep_id != a.sweep_id and c.computed == 90


def test_an_id_of_a_different_spec_is_refused(short_bars, tmp_path):
    sweep(short_bars, "sma_cross", GRID, where="fast < slow", home=tmp_path, sweep_id="mine")
    with pytest.raises(ConfigError, match="belongs to a different sweep spec"):
        sweep(
            short_bars, "sma_cross", GRID, where="fast + 10 < slow", home=tmp_path, sweep_id="mine"
        )
    with pytest.raises(ConfigError, match="bad sweep id"):
        sweep(
            short_bars, "sma_cross", GRID, where="fast < slow", home=tmp_path, sweep_id="../escape"
        )


SEARCH_KW = {
    "random": {"search": "random", "trials": 40, "seed": 3},
    "optuna": {"search": "optuna", "trials": 40, "seed": 3},
}


@pytest.mark.parametrize("search", sorted(SEARCH_KW))
def test_killed_search_resumes(tmp_path, search):
    """SIGKILL in the middle of a random or optuna search; the next run finishes it without
    redoing a stored trial, and the sweep has exactly `trials` rows (combo ids 0..N-1)."""
    kw = SEARCH_KW[search]
    grid = {"fast": "2:60", "slow": "20:300"}
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from algo_trade.sweep.api import sweep
        from tests.sweep.conftest import read_ftx_bars

        bars = read_ftx_bars().iloc[:6000]
        sweep(bars, "sma_cross", {grid!r}, where="fast < slow", home={str(tmp_path)!r}, sweep_id="s1",
              workers=1, on_batch=lambda i, n: time.sleep(0.3), **{kw!r})
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    out_dir = tmp_path / "sweeps" / "s1"
    deadline = time.monotonic() + 240
    while len(_parts(out_dir)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0, f"the sweep finished before it could be killed: {err}"
    done = pd.read_parquet(out_dir / "results.parquet")
    assert 0 < len(done) < 40
    bars = read_ftx_bars().iloc[:6000]
    res = sweep(
        bars, "sma_cross", grid, where="fast < slow", home=tmp_path, sweep_id="s1", workers=1, **kw
    )
    assert len(res.results) == 40 and res.computed == 40 - len(done)
    assert res.results["combo"].tolist() == list(range(40))
    assert (res.results["fast"] < res.results["slow"]).all()
    kept = res.results.set_index("combo").loc[done["combo"]]
    pd.testing.assert_series_equal(  # stored trials were not recomputed or changed
        kept["sharpe"].reset_index(drop=True),
        done["sharpe"].reset_index(drop=True),
        check_names=False,
    )
    assert res.dsr["trials"] == 40  # every trial counts, before and after the kill
    if search == "random":  # the same trials as an uninterrupted run
        fresh = sweep(bars, "sma_cross", grid, where="fast < slow", **kw)
        pd.testing.assert_frame_equal(res.results, fresh.results, check_exact=True)
