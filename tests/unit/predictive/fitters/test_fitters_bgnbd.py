"""BG/NBD numerics: independent integration checks, gradient, weights, failures, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import hyp2f1

from pipelines.predictive.fitters.base import ConvergenceError, collapse
from pipelines.predictive.fitters.bgnbd import (
    BetaGeoModel,
    BetaGeoParams,
    log_likelihood,
    simulate_summary,
)

# Published CDNOW estimates (Fader, Hardie & Lee 2005) with alpha converted to days.
CDNOW_DAYS = BetaGeoParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)


# --- independent reference: integrate over the latent (lambda, p) -----------------------------
#
# Individual level (FHL 2005, section 2): while alive purchases are Poisson(lambda); after each
# repeat purchase the customer drops out with probability p. Given (lambda, p) the likelihood of
# (x, t_x, T) is
#   alive branch: (1-p)^x lambda^x exp(-lambda T)
#   dead branch:  [x > 0] p (1-p)^(x-1) lambda^x exp(-lambda t_x)
# and a customer alive at T makes (1 - exp(-lambda p t)) / p purchases in expectation over the
# next t. The posterior weights these by the Gamma(r, alpha) x Beta(a, b) prior. Normalising
# constants cancel in the ratios below. Everything is done with scipy.integrate.quad, using
# algebraic weights for the prior's end-point singularities (p^(a-1), lambda^(r-1)).

_QUAD = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 200}


def _over_p(prm: BetaGeoParams, f) -> float:
    """Integral over p in (0, 1) of p^(a-1) (1-p)^(b-1) f(p)."""
    return integrate.quad(f, 0.0, 1.0, weight="alg", wvar=(prm.a - 1.0, prm.b - 1.0), **_QUAD)[0]


def _over_lambda(prm: BetaGeoParams, g, scale: float) -> float:
    """Integral over lambda in (0, inf) of lambda^(r-1) exp(-alpha lambda) g(lambda).

    Split at 1/scale: the head carries lambda^(r-1) as a quadrature weight, the tail is plain.
    """
    cut = 1.0 / scale
    head = integrate.quad(
        lambda lam: math.exp(-prm.alpha * lam) * g(lam),
        0.0,
        cut,
        weight="alg",
        wvar=(prm.r - 1.0, 0.0),
        **_QUAD,
    )[0]
    tail = integrate.quad(
        lambda lam: math.exp((prm.r - 1.0) * math.log(lam) - prm.alpha * lam) * g(lam),
        cut,
        math.inf,
        **_QUAD,
    )[0]
    return head + tail


def _power_exp(lam: float, x: int, rate: float) -> float:
    """lambda^x exp(-rate lambda) without overflowing for large lambda or failing at 0."""
    if lam == 0.0:
        return 1.0 if x == 0 else 0.0
    return math.exp(x * math.log(lam) - rate * lam)


def _future_purchases_given_p(lam: float, p: float, t: float) -> float:
    return -math.expm1(-lam * p * t) / p if p > 0 else lam * t


def integrated_p_alive_and_expectation(
    prm: BetaGeoParams, x: int, tx: float, T: float, t: float
) -> tuple[float, float]:
    alive_p = _over_p(prm, lambda p: (1.0 - p) ** x)
    alive = alive_p * _over_lambda(prm, lambda lam: _power_exp(lam, x, T), prm.alpha + T)
    dead = 0.0
    if x > 0:
        dead_p = _over_p(prm, lambda p: p * (1.0 - p) ** (x - 1))
        dead = dead_p * _over_lambda(prm, lambda lam: _power_exp(lam, x, tx), prm.alpha + tx)

    def future(lam: float) -> float:
        inner = _over_p(prm, lambda p: (1.0 - p) ** x * _future_purchases_given_p(lam, p, t))
        return _power_exp(lam, x, T) * inner

    expected = _over_lambda(prm, future, prm.alpha + T)
    return alive / (alive + dead), expected / (alive + dead)


CASES = [
    # (x, t_x, T, t) in days
    (0, 0.0, 272.0, 30.0),
    (0, 0.0, 10.0, 365.0),
    (1, 30.0, 200.0, 90.0),
    (2, 213.0, 272.0, 365.0),
    (5, 100.0, 250.0, 30.0),
    (12, 250.0, 260.0, 180.0),
    (30, 255.0, 260.0, 365.0),
    (3, 20.0, 260.0, 730.0),
]


@pytest.mark.parametrize(("x", "tx", "T", "t"), CASES)
def test_p_alive_and_predict_match_numerical_integration(
    x: int, tx: float, T: float, t: float
) -> None:
    model = BetaGeoModel.from_params(**CDNOW_DAYS.as_dict())
    p_alive_ref, expected_ref = integrated_p_alive_and_expectation(CDNOW_DAYS, x, tx, T, t)
    assert model.p_alive(x, tx, T) == pytest.approx(p_alive_ref, rel=1e-6)
    assert model.predict(t, x, tx, T) == pytest.approx(expected_ref, rel=1e-6)


@pytest.mark.parametrize("t", [1.0, 30.0, 365.0, 3650.0])
def test_expected_purchases_matches_numerical_integration(t: float) -> None:
    # A new customer (x = 0, t_x = 0, T = 0) is alive with certainty.
    prm = BetaGeoParams(r=0.6, alpha=12.0, a=1.7, b=4.0)  # also a > 1
    model = BetaGeoModel.from_params(**prm.as_dict())
    _, expected_ref = integrated_p_alive_and_expectation(prm, 0, 0.0, 0.0, t)
    assert model.expected_purchases(t) == pytest.approx(expected_ref, rel=1e-6)


@pytest.mark.parametrize(
    "prm",
    [
        BetaGeoParams(r=1.924956115312648, alpha=0.4858517311283996, a=1.924956115312648, b=9.88),
        BetaGeoParams(r=0.8, alpha=5.0, a=1.0, b=3.0),  # a = 1: 0/0 in the closed form
        BetaGeoParams(r=0.3, alpha=20.0, a=0.4, b=0.6),  # a + b = 1: 2F1 pole at x = 0
        BetaGeoParams(r=1.7005, alpha=2.0, a=0.7, b=2.0),  # r - a within 1e-3 of an integer
    ],
)
@pytest.mark.parametrize(("x", "tx", "T", "t"), [(0, 0.0, 0.0, 365.0), (2, 30.0, 60.0, 3650.0)])
def test_predict_at_parameter_coincidences(
    prm: BetaGeoParams, x: int, tx: float, T: float, t: float
) -> None:
    """Where scipy's hyp2f1 returns NaN or loses digits (integer C-A-B, z near 1) or the closed
    form is 0/0, predict bridges the spot and still matches the integral."""
    model = BetaGeoModel.from_params(**prm.as_dict())
    _, expected_ref = integrated_p_alive_and_expectation(prm, x, tx, T, t)
    got = model.predict(t, x, tx, T)
    assert np.isfinite(got)
    assert got == pytest.approx(expected_ref, rel=1e-7)


def test_predict_agrees_with_the_paper_hypergeometric_form() -> None:
    """Euler-transformed 2F1 in predict == eq. (10) of FHL (2005) as printed, where it is stable."""
    prm = CDNOW_DAYS
    model = BetaGeoModel.from_params(**prm.as_dict())
    r, alpha, a, b = prm.r, prm.alpha, prm.a, prm.b
    for x, tx, T, t in CASES:
        z = t / (alpha + T + t)
        paper = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + T) / (alpha + T + t)) ** (r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1, z)
            )
            * float(model.p_alive(x, tx, T))
        )
        assert model.predict(t, x, tx, T) == pytest.approx(paper, rel=1e-9)


def test_predict_basic_properties() -> None:
    model = BetaGeoModel.from_params(**CDNOW_DAYS.as_dict())
    x = np.array([0.0, 1.0, 4.0, 10.0])
    tx = np.array([0.0, 20.0, 150.0, 270.0])
    T = np.array([100.0, 272.0, 272.0, 272.0])
    assert np.all(model.predict(0.0, x, tx, T) == 0.0)
    grid = np.array([30.0, 60.0, 365.0])
    e = model.predict(grid[:, None], x, tx, T)
    assert e.shape == (3, 4)
    assert np.all(np.diff(e, axis=0) > 0)  # more time, more purchases
    for i, t in enumerate(grid):
        np.testing.assert_allclose(e[i], model.predict(t, x, tx, T), rtol=1e-14)
    np.testing.assert_allclose(
        model.expected_purchases(grid), model.predict(grid, 0.0, 0.0, 0.0), rtol=1e-14
    )
    assert np.all((model.p_alive(x, tx, T) > 0) & (model.p_alive(x, tx, T) <= 1))
    assert model.p_alive(0, 0, 272) == 1.0


def test_heavy_buyers_stay_finite() -> None:
    """The paper's 2F1(r+x, b+x; ...) overflows for large x; the transformed form does not."""
    model = BetaGeoModel.from_params(**CDNOW_DAYS.as_dict())
    e = model.predict(3650.0, np.array([100.0, 400.0, 1000.0]), 259.0, 260.0)
    assert np.all(np.isfinite(e)) and np.all(np.diff(e) > 0)


