"""BG/NBD without dropout heterogeneity: a, b -> inf with a/(a+b) = p (the fixed_dropout limit).

Every customer drops out with the same probability p after each purchase. The limit's fit is
checked against an independent Nelder-Mead fit of its likelihood written here, the regular
likelihood along the way out, and p_alive / expected purchases against numerical integration
over the Gamma purchase rates and against the regular model far out on the ray.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from scipy.special import gammaln

from pipelines.predictive.fitters.bg_params import BetaGeoParams
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.bgnbd import log_likelihood as bg_log_likelihood

P, R, ALPHA = 0.05, 2.0, 60.0


def _fixed_dropout(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD with p = P for everyone: x = min(J, N), J ~ Geometric(P), N ~ Poisson(lambda T)."""
    rng = np.random.default_rng(seed)
    T = np.ceil(rng.uniform(30.0, 400.0, n))
    lam = rng.gamma(R, 1.0 / ALPHA, n)
    j, n_events = rng.geometric(P, n), rng.poisson(lam * T)
    x = np.minimum(j, n_events)
    tx = np.zeros(n)
    rep = x > 0
    tx[rep] = T[rep] * rng.beta(x[rep], n_events[rep] - x[rep] + 1)
    return x.astype(float), tx, T


def _limit_ll(r: float, alpha: float, p: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray):
    """The limit likelihood, written directly from its definition."""
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = (1 - p) ** x / (alpha + T) ** (r + x)
    dead = np.where(x > 0, p * (1 - p) ** np.maximum(x - 1, 0) / (alpha + tx) ** (r + x), 0.0)
    return float((head + np.log(alive + dead)).sum())


@pytest.fixture(scope="module")
def fitted() -> tuple[BetaGeoModel, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    data = _fixed_dropout(seed=0)
    return BetaGeoModel().fit(*data), data


def test_single_dropout_probability_fits_the_fixed_dropout_limit(fitted) -> None:
    model, (x, tx, T) = fitted
    res, prm = model.fit_result, model.params
    assert res is not None and res.boundary is not None and res.converged
    assert res.boundary.startswith(
        "no heterogeneity in dropout between customers: a, b -> inf with a/(a+b) = "
    )
    assert f"a/(a+b) = {prm.dropout:.6g}" in res.boundary
    assert prm.limit == "fixed_dropout" and math.isinf(prm.a) and math.isinf(prm.b)
    assert res.at_bounds == ["a", "b"]
    p = prm.dropout
    assert p is not None
    assert prm.r == pytest.approx(R, rel=0.1)
    assert prm.alpha == pytest.approx(ALPHA, rel=0.1)
    assert p == pytest.approx(P, rel=0.1)

    ref = optimize.minimize(
        lambda th: (
            -_limit_ll(math.exp(th[0]), math.exp(th[1]), 1 / (1 + math.exp(-th[2])), x, tx, T)
        ),
        np.array([0.0, math.log(30.0), math.log(0.1 / 0.9)]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 6000, "maxfev": 12000},
    )
    r_ref, alpha_ref = np.exp(ref.x[:2])
    p_ref = 1 / (1 + math.exp(-ref.x[2]))
    assert prm.r == pytest.approx(r_ref, rel=1e-4)
    assert prm.alpha == pytest.approx(alpha_ref, rel=1e-4)
    assert p == pytest.approx(p_ref, rel=1e-4)
    assert res.log_likelihood == pytest.approx(-ref.fun, abs=1e-4)
    assert bg_log_likelihood(prm, x, tx, T) == pytest.approx(res.log_likelihood, rel=1e-12)

    values = prm.as_dict()
    assert values == {"r": prm.r, "alpha": prm.alpha, "a": math.inf, "b": math.inf, "dropout": p}
    again = BetaGeoModel.from_params(**values)
    assert again.params == prm
    np.testing.assert_array_equal(again.predict(90.0, x, tx, T), model.predict(90.0, x, tx, T))


def test_regular_likelihood_tends_to_the_limit_along_the_ray(fitted) -> None:
    model, (x, tx, T) = fitted
    prm, res = model.params, model.fit_result
    assert res is not None and prm.dropout is not None
    p = prm.dropout
    ray = [
        bg_log_likelihood([prm.r, prm.alpha, s * p, s * (1 - p)], x, tx, T)
        for s in 10.0 ** np.arange(3, 8)
    ]
    gaps = res.log_likelihood - np.array(ray)
    assert np.all(gaps > -1e-4)
    assert gaps[0] > gaps[1] > gaps[2] and abs(gaps[-1]) < 1e-3


def _integrated(prm: BetaGeoParams, x: int, tx: float, T: float, t: float) -> tuple[float, float]:
    """(P(alive), E[X(T, T+t)]) by integrating over lambda ~ Gamma(r, alpha)."""
    p = prm.dropout
    assert p is not None
    g = stats.gamma(prm.r, scale=1.0 / prm.alpha)
    quad = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 400}

    def over_lam(f) -> float:
        return integrate.quad(lambda lam: f(lam) * g.pdf(lam), 0.0, np.inf, **quad)[0]

    alive = over_lam(lambda lam: (1 - p) ** x * lam**x * math.exp(-lam * T))
    dead = over_lam(lambda lam: p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * tx)) if x else 0.0
    future = over_lam(
        lambda lam: (1 - p) ** x * lam**x * math.exp(-lam * T) * -math.expm1(-lam * p * t) / p
    )
    return alive / (alive + dead), future / (alive + dead)


