"""Boundary-aware fitting: data built to put the likelihood's maximum on a boundary.

- Gamma-Gamma without spend heterogeneity: q, v -> inf with v/q = c (pooled-spend limit).
- BG/NBD without dropout (NBD limit), without rate heterogeneity (BG/Poisson) or neither
  (Poisson).
- Regular data still give interior fits; the iteration budget still forces a failure.

Every limit estimate is checked against an independent computation written here (scipy.stats
densities, scipy.optimize on the limit likelihood, numerical integration over the latent p).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import integrate, optimize, stats
from scipy.special import gammaln

from pipelines.predictive.fitters import gg_limit
from pipelines.predictive.fitters.base import ConvergenceError
from pipelines.predictive.fitters.bg_params import BetaGeoParams
from pipelines.predictive.fitters.bgnbd import BetaGeoModel, simulate_summary
from pipelines.predictive.fitters.bgnbd import log_likelihood as bg_log_likelihood
from pipelines.predictive.fitters.gamma_gamma import (
    GammaGammaModel,
    GammaGammaParams,
    customer_lifetime_value,
)
from pipelines.predictive.fitters.gamma_gamma import log_likelihood as gg_log_likelihood

# --- data ----------------------------------------------------------------------------------------


def _pooled_gamma_spend(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Every customer's transactions iid Gamma(3, scale 20): the mean of x is Gamma(3x, 20/x)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 10, n).astype(float)
    return x, rng.gamma(3.0 * x, 20.0 / x)


def _uniform_export_spend(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Like the export that crashed: ~2,000 orders of 393 customers, values uniform on (5, 300)."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(4.1, 393).astype(float)
    m = np.array([rng.uniform(5.0, 300.0, int(k)).mean() if k > 0 else 0.0 for k in x])
    return x, m


def _no_dropout(
    seed: int, n: int, r: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson purchases with Gamma(r, alpha) rates in whole days; nobody ever drops out."""
    rng = np.random.default_rng(seed)
    T = np.ceil(rng.uniform(30.0, 400.0, n))
    lam = rng.gamma(r, 1.0 / alpha, n)
    x = rng.poisson(lam * T)
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1.0), 0.0)  # last of x uniforms
    return x.astype(float), tx, T


# --- Gamma-Gamma: pooled-spend limit -------------------------------------------------------------


def _independent_limit_fit(x: np.ndarray, m: np.ndarray) -> tuple[float, float, float]:
    """ML of m ~ Gamma(p x, scale c / x) by Nelder-Mead on scipy.stats densities."""

    def nll(theta: np.ndarray) -> float:
        p, c = np.exp(theta)
        return -float(stats.gamma.logpdf(m, p * x, scale=c / x).sum())

    start = np.log([2.0, float(m.mean()) / 2.0])
    res = optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000}
    )
    p, c = np.exp(res.x)
    return float(p), float(c), -float(res.fun)