# --- log-likelihood and fitting ----------------------------------------------------------------


def _simulated(n: int, seed: int, prm: BetaGeoParams = CDNOW_DAYS):
    rng = np.random.default_rng(seed)
    T = rng.uniform(30.0, 400.0, n)
    return simulate_summary(prm, T, rng)


def test_gradient_matches_finite_differences() -> None:
    x, tx, T = _simulated(400, seed=1)
    w = np.random.default_rng(2).integers(1, 5, x.size)
    for point in ([0.4, 15.0, 0.9, 2.5], [2.0, 60.0, 0.3, 8.0], [0.243, 30.9, 0.793, 2.426]):
        p = np.array(point)
        _, grad = log_likelihood(p, x, tx, T, w, gradient=True)
        fd = np.empty(4)
        for i in range(4):
            h = 1e-6 * p[i]
            up, down = p.copy(), p.copy()
            up[i] += h
            down[i] -= h
            fd[i] = (log_likelihood(up, x, tx, T, w) - log_likelihood(down, x, tx, T, w)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_log_likelihood_single_customer_by_hand() -> None:
    r, alpha, a, b = 0.5, 10.0, 0.8, 2.0
    x, tx, T = 3, 40.0, 100.0
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    beta_ratio = math.gamma(a + b) * math.gamma(b + x) / (math.gamma(b) * math.gamma(a + b + x))
    by_hand = math.log(
        common * beta_ratio * (alpha + T) ** -(r + x)
        + common * beta_ratio * a / (b + x - 1) * (alpha + tx) ** -(r + x)
    )
    assert log_likelihood([r, alpha, a, b], [x], [tx], [T]) == pytest.approx(by_hand, rel=1e-12)
    # x = 0: only the alive branch, (alpha / (alpha + T))^r.
    assert log_likelihood([r, alpha, a, b], [0], [0], [T]) == pytest.approx(
        r * math.log(alpha / (alpha + T)), rel=1e-12
    )


def test_weighted_log_likelihood_equals_expanded_rows() -> None:
    x, tx, T = _simulated(300, seed=3)
    w = np.random.default_rng(4).integers(0, 6, x.size)
    p = [0.3, 25.0, 0.7, 2.0]
    expanded = [np.repeat(v, w) for v in (x, tx, T)]
    assert log_likelihood(p, x, tx, T, w) == pytest.approx(log_likelihood(p, *expanded), rel=1e-12)


def test_fit_on_collapsed_rows_with_weights_equals_fit_on_expanded_rows() -> None:
    rng = np.random.default_rng(5)
    x, tx, T = _simulated(3000, seed=5)
    # Whole days, as in the pipeline, so that many customers share a row.
    tx, T = np.floor(tx), np.ceil(T)
    expanded = BetaGeoModel().fit(x, tx, T)
    ux, utx, uT, w = collapse(x, tx, T)
    assert ux.size < x.size and w.dtype == np.int64 and w.sum() == x.size
    weighted = BetaGeoModel().fit(ux, utx, uT, weights=w)
    # Same multiset of rows in a shuffled order with duplicates split across weights.
    order = rng.permutation(x.size)
    share = rng.uniform(0.0, 1.0, x.size)  # each customer's weight 1 split over two copies
    dup = BetaGeoModel().fit(
        np.concatenate([x[order], x]),
        np.concatenate([tx[order], tx]),
        np.concatenate([T[order], T]),
        weights=np.concatenate([share[order], 1.0 - share]),
    )
    for other in (weighted, dup):
        for name in ("r", "alpha", "a", "b"):
            assert getattr(other.params, name) == pytest.approx(
                getattr(expanded.params, name), rel=1e-6
            )
    assert weighted.fit_result is not None and expanded.fit_result is not None
    assert weighted.fit_result.n_customers == expanded.fit_result.n_customers == 3000
    assert weighted.fit_result.log_likelihood == pytest.approx(
        expanded.fit_result.log_likelihood, rel=1e-9
    )


@pytest.mark.slow
def test_fit_recovers_simulated_parameters() -> None:
    truth = BetaGeoParams(r=0.5, alpha=20.0, a=0.9, b=3.0)
    x, tx, T = _simulated(60_000, seed=6, prm=truth)
    fitted = BetaGeoModel().fit(x, tx, T).params
    assert fitted.r == pytest.approx(truth.r, rel=0.08)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.10)
    assert fitted.a == pytest.approx(truth.a, rel=0.20)
    assert fitted.b == pytest.approx(truth.b, rel=0.25)


