"""MBG/NBD purchase model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and
comparison of models for customer base analysis", IJRM 24(3); Wagner & Hoppe's erratum, IJRM
25(3), 2008; Hoppe & Wagner's "central variant" of BG/NBD, 2007).

As in BG/NBD (``bgnbd``) a customer buys, while alive, as a Poisson process with rate
lambda ~ Gamma(r, alpha) and may drop out with probability p ~ Beta(a, b) -- but right after
*every* purchase, the first one (time 0) included. So a one-time buyer may already be gone and
gets P(alive) < 1, where BG/NBD says 1 (lifetimes issue #165). Given (lambda, p), a customer
with x repeat purchases, the last at t_x, observed until T has likelihood

    (1-p)^x lambda^x [(1-p) e^(-lambda T) + p e^(-lambda t_x)]

(alive at T after x + 1 survived chances, or gone right after the purchase at t_x; t_x = 0 for
x = 0). Over the prior (Batislam et al. 2007):

    L = B(a, b+x+1)/B(a, b) Gamma(r+x) alpha^r / Gamma(r)
        [(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)],
    P(alive at T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)).

Given alive at T the posterior is lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x+1): BG/NBD's
with b + 1 for b, so the conditional expectation (Wagner & Hoppe's corrected form)
P(alive) (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; z)],
z = t/(alpha+T+t), P(alive at T + t) and P(a purchase in (T, T + t]) reuse the BG/NBD
numerics (``bgnbd.expected_if_alive``, ``bg_horizon``) with b + 1. A new customer (x = t_x =
T = 0) is alive with probability b/(a+b), giving E[X(t)] = b/(a-1) [1 - (alpha/(alpha+t))^r
2F1(r, b+1; a+b; t/(alpha+t))].

Inputs are the lifetimes-style (frequency, recency, T) summary in one time unit of the caller's
choosing; alpha comes out in that unit. There are no boundary (limit) models here: a fit that
does not reach a usable interior optimum raises ``ConvergenceError``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln

from pipelines.predictive.fitters import bg_horizon
from pipelines.predictive.fitters.base import (
    FitResult,
    FloatArray,
    check_weights,
    collapse,
    optimise_log_params,
    resolve_max_iterations,
    warm_start,
)
from pipelines.predictive.fitters.bgnbd import broadcast_rft, expected_if_alive, validate_rft

__all__ = ["ModifiedBetaGeoModel", "ModifiedBetaGeoParams", "log_likelihood"]

MODEL_NAME = "MBG/NBD (ModifiedBetaGeoModel)"
PARAM_NAMES = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class ModifiedBetaGeoParams:
    """r, alpha (in the data's time unit), a, b: all finite and positive."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"MBG/NBD parameter {name} must be positive and finite, got {value}"
                )

    def as_dict(self) -> dict[str, float]:
        return {
            "r": float(self.r),
            "alpha": float(self.alpha),
            "a": float(self.a),
            "b": float(self.b),
        }


class _Prepared:
    """Collapsed rows with positive weight, plus the summed weight of every distinct x."""

    def __init__(self, x: FloatArray, tx: FloatArray, T: FloatArray, w: FloatArray) -> None:
        keep = w > 0
        self.x, self.tx, self.T, self.w = x[keep], tx[keep], T[keep], w[keep]
        self.n = float(self.w.sum())
        self.xu, inv = np.unique(self.x, return_inverse=True)
        self.wx = np.bincount(inv.reshape(-1), weights=self.w, minlength=self.xu.size)


