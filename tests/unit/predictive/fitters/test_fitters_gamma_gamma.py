"""Gamma-Gamma spend model and the BG/NBD + Gamma-Gamma CLV."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import hyp2f1

from pipelines.predictive.fitters.base import ConvergenceError
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.gamma_gamma import (
    GammaGammaModel,
    GammaGammaParams,
    customer_lifetime_value,
    log_likelihood,
)

# Published CDNOW estimates: Fader & Hardie (2013) Gamma-Gamma; FHL (2005) BG/NBD in days.
GG_CDNOW = GammaGammaParams(p=6.25, q=3.74, v=15.44)
BG_CDNOW_DAYS = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}


def _simulate_spend(prm: GammaGammaParams, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean of x transaction values, each Gamma(p, rate nu), nu ~ Gamma(q, rate v) per customer.

    The mean of x such values is Gamma(p x, rate nu x); customers with x = 0 get 0.
    """
    nu = rng.gamma(prm.q, 1.0 / prm.v, x.size)
    m = np.zeros(x.size)
    rep = x > 0
    m[rep] = rng.gamma(prm.p * x[rep], 1.0 / (nu[rep] * x[rep]))
    return m


# --- likelihood ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "m"), [(1, 12.5), (3, 40.0), (10, 7.3)])
def test_likelihood_equals_integral_over_nu(x: int, m: float) -> None:
    """exp(LL) for one customer = integral over nu of Gamma(px, rate x nu)(m) Gamma(q, rate v)(nu)."""
    prm = GG_CDNOW

    def integrand(nu: float) -> float:
        return stats.gamma.pdf(m, prm.p * x, scale=1.0 / (x * nu)) * stats.gamma.pdf(
            nu, prm.q, scale=1.0 / prm.v
        )

    ref = integrate.quad(integrand, 0.0, math.inf, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    assert log_likelihood(prm, [x], [m]) == pytest.approx(math.log(ref), rel=1e-9)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(1, 15, 400).astype(float)
    m = _simulate_spend(GG_CDNOW, x, rng)
    w = rng.integers(1, 4, 400)
    for point in ([6.25, 3.74, 15.44], [1.0, 2.0, 1.0], [20.0, 8.0, 300.0]):
        p = np.array(point)
        _, grad = log_likelihood(p, x, m, w, gradient=True)
        fd = np.empty(3)
        for i in range(3):
            h = 1e-6 * p[i]
            up, down = p.copy(), p.copy()
            up[i] += h
            down[i] -= h
            fd[i] = (log_likelihood(up, x, m, w) - log_likelihood(down, x, m, w)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6)


# --- fitting -------------------------------------------------------------------------------------


def test_fit_reports_exclusions_and_matches_expanded_weights() -> None:
    rng = np.random.default_rng(12)
    x = rng.poisson(1.5, 2000).astype(float)
    m = np.round(_simulate_spend(GG_CDNOW, x, rng), 2)
    m[:20] = np.where(x[:20] > 0, 0.0, m[:20])  # some repeat customers with zero spend
    w = rng.integers(1, 4, x.size)
    weighted = GammaGammaModel().fit(x, m, weights=w)
    expanded = GammaGammaModel().fit(np.repeat(x, w), np.repeat(m, w))

    no_repeat = int(w[x == 0].sum())
    zero_spend = int(w[(x > 0) & (m <= 0)].sum())
    assert zero_spend > 0
    assert weighted.exclusions == {
        "no_repeat_purchase": no_repeat,
        "non_positive_monetary_value": zero_spend,
    }
    assert weighted.n_excluded == no_repeat + zero_spend
    assert weighted.fit_result is not None
    assert weighted.fit_result.n_customers == int(w.sum()) - no_repeat - zero_spend
    assert expanded.exclusions == weighted.exclusions
    for name in ("p", "q", "v"):
        assert getattr(weighted.params, name) == pytest.approx(
            getattr(expanded.params, name), rel=1e-6
        )


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(13)
    x = rng.integers(1, 8, 40_000).astype(float)
    m = _simulate_spend(GG_CDNOW, x, rng)
    fitted = GammaGammaModel().fit(x, m).params
    assert fitted.p == pytest.approx(GG_CDNOW.p, rel=0.05)
    assert fitted.q == pytest.approx(GG_CDNOW.q, rel=0.05)
    assert fitted.v == pytest.approx(GG_CDNOW.v, rel=0.08)


def test_money_unit_only_rescales_v() -> None:
    rng = np.random.default_rng(14)
    x = rng.integers(1, 8, 3000).astype(float)
    m = _simulate_spend(GG_CDNOW, x, rng)
    dollars = GammaGammaModel().fit(x, m).params
    cents = GammaGammaModel().fit(x, 100.0 * m).params
    assert cents.p == pytest.approx(dollars.p, rel=1e-6)
    assert cents.q == pytest.approx(dollars.q, rel=1e-6)
    assert cents.v == pytest.approx(100.0 * dollars.v, rel=1e-6)


def test_maxiter_1_raises_convergence_error_naming_the_model() -> None:
    rng = np.random.default_rng(15)
    x = rng.integers(1, 8, 500).astype(float)
    m = _simulate_spend(GG_CDNOW, x, rng)
    with pytest.raises(ConvergenceError, match=r"Gamma-Gamma .*did not converge.*p=.*q=.*v="):
        GammaGammaModel().fit(x, m, maxiter=1)


def test_nothing_to_fit_is_an_error() -> None:
    with pytest.raises(ValueError, match="no customer has frequency >= 1"):
        GammaGammaModel().fit([0, 0, 3], [0.0, 0.0, 0.0])


# --- prediction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "m"), [(1, 12.5), (3, 40.0), (10, 7.3), (25, 120.0)])
def test_predict_matches_posterior_mean_by_integration(x: int, m: float) -> None:
    """E[M | x, m] = E[p / nu | m], nu's posterior ~ likelihood of m x Gamma(q, rate v) prior."""
    prm = GG_CDNOW

    def posterior(nu: float) -> float:
        return stats.gamma.pdf(m, prm.p * x, scale=1.0 / (x * nu)) * stats.gamma.pdf(
            nu, prm.q, scale=1.0 / prm.v
        )

    quad = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 200}
    num = integrate.quad(lambda nu: prm.p / nu * posterior(nu), 0.0, math.inf, **quad)[0]
    den = integrate.quad(posterior, 0.0, math.inf, **quad)[0]
    model = GammaGammaModel.from_params(**prm.as_dict())
    assert model.predict(x, m) == pytest.approx(num / den, rel=1e-8)


