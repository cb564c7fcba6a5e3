"""Predictive CLV models (numerics only, no I/O), one model a module, lifetimes-style.

- ``bgnbd.BetaGeoModel``: BG/NBD purchase model (Fader, Hardie & Lee 2005).
- ``mbgnbd.ModifiedBetaGeoModel``: MBG/NBD purchase model (Batislam, Denizel & Filiztekin
  2007), BG/NBD with a dropout chance right after the first purchase too.
- ``pnbd.ParetoNBDModel``: Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987),
  its 2F1 term in ``log_hyp2f1``.
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
from pipelines.predictive.fitters.mbgnbd import ModifiedBetaGeoModel, ModifiedBetaGeoParams
from pipelines.predictive.fitters.pnbd import ParetoNBDModel, ParetoNBDParams

__all__ = [
    "BetaGeoModel",
    "BetaGeoParams",
    "ConvergenceError",
    "FitResult",
    "GammaGammaModel",
    "GammaGammaParams",
    "ModifiedBetaGeoModel",
    "ModifiedBetaGeoParams",
    "ParetoNBDModel",
    "ParetoNBDParams",
    "collapse",
    "customer_lifetime_value",
]
