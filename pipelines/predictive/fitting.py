"""One fit of one model on a customer summary, its failures turned into `ModelFitError`.

The fitters raise `ConvergenceError` (or `ValueError` for unusable input); the pipeline wants
one error type that names the model, the fit (snapshot or backtest calibration) and how many
customers and repeat buyers it saw, so a reader of the manifest knows why without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from pipelines.predictive.fit_records import ModelFitError
from pipelines.predictive.fitters.base import ConvergenceError
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.purchase_models import LABELS, PurchaseModel, new_model
from pipelines.predictive.summary import CustomerSummary, as_summary


def _fit(label: str, model: str, fit: Callable[[], Any], customers: int, repeaters: int) -> Any:
    try:
        return fit()
    except ConvergenceError as exc:
        raise ModelFitError(
            f"{label}: {exc} -- {customers:,} customers, {repeaters:,} with repeat purchases",
            model,
            exc.params,
        ) from None
    except ValueError as exc:
        raise ModelFitError(f"{label}: {exc}", model) from None


def fit_purchase_model(
    name: str,
    inputs: pl.DataFrame | CustomerSummary,
    label: str,
    max_iterations: int = 2000,
    initial: Mapping[str, float] | None = None,
) -> PurchaseModel:
    """Fit purchase model `name` on the distinct (frequency, recency, T) rows with counts."""
    s = as_summary(inputs)
    uf, ur, uT = s.unique
    return _fit(
        f"{LABELS[name]} fit ({label})",
        name,
        lambda: new_model(name).fit(
            uf, ur, uT, weights=s.weights, max_iterations=max_iterations, initial=initial
        ),
        s.customers,
        s.repeaters,
    )


def fit_bgnbd(
    inputs: pl.DataFrame | CustomerSummary, label: str, max_iterations: int = 2000
) -> BetaGeoModel:
    model = fit_purchase_model("bgnbd", inputs, label, max_iterations)
    assert isinstance(model, BetaGeoModel)
    return model


def fit_gamma_gamma(
    inputs: pl.DataFrame | CustomerSummary, label: str, max_iterations: int = 2000
) -> GammaGammaModel:
    s = as_summary(inputs)
    return _fit(
        f"Gamma-Gamma fit ({label})",
        "gamma_gamma",
        lambda: GammaGammaModel().fit(s.frequency, s.monetary_value, maxiter=max_iterations),
        s.customers,
        s.repeaters,
    )
