"""The purchase models the pipeline can fit, by their config/model_fit name.

Every purchase model answers the same questions about a customer from their (frequency,
recency, T) summary -- P(alive now), P(alive t days ahead), expected purchases and the chance
of a next purchase within t -- so the pipeline scores, backtests, carries forward and refits
them alike; `predictive.model` picks one (or `auto`, which lets the backtest decide).

    bgnbd    BG/NBD, Fader, Hardie & Lee (2005)                 fitters/bgnbd.py
    pnbd     Pareto/NBD, Schmittlein, Morrison & Colombo (1987) fitters/pnbd.py
    mbgnbd   MBG/NBD, Batislam, Denizel & Filiztekin (2007)     fitters/mbgnbd.py
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self

from numpy.typing import ArrayLike

from pipelines.predictive.fitters.base import FitResult, FloatArray
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.mbgnbd import ModifiedBetaGeoModel
from pipelines.predictive.fitters.pnbd import ParetoNBDModel


class PurchaseParams(Protocol):
    def as_dict(self) -> dict[str, float]: ...


class PurchaseModel(Protocol):
    """What the pipeline asks of a purchase model (all times in days)."""

    fit_result: FitResult | None

    @property
    def params(self) -> Any: ...

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
        *,
        max_iterations: int | None = None,
        initial: Mapping[str, float] | None = None,
    ) -> Self: ...

    def log_likelihood(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None
    ) -> float: ...

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray: ...

    def p_alive_at(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray: ...

    def predict(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray: ...

    def p_purchase_within(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray: ...


_CLASSES: dict[str, Any] = {
    "bgnbd": BetaGeoModel,
    "pnbd": ParetoNBDModel,
    "mbgnbd": ModifiedBetaGeoModel,
}
PURCHASE_MODELS: tuple[str, ...] = tuple(_CLASSES)
"""Names in the order `auto` breaks ties (the simplest, most used model first)."""
LABELS: dict[str, str] = {
    "bgnbd": "BG/NBD",
    "pnbd": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
    "gamma_gamma": "Gamma-Gamma",
}


def new_model(name: str) -> PurchaseModel:
    """An unfitted purchase model."""
    model: PurchaseModel = _CLASSES[name]()
    return model


def from_params(name: str, params: Mapping[str, float]) -> PurchaseModel:
    """A purchase model with known parameters (``params.as_dict()`` of a fit round-trips)."""
    model: PurchaseModel = _CLASSES[name].from_params(**params)
    return model


def name_of(model: object) -> str:
    """The config/model_fit name of a purchase model instance."""
    for name, cls in _CLASSES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"not a purchase model: {type(model).__name__}")