def test_maxiter_1_raises_convergence_error_naming_the_model() -> None:
    x, tx, T = _simulated(500, seed=7)
    with pytest.raises(ConvergenceError, match=r"BG/NBD") as info:
        BetaGeoModel().fit(x, tx, T, maxiter=1)
    err = info.value
    assert "did not converge" in str(err) and "r=" in str(err) and "alpha=" in str(err)
    assert set(err.params) == {"r", "alpha", "a", "b"}
    assert err.result is not None and err.result.converged is False


def test_nobody_repeats_raises_instead_of_returning_unidentified_parameters() -> None:
    # With every frequency 0 the likelihood (alpha / (alpha + T))^r creeps to 1 as r -> 0 and
    # does not depend on a or b at all.
    T = np.linspace(10.0, 300.0, 200)
    zeros = np.zeros_like(T)
    with pytest.raises(ConvergenceError, match=r"BG/NBD.*do not identify") as info:
        BetaGeoModel().fit(zeros, zeros, T)
    assert {"a", "b"} <= set(info.value.reason.split("flat in ")[1].split(" at")[0].split(", "))
    # A single repeat customer is not enough either.
    x = zeros.copy()
    tx = zeros.copy()
    x[0], tx[0] = 1.0, 5.0
    with pytest.raises(ConvergenceError, match=r"BG/NBD"):
        BetaGeoModel().fit(x, tx, T)


