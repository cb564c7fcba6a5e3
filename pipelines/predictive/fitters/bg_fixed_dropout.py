"""The BG/NBD limit with one dropout probability for everyone ("fixed_dropout").

As a, b -> inf with a/(a+b) -> p, Beta(a, b) collapses to a point mass at p: purchases are
Poisson(lambda) while alive, lambda ~ Gamma(r, alpha), and after each purchase every customer
drops out with the same probability p. The limits of Fader, Hardie & Lee (2005):

- likelihood: Gamma(r+x) alpha^r / Gamma(r) (1-p)^x [(alpha+T)^-(r+x) + [x>0] o
  (alpha+t_x)^-(r+x)], o = p/(1-p) (B(a, b+x)/B(a, b) -> (1-p)^x, a/(b+x-1) -> o);
- P(alive at T) = 1 / (1 + [x>0] o ((alpha+T)/(alpha+t_x))^(r+x)) (eq. 11);
- E[X(T, T+t) | alive at T] = (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p: E[min(J, N)] with
  J ~ Geometric(p), N ~ Poisson(lambda t) is (1 - exp(-lambda p t)) / p, averaged over the
  posterior lambda ~ Gamma(r+x, alpha+T) (eq. 10, whose 2F1 tends to (1 - (1-p) z)^-(r+x)).

The optimiser works on (r, alpha, o), i.e. on log r, log alpha and logit p.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import digamma, expit, gammaln

from pipelines.predictive.fitters.base import FloatArray

if TYPE_CHECKING:
    from pipelines.predictive.fitters.bg_limits import Data


def log_likelihood(
    params: FloatArray, d: Data, gradient: bool = False
) -> tuple[float, FloatArray | None]:
    """Log-likelihood in (r, alpha, o = p/(1-p)), with its gradient in those if asked."""
    r, alpha, odds = (float(v) for v in params)
    x, rep = d.x, d.x > 0
    log_aT, log_atx = np.log(alpha + d.T), np.log(alpha + d.tx)
    A3 = -(r + x) * log_aT
    A4 = np.where(rep, math.log(odds) - (r + x) * log_atx, -np.inf)
    lse = np.logaddexp(A3, A4)
    terms = gammaln(r + x) - gammaln(r) + r * math.log(alpha) - x * math.log1p(odds) + lse
    ll = float(d.w @ terms)
    if not gradient:
        return ll, None
    w3, w4 = d.w * np.exp(A3 - lse), d.w * np.exp(A4 - lse)
    g_r = float(d.w @ (digamma(r + x) - digamma(r) + math.log(alpha)))
    g_r -= float(w3 @ log_aT) + float(w4 @ log_atx)
    g_alpha = float(d.w.sum()) * r / alpha - float(
        (w3 / (alpha + d.T) + w4 / (alpha + d.tx)) @ (r + x)
    )
    g_odds = -float(d.w @ x) / (1.0 + odds) + float(w4.sum()) / odds
    return ll, np.array([g_r, g_alpha, g_odds])


def values_log_likelihood(values: dict[str, float], d: Data) -> float:
    """Log-likelihood at the limit's own parameters {r, alpha, p}."""
    p = values["p"]
    return log_likelihood(np.array([values["r"], values["alpha"], p / (1.0 - p)]), d)[0]


def p_alive(values: dict[str, float], x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
    """1 / (1 + [x>0] p/(1-p) ((alpha+T)/(alpha+t_x))^(r+x)), as a logistic of log-odds."""
    r, alpha, p = values["r"], values["alpha"], values["p"]
    log_odds_dead = (
        math.log(p) - math.log1p(-p) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    )
    return np.where(x > 0, expit(-log_odds_dead), 1.0)


def expected_if_alive(
    values: dict[str, float], t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """(1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p, via expm1/log1p."""
    r, alpha, p = values["r"], values["alpha"], values["p"]
    return -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p