@pytest.mark.parametrize(
    "data", [_pooled_gamma_spend(1), _uniform_export_spend(0), _uniform_export_spend(3)]
)
def test_gamma_gamma_without_heterogeneity_fits_the_pooled_limit(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, m = data
    gg = GammaGammaModel().fit(x, m)  # no exception
    res, prm = gg.fit_result, gg.params
    assert res is not None and res.boundary is not None
    assert res.boundary.startswith("no spend heterogeneity between customers: q, v -> inf")
    assert res.converged and res.at_bounds == ["q", "v"]
    assert prm.is_limit and math.isinf(prm.q) and math.isinf(prm.v)
    c = prm.v_over_q
    assert c is not None

    used = x > 0
    xu, mu = x[used], m[used]
    # Closed form: p c is the transaction-weighted mean spend, whatever p is.
    pooled = float((xu * mu).sum() / xu.sum())
    assert prm.population_mean == pytest.approx(pooled, rel=1e-12)
    assert f"pooled mean {pooled:.6g}" in res.boundary and f"v/q = {c:.6g}" in res.boundary
    np.testing.assert_allclose(gg.predict(x, m), pooled, rtol=1e-12)
    np.testing.assert_allclose(gg.predict([0, 3, 50], [0.0, 1.0, 1e4]), pooled, rtol=1e-12)

    # ML estimates and log-likelihood against an independent optimisation of the limit.
    p_ref, c_ref, ll_ref = _independent_limit_fit(xu, mu)
    assert prm.p == pytest.approx(p_ref, rel=1e-5)
    assert c == pytest.approx(c_ref, rel=1e-5)
    assert res.log_likelihood == pytest.approx(ll_ref, abs=1e-6)
    assert gg_log_likelihood(prm, xu, mu) == pytest.approx(res.log_likelihood, rel=1e-12)

    # The regular likelihood along the ray (p, q, q c) climbs to the limit's, O(1/q) below it.
    # (The regular likelihood adds terms like n q log v: at q = 1e7 its rounding error is
    # ~1e-5, hence the tolerances below.)
    ray = [gg_log_likelihood([prm.p, q, q * c], xu, mu) for q in 10.0 ** np.arange(2, 8)]
    gaps = res.log_likelihood - np.array(ray)
    assert np.all(gaps > -1e-4)
    assert abs(gaps[-1]) < 1e-3 and abs(gaps[-1]) < abs(gaps[2]) < abs(gaps[0])
    # ... and an independent interior search finds nothing better than the limit.
    best_interior = -math.inf
    for start in ([1.0, 2.0, 1.0], [3.0, 10.0, 200.0], [prm.p, 1e3, 1e3 * c]):

        def nll(theta: np.ndarray) -> float:
            return -float(gg_log_likelihood(np.exp(theta), xu, mu))

        fit = optimize.minimize(nll, np.log(start), method="Nelder-Mead", options={"maxiter": 4000})
        best_interior = max(best_interior, -float(fit.fun))
    assert best_interior <= res.log_likelihood + 1e-3


def test_pooled_limit_with_single_transactions_is_scipys_gamma_fit() -> None:
    """With x = 1 for everyone the limit is an iid Gamma sample: scipy.stats.gamma.fit."""
    rng = np.random.default_rng(21)
    m = rng.gamma(2.5, 40.0, 600)
    fit = gg_limit.fit_pooled_spend(np.ones(600), m, np.ones(600), max_iterations=200)
    assert fit is not None
    shape, loc, scale = stats.gamma.fit(m, floc=0.0)
    assert loc == 0.0
    assert fit.p == pytest.approx(shape, rel=1e-6)
    assert fit.c == pytest.approx(scale, rel=1e-6)
    assert fit.log_likelihood == pytest.approx(
        float(stats.gamma.logpdf(m, shape, scale=scale).sum()), abs=1e-6
    )


def test_heterogeneity_score_is_the_derivative_in_one_over_q() -> None:
    x, m = _pooled_gamma_spend(1)
    w = np.ones_like(x)
    fit = gg_limit.fit_pooled_spend(x, m, w, max_iterations=200)
    assert fit is not None

    def slope(h: float) -> float:  # kappa = 1/q = h, v = q c
        return (gg_log_likelihood([fit.p, 1.0 / h, fit.c / h], x, m) - fit.log_likelihood) / h

    # The curvature in kappa is large (~1e5 here): small steps, then Richardson extrapolation
    # to remove the O(h) term; q = 1/h = 1e5 keeps rounding of the n q log v terms ~1e-2 / h.
    h = 1e-5
    richardson = 2.0 * slope(h) - slope(2.0 * h)
    assert richardson == pytest.approx(fit.heterogeneity_score, rel=5e-3)
    assert slope(h) == pytest.approx(fit.heterogeneity_score, rel=0.05)


def test_pooled_limit_round_trips_and_feeds_the_clv() -> None:
    x, m = _uniform_export_spend(0)
    gg = GammaGammaModel().fit(x, m)
    values = gg.params.as_dict()
    assert set(values) == {"p", "q", "v", "v_over_q"}
    assert all(isinstance(v, float) for v in values.values())
    assert values["q"] == values["v"] == math.inf
    again = GammaGammaModel.from_params(**values)
    np.testing.assert_array_equal(again.predict(x, m), gg.predict(x, m))

    bg = BetaGeoModel.from_params(r=0.25, alpha=31.0, a=0.8, b=2.4)
    tx, T = np.minimum(x * 20.0, 250.0), np.full(x.size, 300.0)
    clv = customer_lifetime_value(bg, gg, x, tx, T, m, months=12, monthly_discount_rate=0.0)
    expected = gg.params.population_mean * bg.predict(360.0, x, tx, T)
    np.testing.assert_allclose(clv, expected, rtol=1e-12)
    # Changing the money unit rescales v/q only.
    cents = GammaGammaModel().fit(x, 100.0 * m).params
    assert cents.p == pytest.approx(gg.params.p, rel=1e-9)
    assert cents.v_over_q == pytest.approx(100.0 * values["v_over_q"], rel=1e-9)


def test_identical_spend_has_no_pooled_limit() -> None:
    """All averages equal: the limit itself would run off (p -> inf); it is not claimed."""
    x = np.tile([1.0, 2.0, 3.0, 5.0], 50)
    m = np.full(x.size, 25.0)
    assert gg_limit.fit_pooled_spend(x, m, np.ones_like(x), max_iterations=200) is None
    try:
        gg = GammaGammaModel().fit(x, m)
    except ConvergenceError:
        return
    assert gg.fit_result is not None and gg.fit_result.boundary is None


def test_limit_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        GammaGammaParams(2.0, math.inf, math.inf)
    with pytest.raises(ValueError, match="only given in the limit"):
        GammaGammaParams(2.0, 3.0, 10.0, v_over_q=3.0)
    assert GammaGammaParams.pooled(2.0, 5.0).population_mean == 10.0
    with pytest.raises(ValueError, match="positive and finite"):
        BetaGeoParams(0.5, 10.0, 0.0, 3.0)  # a = 0 only with b = inf
    with pytest.raises(ValueError, match="positive and finite"):
        BetaGeoParams(math.inf, math.inf, 0.5, 3.0)  # r = alpha = inf needs r_over_alpha
    with pytest.raises(ValueError, match="only given in the limit"):
        BetaGeoParams(0.5, 10.0, 0.5, 3.0, r_over_alpha=0.05)


# --- BG/NBD: no dropout -> NBD -------------------------------------------------------------------


def _nbd_ll(r: float, alpha: float, x: np.ndarray, T: np.ndarray) -> float:
    return float(
        (gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T)).sum()
    )


