"""The pooled-spend limit of the Gamma-Gamma model (no spend heterogeneity between customers).

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": each transaction value is
Gamma(p, rate nu) and nu ~ Gamma(q, rate v) across customers. As q -> inf with v/q = c fixed,
nu's distribution (mean q/v = 1/c, variance q/v^2 = 1/(q c^2)) concentrates at 1/c: every
customer's transactions are iid Gamma(p, rate 1/c), the mean m of x of them is
Gamma(p x, rate x/c), and the expected spend E[M | x, m] = p c is the same for everyone (the
pooled mean). When spend hardly varies between customers the Gamma-Gamma likelihood is
maximised there, on the boundary of its parameter space.

Limit log-likelihood of a customer: p x log(x/c) + (p x - 1) log m - x m / c - log Gamma(p x).
For a given p it is maximised by c = S_xm / (p S_x) (S_x = sum w x, S_xm = sum w x m, so
p c is the transaction-weighted mean spend); the profile in p is strictly concave with score
sum w x [log(x m) - digamma(p x)] + S_x log(p S_x / S_xm), which is solved by bracketing. A
root exists unless all m are equal (then p -> inf as well: a boundary not modelled here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from pipelines.predictive.fitters.base import FloatArray
from pipelines.predictive.fitters.boundary import limit_is_adequate

# A fit is taken to have "run off along the ray" when q reached at least this (the spend
# rate nu then varies by at most 1/sqrt(q) ~ 3% between customers) ...
RUNOFF_Q = 1e3
# ... with v/q and p within this relative distance of the limit model's c and p ...
RAY_RTOL = 0.05
# ... and when nothing found in the interior beats the limit (``boundary.limit_is_adequate``).


@dataclass(frozen=True)
class PooledSpendFit:
    p: float
    c: float
    """v/q of the limit: the scale of every transaction value (rate 1/c)."""
    log_likelihood: float
    iterations: int
    heterogeneity_score: float
    """d log-likelihood / d(1/q) at the limit: > 0 would mean some heterogeneity fits better."""


def pooled_log_likelihood(p: float, c: float, x: FloatArray, m: FloatArray, w: FloatArray) -> float:
    """Log-likelihood of the limit model (every customer's nu = 1/c), weighted."""
    px = p * x
    terms = px * np.log(x / c) + (px - 1.0) * np.log(m) - x * m / c - gammaln(px)
    return float(w @ terms)


def heterogeneity_score(p: float, c: float, x: FloatArray, m: FloatArray, w: FloatArray) -> float:
    """Derivative of the Gamma-Gamma log-likelihood in kappa = 1/q at kappa = 0 (v = q c).

    Expanding E[g(nu)] to first order in Var(nu) = kappa / c^2 gives
    1/2 sum w [x^2 (m - p c)^2 / c^2 - p x]: positive when customers' means scatter around the
    pooled mean more than the within-customer variance p c^2 / x explains (over-dispersion).
    """
    return 0.5 * float(w @ (x**2 * (m - p * c) ** 2 / c**2 - p * x))


def fit_pooled_spend(
    x: FloatArray, m: FloatArray, w: FloatArray, *, max_iterations: int
) -> PooledSpendFit | None:
    """ML fit of the limit model; ``None`` if it does not exist (all spends equal: p -> inf)."""
    s_x = float(w @ x)
    s_xm = float(w @ (x * m))
    s_xlogxm = float(w @ (x * np.log(x * m)))

    def score(log_p: float) -> float:
        p = math.exp(log_p)
        return s_xlogxm - float(w @ (x * digamma(p * x))) + s_x * math.log(p * s_x / s_xm)

    lo, hi = -20.0, 20.0
    if not (score(lo) > 0.0 and score(hi) < 0.0):
        return None
    try:
        log_p, info = brentq(
            score, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=max_iterations, full_output=True
        )
    except RuntimeError:
        return None
    if not info.converged:
        return None
    p = math.exp(log_p)
    c = s_xm / (p * s_x)
    return PooledSpendFit(
        p=p,
        c=c,
        log_likelihood=pooled_log_likelihood(p, c, x, m, w),
        iterations=int(info.iterations),
        heterogeneity_score=heterogeneity_score(p, c, x, m, w),
    )


def runs_off_to_pooled_limit(
    reached: FloatArray,
    limit: PooledSpendFit,
    ll_interior: list[float],
    n: float,
    *,
    interior_failed: bool,
) -> bool:
    """The boundary rule: q large, (p, v/q) close to the limit's (p, c), likelihood flat.

    ``reached`` is the (p, q, v) the interior search ended at and ``ll_interior`` the regular
    log-likelihoods found there and along the ray (p, q, q c), q in ``boundary.RAY`` (all on
    the same data as ``limit``).
    """
    p, q, v = (float(t) for t in reached)
    if q < RUNOFF_Q:
        return False
    if abs(v / q / limit.c - 1.0) > RAY_RTOL or abs(p / limit.p - 1.0) > RAY_RTOL:
        return False
    return limit_is_adequate(limit.log_likelihood, ll_interior, n, interior_failed=interior_failed)
