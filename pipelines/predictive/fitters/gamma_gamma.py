"""Gamma-Gamma spend model and the BG/NBD + Gamma-Gamma discounted CLV.

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value"; Fader, Hardie & Lee
(2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis". Each transaction
value is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers (``v`` here is gamma, as in
lifetimes). The model is fitted on the *average* value m of a customer's x repeat
transactions and assumes spend is independent of the purchase process.

When spend hardly varies between customers the likelihood is maximised on the boundary
q, v -> inf with v/q = c fixed: the pooled-spend limit of ``gg_limit`` (every transaction
Gamma(p, rate 1/c), expected spend p c for everyone). ``fit`` then returns that limit, with
``GammaGammaParams(p, q=inf, v=inf, v_over_q=c)`` and a ``fit_result.boundary`` note.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from pipelines.predictive.fitters import gg_limit
from pipelines.predictive.fitters.base import (
    FitResult,
    FloatArray,
    as_float_array,
    check_weights,
    collapse,
    optimise_log_params,
    resolve_max_iterations,
)
from pipelines.predictive.fitters.boundary import RAY
from pipelines.predictive.fitters.clv import customer_lifetime_value

__all__ = ["GammaGammaModel", "GammaGammaParams", "customer_lifetime_value", "log_likelihood"]

MODEL_NAME = "Gamma-Gamma (GammaGammaModel)"
PARAM_NAMES = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaParams:
    """p, q, v of the model; in the pooled-spend limit q = v = inf and ``v_over_q`` = c.

    ``v_over_q`` is set only in the limit (``GammaGammaParams.pooled(p, c)``); interior
    parameters are all finite and positive.
    """

    p: float
    q: float
    v: float
    v_over_q: float | None = None

    def __post_init__(self) -> None:
        finite = {"p": self.p, "q": self.q, "v": self.v}
        if self.v_over_q is not None:
            if not (math.isinf(self.q) and math.isinf(self.v)):
                raise ValueError("v_over_q is only given in the limit q = v = inf")
            finite = {"p": self.p, "v_over_q": self.v_over_q}
        for name, value in finite.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"Gamma-Gamma parameter {name} must be positive and finite, got {value}"
                )

    @classmethod
    def pooled(cls, p: float, v_over_q: float) -> Self:
        """The no-heterogeneity limit q, v -> inf with v/q = ``v_over_q``."""
        return cls(float(p), math.inf, math.inf, float(v_over_q))

    @property
    def is_limit(self) -> bool:
        return self.v_over_q is not None

    def as_dict(self) -> dict[str, float]:
        """Float-valued: {p, q, v}, plus v_over_q (with q = v = inf) in the limit."""
        out = {"p": float(self.p), "q": float(self.q), "v": float(self.v)}
        if self.v_over_q is not None:
            out["v_over_q"] = float(self.v_over_q)
        return out

    @property
    def population_mean(self) -> float:
        """E[M] = p v / (q - 1) (p c in the limit); infinite (undefined) when q <= 1."""
        if self.v_over_q is not None:
            return self.p * self.v_over_q
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("inf")


class _Prepared:
    """Sufficient statistics that do not depend on the parameters, computed once per fit.

    Per customer the log-likelihood is  log Gamma(px+q) - log Gamma(px) - log Gamma(q)
    + q log v + (px-1) log m + px log x - (px+q) log(v + x m)  (the density of the mean m of x
    transaction values; as in lifetimes and Fader & Hardie 2013). Only the last term needs a
    per-row evaluation; the gamma functions are evaluated per distinct x and the log m, log x
    terms are fixed weighted sums.
    """

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.x, self.m, self.w = x, m, w
        self.n = float(w.sum())
        self.xu, inv = np.unique(x, return_inverse=True)
        self.wx = np.bincount(inv.reshape(-1), weights=w, minlength=self.xu.size)
        log_m = np.log(m)
        self.s_logm = float(w @ log_m)
        self.s_xlogm = float(w @ (x * log_m))
        self.s_xlogx = float(self.wx @ (self.xu * np.log(self.xu)))
        self.wxm = w * x  # for sum w x log(v + x m)
        self.xm = x * m


def _log_likelihood(
    params: FloatArray, d: _Prepared, gradient: bool
) -> tuple[float, FloatArray | None]:
    p, q, v = (float(t) for t in params)
    xu, wx = d.xu, d.wx
    pxu = p * xu
    log_v = float(np.log(v))
    log_vxm = np.log(v + d.xm)
    s_w_l = float(d.w @ log_vxm)
    s_wx_l = float(d.wxm @ log_vxm)
    ll = (
        float(wx @ (gammaln(pxu + q) - gammaln(pxu)))
        - d.n * float(gammaln(q))
        + d.n * q * log_v
        + p * d.s_xlogm
        - d.s_logm
        + p * d.s_xlogx
        - (p * s_wx_l + q * s_w_l)
    )
    if not gradient:
        return ll, None
    psi_pxq = digamma(pxu + q)
    g_p = float(wx @ (xu * (psi_pxq - digamma(pxu)))) + d.s_xlogm + d.s_xlogx - s_wx_l
    g_q = float(wx @ psi_pxq) - d.n * float(digamma(q)) + d.n * log_v - s_w_l
    inv_vxm = 1.0 / (v + d.xm)
    g_v = d.n * q / v - (p * float(d.wxm @ inv_vxm) + q * float(d.w @ inv_vxm))
    return ll, np.array([g_p, g_q, g_v])


def log_likelihood(
    params: GammaGammaParams | ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    gradient: bool = False,
) -> float | tuple[float, FloatArray]:
    """Gamma-Gamma log-likelihood over the given customers (all must have x >= 1, m > 0).

    Pooled-spend limit parameters give the limit's likelihood (``gg_limit``; no gradient).
    """
    pv = (
        np.array([params.p, params.q, params.v])
        if isinstance(params, GammaGammaParams)
        else np.asarray(params, dtype=np.float64)
    )
    x = as_float_array("frequency", frequency)
    m = as_float_array("monetary_value", monetary_value)
    if x.shape != m.shape:
        raise ValueError("frequency and monetary_value must have the same length")
    if np.any(x < 1) or np.any(m <= 0):
        raise ValueError("the Gamma-Gamma likelihood needs frequency >= 1 and monetary_value > 0")
    w = check_weights(weights, x.size)
    if isinstance(params, GammaGammaParams) and params.v_over_q is not None:
        if gradient:
            raise ValueError("no gradient for the pooled-spend limit's log-likelihood")
        return gg_limit.pooled_log_likelihood(params.p, params.v_over_q, x, m, w)
    ll, g = _log_likelihood(pv, _Prepared(x, m, w), gradient)
    return (ll, g) if gradient else ll  # type: ignore[return-value]


class GammaGammaModel:
    """Gamma-Gamma model of average transaction value (Fader & Hardie 2013, "The Gamma-Gamma
    Model of Monetary Value"); without spend heterogeneity its pooled-spend limit (``gg_limit``).

    ``fit`` takes every customer and uses only those with at least one repeat purchase and a
    positive average repeat spend; how many were left out (and why) is kept in
    ``n_excluded`` / ``exclusions`` rather than silently dropped.
    """

    def __init__(self) -> None:
        self._params: GammaGammaParams | None = None
        self.fit_result: FitResult | None = None
        self.n_excluded: int | None = None
        self.exclusions: dict[str, int] = {}

    @classmethod
    def from_params(cls, p: float, q: float, v: float, v_over_q: float | None = None) -> Self:
        """A model with known parameters (``params.as_dict()`` of a previous fit round-trips)."""
        model = cls()
        c = None if v_over_q is None else float(v_over_q)
        model._params = GammaGammaParams(float(p), float(q), float(v), c)
        return model

    @property
    def params(self) -> GammaGammaParams:
        if self._params is None:
            raise RuntimeError("GammaGammaModel is not fitted: call fit() or from_params() first")
        return self._params

    def __repr__(self) -> str:
        if self._params is None:
            return "GammaGammaModel(unfitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self._params.as_dict().items())
        return f"GammaGammaModel({shown})"

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        tol: float = 1e-10,
        max_iterations: int | None = None,
        maxiter: int | None = None,
    ) -> Self:
        """Maximum-likelihood fit on customers with frequency >= 1 and monetary_value > 0.

        Money is rescaled by the mean spend during optimisation (v is scaled back), so the
        optimiser behaves the same whatever the currency unit. If the search runs off along
        q, v -> inf with v/q stable and nothing in the interior beats the pooled-spend limit
        (``gg_limit.runs_off_to_pooled_limit``), the limit is returned with a
        ``fit_result.boundary`` note. Otherwise raises ``ConvergenceError`` as
        BetaGeoModel.fit does, and always when the ``max_iterations`` budget (default 2000;
        ``maxiter`` is its old name) runs out. ``fit_result.seconds`` is the whole call.
        """
        started = time.perf_counter()
        budget = resolve_max_iterations(max_iterations, maxiter)
        x = as_float_array("frequency", frequency)
        m = as_float_array("monetary_value", monetary_value)
        if x.shape != m.shape:
            raise ValueError("frequency and monetary_value must have the same length")
        if np.any(x < 0) or np.any(x != np.round(x)):
            raise ValueError("frequency must hold non-negative integers")
        w = check_weights(weights, x.size)

        no_repeat = x < 1
        non_positive = ~no_repeat & ~(m > 0)
        keep = ~no_repeat & ~non_positive & (w > 0)
        self.exclusions = {
            "no_repeat_purchase": round(float(w[no_repeat].sum())),
            "non_positive_monetary_value": round(float(w[non_positive].sum())),
        }
        self.n_excluded = sum(self.exclusions.values())
        if not np.any(keep):
            raise ValueError(
                "no customer has frequency >= 1 and monetary_value > 0; cannot fit Gamma-Gamma "
                f"(excluded: {self.exclusions})"
            )

        xk, mk, wk = collapse(x[keep], m[keep], weights=w[keep])
        n = float(wk.sum())
        scale = float(wk @ mk) / n
        scaled = _Prepared(xk, mk / scale, wk)

        def neg_mean_ll(pv: FloatArray) -> tuple[float, FloatArray]:
            ll, g = _log_likelihood(pv, scaled, gradient=True)
            assert g is not None
            return -ll / n, -g / n

        # p = 1, q = 2, v = 1 puts the prior mean p v / (q - 1) at the (rescaled) mean spend.
        opt = optimise_log_params(
            PARAM_NAMES, neg_mean_ll, [1.0, 2.0, 1.0], tol=tol, maxiter=budget
        )
        unscale = lambda pv: pv * np.array([1.0, 1.0, scale])  # noqa: E731
        if opt.out_of_iterations:
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        limit = self._boundary(opt.params, scaled, n, budget, opt.failure is not None)
        boundary: str | None = None
        if limit is not None:
            c = limit.c * scale
            self._params = GammaGammaParams.pooled(limit.p, c)
            ll = gg_limit.pooled_log_likelihood(limit.p, c, xk, mk, wk)
            boundary = (
                f"no spend heterogeneity between customers: q, v -> inf with v/q = {c:.6g}; "
                "every customer's expected spend is the pooled mean "
                f"{self._params.population_mean:.6g}"
            )
        elif opt.failure is not None:
            raise opt.error(MODEL_NAME, PARAM_NAMES, unscale)
        else:
            p, q, v_s = opt.params
            self._params = GammaGammaParams(float(p), float(q), float(v_s * scale))
            ll, _ = _log_likelihood(
                np.array([p, q, v_s * scale]), _Prepared(xk, mk, wk), gradient=False
            )
        self.fit_result = FitResult(
            log_likelihood=ll,
            n_customers=round(n),
            converged=True,
            iterations=opt.iterations + (0 if limit is None else limit.iterations),
            seconds=time.perf_counter() - started,
            at_bounds=opt.at_bounds if limit is None else ["q", "v"],
            boundary=boundary,
        )
        return self

    @staticmethod
    def _boundary(
        reached: FloatArray, scaled: _Prepared, n: float, budget: int, failed: bool
    ) -> gg_limit.PooledSpendFit | None:
        """The pooled-spend limit if the search ran off to it (``runs_off_to_pooled_limit``)."""
        if reached[1] < gg_limit.RUNOFF_Q:
            return None
        limit = gg_limit.fit_pooled_spend(scaled.x, scaled.m, scaled.w, max_iterations=budget)
        if limit is None:
            return None
        found = [_log_likelihood(reached, scaled, gradient=False)[0]]
        for q in RAY:
            ray = np.array([limit.p, q, q * limit.c])
            found.append(_log_likelihood(ray, scaled, gradient=False)[0])
        ok = gg_limit.runs_off_to_pooled_limit(reached, limit, found, n, interior_failed=failed)
        return limit if ok else None

    def predict(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray:
        """Conditional expected average transaction value E[M | x, m].

        A credibility-weighted mix of the population mean p v/(q-1) and the customer's own
        average m, with weight p x/(p x + q - 1) on m; customers with x = 0 get the population
        mean whatever m is passed for them. Repeat customers left out of the fit for a zero
        average spend get the same formula with m = 0, as in lifetimes. In the pooled-spend
        limit (q = v = inf) the weight on m is 0: everyone gets the pooled mean p v/q.
        """
        prm = self.params
        if not prm.is_limit and prm.q <= 1.0:
            raise ValueError(
                f"Gamma-Gamma q = {prm.q:.4g} <= 1: the expected spend is undefined (infinite)"
            )
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        x, m = np.broadcast_arrays(x, m)
        if np.any(x < 0) or not np.all(np.isfinite(x)):
            raise ValueError("frequency must be finite and non-negative")
        if not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ValueError("monetary_value must be finite and non-negative")
        if prm.is_limit:
            return np.full(x.shape, prm.population_mean)
        m = np.where(x > 0, m, 0.0)
        return (prm.p * prm.v + prm.p * x * m) / (prm.p * x + prm.q - 1.0)
