"""Simulated customer summaries from the models' generative stories (tests, benchmarks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from pipelines.predictive.fitters.base import FloatArray, as_float_array

if TYPE_CHECKING:
    from pipelines.predictive.fitters.bgnbd import BetaGeoParams


def simulate_summary(
    params: BetaGeoParams, T: ArrayLike, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw a (frequency, recency, T) summary from the BG/NBD generative story, vectorised.

    For tests and benchmarks. Each customer gets lambda ~ Gamma(r, rate alpha) and
    p ~ Beta(a, b); J ~ Geometric(p) is the repeat purchase after which they would drop out and
    N ~ Poisson(lambda T) the number of repeat purchases a never-dying customer would make in
    (0, T], so x = min(J, N). Given N = n, purchase times are n sorted uniforms on (0, T), so the
    x-th of them is T * Beta(x, n - x + 1).
    """
    t_cal = as_float_array("T", T)
    n = t_cal.size
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    p = rng.beta(params.a, params.b, size=n)
    j = rng.geometric(p)
    n_events = rng.poisson(lam * t_cal)
    x = np.minimum(j, n_events)
    rep = x > 0
    tx = np.zeros(n)
    tx[rep] = t_cal[rep] * rng.beta(x[rep], n_events[rep] - x[rep] + 1)
    return x.astype(np.float64), tx, t_cal