def _log_likelihood(
    params: FloatArray, d: _Prepared, gradient: bool
) -> tuple[float, FloatArray | None]:
    r, alpha, a, b = (float(v) for v in params)
    x, tx, T, w = d.x, d.tx, d.T, d.w

    # Per distinct x: log[Gamma(r+x)/Gamma(r)] + log[B(a, b+x+1)/B(a, b)], summed with weights.
    xu, wx = d.xu, d.wx
    const_x = gammaln(r + xu) - gammaln(r) + betaln(a, b + xu + 1.0) - betaln(a, b)
    ll = float(wx @ const_x) + d.n * r * float(np.log(alpha))

    # Per row: log[(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)], every x (x = 0 included).
    log_aT = np.log(alpha + T)
    log_atx = np.log(alpha + tx)
    A3 = -(r + x) * log_aT
    A4 = np.log(a) - np.log(b + x) - (r + x) * log_atx
    lse = np.logaddexp(A3, A4)
    ll += float(w @ lse)
    if not gradient:
        return ll, None

    w3 = w * np.exp(A3 - lse)  # weight of the "alive at T" branch
    w4 = w * np.exp(A4 - lse)  # weight of the "dropped out right after t_x" branch
    psi_abx = digamma(a + b + xu + 1.0)
    g_r = (
        float(wx @ (digamma(r + xu) - digamma(r)))
        + d.n * np.log(alpha)
        - float(w3 @ log_aT)
        - float(w4 @ log_atx)
    )
    g_alpha = d.n * r / alpha - float((w3 / (alpha + T) + w4 / (alpha + tx)) @ (r + x))
    g_a = float(wx @ (digamma(a + b) - psi_abx)) + float(w4.sum()) / a
    g_b = float(wx @ (digamma(b + xu + 1.0) - digamma(b) + digamma(a + b) - psi_abx)) - float(
        w4 @ (1.0 / (b + x))
    )
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def log_likelihood(
    params: ModifiedBetaGeoParams | ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    gradient: bool = False,
) -> float | tuple[float, FloatArray]:
    """Total (weighted) MBG/NBD log-likelihood (Batislam et al. 2007).

    With ``gradient=True`` also returns d(log-likelihood)/d(r, alpha, a, b), analytically.
    """
    p = (
        np.array([params.r, params.alpha, params.a, params.b])
        if isinstance(params, ModifiedBetaGeoParams)
        else np.asarray(params, dtype=np.float64)
    )
    x, tx, t_cal = validate_rft(frequency, recency, T)
    ll, g = _log_likelihood(p, _Prepared(x, tx, t_cal, check_weights(weights, x.size)), gradient)
    return (ll, g) if gradient else ll  # type: ignore[return-value]