def test_bgnbd_without_dropout_fits_the_nbd_limit() -> None:
    x, tx, T = _no_dropout(seed=1, n=3000, r=0.8, alpha=40.0)
    model = BetaGeoModel().fit(x, tx, T)
    res, prm = model.fit_result, model.params
    assert res is not None and res.boundary is not None
    assert res.boundary.startswith("no dropout signal: a/(a+b) -> 0")
    assert prm.limit == "nbd" and prm.a == 0.0 and math.isinf(prm.b)
    assert res.at_bounds == ["a", "b"] and res.converged
    assert prm.as_dict() == {"r": prm.r, "alpha": prm.alpha, "a": 0.0, "b": math.inf}
    # Close to the truth ...
    assert prm.r == pytest.approx(0.8, rel=0.1)
    assert prm.alpha == pytest.approx(40.0, rel=0.12)
    # ... and the NBD maximum likelihood, computed independently.
    ref = optimize.minimize(
        lambda th: -_nbd_ll(*np.exp(th), x, T),
        np.log([1.0, 30.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000},
    )
    r_ref, alpha_ref = np.exp(ref.x)
    assert prm.r == pytest.approx(r_ref, rel=1e-5)
    assert prm.alpha == pytest.approx(alpha_ref, rel=1e-5)
    assert res.log_likelihood == pytest.approx(-ref.fun, abs=1e-6)
    assert bg_log_likelihood(prm, x, tx, T) == pytest.approx(res.log_likelihood, rel=1e-12)
    # The BG/NBD likelihood tends to the NBD one as b -> inf.
    far = bg_log_likelihood([prm.r, prm.alpha, 1.0, 1e9], x, tx, T)
    assert far == pytest.approx(res.log_likelihood, abs=1e-4)

    # p_alive = 1; expected purchases are the NBD posterior-mean formula.
    assert np.all(model.p_alive(x, tx, T) == 1.0)
    for t in (30.0, 365.0):
        np.testing.assert_allclose(
            model.predict(t, x, tx, T), t * (prm.r + x) / (prm.alpha + T), rtol=1e-13
        )
    np.testing.assert_allclose(
        model.expected_purchases([10.0, 100.0]), np.array([10.0, 100.0]) * prm.r / prm.alpha
    )
    again = BetaGeoModel.from_params(**prm.as_dict())
    np.testing.assert_array_equal(again.predict(90.0, x, tx, T), model.predict(90.0, x, tx, T))


def test_bgnbd_without_dropout_or_rate_heterogeneity_fits_poisson() -> None:
    x, tx, T = _no_dropout(seed=2, n=2000, r=1e9, alpha=1e9 / 0.03)
    model = BetaGeoModel().fit(x, tx, T)
    res, prm = model.fit_result, model.params
    assert res is not None and res.boundary is not None and "Poisson limit" in res.boundary
    assert prm.limit == "poisson" and res.at_bounds == ["r", "alpha", "a", "b"]
    rate = x.sum() / T.sum()  # closed-form ML of a Poisson process
    assert prm.r_over_alpha == pytest.approx(rate, rel=1e-12)
    assert rate == pytest.approx(0.03, rel=0.03)
    assert res.log_likelihood == pytest.approx(float((x * np.log(rate) - rate * T).sum()))
    assert np.all(model.p_alive(x, tx, T) == 1.0)
    np.testing.assert_allclose(model.predict(180.0, x, tx, T), 180.0 * rate, rtol=1e-13)
    assert set(prm.as_dict()) == {"r", "alpha", "a", "b", "r_over_alpha"}


def _bg_poisson_reference(prm: BetaGeoParams, x: int, tx: float, T: float, t: float) -> float:
    """E[X(T, T+t) | x, t_x, T] with lambda known, by integration over p ~ Beta(a, b)."""
    lam = prm.r_over_alpha
    assert lam is not None
    quad = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 200}

    def over_p(f) -> float:
        return integrate.quad(f, 0.0, 1.0, weight="alg", wvar=(prm.a - 1, prm.b - 1), **quad)[0]

    alive = over_p(lambda p: (1 - p) ** x) * math.exp(-lam * T)
    dead = over_p(lambda p: p * (1 - p) ** (x - 1)) * math.exp(-lam * tx) if x > 0 else 0.0

    def future_given_p(p: float) -> float:
        return (1 - p) ** x * (-math.expm1(-lam * p * t) / p if p > 0 else lam * t)

    future = over_p(future_given_p) * math.exp(-lam * T)
    return future / (alive + dead)


