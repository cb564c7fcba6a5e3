"""ln 2F1(a, b; a + 1; z) against mpmath at 50 digits, where scipy is fine and where it is not."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy.special import hyp2f1

from pipelines.predictive.fitters.log_hyp2f1 import log_hyp2f1_c_is_a_plus_1, positive_series

mpmath.mp.dps = 50


def mp_log_hyp2f1(a: float, b: float, z: float) -> float:
    return float(mpmath.log(mpmath.hyp2f1(a, b, a + 1, z)))


CASES = [
    (0.5, 0.3, 0.0),
    (1.6, 1.6, 0.1),
    (12.0, 1.6, 0.5),
    (3.2, 2.9, 0.9),
    (60.0, 1.1, 0.999),
    (0.05, 0.9, 0.9999),
    (1055.0, 1005.0, 0.99899),  # Euler-transformed: hyp2f1(1, 51, 1056, .) is NaN in scipy
    (400.0, 350.5, 0.995),
]


@pytest.mark.parametrize(("a", "b", "z"), CASES)
def test_matches_mpmath(a: float, b: float, z: float) -> None:
    got = float(log_hyp2f1_c_is_a_plus_1(a, b, z))
    assert got == pytest.approx(mp_log_hyp2f1(a, b, z), rel=1e-11, abs=1e-12)


def test_scipy_case_from_the_issue_needs_the_series() -> None:
    """The case that motivated the fallback really fails in scipy, and the series fixes it."""
    assert not math.isfinite(float(hyp2f1(1.0, 51.0, 1056.0, 0.99899)))
    series = float(positive_series(np.array([51.0]), np.array([1056.0]), np.array([0.99899]))[0])
    assert series == pytest.approx(float(mpmath.hyp2f1(1, 51, 1056, 0.99899)), rel=1e-13)


def test_series_matches_mpmath_on_a_grid() -> None:
    rng = np.random.default_rng(7)
    b = rng.uniform(0.1, 30.0, 40)
    c = b + rng.uniform(0.01, 50.0, 40)
    z = rng.uniform(0.0, 0.999, 40)
    got = positive_series(b, c, z)
    want = [float(mpmath.hyp2f1(1, bi, ci, zi)) for bi, ci, zi in zip(b, c, z, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_vectorised_and_broadcast() -> None:
    a = np.array([[1.0], [50.0]])
    z = np.array([0.2, 0.8, 0.99])
    got = log_hyp2f1_c_is_a_plus_1(a, 0.7, z)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert got[i, j] == pytest.approx(mp_log_hyp2f1(a[i, 0], 0.7, z[j]), rel=1e-11)


@pytest.mark.parametrize(("a", "b", "z"), [(1.0, 2.5, 0.5), (-1.0, 0.5, 0.5), (1.0, 0.5, 1.0)])
def test_rejects_outside_the_domain(a: float, b: float, z: float) -> None:
    with pytest.raises(ValueError, match="needs"):
        log_hyp2f1_c_is_a_plus_1(a, b, z)
