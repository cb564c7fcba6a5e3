"""Horizon probabilities of the BG/NBD family: P(alive at T + t) and P(a purchase in (T, T + t]).

BG/NBD (Fader, Hardie & Lee 2005): purchases are Poisson(lambda) while alive, lambda ~
Gamma(r, alpha), and right after each repeat purchase a customer drops out with probability
p ~ Beta(a, b). Given the history (x, t_x, T) *and* alive at T, the posterior is lambda ~
Gamma(r + x, alpha + T) and p ~ Beta(a, b + x) (x survived dropout chances); the MBG/NBD
(Batislam, Denizel & Filiztekin 2007; ``mbgnbd``) also has a chance at time 0, so there
p ~ Beta(a, b + x + 1): the same formulas with b + 1 for b.

- Alive at T + t, given alive at T and (lambda, p): dropout comes only right after a purchase,
  so the customer survives the window iff none of its N ~ Poisson(lambda t) purchases is
  followed by a dropout: E[(1 - p)^N] = exp(-lambda p t). Over the Gamma posterior that is
  (1 + p u)^-(r+x) with u = t / (alpha + T), over the Beta posterior (Euler's integral)
  2F1(r + x, a; a + b + x; -u). Times P(alive at T).
- A purchase in (T, T + t], given alive at T: the first purchase of the window comes before any
  dropout chance, so P = 1 - exp(-lambda t), over the Gamma posterior 1 - (1 + u)^-(r+x).
  Times P(alive at T) (a customer dead at T never buys again).

Limits (``BetaGeoParams.limit``): nbd and poisson (nobody drops out): alive at T + t with
certainty; fixed_dropout (p fixed): P(alive) (1 + p u)^-(r+x); bg_poisson (lambda fixed):
P(alive) 1F1(a; a + b + x; -lambda t) (Kummer's integral over the Beta posterior) and a
purchase with probability P(alive) (1 - exp(-lambda t)).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate
from scipy.optimize import minimize_scalar
from scipy.special import betaln, expit, hyp1f1, hyp2f1

from pipelines.predictive.fitters.base import FloatArray
from pipelines.predictive.fitters.bg_params import BetaGeoParams
from pipelines.predictive.fitters.special import COINCIDENCE, bridge


def check_horizon(t: ArrayLike) -> FloatArray:
    """``t`` as a float array; it must be finite and non-negative."""
    t_arr = np.asarray(t, dtype=np.float64)
    if np.any(t_arr < 0) or not np.all(np.isfinite(t_arr)):
        raise ValueError("t must be finite and non-negative")
    return t_arr


def survival_if_alive(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """P(alive at T + t | alive at T, x): 2F1(r + x, a; a + b + x; -t / (alpha + T)).

    The argument is negative and unbounded, so we use Pfaff's transformation
    2F1(A, B; C; z) = (1 - z)^-B 2F1(B, C - A; C; z / (z - 1)) on B = a: with
    u = t / (alpha + T) this is (1 + u)^-a 2F1(a, a + b - r; a + b + x; t / (alpha + T + t)),
    whose argument lies in [0, 1) and whose upper parameters do not grow with x (no overflow
    for heavy buyers; the power stays in (0, 1]). Its C - A - B = r + x - a is an integer when
    r - a is, where scipy's hyp2f1 loses digits for arguments near 1; that spot is bridged in r
    (``special.bridge``) as in ``bgnbd.expected_if_alive``.

    For large a (near the fixed-dropout limit) or large r (near BG/Poisson) that form is
    0 * inf; those elements take Pfaff's transformation on A = r + x instead,
    (1 + u)^-(r+x) 2F1(r + x, b + x; a + b + x; w), and where that overflows too (heavy buyers,
    long horizons and large a) the defining integral E[(1 + p u)^-(r+x)] over
    p ~ Beta(a, b + x) is evaluated by quadrature (``_survival_by_quadrature``).
    """
    k = round(r - a)
    if abs(r - a - k) < COINCIDENCE and a + k > 4.0 * COINCIDENCE:
        return bridge(
            lambda rv: survival_if_alive(rv, alpha, a, b, t, x, T), a + k, r, 2.0 * COINCIDENCE
        )
    t, x, T = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (t, x, T)))
    shape = t.shape
    t, x, T = (v.reshape(-1) for v in (t, x, T))
    u = t / (alpha + T)
    w = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        out = np.asarray(np.exp(-a * np.log1p(u)) * hyp2f1(a, a + b - r, a + b + x, w))
        bad = ~_is_probability(out)
        if np.any(bad):
            R, B = r + x[bad], b + x[bad]
            out[bad] = np.exp(-R * np.log1p(u[bad])) * hyp2f1(R, B, a + B, w[bad])
            bad = ~_is_probability(out)
    for i in np.flatnonzero(bad):
        out[i] = _survival_by_quadrature(r + float(x[i]), a, b + float(x[i]), float(u[i]))
    return out.reshape(shape)


def _is_probability(v: FloatArray) -> NDArray[np.bool_]:
    return np.isfinite(v) & (v >= 0.0) & (v <= 1.0 + 1e-12)


def _survival_by_quadrature(R: float, a: float, B: float, u: float) -> float:
    """E[(1 + p u)^-R] for p ~ Beta(a, B), integrated over s = logit(p).

    In s the integrand exp(H(s)), H = a log(expit(s)) + B log(expit(-s)) - R log(1 + u expit(s))
    - log B(a, B), is smooth with exponential tails; it is scaled by its peak (found
    numerically) and integrated on either side of it, first over a few widths of the peak, then
    over the tails, so a narrow peak (large a, B) is not missed.
    """
    if u == 0.0:
        return 1.0
    const = float(betaln(a, B))

    def h(s: float) -> float:
        return (
            float(
                -a * np.logaddexp(0.0, -s) - B * np.logaddexp(0.0, s) - R * np.log1p(u * expit(s))
            )
            - const
        )

    found = minimize_scalar(lambda s: -h(s), bracket=(-1.0, 1.0))
    peak = float(found.x)
    top = h(peak)
    step = 1e-3 * max(1.0, abs(peak))
    curvature = -(h(peak + step) - 2.0 * top + h(peak - step)) / step**2
    width = 1.0 / math.sqrt(curvature) if curvature > 0 else 1.0
    opts = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 200}

    def f(s: float) -> float:
        return math.exp(h(s) - top)

    total = 0.0
    for lo, hi in ((peak - 10 * width, peak), (peak, peak + 10 * width)):
        total += integrate.quad(f, lo, hi, **opts)[0]
    total += integrate.quad(f, -math.inf, peak - 10 * width, **opts)[0]
    total += integrate.quad(f, peak + 10 * width, math.inf, **opts)[0]
    return min(1.0, math.exp(top) * total)


def purchase_if_alive(
    r: float, alpha: float, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """P(a purchase in (T, T + t] | alive at T, x): 1 - ((alpha + T)/(alpha + T + t))^(r + x)."""
    return -np.expm1(-(r + x) * np.log1p(t / (alpha + T)))


def p_alive_at(
    p: BetaGeoParams, alive: FloatArray, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """P(alive at T + t | x, t_x, T) for BG/NBD or one of its limits; ``alive`` = P(alive at T)."""
    kind = p.limit
    if kind in ("nbd", "poisson"):
        return np.ones(np.broadcast(alive, t, x, T).shape)
    if kind == "fixed_dropout":
        assert p.dropout is not None
        return alive * np.exp(-(p.r + x) * np.log1p(p.dropout * t / (p.alpha + T)))
    if kind == "bg_poisson":
        assert p.r_over_alpha is not None
        return alive * hyp1f1(p.a, p.a + p.b + x, -p.r_over_alpha * t)
    return alive * survival_if_alive(p.r, p.alpha, p.a, p.b, t, x, T)


def p_purchase_within(
    p: BetaGeoParams, alive: FloatArray, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """P(at least one purchase in (T, T + t] | x, t_x, T); ``alive`` = P(alive at T)."""
    if p.r_over_alpha is not None:  # bg_poisson, poisson: lambda known
        return alive * -np.expm1(-p.r_over_alpha * t)
    return alive * purchase_if_alive(p.r, p.alpha, t, x, T)
