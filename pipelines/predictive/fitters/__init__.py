"""Predictive CLV models (numerics only, no I/O), one model a module, lifetimes-style.

- ``bgnbd.BetaGeoModel``: BG/NBD purchase model (Fader, Hardie & Lee 2005).
- ``gamma_gamma.GammaGammaModel``: Gamma-Gamma spend model (Fader & Hardie 2013) and
  ``gamma_gamma.customer_lifetime_value`` (BG/NBD + Gamma-Gamma discounted CLV).
- ``base``: ``FitResult``, ``ConvergenceError``, ``collapse`` and the optimiser wrapper.
"""

from pipelines.predictive.fitters.base import ConvergenceError, FitResult, collapse
from pipelines.predictive.fitters.bgnbd import BetaGeoModel, BetaGeoParams
from pipelines.predictive.fitters.gamma_gamma import (
    GammaGammaModel,
    GammaGammaParams,
    customer_lifetime_value,
)

__all__ = [
    "BetaGeoModel",
    "BetaGeoParams",
    "ConvergenceError",
    "FitResult",
    "GammaGammaModel",
    "GammaGammaParams",
    "collapse",
    "customer_lifetime_value",
]
