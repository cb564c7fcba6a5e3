"""Boundary limits of the BG/NBD model and the rule that decides a fit has run off to one.

BG/NBD (Fader, Hardie & Lee 2005): purchases are Poisson(lambda) while alive, lambda ~
Gamma(r, alpha), and after each purchase a customer drops out with probability p ~ Beta(a, b).
Its likelihood has three limits on the boundary of (r, alpha, a, b):

- ``nbd``: no dropout signal, a/(a+b) -> 0 (a -> 0 or b -> inf): p's distribution collapses
  to 0 and the model is the NBD (Ehrenberg 1959; Morrison & Schmittlein 1988): nobody drops
  out, p_alive = 1, E[X(T, T+t) | x, T] = t (r + x) / (alpha + T). Parameters r, alpha.
- ``bg_poisson``: no purchase-rate heterogeneity, r, alpha -> inf with r/alpha = lambda:
  everyone buys at rate lambda while alive (a BG/Poisson model). Parameters lambda, a, b.
- ``poisson``: both: everyone buys at rate lambda forever. Parameter lambda = sum x / sum T.
- ``fixed_dropout``: no dropout heterogeneity, a, b -> inf with a/(a+b) = p: everyone drops
  out with probability p after each purchase (``bg_fixed_dropout``). Parameters r, alpha, p.

The functions work on the collapsed (and time-rescaled) arrays BetaGeoModel.fit prepares and
know nothing about the model class; ``bgnbd`` maps the result onto ``BetaGeoParams``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, expit, gammaln, hyp1f1

from pipelines.predictive.fitters import bg_fixed_dropout as fixed
from pipelines.predictive.fitters.base import FloatArray, Outcome, optimise_log_params
from pipelines.predictive.fitters.boundary import RAY, limit_is_adequate
from pipelines.predictive.fitters.special import COINCIDENCE, bridge

# The search "ran off" to a face when a/(a+b) fell to MU_RUNOFF or r reached R_RUNOFF (the
# purchase rate then varies by at most 1/sqrt(r) ~ 3% between customers) ...
MU_RUNOFF = 1e-2
R_RUNOFF = 1e3
# ... or a and b both reached AB_RUNOFF (p's spread is then sqrt(p(1-p)/(a+b)) ~ 3% of p or less)
AB_RUNOFF = 1e3
# ... with the parameters the limit keeps within RAY_RTOL (relative) of the limit's fit, and
# nothing found in the interior beats the limit (``boundary.limit_is_adequate``).
RAY_RTOL = 0.05

FullLL = Callable[[FloatArray], float]


@dataclass(frozen=True)
class Data:
    """Collapsed, weighted (x, t_x, T) rows with positive weights."""

    x: FloatArray
    tx: FloatArray
    T: FloatArray
    w: FloatArray

    @property
    def n(self) -> float:
        return float(self.w.sum())


@dataclass(frozen=True)
class LimitFit:
    kind: str
    """"nbd", "bg_poisson", "poisson" or "fixed_dropout"."""
    values: dict[str, float]
    """nbd: r, alpha; bg_poisson: rate, a, b; poisson: rate (in the data's time unit);
    fixed_dropout: r, alpha, p."""
    log_likelihood: float
    iterations: int


def nbd_log_likelihood(
    params: FloatArray, d: Data, gradient: bool = False
) -> tuple[float, FloatArray | None]:
    """NBD likelihood of the purchase times: Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))."""
    r, alpha = (float(v) for v in params)
    log_aT = np.log(alpha + d.T)
    terms = gammaln(r + d.x) - gammaln(r) + r * math.log(alpha) - (r + d.x) * log_aT
    ll = float(d.w @ terms)
    if not gradient:
        return ll, None
    g_r = float(d.w @ (digamma(r + d.x) - digamma(r) + math.log(alpha) - log_aT))
    g_alpha = float(d.w @ (r / alpha - (r + d.x) / (alpha + d.T)))
    return ll, np.array([g_r, g_alpha])


def bg_poisson_log_likelihood(
    params: FloatArray, d: Data, gradient: bool = False
) -> tuple[float, FloatArray | None]:
    """BG/NBD with lambda known: lambda^x B(a, b+x)/B(a, b) [e^(-lambda T) + [x>0] a/(b+x-1)
    e^(-lambda t_x)], the r, alpha -> inf limit of FHL (2005) eq. (6)."""
    lam, a, b = (float(v) for v in params)
    x, rep = d.x, d.x > 0
    bx1 = np.where(rep, b + x - 1.0, 1.0)
    A3 = -lam * d.T
    A4 = np.where(rep, math.log(a) - np.log(bx1) - lam * d.tx, -np.inf)
    lse = np.logaddexp(A3, A4)
    terms = x * math.log(lam) + betaln(a, b + x) - betaln(a, b) + lse
    ll = float(d.w @ terms)
    if not gradient:
        return ll, None
    w3, w4 = d.w * np.exp(A3 - lse), d.w * np.exp(A4 - lse)
    psi_abx = digamma(a + b + x)
    g_lam = float(d.w @ x) / lam - float(w3 @ d.T) - float(w4 @ d.tx)
    g_a = float(d.w @ (digamma(a + b) - psi_abx)) + float(w4.sum()) / a
    g_b = float(d.w @ (digamma(b + x) - digamma(b) + digamma(a + b) - psi_abx)) - float(
        w4 @ (1.0 / bx1)
    )
    return ll, np.array([g_lam, g_a, g_b])


def poisson_log_likelihood(rate: float, d: Data) -> float:
    """Poisson process likelihood of the purchase times: lambda^x e^(-lambda T)."""
    return float(d.w @ (d.x * math.log(rate) - rate * d.T))


def limit_log_likelihood(kind: str, values: dict[str, float], d: Data) -> float:
    """Log-likelihood of the named limit (``LimitFit.kind`` / ``.values``)."""
    if kind == "nbd":
        return nbd_log_likelihood(np.array([values["r"], values["alpha"]]), d)[0]
    if kind == "bg_poisson":
        prm = np.array([values["rate"], values["a"], values["b"]])
        return bg_poisson_log_likelihood(prm, d)[0]
    if kind == "fixed_dropout":
        return fixed.values_log_likelihood(values, d)
    return poisson_log_likelihood(values["rate"], d)


def _optimise(
    ll: Callable[[FloatArray, Data, bool], tuple[float, FloatArray | None]],
    names: tuple[str, ...],
    d: Data,
    x0: list[float],
    tol: float,
    budget: int,
) -> Outcome:
    n = d.n

    def neg_mean_ll(p: FloatArray) -> tuple[float, FloatArray]:
        f, g = ll(p, d, True)
        assert g is not None
        return -f / n, -g / n

    return optimise_log_params(names, neg_mean_ll, x0, tol=tol, maxiter=budget)


def _close(a: float, b: float) -> bool:
    return abs(a / b - 1.0) <= RAY_RTOL


def _poisson(d: Data) -> LimitFit | None:
    s_x, s_T = float(d.w @ d.x), float(d.w @ d.T)
    if not (s_x > 0 and s_T > 0):
        return None
    rate = s_x / s_T
    return LimitFit("poisson", {"rate": rate}, poisson_log_likelihood(rate, d), 0)


def _nbd_or_poisson(d: Data, tol: float, budget: int) -> LimitFit | None:
    """NBD fit; if it runs off to r, alpha -> inf in turn, its Poisson limit (same rule)."""
    s_x, s_T = float(d.w @ d.x), float(d.w @ d.T)
    if not s_x > 0:
        return None
    out = _optimise(nbd_log_likelihood, ("r", "alpha"), d, [1.0, s_T / s_x], tol, budget)
    if out.out_of_iterations:
        return None
    r, alpha = (float(v) for v in out.params)
    if r >= R_RUNOFF and (pois := _poisson(d)) is not None:
        found = [nbd_log_likelihood(out.params, d)[0]]
        found += [nbd_log_likelihood(np.array([k, k / pois.values["rate"]]), d)[0] for k in RAY]
        failed = out.failure is not None
        flat = limit_is_adequate(pois.log_likelihood, found, d.n, interior_failed=failed)
        if _close(r / alpha, pois.values["rate"]) and flat:
            return LimitFit("poisson", pois.values, pois.log_likelihood, out.iterations)
    if out.failure is not None:
        return None
    ll = nbd_log_likelihood(out.params, d)[0]
    return LimitFit("nbd", {"r": r, "alpha": alpha}, ll, out.iterations)


def _bg_poisson(d: Data, reached: FloatArray, tol: float, budget: int) -> LimitFit | None:
    _, _, a0, b0 = (float(v) for v in reached)
    s_x, s_T = float(d.w @ d.x), float(d.w @ d.T)
    if not s_x > 0:
        return None
    x0 = [s_x / s_T, min(max(a0, 1e-3), 1e3), min(max(b0, 1e-3), 1e3)]
    out = _optimise(bg_poisson_log_likelihood, ("rate", "a", "b"), d, x0, tol, budget)
    if out.failure is not None:
        return None
    rate, a, b = (float(v) for v in out.params)
    ll = bg_poisson_log_likelihood(out.params, d)[0]
    return LimitFit("bg_poisson", {"rate": rate, "a": a, "b": b}, ll, out.iterations)


def _fixed_dropout(d: Data, reached: FloatArray, tol: float, budget: int) -> LimitFit | None:
    r0, alpha0, a0, b0 = (float(v) for v in reached)
    x0 = [min(max(r0, 1e-3), 1e3), min(max(alpha0, 1e-3), 1e3), min(max(a0 / b0, 1e-6), 1e6)]
    out = _optimise(fixed.log_likelihood, ("r", "alpha", "p"), d, x0, tol, budget)
    if out.failure is not None:
        return None
    r, alpha, odds = (float(v) for v in out.params)
    ll = fixed.log_likelihood(out.params, d)[0]
    values = {"r": r, "alpha": alpha, "p": odds / (1.0 + odds)}
    return LimitFit("fixed_dropout", values, ll, out.iterations)


def _interior_points(limit: LimitFit) -> list[FloatArray]:
    """Full-model (r, alpha, a, b) points on rays from the limit into the interior."""
    v = limit.values
    if limit.kind == "nbd":
        r, alpha = v["r"], v["alpha"]
        return [np.array([r, alpha, 1.0, k]) for k in RAY] + [
            np.array([r, alpha, 1.0 / k, 1.0]) for k in RAY
        ]
    if limit.kind == "bg_poisson":
        return [np.array([k, k / v["rate"], v["a"], v["b"]]) for k in RAY]
    if limit.kind == "fixed_dropout":  # a = s p, b = s (1-p) with min(a, b) = k
        p = v["p"]
        s = [k / min(p, 1.0 - p) for k in RAY]
        return [np.array([v["r"], v["alpha"], si * p, si * (1.0 - p)]) for si in s]
    return [np.array([k, k / v["rate"], 1.0, k]) for k in RAY]


def _keeps_reached(limit: LimitFit, reached: FloatArray) -> bool:
    """The parameters the limit keeps are where the interior search was heading."""
    r, alpha, a, b = (float(t) for t in reached)
    v = limit.values
    if limit.kind == "nbd":
        return _close(r, v["r"]) and _close(alpha, v["alpha"])
    if limit.kind == "bg_poisson":
        return _close(r / alpha, v["rate"]) and _close(a / (a + b), v["a"] / (v["a"] + v["b"]))
    if limit.kind == "fixed_dropout":
        return _close(r, v["r"]) and _close(alpha, v["alpha"]) and _close(a / (a + b), v["p"])
    return _close(r / alpha, v["rate"]) if r >= R_RUNOFF else True


def find_boundary(
    reached: FloatArray,
    d: Data,
    full_ll: FullLL,
    *,
    interior_failed: bool,
    tol: float,
    budget: int,
) -> LimitFit | None:
    """The limit the BG/NBD search ran off to, or ``None`` (then a failed fit must raise).

    Rule: the point reached lies near a face (a/(a+b) <= MU_RUNOFF: dropout face; r >=
    R_RUNOFF: rate face; otherwise min(a, b) >= AB_RUNOFF: dropout-heterogeneity face); the
    matching limit is fitted (NBD, possibly running off to Poisson in turn; BG/Poisson;
    Poisson for the first two faces; fixed_dropout); the parameters it keeps agree with the point
    reached within RAY_RTOL; and neither the point reached nor the full likelihood along rays
    from the limit into the interior beats the limit's log-likelihood by more than
    ``boundary.limit_is_adequate`` allows (a hair if the interior search succeeded, a
    likelihood-ratio test's worth if it failed).
    """
    r, _, a, b = (float(t) for t in reached)
    dropout_face = a / (a + b) <= MU_RUNOFF
    rate_face = r >= R_RUNOFF
    limit: LimitFit | None = None
    if dropout_face and rate_face:
        limit = _poisson(d)
    elif dropout_face:
        limit = _nbd_or_poisson(d, tol, budget)
    elif rate_face:
        limit = _bg_poisson(d, reached, tol, budget)
    elif min(a, b) >= AB_RUNOFF:
        limit = _fixed_dropout(d, reached, tol, budget)
    if limit is None or not _keeps_reached(limit, reached):
        return None
    found = [full_ll(reached)] + [full_ll(p) for p in _interior_points(limit)]
    ok = limit_is_adequate(limit.log_likelihood, found, d.n, interior_failed=interior_failed)
    return limit if ok else None


# --- predictions in a limit ------------------------------------------------------------------


def p_alive(
    kind: str, values: dict[str, float], x: FloatArray, tx: FloatArray, T: FloatArray
) -> FloatArray:
    """P(alive at T | x, t_x): 1 without dropout; for bg_poisson the log-odds of having
    dropped out are log(a / (b+x-1)) + lambda (T - t_x) (x > 0); fixed_dropout: see there."""
    if kind == "fixed_dropout":
        return fixed.p_alive(values, x, tx, T)
    if kind != "bg_poisson":
        return np.ones(np.shape(x))
    rep = x > 0
    bx1 = np.where(rep, values["b"] + x - 1.0, 1.0)
    log_odds_dead = math.log(values["a"]) - np.log(bx1) + values["rate"] * (T - tx)
    return np.where(rep, expit(-log_odds_dead), 1.0)


def expected_if_alive(
    kind: str, values: dict[str, float], t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T+t] of a customer alive at T with x repeat purchases.

    nbd: t (r + x) / (alpha + T) (the posterior mean rate times t); poisson: lambda t;
    bg_poisson: E[(1 - exp(-lambda p t)) / p] over p ~ Beta(a, b + x), which is
    (a+b+x-1)/(a-1) [1 - 1F1(a-1; a+b+x-1; -lambda t)] (the alpha -> inf limit of FHL 2005
    eq. (10)); a = 1 and a + b = 1 (x = 0) are bridged as in ``bgnbd``. fixed_dropout: see
    ``bg_fixed_dropout``.
    """
    if kind == "fixed_dropout":
        return fixed.expected_if_alive(values, t, x, T)
    if kind == "nbd":
        return t * (values["r"] + x) / (values["alpha"] + T)
    if kind == "poisson":
        return values["rate"] * t * np.ones(np.shape(x))
    return _bg_poisson_expected(values["rate"], values["a"], values["b"], t, x)


def _bg_poisson_expected(
    rate: float, a: float, b: float, t: FloatArray, x: FloatArray
) -> FloatArray:
    d, h = COINCIDENCE, 2.0 * COINCIDENCE
    if abs(a - 1.0) < d:
        return bridge(lambda av: _bg_poisson_expected(rate, av, b, t, x), 1.0, a, h)
    if abs(a + b - 1.0) < d and 1.0 - a > 3.0 * d:
        hb = min(h, (1.0 - a) / 3.0)
        return bridge(lambda bv: _bg_poisson_expected(rate, a, bv, t, x), 1.0 - a, b, hb)
    c = a + b + x - 1.0
    return c / (a - 1.0) * (1.0 - hyp1f1(a - 1.0, c, -rate * t))