@pytest.mark.parametrize(
    ("x", "tx", "T", "message"),
    [
        ([1.0, 2.0], [5.0, 10.0], [4.0, 20.0], "recency must not exceed T"),
        ([0.0, 2.0], [3.0, 10.0], [4.0, 20.0], "recency must be 0"),
        ([1.5, 2.0], [3.0, 10.0], [4.0, 20.0], "non-negative integers"),
        ([-1.0, 2.0], [0.0, 10.0], [4.0, 20.0], "non-negative integers"),
        ([1.0, np.nan], [3.0, 10.0], [4.0, 20.0], "NaN"),
        ([1.0, 2.0], [3.0], [4.0, 20.0], "same length"),
    ],
)
def test_fit_rejects_inconsistent_summaries(x, tx, T, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BetaGeoModel().fit(x, tx, T)


def test_unfitted_model_and_bad_parameters() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        BetaGeoModel().p_alive(1, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        BetaGeoModel.from_params(r=0.2, alpha=-1.0, a=0.5, b=1.0)
    model = BetaGeoModel.from_params(r=0.2, alpha=10.0, a=0.5, b=1.0)
    assert model.fit_result is None
    assert model.params.as_dict() == {"r": 0.2, "alpha": 10.0, "a": 0.5, "b": 1.0}