def test_predict_without_repeats_is_the_population_mean() -> None:
    model = GammaGammaModel.from_params(**GG_CDNOW.as_dict())
    mean = GG_CDNOW.p * GG_CDNOW.v / (GG_CDNOW.q - 1)
    np.testing.assert_allclose(model.predict([0, 0], [0.0, 99.0]), [mean, mean], rtol=1e-15)
    # Many repeats: the customer's own average dominates.
    assert model.predict(10_000, 50.0) == pytest.approx(50.0, rel=1e-3)


def test_predict_needs_q_above_one() -> None:
    with pytest.raises(ValueError, match="q"):
        GammaGammaModel.from_params(p=2.0, q=0.9, v=10.0).predict(1, 10.0)


# --- CLV -----------------------------------------------------------------------------------------


def _plain_clv(
    bg: dict[str, float],
    gg: GammaGammaParams,
    x: float,
    tx: float,
    T: float,
    m: float,
    months: int,
    d: float,
    margin: float,
) -> float:
    """The lifetimes recipe written out for one customer, with FHL (2005) eqs. (10), (11) as printed."""
    r, alpha, a, b = bg["r"], bg["alpha"], bg["a"], bg["b"]
    if x > 0:
        p_alive = 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x))
    else:
        p_alive = 1.0

    def expected_purchases(t: float) -> float:
        z = t / (alpha + T + t)
        power = ((alpha + T) / (alpha + T + t)) ** (r + x)
        return (
            (a + b + x - 1) / (a - 1) * (1 - power * hyp2f1(r + x, b + x, a + b + x - 1, z))
        ) * p_alive

    spend = (gg.q - 1) / (gg.p * x + gg.q - 1) * (gg.v * gg.p / (gg.q - 1)) + (gg.p * x) / (
        gg.p * x + gg.q - 1
    ) * (m if x > 0 else 0.0)
    total = 0.0
    for i in range(1, months + 1):
        purchases = expected_purchases(30.0 * i) - expected_purchases(30.0 * (i - 1))
        total += margin * spend * purchases / (1 + d) ** i
    return total


