"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
every purchase they drop out with probability p ~ Beta(a, b). Inputs per customer are the
lifetimes-style summary: ``frequency`` x (number of repeat purchase periods), ``recency`` t_x
(time from first to last purchase) and ``T`` (time from first purchase to the end of the
calibration period), all in one time unit of the caller's choosing (days in our pipeline);
``alpha`` comes out in that unit, r, a and b are unit-free.

When the data carry no dropout signal or no purchase-rate heterogeneity the likelihood is
maximised on the boundary of (r, alpha, a, b); ``fit`` then returns the limit model of
``bg_limits`` (NBD, BG/Poisson, Poisson, fixed dropout) with a ``fit_result.boundary`` note
(``BetaGeoParams`` spells the limits with 0 and inf). P(alive at T + t) and P(a purchase in
(T, T + t]) are in ``bg_horizon``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Self, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from pipelines.predictive.fitters import bg_horizon, bg_limits
from pipelines.predictive.fitters.base import (
    FitResult,
    FloatArray,
    as_float_array,
    check_weights,
    collapse,
    optimise_log_params,
    resolve_max_iterations,
    warm_start,
)
from pipelines.predictive.fitters.bg_params import BetaGeoParams
from pipelines.predictive.fitters.simulate import simulate_summary
from pipelines.predictive.fitters.special import COINCIDENCE, bridge

__all__ = ["BetaGeoModel", "BetaGeoParams", "log_likelihood", "simulate_summary", "validate_rft"]

MODEL_NAME = "BG/NBD (BetaGeoModel)"
PARAM_NAMES = ("r", "alpha", "a", "b")


