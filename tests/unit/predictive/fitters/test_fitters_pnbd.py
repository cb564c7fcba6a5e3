"""Pareto/NBD: the published CDNOW fit, the likelihood at 50 digits, the predictions against
integrals over the posterior, recovery of simulated parameters and the failure modes."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import polars as pl
import pytest
from scipy import integrate
from scipy.special import gammaln

from pipelines.predictive.fitters.base import ConvergenceError
from pipelines.predictive.fitters.pnbd import ParetoNBDModel, ParetoNBDParams, log_likelihood

# Fader, Hardie & Lee (2005), "A Note on Deriving the Pareto/NBD Model and Related
# Expressions" / Fader & Hardie's Pareto/NBD spreadsheet note: CDNOW sample, 39-week
# calibration, time in weeks.
PUBLISHED_WEEKS = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PUBLISHED_LL_WEEKS = -9595.0


def _weeks(summary: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, tx, T = (summary[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T"))
    return x, tx / 7.0, T / 7.0


def test_cdnow_reproduces_the_published_fit(cdnow_summary_days: pl.DataFrame) -> None:
    x, tx, T = _weeks(cdnow_summary_days)
    model = ParetoNBDModel().fit(x, tx, T)
    got = {k: f"{v:.3g}" for k, v in model.params.as_dict().items()}
    assert got == {k: f"{v:.3g}" for k, v in PUBLISHED_WEEKS.items()}
    assert model.fit_result is not None
    assert f"{model.fit_result.log_likelihood:.5g}" == f"{PUBLISHED_LL_WEEKS:.5g}"
    # the likelihood at the published (rounded) parameters is no better than our optimum
    assert log_likelihood(ParetoNBDParams(**PUBLISHED_WEEKS), x, tx, T) <= (
        model.fit_result.log_likelihood + 1e-9
    )


def test_fit_in_days_is_the_fit_in_weeks_rescaled(cdnow_summary_days: pl.DataFrame) -> None:
    x, tx, T = _weeks(cdnow_summary_days)
    weeks = ParetoNBDModel().fit(x, tx, T).params
    days = ParetoNBDModel().fit(x, tx * 7, T * 7).params
    assert days.r == pytest.approx(weeks.r, rel=1e-5)
    assert days.s == pytest.approx(weeks.s, rel=1e-5)
    assert days.alpha / 7 == pytest.approx(weeks.alpha, rel=1e-5)
    assert days.beta / 7 == pytest.approx(weeks.beta, rel=1e-5)


def mp_log_likelihood(p: ParetoNBDParams, x: float, tx: float, T: float) -> float:
    """Fader & Hardie (2005) eq. (22) with the A_0 of eqs. (20)-(21), at 50 digits."""
    with mpmath.workdps(50):
        r, alpha, s, beta = (mpmath.mpf(v) for v in (p.r, p.alpha, p.s, p.beta))
        x_, tx_, T_ = mpmath.mpf(x), mpmath.mpf(tx), mpmath.mpf(T)
        rsx = r + s + x_
        if alpha >= beta:
            big, second = alpha, s + 1
        else:
            big, second = beta, r + x_

        def f(t: mpmath.mpf) -> mpmath.mpf:
            z = abs(alpha - beta) / (big + t)
            return mpmath.hyp2f1(rsx, second, rsx + 1, z) / (big + t) ** rsx

        a0 = f(tx_) - f(T_)
        first = 1 / ((alpha + T_) ** (r + x_) * (beta + T_) ** s)
        lead = mpmath.loggamma(r + x_) - mpmath.loggamma(r) + r * mpmath.log(alpha)
        return float(lead + s * mpmath.log(beta) + mpmath.log(first + s / rsx * a0))


HARD_CUSTOMERS = [
    # (params, x, t_x, T): ordinary, alpha < beta, alpha >> beta, beta >> alpha, many purchases
    (ParetoNBDParams(0.55, 10.6, 0.61, 11.7), 2, 30.4, 38.9),
    (ParetoNBDParams(0.55, 10.6, 0.61, 11.7), 0, 0.0, 20.0),
    (ParetoNBDParams(2.0, 300.0, 0.4, 0.5), 5, 10.0, 60.0),
    (ParetoNBDParams(0.3, 0.2, 3.0, 500.0), 1, 3.0, 70.0),
    (ParetoNBDParams(5.0, 1.0, 50.0, 2.0), 50, 0.5, 1.0),
    (ParetoNBDParams(0.9, 5.0, 0.2, 40.0), 120, 200.0, 200.5),
    (ParetoNBDParams(1.0, 1000.0, 1.0, 0.01), 0, 0.0, 365.0),
]


@pytest.mark.parametrize(("p", "x", "tx", "T"), HARD_CUSTOMERS)
def test_log_likelihood_matches_50_digit_evaluation(
    p: ParetoNBDParams, x: float, tx: float, T: float
) -> None:
    got = log_likelihood(p, [x], [tx], [T])
    assert got == pytest.approx(mp_log_likelihood(p, x, tx, T), rel=1e-10, abs=1e-10)


def _gamma_pdf(v: float, shape: float, rate: float) -> float:
    return math.exp(shape * math.log(rate) - gammaln(shape) + (shape - 1) * math.log(v) - rate * v)


def integrated_pnbd(
    p: ParetoNBDParams, x: float, tx: float, T: float, t: float
) -> dict[str, float]:
    """P(alive), E[purchases in (T, T+t]], P(a purchase in (T, T+t]) and P(alive at T+t) by
    one-dimensional quadrature over the latent rates, from the model's story alone
    (Schmittlein, Morrison & Colombo 1987): lambda ~ Gamma(r, alpha), mu ~ Gamma(s, beta)."""
    quad = lambda f, lo, hi: integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=500)[0]  # noqa: E731
    r, alpha, s, beta = p.r, p.alpha, p.s, p.beta

    def e_lam(tau: float) -> float:  # E_lambda[lambda^x e^(-lambda tau)] / Gamma-constant
        return math.exp(
            gammaln(r + x) - gammaln(r) + r * math.log(alpha) - (r + x) * math.log(alpha + tau)
        )

    def e_mu_density(tau: float) -> float:  # E_mu[mu e^(-mu tau)]
        return s / beta * (beta / (beta + tau)) ** (s + 1)

    alive = e_lam(T) * (beta / (beta + T)) ** s  # E_mu[e^(-mu T)]
    dead = quad(lambda tau: e_lam(tau) * e_mu_density(tau), tx, T) if tx < T else 0.0
    p_alive = alive / (alive + dead)
    # alive at T: lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T), independent
    shape_l, rate_l, rate_m = r + x, alpha + T, beta + T

    def if_alive(mu: float) -> float:
        return (-math.expm1(-mu * t) / mu) * _gamma_pdf(mu, s, rate_m)

    hi = (s + 60 * math.sqrt(s) + 60) / rate_m
    expected = p_alive * shape_l / rate_l * quad(if_alive, 0, hi)
    within = quad(
        lambda u: (
            shape_l
            / rate_l
            * (rate_l / (rate_l + u)) ** (shape_l + 1)
            * (rate_m / (rate_m + u)) ** s
        ),
        0,
        t,
    )
    survive = quad(lambda mu: math.exp(-mu * t) * _gamma_pdf(mu, s, rate_m), 0, hi)
    return {
        "p_alive": p_alive,
        "expected": expected,
        "within": p_alive * within,
        "alive_at": p_alive * survive,
    }


@pytest.mark.parametrize(("p", "x", "tx", "T"), HARD_CUSTOMERS[:5])
def test_predictions_match_integrals_over_the_posterior(
    p: ParetoNBDParams, x: float, tx: float, T: float
) -> None:
    model = ParetoNBDModel.from_params(**p.as_dict())
    for t in (1.0, 13.0, 90.0):
        want = integrated_pnbd(p, x, tx, T, t)
        assert float(model.p_alive(x, tx, T)) == pytest.approx(want["p_alive"], rel=1e-8)
        assert float(model.predict(t, x, tx, T)) == pytest.approx(want["expected"], rel=1e-7)
        within = float(model.p_purchase_within(t, x, tx, T))
        assert within == pytest.approx(want["within"], rel=1e-7, abs=1e-14)
        alive_at = float(model.p_alive_at(t, x, tx, T))
        assert alive_at == pytest.approx(want["alive_at"], rel=1e-7)


def test_unconditional_expectation_matches_an_integral() -> None:
    p = ParetoNBDParams(0.55, 10.6, 0.61, 11.7)
    model = ParetoNBDModel.from_params(**p.as_dict())
    for t in (4.0, 39.0, 78.0):
        want = integrate.quad(
            lambda mu, t=t: (
                p.r / p.alpha * (-math.expm1(-mu * t) / mu) * _gamma_pdf(mu, p.s, p.beta)
            ),
            0,
            np.inf,
            epsrel=1e-12,
        )[0]
        assert float(model.expected_purchases(t)) == pytest.approx(want, rel=1e-8)


def test_s_equal_to_one_is_the_limit_of_its_neighbours() -> None:
    """(1 - q^(s-1)) / (s - 1) has the limit -ln q at s = 1; no 0/0 there."""
    x, tx, T = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([30.0, 30.0])

    def predict(s: float) -> np.ndarray:
        return ParetoNBDModel.from_params(0.8, 9.0, s, 12.0).predict(39.0, x, tx, T)

    np.testing.assert_allclose(
        predict(1.0), 0.5 * (predict(1 - 1e-6) + predict(1 + 1e-6)), rtol=1e-9
    )


def simulate(p: ParetoNBDParams, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """(x, t_x, T) of customers drawn from the model: T ~ U(20, 40), death ~ Exp(mu), times
    rounded to whole units."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(p.r, 1.0 / p.alpha, n)
    mu = rng.gamma(p.s, 1.0 / p.beta, n)
    T = rng.uniform(20.0, 40.0, n).round()
    end = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * end).astype(np.float64)
    # the last of x uniform purchase times on (0, end) is end * U^(1/x)
    tx = np.where(x > 0, end * rng.uniform(size=n) ** (1.0 / np.maximum(x, 1.0)), 0.0)
    return x, np.minimum(tx.round(), T), T  # whole time units, as days are: rows collapse