def test_bgnbd_without_rate_heterogeneity_fits_bg_poisson() -> None:
    rng = np.random.default_rng(0)
    T = np.ceil(rng.uniform(30.0, 400.0, 2000))
    truth = BetaGeoParams(r=1e9, alpha=1e9 / 0.03, a=0.8, b=3.0)
    x, tx, T = simulate_summary(truth, T, rng)
    model = BetaGeoModel().fit(x, tx, T)
    res, prm = model.fit_result, model.params
    assert res is not None and res.boundary is not None
    assert res.boundary.startswith("no purchase-rate heterogeneity between customers")
    assert prm.limit == "bg_poisson" and res.at_bounds == ["r", "alpha"]
    assert prm.r_over_alpha == pytest.approx(0.03, rel=0.05)
    assert prm.a == pytest.approx(0.8, rel=0.25) and prm.b == pytest.approx(3.0, rel=0.35)
    lam = prm.r_over_alpha
    assert lam is not None
    # The full likelihood along r = alpha lambda -> inf tends to the limit's, O(1/r) below.
    gaps = [
        res.log_likelihood - bg_log_likelihood([r, r / lam, prm.a, prm.b], x, tx, T)
        for r in (1e4, 1e5, 1e6)
    ]
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 1e-3
    for xi, txi, Ti, t in [(0, 0.0, 300.0, 30.0), (3, 250.0, 300.0, 365.0), (4, 40.0, 390.0, 90.0)]:
        ref = _bg_poisson_reference(prm, xi, txi, Ti, t)
        assert model.predict(t, xi, txi, Ti) == pytest.approx(ref, rel=1e-7)
        if xi > 0:
            odds = prm.a / (prm.b + xi - 1) * math.exp(lam * (Ti - txi))
            assert model.p_alive(xi, txi, Ti) == pytest.approx(1 / (1 + odds), rel=1e-12)


