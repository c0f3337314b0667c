"""Overfitting statistics for a sweep: deflated Sharpe ratio and PBO by CSCV.

- Deflated Sharpe ratio: D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of
  Portfolio Management 40(5), 2014.
- Probability of backtest overfitting by combinatorially symmetric cross-validation:
  D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The Probability of
  Backtest Overfitting", Journal of Computational Finance 20(4), 2017 (SSRN 2326253, 2015).

Sharpe ratios here are per period (not annualized), as the papers write them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from algo_trade.errors import ConfigError

_N = NormalDist()
EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(sr_variance: float, n_trials: int) -> float:
    """E[max SR] of n_trials independent zero-skill trials whose SRs have this variance (paper eq. 7)."""
    if n_trials < 2:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(max(sr_variance, 0.0)) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def probabilistic_sharpe(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P[true SR > sr_benchmark] given an observed per-period SR over n_obs returns.

    ``kurtosis`` is the plain (not excess) kurtosis: 3 for a normal distribution.
    """
    if n_obs < 2:
        return float("nan")
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        return float("nan")
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


@dataclass
class DeflatedSharpe:
    dsr: float  # probability that the best combination's true Sharpe exceeds the trials' expected max
    sr: float  # observed per-period Sharpe of the best combination
    sr0: float  # expected maximum per-period Sharpe under no skill
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> DeflatedSharpe:
    """DSR of the chosen combination's per-period ``returns`` given every trial's per-period SR."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    srs = np.asarray(trial_sharpes, dtype=np.float64)
    srs = srs[np.isfinite(srs)]
    n = r.size
    sd = r.std(ddof=1) if n > 1 else 0.0
    if n < 3 or sd == 0:
        return DeflatedSharpe(
            float("nan"), float("nan"), float("nan"), len(srs), n, float("nan"), float("nan")
        )
    sr = r.mean() / sd
    z = (r - r.mean()) / r.std()
    z2 = z * z
    skew = float(np.mean(z2 * z))
    kurt = float(np.mean(z2 * z2))
    sr0 = expected_max_sharpe(float(srs.var(ddof=1)) if srs.size > 1 else 0.0, max(len(srs), 1))
    return DeflatedSharpe(
        probabilistic_sharpe(sr, sr0, n, skew, kurt), float(sr), sr0, len(srs), n, skew, kurt
    )


@dataclass
class PBOResult:
    pbo: float  # fraction of splits where the in-sample best ranks below the out-of-sample median
    logits: np.ndarray  # one logit of the OOS relative rank per split
    n_splits: int
    n_blocks: int
    degradation: float  # slope of OOS vs IS Sharpe of the chosen strategy (negative: overfit)


def block_moments(returns: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block (count, sum, sum of squares) of a (T, N) returns matrix, blocks of equal length."""
    r = np.asarray(returns, dtype=np.float64)
    t = r.shape[0] - r.shape[0] % n_blocks
    if t < n_blocks * 2:
        raise ConfigError(f"PBO needs at least {2 * n_blocks} periods, got {r.shape[0]}")
    b = r[:t].reshape(n_blocks, t // n_blocks, -1)
    cnt = np.full(n_blocks, t // n_blocks, dtype=np.float64)
    return cnt, b.sum(axis=1), (b * b).sum(axis=1)


def pbo_cscv(
    returns: np.ndarray | None = None,
    n_blocks: int = 16,
    *,
    moments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    max_splits: int = 20_000,
    seed: int = 0,
) -> PBOResult:
    """PBO of choosing the best-Sharpe column of a (T periods, N strategies) returns matrix.

    The rows are cut into ``n_blocks`` (even) contiguous blocks; every choice of half the
    blocks is a training set and the rest its test set (C(16, 8) = 12,870 splits). Instead of
    the matrix, ``moments=(count[S], sum[S, N], sumsq[S, N])`` per block can be given (the
    sweep kernels return these, so no (T, N) matrix is ever held).
    """
    if moments is None:
        if returns is None:
            raise ConfigError("pbo_cscv needs returns or moments")
        if n_blocks < 2 or n_blocks % 2:
            raise ConfigError(f"CSCV needs an even number of blocks >= 2, got {n_blocks}")
        moments = block_moments(returns, n_blocks)
    cnt, s1, s2 = (np.asarray(m, dtype=np.float64) for m in moments)
    n_blocks, n = s1.shape
    if n < 2:
        raise ConfigError("PBO needs at least two combinations")
    combos = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    if len(combos) > max_splits:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in rng.choice(len(combos), max_splits, replace=False)]
    sel = np.zeros((len(combos), n_blocks))
    for i, c in enumerate(combos):
        sel[i, list(c)] = 1.0
    logits = np.empty(len(combos))
    is_best = np.empty(len(combos))
    oos_best = np.empty(len(combos))
    step = max(1, 2_000_000 // max(n, 1))
    for lo in range(0, len(combos), step):
        a = sel[lo : lo + step]
        b = 1.0 - a
        sr_is = _sharpe(a @ cnt, a @ s1, a @ s2)
        sr_oos = _sharpe(b @ cnt, b @ s1, b @ s2)
        best = np.argmax(np.where(np.isfinite(sr_is), sr_is, -np.inf), axis=1)
        rows = np.arange(len(a))
        chosen = sr_oos[rows, best]
        oos = np.where(np.isfinite(sr_oos), sr_oos, -np.inf)
        # relative rank in (0, 1): ties count half, as the paper's rank/(N+1) with average ranks
        below = (oos < chosen[:, None]).sum(axis=1)
        ties = (oos == chosen[:, None]).sum(axis=1)
        w = (below + 0.5 * (ties - 1) + 1.0) / (n + 1.0)
        logits[lo : lo + step] = np.log(w / (1.0 - w))
        is_best[lo : lo + step] = sr_is[rows, best]
        oos_best[lo : lo + step] = chosen
    ok = np.isfinite(is_best) & np.isfinite(oos_best)
    slope = (
        float(np.polyfit(is_best[ok], oos_best[ok], 1)[0])
        if ok.sum() > 2 and np.ptp(is_best[ok]) > 0
        else float("nan")
    )
    return PBOResult(float(np.mean(logits <= 0)), logits, len(combos), n_blocks, slope)


def _sharpe(cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    c = cnt[:, None] if cnt.ndim == 1 else cnt
    mean = s1 / c
    var = (s2 - c * mean * mean) / np.maximum(c - 1.0, 1.0)
    with np.errstate(all="ignore"):
        return np.where(var > 0, mean / np.sqrt(np.maximum(var, 0.0)), np.nan)
