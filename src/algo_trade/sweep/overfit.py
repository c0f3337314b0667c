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
from numba import njit, prange

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
    cnt, s1, s2 = (np.ascontiguousarray(m, dtype=np.float64) for m in moments)
    n_blocks, n = s1.shape
    if n < 2:
        raise ConfigError("PBO needs at least two combinations")
    combos = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    if len(combos) > max_splits:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in rng.choice(len(combos), max_splits, replace=False)]
    train = np.array(combos, dtype=np.int64).reshape(len(combos), n_blocks // 2)
    logits, is_best, oos_best = _cscv_nb(train, cnt, s1, s2)
    ok = np.isfinite(is_best) & np.isfinite(oos_best)
    slope = (
        float(np.polyfit(is_best[ok], oos_best[ok], 1)[0])
        if ok.sum() > 2 and np.ptp(is_best[ok]) > 0
        else float("nan")
    )
    return PBOResult(float(np.mean(logits <= 0)), logits, len(combos), n_blocks, slope)


@njit(cache=True, nogil=True, inline="always")
def _sharpe_nb(c, s1, s2):  # pragma: no cover - compiled
    """Per-period Sharpe from a count, a sum and a sum of squares (NaN without variance)."""
    mean = s1 / c
    var = (s2 - c * mean * mean) / max(c - 1.0, 1.0)
    return mean / np.sqrt(var) if var > 0.0 else np.nan


@njit(cache=True, nogil=True, parallel=True)
def _cscv_nb(train, cnt, s1, s2):  # pragma: no cover - compiled
    """CSCV over splits. train: int64[S, B/2] in-sample block numbers per split; cnt: float64[B]
    bars per block; s1, s2: float64[B, N] per-block sums of returns and squares of N
    strategies. Returns logit of the in-sample best's out-of-sample relative rank, its
    in-sample and its out-of-sample Sharpe, each float64[S]."""
    n_split, half = train.shape
    n_blocks, n = s1.shape
    tot_c = cnt.sum()
    tot1 = np.zeros(n)
    tot2 = np.zeros(n)
    for b in range(n_blocks):
        for j in range(n):
            tot1[j] += s1[b, j]
            tot2[j] += s2[b, j]
    logits = np.empty(n_split)
    is_best = np.empty(n_split)
    oos_best = np.empty(n_split)
    for k in prange(n_split):
        c_in = 0.0
        for h in range(half):
            c_in += cnt[train[k, h]]
        c_out = tot_c - c_in
        oos = np.empty(n)
        best = 0
        best_sr = -np.inf
        for j in range(n):
            a1 = 0.0
            a2 = 0.0
            for h in range(half):
                b = train[k, h]
                a1 += s1[b, j]
                a2 += s2[b, j]
            sr_in = _sharpe_nb(c_in, a1, a2)
            v = sr_in if sr_in == sr_in else -np.inf  # NaN never wins; all NaN: the first
            if j == 0 or v > best_sr:
                best = j
                best_sr = v
            o = _sharpe_nb(c_out, tot1[j] - a1, tot2[j] - a2)
            oos[j] = o if o == o else -np.inf
        chosen = oos[best]
        below = 0
        ties = 0
        for j in range(n):
            if oos[j] < chosen:
                below += 1
            elif oos[j] == chosen:
                ties += 1
        # relative rank in (0, 1): ties count half, as the paper's rank / (N + 1) with average ranks
        w = (below + 0.5 * (ties - 1) + 1.0) / (n + 1.0)
        logits[k] = np.log(w / (1.0 - w))
        is_best[k] = best_sr if best_sr > -np.inf else np.nan
        oos_best[k] = chosen if chosen > -np.inf else np.nan
    return logits, is_best, oos_best