def validate_rft(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check the (frequency, recency, T) summary the way the models assume it was built."""
    x = as_float_array("frequency", frequency)
    tx = as_float_array("recency", recency)
    t_cal = as_float_array("T", T)
    if not (x.shape == tx.shape == t_cal.shape):
        raise ValueError(
            f"frequency, recency and T must have the same length, got {x.shape}, {tx.shape}, "
            f"{t_cal.shape}"
        )
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must hold non-negative integers")
    if np.any(tx < 0):
        raise ValueError("recency must be non-negative")
    if np.any(tx > t_cal):
        raise ValueError("recency must not exceed T")
    if np.any(tx[x == 0] != 0):
        raise ValueError("recency must be 0 for customers with frequency 0")
    return x, tx, t_cal


class _Prepared:
    """Collapsed data plus the per-distinct-frequency bookkeeping used by every evaluation.

    Terms that depend only on x (gammaln, digamma, betaln of r+x, b+x, a+b+x) are evaluated
    once per distinct x and multiplied by the summed weight of that x, so the per-row work in
    each likelihood evaluation is a handful of logs and exps.
    """

    def __init__(self, x: FloatArray, tx: FloatArray, T: FloatArray, w: FloatArray) -> None:
        keep = w > 0
        self.x, self.tx, self.T, self.w = x[keep], tx[keep], T[keep], w[keep]
        self.n = float(self.w.sum())
        self.rep = self.x > 0
        self.xu, inv = np.unique(self.x, return_inverse=True)
        self.wx = np.bincount(inv.reshape(-1), weights=self.w, minlength=self.xu.size)


def _log_likelihood(
    params: FloatArray, d: _Prepared, gradient: bool
) -> tuple[float, FloatArray | None]:
    r, alpha, a, b = (float(v) for v in params)
    x, tx, T, w, rep = d.x, d.tx, d.T, d.w, d.rep

    # Per distinct x: log[Gamma(r+x)/Gamma(r)] + log[B(a, b+x)/B(a, b)], summed with weights.
    xu, wx = d.xu, d.wx
    const_x = gammaln(r + xu) - gammaln(r) + betaln(a, b + xu) - betaln(a, b)
    ll = float(wx @ const_x) + d.n * r * float(np.log(alpha))

    # Per row: log[(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)], via logaddexp.
    log_aT = np.log(alpha + T)
    log_atx = np.log(alpha + tx)
    bx1 = np.where(rep, b + x - 1.0, 1.0)
    A3 = -(r + x) * log_aT
    A4 = np.where(rep, np.log(a) - np.log(bx1) - (r + x) * log_atx, -np.inf)
    lse = np.logaddexp(A3, A4)
    ll += float(w @ lse)
    if not gradient:
        return ll, None

    w3 = w * np.exp(A3 - lse)  # weight of the "still alive at T" branch
    w4 = w * np.exp(A4 - lse)  # weight of the "dropped out after t_x" branch (0 when x = 0)
    psi_abx = digamma(a + b + xu)
    g_r = (
        float(wx @ (digamma(r + xu) - digamma(r)))
        + d.n * np.log(alpha)
        - float(w3 @ log_aT)
        - float(w4 @ log_atx)
    )
    g_alpha = d.n * r / alpha - float((w3 / (alpha + T) + w4 / (alpha + tx)) @ (r + x))
    g_a = float(wx @ (digamma(a + b) - psi_abx)) + float(w4.sum()) / a
    g_b = float(wx @ (digamma(b + xu) - digamma(b) + digamma(a + b) - psi_abx)) - float(
        w4 @ (1.0 / bx1)
    )
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def log_likelihood(
    params: BetaGeoParams | ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    gradient: bool = False,
) -> float | tuple[float, FloatArray]:
    """Total (weighted) BG/NBD log-likelihood, eq. (6) of Fader, Hardie & Lee (2005).

    With ``gradient=True`` also returns d(log-likelihood)/d(r, alpha, a, b), analytically.
    Limit parameters (``BetaGeoParams.limit``) give the limit model's likelihood (no gradient).
    """
    p = (
        np.array([params.r, params.alpha, params.a, params.b])
        if isinstance(params, BetaGeoParams)
        else np.asarray(params, dtype=np.float64)
    )
    x, tx, t_cal = validate_rft(frequency, recency, T)
    d = _Prepared(x, tx, t_cal, check_weights(weights, x.size))
    if isinstance(params, BetaGeoParams) and params.limit is not None:
        if gradient:
            raise ValueError("no gradient for a limit model's log-likelihood")
        data = bg_limits.Data(d.x, d.tx, d.T, d.w)
        return bg_limits.limit_log_likelihood(params.limit, params.limit_values(), data)
    ll, g = _log_likelihood(p, d, gradient)
    return (ll, g) if gradient else ll  # type: ignore[return-value]


def _conditional_expected(
    p: BetaGeoParams, t: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
) -> FloatArray:
    """E[X(T, T+t) | x, t_x, T], eq. (10) of FHL (2005): E[... | alive at T] * P(alive)."""
    if p.limit is not None:
        values = p.limit_values()
        alive = bg_limits.p_alive(p.limit, values, x, tx, T)
        return bg_limits.expected_if_alive(p.limit, values, t, x, T) * alive
    return expected_if_alive(p.r, p.alpha, p.a, p.b, t, x, T) * _p_alive(p, x, tx, T)


def expected_if_alive(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T+t] of a customer alive at T with x repeat purchases.

    The paper's form is  (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x)
    2F1(r+x, b+x; a+b+x-1; z)],  z = t/(alpha+T+t). Euler's transformation
    2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) cancels the power and leaves
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose upper parameters do not grow with x
    (the original overflows for heavy buyers and long horizons).

    Three singular spots are bridged (see special.bridge): a = 1 (prefactor 1/(a-1) against a
    bracket that vanishes with a - 1, so digits cancel nearby); a + b = 1 for x = 0 (2F1 pole
    at C = 0 against the prefactor's zero); and r - a an integer, which makes C - A - B =
    x + r - a + 1 an integer, where scipy's hyp2f1 returns NaN exactly at, and loses digits
    near (~1e-17 / distance), the integer when z is close to 1.
    """
    d = COINCIDENCE
    h = 2.0 * d
    if abs(a - 1.0) < d:
        return bridge(lambda av: expected_if_alive(r, alpha, av, b, t, x, T), 1.0, a, h)
    if abs(a + b - 1.0) < d and 1.0 - a > 3.0 * d:
        hb = min(h, (1.0 - a) / 3.0)
        return bridge(lambda bv: expected_if_alive(r, alpha, a, bv, t, x, T), 1.0 - a, b, hb)
    k = round(r - a)
    if abs(r - a - k) < d:
        return bridge(lambda rv: expected_if_alive(rv, alpha, a, b, t, x, T), a + k, r, h)

    z = t / (alpha + T + t)
    hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
    bracket = 1.0 - np.power(1.0 - z, a - 1.0) * hyp
    return (a + b + x - 1.0) / (a - 1.0) * bracket


def _p_alive(p: BetaGeoParams, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
    """P(alive at T | x, t_x), eq. (11) of FHL (2005), as a logistic of a log-odds."""
    if p.limit is not None:
        return bg_limits.p_alive(p.limit, p.limit_values(), x, tx, T)
    rep = x > 0
    bx1 = np.where(rep, p.b + x - 1.0, 1.0)
    log_odds_dead = (
        np.log(p.a) - np.log(bx1) + (p.r + x) * (np.log(p.alpha + T) - np.log(p.alpha + tx))
    )
    return np.where(rep, expit(-log_odds_dead), 1.0)


def broadcast_rft(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, t: ArrayLike | None = None
) -> tuple[FloatArray, ...]:
    """(x, t_x, T) validated and broadcast together; with a horizon ``t``, (t, x, t_x, T)."""
    x, tx, t_cal = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    x, tx, t_cal = np.broadcast_arrays(x, tx, t_cal)
    flat = validate_rft(x.reshape(-1), tx.reshape(-1), t_cal.reshape(-1))
    out = tuple(v.reshape(x.shape) for v in flat)
    if t is None:
        return out
    return tuple(np.broadcast_arrays(bg_horizon.check_horizon(t), *out))


class BetaGeoModel:
    """BG/NBD model (Fader, Hardie & Lee 2005): fit on a customer summary, then score P(alive)
    and expected purchases. A fit on the boundary holds a limit model instead (NBD: Ehrenberg
    1959, Morrison & Schmittlein 1988; BG/Poisson; Poisson), see ``bg_limits``."""

    def __init__(self) -> None:
        self._params: BetaGeoParams | None = None
        self.fit_result: FitResult | None = None

    @classmethod
    def from_params(
        cls, r: float, alpha: float, a: float, b: float,
        r_over_alpha: float | None = None, dropout: float | None = None,
    ) -> Self:  # fmt: skip
        """A model with known parameters (e.g. loaded from a previous run); no fit_result."""
        model = cls()
        opt = [None if v is None else float(v) for v in (r_over_alpha, dropout)]
        model._params = BetaGeoParams(float(r), float(alpha), float(a), float(b), *opt)
        return model

    @property
    def params(self) -> BetaGeoParams:
        if self._params is None:
            raise RuntimeError("BetaGeoModel is not fitted: call fit() or from_params() first")
        return self._params

    def __repr__(self) -> str:
        if self._params is None:
            return "BetaGeoModel(unfitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self._params.as_dict().items())
        return f"BetaGeoModel({shown})"

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
        """Maximum-likelihood fit; identical rows are collapsed first so size barely matters.

        Time is rescaled by the weighted mean T during optimisation (alpha is then scaled back),
        which makes the optimiser's bounds and tolerances independent of the time unit. If the
        search runs off to a face of the parameter space that ``bg_limits.find_boundary``
        recognises (no dropout, no rate heterogeneity), the limit model is fitted and returned
        with a ``fit_result.boundary`` note. Otherwise raises ``ConvergenceError`` if the
        optimiser fails, a parameter runs to a bound or the data do not identify the
        parameters (flat likelihood, e.g. nobody repeats), and always when the
        ``max_iterations`` budget (default 2000; ``maxiter`` is its old name) runs out.
        ``fit_result.seconds`` is the wall time of the whole call (collapse included).

        ``initial`` warm-starts the search from {r, alpha, a, b} in the caller's time unit (e.g.
        a previous run's ``params.as_dict()``); a value that is not finite and positive (a
        limit's 0 or inf) keeps its default start, r_over_alpha and dropout are ignored.
        """
        started = time.perf_counter()
        budget = resolve_max_iterations(max_iterations, maxiter)
        x, tx, t_cal = validate_rft(frequency, recency, T)
        w = check_weights(weights, x.size)
        x, tx, t_cal, w = collapse(x, tx, t_cal, weights=w)
        d = _Prepared(x, tx, t_cal, w)
        if d.n <= 0:
            raise ValueError("cannot fit BG/NBD on zero customers (all weights are zero)")

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
        unscale = lambda p: p * np.array([1.0, scale, 1.0, 1.0])  # noqa: E731
        if opt.out_of_iterations:
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        limit = bg_limits.find_boundary(
            opt.params,
            bg_limits.Data(ds.x, ds.tx, ds.T, ds.w),
            lambda p: _log_likelihood(p, ds, gradient=False)[0],
            interior_failed=opt.failure is not None,
            tol=tol,
            budget=budget,
        )
        if limit is None and opt.failure is not None:
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        if limit is None:
            r, alpha_s, a, b = opt.params
            self._params = BetaGeoParams(float(r), float(alpha_s * scale), float(a), float(b))
            ll, _ = _log_likelihood(np.array([r, alpha_s * scale, a, b]), d, gradient=False)
        else:
            self._params = BetaGeoParams.from_limit(limit.kind, limit.values, scale)
            # Back to the caller's time unit: the density of x purchase times gains scale^-x.
            ll = limit.log_likelihood - float(d.w @ d.x) * math.log(scale)
        prm = self._params
        self.fit_result = FitResult(
            log_likelihood=ll,
            n_customers=round(d.n),
            converged=True,
            iterations=opt.iterations + (0 if limit is None else limit.iterations),
            seconds=time.perf_counter() - started,
            at_bounds=opt.at_bounds if limit is None else prm.at_limit,
            boundary=None if limit is None else prm.boundary_note,
        )
        return self

    def log_likelihood(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> float:
        """Total (weighted) log-likelihood of a summary at the current parameters (a limit
        model's, for a limit), in the summary's time unit."""
        return cast(float, log_likelihood(self.params, frequency, recency, T, weights))

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """Probability each customer is still active at the end of their observation (T)."""
        x, tx, t_cal = broadcast_rft(frequency, recency, T)
        return _p_alive(self.params, x, tx, t_cal)

    def p_alive_at(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T + t | history): dropout only follows purchases, so given alive at T this
        is E[exp(-lambda p t)] over the posterior, i.e. P(alive at T) 2F1(r + x, a; a + b + x;
        -t / (alpha + T)) (limits: see ``bg_horizon``). ``t`` broadcasts as in ``predict``."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        alive = _p_alive(self.params, x, tx, t_cal)
        return bg_horizon.p_alive_at(self.params, alive, t_arr, x, t_cal)

    def p_purchase_within(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(at least one purchase in (T, T + t] | history): P(alive at T) (1 - ((alpha + T) /
        (alpha + T + t))^(r + x)); with lambda known, P(alive at T) (1 - exp(-lambda t))."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        alive = _p_alive(self.params, x, tx, t_cal)
        return bg_horizon.p_purchase_within(self.params, alive, t_arr, x, t_cal)

    def predict(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected number of purchases in (T, T + t] given each customer's history.

        ``t`` broadcasts against the customer arrays (e.g. ``t[:, None]`` for a grid).
        """
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        return _conditional_expected(self.params, t_arr, x, tx, t_cal)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Unconditional E[X(t)] for a customer just acquired at time 0 (eq. (9) of FHL 2005)."""
        t_arr = bg_horizon.check_horizon(t)
        zeros = np.zeros_like(t_arr)
        p = self.params
        if p.limit is not None:
            return bg_limits.expected_if_alive(p.limit, p.limit_values(), t_arr, zeros, zeros)
        return expected_if_alive(p.r, p.alpha, p.a, p.b, t_arr, zeros, zeros)
