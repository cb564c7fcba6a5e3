"""Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987, "Counting Your Customers").

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha) and dies
after an exponential lifetime with rate mu ~ Gamma(s, beta), independent of lambda: unlike
BG/NBD, customers can drop out without buying again, so one-time buyers are not all alive.
Inputs are the lifetimes-style summary (``frequency`` x, ``recency`` t_x, ``T``) in one time
unit of the caller's choosing (days in our pipeline); alpha and beta come out in that unit.

The expressions follow Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
Related Expressions": the likelihood is

    L = Gamma(r + x) alpha^r beta^s / Gamma(r)
        * [ (alpha + T)^-(r + x) (beta + T)^-s
            + s int_{t_x}^T (alpha + tau)^-(r + x) (beta + tau)^-(s + 1) dtau ],

two positive terms combined in log space. The integral's tails are Gauss hypergeometric
functions 2F1(a, b; a + 1; z) evaluated by ``log_hyp2f1`` (Euler's transformation to a series
of positive terms, with our own summation where scipy returns NaN or inf). Gradients are
central differences of that likelihood in log-parameters (the derivatives of 2F1 in its
parameters have no closed form); data are collapsed first and the 2F1 tails are evaluated once
per distinct (x, t) pair, so this stays affordable (``benchmarks/purchase_models.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, gammaln

from pipelines.predictive.fitters.base import (
    FitResult,
    FloatArray,
    check_weights,
    collapse,
    optimise_log_params,
    resolve_max_iterations,
    unique_rows,
    warm_start,
)
from pipelines.predictive.fitters.bg_horizon import check_horizon
from pipelines.predictive.fitters.bgnbd import broadcast_rft, validate_rft
from pipelines.predictive.fitters.log_hyp2f1 import log_hyp2f1_c_is_a_plus_1

__all__ = ["ParetoNBDModel", "ParetoNBDParams", "log_likelihood"]

MODEL_NAME = "Pareto/NBD (ParetoNBDModel)"
PARAM_NAMES = ("r", "alpha", "s", "beta")
# Central-difference step in log-parameters: truncation ~h^2 and rounding ~1e-16/h both stay
# near 1e-10 relative, well inside what the optimiser's stopping rule needs.
_GRADIENT_STEP = 1e-5


@dataclass(frozen=True)
class ParetoNBDParams:
    """r, alpha (in the data's time unit), s, beta (same unit): all finite and positive."""

    r: float
    alpha: float
    s: float
    beta: float

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"Pareto/NBD parameter {name} must be positive and finite, got {value}"
                )

    def as_dict(self) -> dict[str, float]:
        return {
            "r": float(self.r),
            "alpha": float(self.alpha),
            "s": float(self.s),
            "beta": float(self.beta),
        }


def log_tail(p: ArrayLike, q: ArrayLike, A: ArrayLike, B: ArrayLike, u: ArrayLike) -> FloatArray:
    """ln int_u^inf (A + v)^-p (B + v)^-q dv for p, q > 0 with p + q > 1 and A, B > 0.

    Equals (m + u)^-(p+q-1) / (p + q - 1) 2F1(p + q - 1, k; p + q; |A - B| / (m + u)), where m
    is the larger of A and B and k is the exponent belonging to the smaller (Fader & Hardie
    2005, eqs. (20)-(21)); the 2F1 then has c = a + 1 and 0 <= z < 1.
    """
    p, q, A, B, u = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (p, q, A, B, u)))
    a = p + q - 1.0
    a_larger = A >= B
    base = np.where(a_larger, A, B) + u
    z = np.abs(A - B) / base
    k = np.where(a_larger, q, p)
    return np.asarray(
        log_hyp2f1_c_is_a_plus_1(a, k, z) - a * np.log(base) - np.log(a), dtype=np.float64
    )


def _log_difference(upper: FloatArray, lower: FloatArray) -> FloatArray:
    """ln(exp(upper) - exp(lower)), -inf where they are equal (an empty interval)."""
    gap = lower - upper
    with np.errstate(divide="ignore", invalid="ignore"):
        out = upper + np.log(-np.expm1(np.minimum(gap, 0.0)))
    return np.where(gap < 0, out, -np.inf)


class _Pairs:
    """The distinct (x, t_x) and (x, T) pairs of a summary: the 2F1 tails depend on those only,
    and there are several times fewer of them than distinct rows."""

    def __init__(self, x: FloatArray, tx: FloatArray, T: FloatArray) -> None:
        (self.x_tx, self.tx), self.of_tx = unique_rows(x, tx)
        (self.x_T, self.T), self.of_T = unique_rows(x, T)