def _p_alive(p: ModifiedBetaGeoParams, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
    """P(alive at T | x, t_x) as a logistic of the log-odds of having dropped out."""
    log_odds_dead = (
        np.log(p.a) - np.log(p.b + x) + (p.r + x) * (np.log(p.alpha + T) - np.log(p.alpha + tx))
    )
    return expit(-log_odds_dead)


class ModifiedBetaGeoModel:
    """MBG/NBD model (Batislam, Denizel & Filiztekin 2007): fit on a customer summary, then
    score P(alive), P(alive at T + t), P(a purchase within t) and expected purchases."""

    def __init__(self) -> None:
        self._params: ModifiedBetaGeoParams | None = None
        self.fit_result: FitResult | None = None

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float) -> Self:
        """A model with known parameters (e.g. loaded from a previous run); no fit_result."""
        model = cls()
        model._params = ModifiedBetaGeoParams(float(r), float(alpha), float(a), float(b))
        return model

    @property
    def params(self) -> ModifiedBetaGeoParams:
        if self._params is None:
            raise RuntimeError(
                "ModifiedBetaGeoModel is not fitted: call fit() or from_params() first"
            )
        return self._params

    def __repr__(self) -> str:
        if self._params is None:
            return "ModifiedBetaGeoModel(unfitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self._params.as_dict().items())
        return f"ModifiedBetaGeoModel({shown})"

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        tol: float = 1e-10,
        max_iterations: int | None = None,
        maxiter: int | None = None,
        initial: Mapping[str, float] | None = None,
    ) -> Self:
        """Maximum-likelihood fit on the collapsed rows, time rescaled by the weighted mean T.

        Raises ``ConvergenceError`` if the optimiser fails or runs out of its ``max_iterations``
        budget (default 2000; ``maxiter`` is its old name), a parameter runs to a bound or the
        likelihood is flat at the point reached (e.g. nobody repeats: then everyone "dropped
        out at time 0" explains the data best). ``initial`` warm-starts from {r, alpha, a, b}
        in the caller's time unit (e.g. a previous run's ``params.as_dict()``, or a BG/NBD fit's);
        values that are not finite and positive keep their default start, BG/NBD's
        r_over_alpha and dropout are ignored.
        """
        started = time.perf_counter()
        budget = resolve_max_iterations(max_iterations, maxiter)
        x, tx, t_cal = validate_rft(frequency, recency, T)
        w = check_weights(weights, x.size)
        x, tx, t_cal, w = collapse(x, tx, t_cal, weights=w)
        d = _Prepared(x, tx, t_cal, w)
        if d.n <= 0:
            raise ValueError("cannot fit MBG/NBD on zero customers (all weights are zero)")

        scale = float(d.w @ d.T) / d.n
        if not scale > 0:
            scale = 1.0
        ds = _Prepared(d.x, d.tx / scale, d.T / scale, d.w)

        def neg_mean_ll(p: FloatArray) -> tuple[float, FloatArray]:
            ll, g = _log_likelihood(p, ds, gradient=True)
            assert g is not None
            return -ll / ds.n, -g / ds.n

        mean_x = float(ds.w @ ds.x) / ds.n
        alpha0 = 1.0 / mean_x if mean_x > 0 else 1.0  # r/alpha = observed purchase rate
        defaults = dict(zip(PARAM_NAMES, [1.0, alpha0, 1.0, 1.0], strict=True))
        x0 = warm_start(
            initial, defaults, divide={"alpha": scale}, ignore=("r_over_alpha", "dropout")
        )
        opt = optimise_log_params(PARAM_NAMES, neg_mean_ll, x0, tol=tol, maxiter=budget)
        if opt.failure is not None:
            unscale = lambda p: p * np.array([1.0, scale, 1.0, 1.0])  # noqa: E731
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        r, alpha_s, a, b = (float(v) for v in opt.params)
        self._params = ModifiedBetaGeoParams(r, alpha_s * scale, a, b)
        ll, _ = _log_likelihood(np.array([r, alpha_s * scale, a, b]), d, gradient=False)
        self.fit_result = FitResult(
            log_likelihood=ll,
            n_customers=round(d.n),
            converged=True,
            iterations=opt.iterations,
            seconds=time.perf_counter() - started,
            at_bounds=opt.at_bounds,
        )
        return self

    def log_likelihood(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> float:
        """Total (weighted) log-likelihood of a summary at the current parameters."""
        return cast(float, log_likelihood(self.params, frequency, recency, T, weights))

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T); below 1 for one-time buyers too (x = 0)."""
        x, tx, t_cal = broadcast_rft(frequency, recency, T)
        return _p_alive(self.params, x, tx, t_cal)

    def p_alive_at(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T + t | history) = P(alive at T) 2F1(r+x, a; a+b+x+1; -t/(alpha+T)): given
        alive at T, E[exp(-lambda p t)] over lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x+1).
        ``t`` broadcasts as in ``predict``."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        survive = bg_horizon.survival_if_alive(p.r, p.alpha, p.a, p.b + 1.0, t_arr, x, t_cal)
        return _p_alive(p, x, tx, t_cal) * survive

    def p_purchase_within(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(at least one purchase in (T, T + t] | history) = P(alive at T)
        (1 - ((alpha+T)/(alpha+T+t))^(r+x)): the window's first purchase precedes any dropout."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        buys = bg_horizon.purchase_if_alive(p.r, p.alpha, t_arr, x, t_cal)
        return _p_alive(p, x, tx, t_cal) * buys

    def predict(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected number of purchases in (T, T + t] given each customer's history.

        ``t`` broadcasts against the customer arrays (e.g. ``t[:, None]`` for a grid).
        """
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        if_alive = expected_if_alive(p.r, p.alpha, p.a, p.b + 1.0, t_arr, x, t_cal)
        return _p_alive(p, x, tx, t_cal) * if_alive

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Unconditional E[X(t)] for a customer just acquired at time 0:
        b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]."""
        t_arr = bg_horizon.check_horizon(t)
        zeros = np.zeros_like(t_arr)
        return self.predict(t_arr, zeros, zeros, zeros)
