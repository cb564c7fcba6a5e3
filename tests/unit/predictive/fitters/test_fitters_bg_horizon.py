"""BG/NBD horizon probabilities, log-likelihood method and warm start.

P(alive at T + t) and P(a purchase in (T, T + t]) are checked, for interior parameters and every
limit of ``BetaGeoParams``, against computations written here from the model's individual-level
story: numerical integration over the latent (lambda, p) with scipy.integrate, high-precision
mpmath hypergeometric functions for stress cases, and a Monte-Carlo simulation where conditioning
on the history is exact (no repeat purchase).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import betaln, gammaln

from pipelines.predictive.fitters.bg_params import BetaGeoParams
from pipelines.predictive.fitters.bgnbd import BetaGeoModel, log_likelihood, simulate_summary

CDNOW_DAYS = BetaGeoParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)

# --- independent reference: integrate over the latent (lambda, p) ------------------------------
#
# Given (lambda, p), a BG/NBD customer with history (x, t_x, T) is alive at T with weight
# (1-p)^x lambda^x exp(-lambda T) and gone (dropped right after the purchase at t_x) with weight
# [x > 0] p (1-p)^(x-1) lambda^x exp(-lambda t_x). A customer alive at T makes N ~
# Poisson(lambda t) purchases in (T, T + t], each followed by a dropout chance: alive at T + t
# with probability E[(1-p)^N] = exp(-lambda p t), at least one purchase with 1 - exp(-lambda t).

_QUAD = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 200}


def _over_p(a: float, b: float, f) -> float:
    """Integral over p in (0, 1) of p^(a-1) (1-p)^(b-1) f(p) / B(a, b)."""
    val = integrate.quad(f, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0), **_QUAD)[0]
    return val * math.exp(-betaln(a, b))


def _over_lambda(r: float, alpha: float, g, scale: float) -> float:
    """Integral over lambda of the Gamma(r, alpha) density times g(lambda); split at 1/scale."""
    cut = 1.0 / scale
    head = integrate.quad(
        lambda lam: math.exp(-alpha * lam) * g(lam),
        0.0,
        cut,
        weight="alg",
        wvar=(r - 1.0, 0.0),
        **_QUAD,
    )[0]
    tail = integrate.quad(
        lambda lam: math.exp((r - 1.0) * math.log(lam) - alpha * lam) * g(lam),
        cut,
        math.inf,
        **_QUAD,
    )[0]
    return (head + tail) * math.exp(r * math.log(alpha) - gammaln(r))


def _power_exp(lam: float, x: int, rate: float) -> float:
    if lam == 0.0:
        return 1.0 if x == 0 else 0.0
    return math.exp(x * math.log(lam) - rate * lam)


def integrated_horizon(
    prm: BetaGeoParams, x: int, tx: float, T: float, t: float
) -> tuple[float, float, float]:
    """(P(alive at T), P(alive at T + t), P(a purchase in (T, T + t])) by 2-D quadrature."""
    r, alpha, a, b = prm.r, prm.alpha, prm.a, prm.b
    alive_p = _over_p(a, b, lambda p: (1.0 - p) ** x)
    alive = alive_p * _over_lambda(r, alpha, lambda lam: _power_exp(lam, x, T), alpha + T)
    dead = 0.0
    if x > 0:
        dead_p = _over_p(a, b, lambda p: p * (1.0 - p) ** (x - 1))
        dead = dead_p * _over_lambda(r, alpha, lambda lam: _power_exp(lam, x, tx), alpha + tx)

    def survives(lam: float) -> float:
        inner = _over_p(a, b, lambda p: (1.0 - p) ** x * math.exp(-lam * p * t))
        return _power_exp(lam, x, T) * inner

    survive = _over_lambda(r, alpha, survives, alpha + T)
    buys = alive_p * _over_lambda(
        r, alpha, lambda lam: -math.expm1(-lam * t) * _power_exp(lam, x, T), alpha + T
    )
    total = alive + dead
    return alive / total, survive / total, buys / total


CASES = [
    # (x, t_x, T, t) in days
    (0, 0.0, 272.0, 30.0),
    (0, 0.0, 10.0, 365.0),
    (1, 30.0, 200.0, 90.0),
    (2, 213.0, 272.0, 365.0),
    (5, 100.0, 250.0, 30.0),
    (12, 250.0, 260.0, 180.0),
    (3, 20.0, 260.0, 730.0),
]


@pytest.mark.parametrize(("x", "tx", "T", "t"), CASES)
def test_horizon_probabilities_match_numerical_integration(
    x: int, tx: float, T: float, t: float
) -> None:
    model = BetaGeoModel.from_params(**CDNOW_DAYS.as_dict())
    alive, survive, buys = integrated_horizon(CDNOW_DAYS, x, tx, T, t)
    assert model.p_alive(x, tx, T) == pytest.approx(alive, rel=1e-7)
    assert model.p_alive_at(t, x, tx, T) == pytest.approx(survive, rel=1e-7)
    assert model.p_purchase_within(t, x, tx, T) == pytest.approx(buys, rel=1e-7)


def _mp_survival(prm: BetaGeoParams, t: float, x: int, tx: float, T: float) -> float:
    """P(alive) 2F1(r+x, a; a+b+x; -t/(alpha+T)) in 40-digit arithmetic, untransformed."""
    mpmath.mp.dps = 40
    r, alpha, a, b = (mpmath.mpf(v) for v in (prm.r, prm.alpha, prm.a, prm.b))
    odds = (a / (b + x - 1)) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 0
    hyp = mpmath.hyp2f1(r + x, a, a + b + x, -mpmath.mpf(t) / (alpha + T))
    return float(hyp / (1 + odds))


@pytest.mark.parametrize(
    "prm",
    [
        CDNOW_DAYS,
        BetaGeoParams(r=1.7, alpha=0.5, a=0.7, b=2.0),  # r - a = 1: C - A - B an integer
        BetaGeoParams(r=1.7005, alpha=2.0, a=0.7, b=2.0),  # r - a within 1e-3 of an integer
        BetaGeoParams(r=2.0, alpha=50.0, a=12.0, b=40.0),  # large a, b
        BetaGeoParams(r=0.05, alpha=3.0, a=0.05, b=0.3),
        # Large a (towards the fixed-dropout limit): Pfaff's form on a is 0 * inf there, so
        # these take the other transformation or the quadrature fallback.
        BetaGeoParams(r=2.0, alpha=60.0, a=50.0, b=950.0),
        BetaGeoParams(r=1.0, alpha=10.0, a=200.0, b=5.0),
    ],
)
@pytest.mark.parametrize(
    ("x", "tx", "T", "t"),
    [
        (0, 0.0, 0.0, 3650.0),
        (2, 30.0, 60.0, 1e5),
        (400, 259.0, 260.0, 3650.0),
        (50, 100.0, 400.0, 1.0),
    ],
)
def test_p_alive_at_matches_high_precision_hypergeometric(
    prm: BetaGeoParams, x: int, tx: float, T: float, t: float
) -> None:
    """Heavy buyers, horizons far beyond the data and parameter coincidences (where scipy's
    hyp2f1 needs the Pfaff transformation and the bridge) still give the 40-digit value."""
    got = BetaGeoModel.from_params(**prm.as_dict()).p_alive_at(t, x, tx, T)
    assert np.isfinite(got)
    assert got == pytest.approx(_mp_survival(prm, t, x, tx, T), rel=1e-8)


def test_horizon_basic_properties() -> None:
    model = BetaGeoModel.from_params(**CDNOW_DAYS.as_dict())
    x = np.array([0.0, 1.0, 4.0, 10.0])
    tx = np.array([0.0, 20.0, 150.0, 270.0])
    T = np.array([100.0, 272.0, 272.0, 272.0])
    alive = model.p_alive(x, tx, T)
    np.testing.assert_allclose(model.p_alive_at(0.0, x, tx, T), alive, rtol=1e-14)
    assert np.all(model.p_purchase_within(0.0, x, tx, T) == 0.0)
    grid = np.array([1.0, 30.0, 365.0, 1e4, 1e7])
    surv = model.p_alive_at(grid[:, None], x, tx, T)
    buys = model.p_purchase_within(grid[:, None], x, tx, T)
    assert surv.shape == buys.shape == (5, 4)
    assert np.all(np.diff(surv, axis=0) < 0) and np.all(np.diff(buys, axis=0) > 0)
    # Everyone who keeps buying eventually drops out; a one-time buyer only after buying again,
    # so for x = 0 the decay is a slow power, u^-min(r, a) (40-digit value below).
    assert np.all(surv[-1, 1:] < 0.05)
    assert surv[-1, 0] == pytest.approx(_mp_survival(CDNOW_DAYS, 1e7, 0, 0.0, 100.0), rel=1e-8)
    # ... but only after buying: P(a purchase) -> P(alive) (slowly for x = 0 with r = 0.24).
    np.testing.assert_allclose(buys[-1, 1:], alive[1:], rtol=1e-4)
    assert np.all(buys <= alive)
    for i, t in enumerate(grid):
        np.testing.assert_allclose(surv[i], model.p_alive_at(t, x, tx, T), rtol=1e-14)
    with pytest.raises(ValueError, match="t must be finite"):
        model.p_alive_at(-1.0, x, tx, T)
    with pytest.raises(ValueError, match="t must be finite"):
        model.p_purchase_within(np.inf, x, tx, T)


# --- Monte Carlo: customers without repeat purchases ----------------------------------------------


def test_horizon_probabilities_match_simulation_of_customers_without_repeats() -> None:
    """Simulate the story; keep the customers with x = 0 by T (exact conditioning: t_x = 0)."""
    rng = np.random.default_rng(11)
    prm, n, T, t = BetaGeoParams(r=0.8, alpha=40.0, a=0.9, b=3.0), 400_000, 60.0, 90.0
    lam = rng.gamma(prm.r, 1.0 / prm.alpha, n)
    p = rng.beta(prm.a, prm.b, n)
    keep = rng.poisson(lam * T) == 0  # no purchase by T: nothing to drop out after
    lam, p = lam[keep], p[keep]
    n_window = rng.poisson(lam * t)
    j = rng.geometric(p)  # the window purchase after which they would drop out
    survived, bought = j > n_window, n_window >= 1
    model = BetaGeoModel.from_params(**prm.as_dict())
    se = 1.0 / math.sqrt(keep.sum())
    assert float(model.p_alive_at(t, 0, 0, T)) == pytest.approx(survived.mean(), abs=4 * se)
    assert float(model.p_purchase_within(t, 0, 0, T)) == pytest.approx(bought.mean(), abs=4 * se)


# --- limits --------------------------------------------------------------------------------------

LIMIT_CASES = [(0, 0.0, 200.0, 60.0), (3, 80.0, 250.0, 365.0), (15, 240.0, 260.0, 30.0)]


@pytest.mark.parametrize(("x", "tx", "T", "t"), LIMIT_CASES)
def test_nbd_and_poisson_limits(x: int, tx: float, T: float, t: float) -> None:
    r, alpha, rate = 0.6, 25.0, 0.03
    nbd = BetaGeoModel.from_params(**BetaGeoParams.nbd(r, alpha).as_dict())
    assert nbd.p_alive_at(t, x, tx, T) == 1.0
    posterior = stats.gamma(r + x, scale=1.0 / (alpha + T))
    ref = posterior.expect(lambda lam: -np.expm1(-lam * t), epsrel=1e-11)
    assert nbd.p_purchase_within(t, x, tx, T) == pytest.approx(ref, rel=1e-8)
    pois = BetaGeoModel.from_params(**BetaGeoParams.poisson(rate).as_dict())
    assert pois.p_alive_at(t, x, tx, T) == 1.0
    assert pois.p_purchase_within(t, x, tx, T) == pytest.approx(1.0 - math.exp(-rate * t))


@pytest.mark.parametrize(("x", "tx", "T", "t"), LIMIT_CASES)
def test_fixed_dropout_limit_matches_integration_over_lambda(
    x: int, tx: float, T: float, t: float
) -> None:
    r, alpha, p = 2.0, 60.0, 0.05
    prm = BetaGeoParams.fixed_dropout(r, alpha, p)
    model = BetaGeoModel.from_params(**prm.as_dict())
    alive = (1 - p) ** x * _over_lambda(r, alpha, lambda lam: _power_exp(lam, x, T), alpha + T)
    dead = 0.0
    if x > 0:
        dead = (
            p
            * (1 - p) ** (x - 1)
            * _over_lambda(r, alpha, lambda lam: _power_exp(lam, x, tx), alpha + tx)
        )
    survive = (1 - p) ** x * _over_lambda(
        r, alpha, lambda lam: _power_exp(lam, x, T) * math.exp(-lam * p * t), alpha + T
    )
    buys = (1 - p) ** x * _over_lambda(
        r, alpha, lambda lam: _power_exp(lam, x, T) * -math.expm1(-lam * t), alpha + T
    )
    assert model.p_alive_at(t, x, tx, T) == pytest.approx(survive / (alive + dead), rel=1e-8)
    assert model.p_purchase_within(t, x, tx, T) == pytest.approx(buys / (alive + dead), rel=1e-8)
    # ... and it is where the regular model goes as a, b -> inf with a/(a+b) = p.
    s = 1e8
    far = BetaGeoModel.from_params(r=r, alpha=alpha, a=s * p, b=s * (1 - p))
    assert far.p_alive_at(t, x, tx, T) == pytest.approx(model.p_alive_at(t, x, tx, T), rel=1e-5)


@pytest.mark.parametrize(("x", "tx", "T", "t"), LIMIT_CASES)
def test_bg_poisson_limit_matches_integration_over_p(x: int, tx: float, T: float, t: float) -> None:
    rate, a, b = 0.04, 0.8, 2.5
    model = BetaGeoModel.from_params(**BetaGeoParams.bg_poisson(rate, a, b).as_dict())
    alive = _over_p(a, b, lambda p: (1 - p) ** x) * math.exp(-rate * T)
    dead = 0.0
    if x > 0:
        dead = _over_p(a, b, lambda p: p * (1 - p) ** (x - 1)) * math.exp(-rate * tx)
    survive = _over_p(a, b, lambda p: (1 - p) ** x * math.exp(-rate * p * t)) * math.exp(-rate * T)
    buys = alive * -math.expm1(-rate * t)
    assert model.p_alive_at(t, x, tx, T) == pytest.approx(survive / (alive + dead), rel=1e-8)
    assert model.p_purchase_within(t, x, tx, T) == pytest.approx(buys / (alive + dead), rel=1e-8)
    k = 1e8  # r, alpha -> inf with r/alpha = rate
    far = BetaGeoModel.from_params(r=k, alpha=k / rate, a=a, b=b)
    assert far.p_alive_at(t, x, tx, T) == pytest.approx(model.p_alive_at(t, x, tx, T), rel=1e-5)
    assert far.p_purchase_within(t, x, tx, T) == pytest.approx(
        model.p_purchase_within(t, x, tx, T), rel=1e-5
    )


# --- log-likelihood method and warm start --------------------------------------------------------


def _simulated(n: int, seed: int, prm: BetaGeoParams = CDNOW_DAYS):
    rng = np.random.default_rng(seed)
    T = np.ceil(rng.uniform(30.0, 400.0, n))
    x, tx, T = simulate_summary(prm, T, rng)
    return x, np.floor(tx), T


def test_log_likelihood_method() -> None:
    x, tx, T = _simulated(2000, seed=1)
    model = BetaGeoModel().fit(x, tx, T)
    assert model.fit_result is not None
    assert model.log_likelihood(x, tx, T) == pytest.approx(
        model.fit_result.log_likelihood, rel=1e-12
    )
    w = np.random.default_rng(2).integers(0, 4, x.size)
    assert model.log_likelihood(x, tx, T, w) == pytest.approx(
        log_likelihood(model.params, x, tx, T, w), rel=1e-14
    )
    # A limit's own likelihood: NBD, written out here.
    r, alpha = 0.7, 30.0
    nbd = BetaGeoModel.from_params(**BetaGeoParams.nbd(r, alpha).as_dict())
    by_hand = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T)
    assert nbd.log_likelihood(x, tx, T) == pytest.approx(float(by_hand.sum()), rel=1e-12)


def test_warm_start() -> None:
    x, tx, T = _simulated(3000, seed=3)
    cold = BetaGeoModel().fit(x, tx, T)
    assert cold.fit_result is not None
    warm = BetaGeoModel().fit(x, tx, T, initial=cold.params.as_dict())
    assert warm.fit_result is not None and warm.fit_result.iterations <= 3
    assert warm.fit_result.iterations < cold.fit_result.iterations
    for name, value in cold.params.as_dict().items():
        assert getattr(warm.params, name) == pytest.approx(value, rel=1e-5)
    # Given in the caller's unit: a weeks fit warm-started from the days parameters.
    start = cold.params.as_dict() | {"alpha": cold.params.alpha / 7.0}
    weeks = BetaGeoModel().fit(x, tx / 7.0, T / 7.0, initial=start)
    assert weeks.fit_result is not None and weeks.fit_result.iterations <= 3
    assert 7.0 * weeks.params.alpha == pytest.approx(cold.params.alpha, rel=1e-5)
    # Limit values (0, inf) fall back to the default start, per parameter.
    limit = BetaGeoModel().fit(x, tx, T, initial=BetaGeoParams.bg_poisson(0.01, 0.8, 2.4).as_dict())
    nbd = BetaGeoModel().fit(x, tx, T, initial=BetaGeoParams.nbd(0.3, 25.0).as_dict())
    for other in (limit, nbd):
        assert other.params.r == pytest.approx(cold.params.r, rel=1e-5)
        assert other.params.b == pytest.approx(cold.params.b, rel=1e-5)
    with pytest.raises(ValueError, match="unknown initial parameter"):
        BetaGeoModel().fit(x, tx, T, initial={"r": 0.3, "beta": 1.0})
