"""Gamma-Gamma spend model and the BG/NBD + Gamma-Gamma discounted CLV.

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value"; Fader, Hardie & Lee
(2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis". Each transaction
value is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers (``v`` here is gamma, as in
lifetimes). The model is fitted on the *average* value m of a customer's x repeat
transactions and assumes spend is independent of the purchase process.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from pipelines.predictive.fitters.base import (
    FitResult,
    FloatArray,
    PurchasePredictor,
    as_float_array,
    check_weights,
    collapse,
    minimize_log_params,
    unique_rows,
)
from pipelines.predictive.fitters.bgnbd import validate_rft

MODEL_NAME = "Gamma-Gamma (GammaGammaModel)"
PARAM_NAMES = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"Gamma-Gamma parameter {name} must be positive and finite, got {value}"
                )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def population_mean(self) -> float:
        """E[M] = p v / (q - 1); infinite (undefined) when q <= 1."""
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
    """Gamma-Gamma log-likelihood over the given customers (all must have x >= 1, m > 0)."""
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
    ll, g = _log_likelihood(pv, _Prepared(x, m, check_weights(weights, x.size)), gradient)
    return (ll, g) if gradient else ll  # type: ignore[return-value]


class GammaGammaModel:
    """Gamma-Gamma model of average transaction value.

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
    def from_params(cls, p: float, q: float, v: float) -> Self:
        model = cls()
        model._params = GammaGammaParams(float(p), float(q), float(v))
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
        maxiter: int = 2000,
    ) -> Self:
        """Maximum-likelihood fit on customers with frequency >= 1 and monetary_value > 0.

        Money is rescaled by the mean spend during optimisation (v is scaled back), so the
        optimiser behaves the same whatever the currency unit. Raises ``ConvergenceError`` as
        BetaGeoModel.fit does; ``fit_result.seconds`` is the wall time of the whole call.
        """
        started = time.perf_counter()
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
        opt = minimize_log_params(
            MODEL_NAME,
            PARAM_NAMES,
            neg_mean_ll,
            [1.0, 2.0, 1.0],
            tol=tol,
            maxiter=maxiter,
            unscale=lambda pv: pv * np.array([1.0, 1.0, scale]),
        )
        p, q, v_s = opt.params
        self._params = GammaGammaParams(float(p), float(q), float(v_s * scale))
        ll, _ = _log_likelihood(
            np.array([p, q, v_s * scale]), _Prepared(xk, mk, wk), gradient=False
        )
        self.fit_result = FitResult(
            log_likelihood=ll,
            n_customers=round(n),
            converged=opt.converged,
            iterations=opt.iterations,
            seconds=time.perf_counter() - started,
            at_bounds=opt.at_bounds,
        )
        return self

    def predict(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray:
        """Conditional expected average transaction value E[M | x, m].

        A credibility-weighted mix of the population mean p v/(q-1) and the customer's own
        average m, with weight p x/(p x + q - 1) on m; customers with x = 0 get the population
        mean whatever m is passed for them. Repeat customers left out of the fit for a zero
        average spend get the same formula with m = 0, as in lifetimes.
        """
        prm = self.params
        if prm.q <= 1.0:
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
        m = np.where(x > 0, m, 0.0)
        return (prm.p * prm.v + prm.p * x * m) / (prm.p * x + prm.q - 1.0)


def customer_lifetime_value(
    bgnbd: PurchasePredictor,
    gg: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int,
    monthly_discount_rate: float,
    margin: float = 1.0,
    days_per_month: float = 30.0,
) -> FloatArray:
    """Discounted expected value of each customer over the next ``months`` months.

    Same sum as lifetimes' ``GammaGammaFitter.customer_lifetime_value`` (freq="D"):
    for i = 1..months,  [E X(T, T + i k) - E X(T, T + (i-1) k)] * E[M | x, m] * margin
    / (1 + d)^i,  with k = ``days_per_month`` time units per month (pass 30/7 if the purchase
    model was fitted in weeks). ``bgnbd`` is any model with the BetaGeoModel ``predict``
    signature (e.g. ParetoNBDModel). The purchase model is evaluated once per distinct
    (frequency, recency, T), so millions of customers cost little.
    """
    if int(months) != months or months < 0:
        raise ValueError("months must be a non-negative integer")
    if not monthly_discount_rate > -1.0:
        raise ValueError("monthly_discount_rate must be > -1")
    if not days_per_month > 0:
        raise ValueError("days_per_month must be positive")
    x, tx, t_cal = validate_rft(frequency, recency, T)
    m = as_float_array("monetary_value", monetary_value)
    if m.shape != x.shape:
        raise ValueError("monetary_value must have the same length as frequency")
    spend = gg.predict(x, m)

    (ux, utx, uT), group = unique_rows(x, tx, t_cal)
    discounted_purchases = np.zeros(ux.shape[0])
    previous = np.zeros(ux.shape[0])
    for i in range(1, int(months) + 1):  # loop over months, vectorised over customers
        cumulative = bgnbd.predict(i * days_per_month, ux, utx, uT)
        discounted_purchases += (cumulative - previous) / (1.0 + monthly_discount_rate) ** i
        previous = cumulative
    return margin * spend * discounted_purchases[group]