def test_recovers_simulated_parameters() -> None:
    truth = ParetoNBDParams(0.8, 6.0, 1.2, 20.0)
    x, tx, T = simulate(truth, 40_000, seed=3)
    model = ParetoNBDModel().fit(x, tx, T)
    fit = model.params
    assert fit.r / fit.alpha == pytest.approx(truth.r / truth.alpha, rel=0.05)
    assert fit.r == pytest.approx(truth.r, rel=0.15)
    assert fit.s / fit.beta == pytest.approx(truth.s / truth.beta, rel=0.15)
    # and the fitted model beats the truth on its own data (it is the maximum)
    assert model.log_likelihood(x, tx, T) >= log_likelihood(truth, x, tx, T)


def test_warm_start_reaches_the_same_optimum(cdnow_summary_days: pl.DataFrame) -> None:
    x, tx, T = _weeks(cdnow_summary_days)
    cold = ParetoNBDModel().fit(x, tx, T)
    warm = ParetoNBDModel().fit(x, tx, T, initial=cold.params.as_dict())
    assert cold.fit_result is not None and warm.fit_result is not None
    assert warm.fit_result.log_likelihood == pytest.approx(cold.fit_result.log_likelihood, abs=1e-6)
    assert warm.fit_result.iterations < cold.fit_result.iterations
    with pytest.raises(ValueError, match="unknown initial"):
        ParetoNBDModel().fit(x, tx, T, initial={"gamma": 1.0})


def test_weights_are_repeated_rows() -> None:
    x, tx, T = simulate(ParetoNBDParams(0.8, 6.0, 1.2, 20.0), 3000, seed=5)
    w = np.arange(3000) % 3 + 1.0
    weighted = ParetoNBDModel().fit(x, tx, T, weights=w).params.as_dict()
    repeated = ParetoNBDModel().fit(*(np.repeat(v, w.astype(int)) for v in (x, tx, T)))
    for k, v in repeated.params.as_dict().items():
        assert weighted[k] == pytest.approx(v, rel=1e-4)


def test_nobody_repeats_is_a_convergence_error_not_a_fit() -> None:
    T = np.linspace(5.0, 40.0, 200)
    with pytest.raises(ConvergenceError, match="Pareto/NBD"):
        ParetoNBDModel().fit(np.zeros(200), np.zeros(200), T)


def test_unfitted_model_and_bad_params_are_clear_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ParetoNBDModel().p_alive([1], [2], [3])
    with pytest.raises(ValueError, match="parameter s"):
        ParetoNBDParams(1.0, 1.0, -1.0, 1.0)