CASES = [
    (0, 0.0, 300.0, 30.0),
    (3, 250.0, 300.0, 365.0),
    (4, 40.0, 390.0, 90.0),
    (12, 200.0, 210.0, 60.0),
]


@pytest.mark.parametrize(("x", "tx", "T", "t"), CASES)
def test_limit_predictions_match_integration_and_the_regular_model(x, tx, T, t) -> None:
    prm = BetaGeoParams.fixed_dropout(R, ALPHA, 0.0171)
    model = BetaGeoModel.from_params(**prm.as_dict())
    alive_ref, expected_ref = _integrated(prm, x, tx, T, t)
    assert model.p_alive(x, tx, T) == pytest.approx(alive_ref, rel=1e-9)
    assert model.predict(t, x, tx, T) == pytest.approx(expected_ref, rel=1e-9)
    odds = 0.0171 / (1 - 0.0171) * ((ALPHA + T) / (ALPHA + tx)) ** (R + x) if x else 0.0
    assert model.p_alive(x, tx, T) == pytest.approx(1 / (1 + odds), rel=1e-12)

    s = 1e6
    far = BetaGeoModel.from_params(R, ALPHA, s * 0.0171, s * (1 - 0.0171))
    np.testing.assert_allclose(model.p_alive(x, tx, T), far.p_alive(x, tx, T), rtol=1e-4)

    # The regular 2F1 form over/underflows (inf * 0) beyond a ~ 1e5 for long horizons, and is
    # O(1/a) off the limit before: Richardson-extrapolate a = 1e3, 1e4 (residual O(1/a^2)).
    def regular(scale: float, f):
        return f(BetaGeoModel.from_params(R, ALPHA, scale * 0.0171, scale * (1 - 0.0171)))

    def extrapolated(f):
        return (10.0 * regular(1e4, f) - regular(1e3, f)) / 9.0

    np.testing.assert_allclose(
        model.predict(t, x, tx, T), extrapolated(lambda m: m.predict(t, x, tx, T)), rtol=1e-4
    )
    grid = [10.0, 365.0]
    np.testing.assert_allclose(
        model.expected_purchases(grid),
        extrapolated(lambda m: m.expected_purchases(grid)),
        rtol=1e-4,
    )


def test_fixed_dropout_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="only given in the limit a = b = inf"):
        BetaGeoParams(2.0, 60.0, 1.0, 20.0, dropout=0.05)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        BetaGeoParams.fixed_dropout(2.0, 60.0, 1.0)
    with pytest.raises(ValueError, match="positive and finite"):
        BetaGeoParams.fixed_dropout(2.0, math.inf, 0.05)
    assert BetaGeoParams.fixed_dropout(2.0, 60.0, 0.05).at_limit == ["a", "b"]