@pytest.mark.parametrize("a", [1.0, 1.0004, 0.4])
def test_bg_poisson_prediction_at_a_equal_one_and_a_plus_b_equal_one(a: float) -> None:
    prm = BetaGeoParams.bg_poisson(0.05, a, 1.0 - a if a < 1 else 2.0)
    model = BetaGeoModel.from_params(**prm.as_dict())
    for xi, txi, Ti, t in [(0, 0.0, 0.0, 365.0), (2, 100.0, 200.0, 60.0)]:
        got = model.predict(t, xi, txi, Ti)
        assert np.isfinite(got)
        assert got == pytest.approx(_bg_poisson_reference(prm, xi, txi, Ti, t), rel=1e-7)


# --- regular data: interior fits, unchanged ------------------------------------------------------


def test_regular_data_still_give_interior_fits() -> None:
    rng = np.random.default_rng(6)
    T = rng.uniform(30.0, 400.0, 20_000)
    x, tx, T = simulate_summary(BetaGeoParams(r=0.5, alpha=20.0, a=0.9, b=3.0), T, rng)
    bg = BetaGeoModel().fit(x, tx, T)
    assert bg.fit_result is not None and bg.fit_result.boundary is None
    assert bg.fit_result.at_bounds == [] and bg.params.limit is None
    assert set(bg.params.as_dict()) == {"r", "alpha", "a", "b"}
    assert bg.params.r == pytest.approx(0.5, rel=0.15)

    xs = rng.integers(1, 8, 4000).astype(float)
    nu = rng.gamma(3.74, 1.0 / 15.44, xs.size)
    m = rng.gamma(6.25 * xs, 1.0 / (nu * xs))
    gg = GammaGammaModel().fit(xs, m)
    assert gg.fit_result is not None and gg.fit_result.boundary is None
    assert not gg.params.is_limit and set(gg.params.as_dict()) == {"p", "q", "v"}
    assert gg.params.q == pytest.approx(3.74, rel=0.15)


def test_cdnow_fits_are_interior_and_unchanged(cdnow_summary_days: pl.DataFrame) -> None:
    x, tx, T, m = (
        cdnow_summary_days[c].to_numpy().astype(float)
        for c in ("frequency", "recency", "T", "monetary_value")
    )
    bg = BetaGeoModel().fit(x, tx, T)
    assert bg.fit_result is not None and bg.fit_result.boundary is None
    p = bg.params
    got = [round(v, 4) for v in (p.r, p.alpha / 7.0, p.a, p.b)]
    assert got == [0.2426, 4.4136, 0.7929, 2.4259]
    gg = GammaGammaModel().fit(x, m)
    assert gg.fit_result is not None and gg.fit_result.boundary is None
    g = gg.params
    assert [round(v, 4) for v in (g.p, g.q, g.v)] == [6.2496, 3.7442, 15.4435]


# --- forced failure ------------------------------------------------------------------------------


def test_max_iterations_1_raises_even_on_boundary_data() -> None:
    x, m = _uniform_export_spend(0)
    xb, txb, Tb = _no_dropout(seed=1, n=3000, r=0.8, alpha=40.0)
    rng = np.random.default_rng(7)
    xr, txr, Tr = simulate_summary(
        BetaGeoParams(r=0.24, alpha=31.0, a=0.8, b=2.4), rng.uniform(30, 300, 500), rng
    )
    for fit in (
        lambda: GammaGammaModel().fit(x, m, max_iterations=1),
        lambda: BetaGeoModel().fit(xb, txb, Tb, max_iterations=1),
        lambda: BetaGeoModel().fit(xr, txr, Tr, max_iterations=1),
    ):
        with pytest.raises(ConvergenceError, match="did not converge") as info:
            fit()
        assert info.value.result is not None and info.value.result.converged is False


def test_max_iterations_and_its_old_name() -> None:
    x, m = _pooled_gamma_spend(2)
    with pytest.raises(ConvergenceError, match="did not converge"):
        GammaGammaModel().fit(x, m, maxiter=1)
    with pytest.raises(ValueError, match="not both"):
        GammaGammaModel().fit(x, m, max_iterations=5, maxiter=10)
    with pytest.raises(ValueError, match="positive integer"):
        GammaGammaModel().fit(x, m, max_iterations=0)
    same = GammaGammaModel().fit(x, m, max_iterations=2000).params
    assert same == GammaGammaModel().fit(x, m).params