def test_clv_matches_plain_per_customer_loop() -> None:
    bg = BetaGeoModel.from_params(**BG_CDNOW_DAYS)
    gg = GammaGammaModel.from_params(**GG_CDNOW.as_dict())
    customers = [  # (x, t_x, T, m)
        (0, 0.0, 272.0, 0.0),
        (2, 213.0, 272.0, 29.5),
        (1, 30.0, 200.0, 14.96),
        (7, 250.0, 265.0, 41.2),
        (2, 213.0, 272.0, 29.5),  # duplicate row: must get the same value
    ]
    x, tx, T, m = (np.array(c, dtype=float) for c in zip(*customers, strict=True))
    clv = customer_lifetime_value(
        bg, gg, x, tx, T, m, months=12, monthly_discount_rate=0.01, margin=0.3
    )
    expected = [
        _plain_clv(BG_CDNOW_DAYS, GG_CDNOW, *c, months=12, d=0.01, margin=0.3) for c in customers
    ]
    np.testing.assert_allclose(clv, expected, rtol=1e-9)
    assert clv[1] == clv[4] and np.all(clv > 0)


def test_clv_without_discounting_is_spend_times_expected_purchases() -> None:
    bg = BetaGeoModel.from_params(**BG_CDNOW_DAYS)
    gg = GammaGammaModel.from_params(**GG_CDNOW.as_dict())
    x, tx, T, m = (
        np.array([3.0, 0.0]),
        np.array([100.0, 0.0]),
        np.array([250.0, 90.0]),
        np.array([20.0, 0.0]),
    )
    clv = customer_lifetime_value(bg, gg, x, tx, T, m, months=24, monthly_discount_rate=0.0)
    np.testing.assert_allclose(clv, gg.predict(x, m) * bg.predict(720.0, x, tx, T), rtol=1e-12)
    zero = customer_lifetime_value(bg, gg, x, tx, T, m, months=0, monthly_discount_rate=0.01)
    assert np.all(zero == 0.0)


def test_clv_with_a_model_fitted_in_weeks() -> None:
    """days_per_month converts months into the purchase model's time unit."""
    gg = GammaGammaModel.from_params(**GG_CDNOW.as_dict())
    in_days = BetaGeoModel.from_params(**BG_CDNOW_DAYS)
    in_weeks = BetaGeoModel.from_params(**{**BG_CDNOW_DAYS, "alpha": BG_CDNOW_DAYS["alpha"] / 7})
    x, tx, T, m = np.array([4.0]), np.array([140.0]), np.array([266.0]), np.array([33.0])
    days = customer_lifetime_value(in_days, gg, x, tx, T, m, months=6, monthly_discount_rate=0.02)
    weeks = customer_lifetime_value(
        in_weeks,
        gg,
        x,
        tx / 7,
        T / 7,
        m,
        months=6,
        monthly_discount_rate=0.02,
        days_per_month=30.0 / 7.0,
    )
    np.testing.assert_allclose(weeks, days, rtol=1e-12)