def _branches(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    tx: FloatArray,
    T: FloatArray,
    pairs: _Pairs | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The two terms of the bracket in L, in logs: alive at T, and died in (t_x, T]."""
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    if pairs is None:
        tail_tx = log_tail(r + x, s + 1.0, alpha, beta, tx)
        tail_T = log_tail(r + x, s + 1.0, alpha, beta, T)
    else:
        tail_tx = log_tail(r + pairs.x_tx, s + 1.0, alpha, beta, pairs.tx)[pairs.of_tx]
        tail_T = log_tail(r + pairs.x_T, s + 1.0, alpha, beta, pairs.T)[pairs.of_T]
    died = np.log(s) + _log_difference(tail_tx, tail_T)
    return alive, died


def _row_log_likelihood(
    params: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray, pairs: _Pairs | None = None
) -> FloatArray:
    r, alpha, s, beta = (float(v) for v in params)
    alive, died = _branches(r, alpha, s, beta, x, tx, T, pairs)
    const = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return np.asarray(const + np.logaddexp(alive, died), dtype=np.float64)


def log_likelihood(
    params: ParetoNBDParams | ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total (weighted) Pareto/NBD log-likelihood (Fader & Hardie 2005, eq. (22))."""
    p = (
        np.array([params.r, params.alpha, params.s, params.beta])
        if isinstance(params, ParetoNBDParams)
        else np.asarray(params, dtype=np.float64)
    )
    x, tx, t_cal = validate_rft(frequency, recency, T)
    w = check_weights(weights, x.size)
    keep = w > 0
    return float(w[keep] @ _row_log_likelihood(p, x[keep], tx[keep], t_cal[keep]))


def _p_alive(p: ParetoNBDParams, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
    alive, died = _branches(p.r, p.alpha, p.s, p.beta, x, tx, T)
    return np.asarray(expit(alive - died), dtype=np.float64)


def _one_minus_power_over(exponent: float, log_ratio: FloatArray) -> FloatArray:
    """(1 - ratio^e) / e with its limit -ln(ratio) at e = 0 (s = 1 in the expectations)."""
    if exponent == 0.0:
        return -log_ratio
    return np.asarray(-np.expm1(exponent * log_ratio) / exponent, dtype=np.float64)


class ParetoNBDModel:
    """Pareto/NBD model (Schmittlein, Morrison & Colombo 1987; expressions of Fader & Hardie
    2005): fit on a customer summary, then score P(alive), expected purchases and the chance
    of a purchase within a horizon."""

    def __init__(self) -> None:
        self._params: ParetoNBDParams | None = None
        self.fit_result: FitResult | None = None

    @classmethod
    def from_params(cls, r: float, alpha: float, s: float, beta: float) -> Self:
        """A model with known parameters (e.g. loaded from a previous run); no fit_result."""
        model = cls()
        model._params = ParetoNBDParams(float(r), float(alpha), float(s), float(beta))
        return model

    @property
    def params(self) -> ParetoNBDParams:
        if self._params is None:
            raise RuntimeError("ParetoNBDModel is not fitted: call fit() or from_params() first")
        return self._params

    def __repr__(self) -> str:
        if self._params is None:
            return "ParetoNBDModel(unfitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self._params.as_dict().items())
        return f"ParetoNBDModel({shown})"

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
        """Maximum-likelihood fit on collapsed rows, time rescaled by the mean T (as BG/NBD).

        Raises ``ConvergenceError`` when the optimiser fails, runs out of its
        ``max_iterations`` budget (default 2000), a parameter runs to a bound or the likelihood
        is flat (the data do not identify the model, e.g. nobody repeats). ``initial``
        warm-starts from {r, alpha, s, beta} in the caller's time unit.
        """
        started = time.perf_counter()
        budget = resolve_max_iterations(max_iterations, maxiter)
        x, tx, t_cal = validate_rft(frequency, recency, T)
        w = check_weights(weights, x.size)
        x, tx, t_cal, w = collapse(x, tx, t_cal, weights=w)
        keep = w > 0
        x, tx, t_cal, w = x[keep], tx[keep], t_cal[keep], w[keep]
        n = float(w.sum())
        if n <= 0:
            raise ValueError("cannot fit Pareto/NBD on zero customers (all weights are zero)")
        scale = float(w @ t_cal) / n
        if not scale > 0:
            scale = 1.0
        xs, txs, Ts = x, tx / scale, t_cal / scale
        pairs = _Pairs(xs, txs, Ts)

        def neg_mean(p: FloatArray) -> float:
            with np.errstate(all="ignore"):
                value = -float(w @ _row_log_likelihood(p, xs, txs, Ts, pairs)) / n
            return value if np.isfinite(value) else np.inf

        def neg_mean_ll(p: FloatArray) -> tuple[float, FloatArray]:
            f = neg_mean(p)
            grad = np.empty(p.size)
            for i in range(p.size):
                up, down = p.copy(), p.copy()
                up[i] *= np.exp(_GRADIENT_STEP)
                down[i] *= np.exp(-_GRADIENT_STEP)
                grad[i] = (neg_mean(up) - neg_mean(down)) / (2.0 * _GRADIENT_STEP) / p[i]
            if not np.all(np.isfinite(grad)):
                return np.inf, np.zeros_like(p)
            return f, grad

        mean_x = float(w @ x) / n
        alpha0 = 1.0 / mean_x if mean_x > 0 else 1.0  # r/alpha = observed purchase rate
        defaults = dict(zip(PARAM_NAMES, [1.0, alpha0, 1.0, 1.0], strict=True))
        x0 = warm_start(initial, defaults, divide={"alpha": scale, "beta": scale})
        opt = optimise_log_params(PARAM_NAMES, neg_mean_ll, x0, tol=tol, maxiter=budget)
        unscale = lambda p: p * np.array([1.0, scale, 1.0, scale])  # noqa: E731
        if opt.failure is not None:
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        r, alpha, s, beta = (float(v) for v in unscale(opt.params))
        self._params = ParetoNBDParams(r, alpha, s, beta)
        ll = float(w @ _row_log_likelihood(np.array([r, alpha, s, beta]), x, tx, t_cal))
        self.fit_result = FitResult(
            log_likelihood=ll,
            n_customers=round(n),
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
        return log_likelihood(self.params, frequency, recency, T, weights)

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T) = 1 / (1 + s int_{t_x}^T ... / first term) (F&H eq. (18))."""
        x, tx, t_cal = broadcast_rft(frequency, recency, T)
        return _p_alive(self.params, x, tx, t_cal)

    def p_alive_at(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T + t | history) = P(alive at T) ((beta + T) / (beta + T + t))^s: given
        alive at T, mu ~ Gamma(s, beta + T) whatever the purchases."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        survive = np.exp(p.s * (np.log(p.beta + t_cal) - np.log(p.beta + t_cal + t_arr)))
        return np.asarray(_p_alive(p, x, tx, t_cal) * survive, dtype=np.float64)

    def predict(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T + t] | x, t_x, T] (Fader & Hardie 2005, eq. (19)); ``t``
        broadcasts against the customer arrays."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        log_ratio = np.log(p.beta + t_cal) - np.log(p.beta + t_cal + t_arr)
        if_alive = ((p.r + x) * (p.beta + t_cal) / (p.alpha + t_cal)) * _one_minus_power_over(
            p.s - 1.0, log_ratio
        )
        return np.asarray(_p_alive(p, x, tx, t_cal) * if_alive, dtype=np.float64)

    def p_purchase_within(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(at least one purchase in (T, T + t] | history): P(alive at T) times
        int_0^t E[lambda e^-lambda u] E[e^-mu u] du over the posteriors Gamma(r + x, alpha + T)
        and Gamma(s, beta + T), i.e. (r + x) A^(r+x) B^s int_0^t (A + u)^-(r+x+1) (B + u)^-s du
        with A = alpha + T, B = beta + T."""
        t_arr, x, tx, t_cal = broadcast_rft(frequency, recency, T, t)
        p = self.params
        A, B = p.alpha + t_cal, p.beta + t_cal
        power = p.r + x + 1.0
        log_within = _log_difference(
            log_tail(power, p.s, A, B, np.zeros_like(t_arr)), log_tail(power, p.s, A, B, t_arr)
        )
        log_scale = np.log(p.r + x) + (p.r + x) * np.log(A) + p.s * np.log(B)
        within = np.clip(np.exp(log_scale + log_within), 0.0, 1.0)
        return np.asarray(_p_alive(p, x, tx, t_cal) * within, dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Unconditional E[X(t)] for a customer acquired at time 0: r beta / (alpha (s - 1))
        (1 - (beta / (beta + t))^(s - 1)) (Fader & Hardie 2005, eq. (17))."""
        t_arr = check_horizon(t)
        p = self.params
        log_ratio = np.log(p.beta) - np.log(p.beta + t_arr)
        return np.asarray(
            p.r * p.beta / p.alpha * _one_minus_power_over(p.s - 1.0, log_ratio),
            dtype=np.float64,
        )
