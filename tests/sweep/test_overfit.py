"""Deflated Sharpe ratio and PBO (CSCV) on cases whose answers are known or worked out by hand."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from algo_trade.sweep.overfit import (
    block_moments,
    deflated_sharpe,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
)

PHI = NormalDist().cdf


def test_expected_max_sharpe_matches_the_max_of_simulated_normals():
    # E[max of N standard normals], by simulation, vs the paper's closed form (eq. 7)
    rng = np.random.default_rng(7)
    for n in (100, 1000):  # the closed form is asymptotic: loose below ~50 trials
        sim = rng.standard_normal((4000, n)).max(axis=1).mean()
        assert expected_max_sharpe(1.0, n) == pytest.approx(sim, rel=0.02)
    # hand: N=100 -> 0.4228 * Z(0.99) + 0.5772 * Z(1 - 1/(100 e)) = 0.4228*2.3263 + 0.5772*2.6797
    assert expected_max_sharpe(1.0, 100) == pytest.approx(2.5303, abs=2e-3)
    assert expected_max_sharpe(4.0, 100) == pytest.approx(
        2 * 2.5303, abs=4e-3
    )  # scales with the SR's std
    assert expected_max_sharpe(1.0, 1) == 0.0


def test_probabilistic_sharpe_by_hand():
    # SR 0.1 over 101 normal returns vs 0: z = 0.1 * sqrt(100) / sqrt(1 + (3-1)/4 * 0.01) = 0.99751
    assert probabilistic_sharpe(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(PHI(0.997509), abs=1e-6)
    # negative skew and fat tails widen the SR's error: the same SR is less convincing
    assert probabilistic_sharpe(0.1, 0.0, 101, -1.0, 10.0) < probabilistic_sharpe(
        0.1, 0.0, 101, 0.0, 3.0
    )
    # at the benchmark the probability is one half
    assert probabilistic_sharpe(0.05, 0.05, 500, 0.3, 5.0) == pytest.approx(0.5)


def test_deflated_sharpe_assembles_the_formula():
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 2000) * 0.01 + 0.001
    trials = rng.normal(0.0, 0.02, 250)
    d = deflated_sharpe(r, trials)
    sr = r.mean() / r.std(ddof=1)
    z = (r - r.mean()) / r.std()
    skew, kurt = np.mean(z**3), np.mean(z**4)
    sr0 = math.sqrt(trials.var(ddof=1)) * (
        (1 - 0.5772156649) * NormalDist().inv_cdf(1 - 1 / 250)
        + 0.5772156649 * NormalDist().inv_cdf(1 - 1 / (250 * math.e))
    )
    want = PHI((sr - sr0) * math.sqrt(1999) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    assert d.sr == pytest.approx(sr)
    assert d.sr0 == pytest.approx(sr0, rel=1e-6)
    assert d.skew == pytest.approx(skew) and d.kurtosis == pytest.approx(kurt)
    assert d.dsr == pytest.approx(want, rel=1e-6)
    assert d.n_trials == 250 and d.n_obs == 2000


def test_deflated_sharpe_penalizes_many_trials_not_real_skill():
    rng = np.random.default_rng(11)
    psr, dsr = [], []
    for _ in range(30):  # the best of 200 noise strategies, many times over
        noise = rng.standard_normal((1000, 200)) * 0.01
        srs = noise.mean(axis=0) / noise.std(axis=0, ddof=1)
        best = noise[:, np.argmax(srs)]
        psr.append(deflated_sharpe(best, srs[:1]).dsr)  # one trial: no deflation
        dsr.append(deflated_sharpe(best, srs).dsr)
    # alone, the winner looks significant almost always; deflated, it is a coin toss
    assert np.mean(np.array(psr) > 0.95) > 0.9
    assert 0.25 < np.mean(dsr) < 0.75
    assert np.mean(np.array(dsr) > 0.95) < 0.2
    # a strategy with a real edge (per-period SR 0.3 over 1000 periods) survives 200 trials
    skilled = rng.standard_normal(1000) * 0.01 + 0.003
    assert deflated_sharpe(skilled, srs).dsr > 0.99


def test_pbo_is_about_one_half_for_noise():
    rng = np.random.default_rng(5)
    p = pbo_cscv(rng.standard_normal((1600, 60)), n_blocks=16)
    assert p.n_splits == 12870
    assert 0.35 <= p.pbo <= 0.65
    assert len(p.logits) == 12870


def test_pbo_is_about_zero_with_one_dominant_strategy():
    rng = np.random.default_rng(6)
    r = rng.standard_normal((1600, 60))
    r[:, 17] += 0.5  # per-period SR about 0.5 against noise
    p = pbo_cscv(r, n_blocks=16)
    assert p.pbo < 0.01


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample():
    # two strategies, two blocks: A wins block 0 and loses block 1, B the reverse; both
    # splits pick the in-sample winner, which is the out-of-sample loser (hand: PBO = 1)
    wiggle = np.tile([0.0, 0.01], 50)
    a = np.r_[0.01 + wiggle, -0.01 + wiggle]
    b = np.r_[-0.01 + wiggle, 0.01 + wiggle]
    p = pbo_cscv(np.c_[a, b], n_blocks=2)
    assert p.n_splits == 2
    assert p.pbo == 1.0
    # relative rank of the loser among 2 is 1/3: logit ln(1/2)
    assert p.logits == pytest.approx([math.log(0.5), math.log(0.5)])


def test_moments_path_equals_the_returns_path():
    rng = np.random.default_rng(8)
    r = rng.standard_normal((800, 12))
    a = pbo_cscv(r, n_blocks=8)
    b = pbo_cscv(moments=block_moments(r, 8))
    assert a.pbo == b.pbo
    assert a.logits == pytest.approx(b.logits)
