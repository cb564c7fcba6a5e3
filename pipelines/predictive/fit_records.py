"""model_fit rows: what each fit produced, or why it failed (one row per parameter)."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.errors import CustvalError
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel


class ModelFitError(CustvalError):
    """A predictive model could not be fitted (did not converge, or hit a bound)."""

    def __init__(self, message: str, model: str, params: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.params = params or {}


FIT_SCHEMA = {
    "fit": pl.String,
    "model": pl.String,
    "param": pl.String,
    "value": pl.Float64,
    "log_likelihood": pl.Float64,
    "customers_used": pl.Int64,
    "customers_excluded": pl.Int64,
    "converged": pl.Boolean,
    "iterations": pl.Int64,
    "seconds": pl.Float64,
    "status": pl.String,
    "note": pl.String,
    "fitted_on": pl.Date,
}
STATUS_OK, STATUS_BOUNDARY, STATUS_FAILED = "ok", "boundary", "failed"


def fit_rows(fit: str, models: dict[str, Any], fitted_on: str) -> list[dict[str, Any]]:
    """model_fit rows of fresh fits (purchase models, Gamma-Gamma): one per parameter; a
    boundary optimum says so."""
    rows = []
    for model_name, model in models.items():
        res = model.fit_result
        assert res is not None, f"{model_name} has not been fitted"
        excluded = int(model.n_excluded or 0) if isinstance(model, GammaGammaModel) else 0
        boundary = getattr(res, "boundary", None)
        for param, value in model.params.as_dict().items():
            rows.append(
                {
                    "fit": fit,
                    "model": model_name,
                    "param": param,
                    "value": float(value),
                    "log_likelihood": float(res.log_likelihood),
                    "customers_used": int(res.n_customers),
                    "customers_excluded": excluded,
                    "converged": bool(res.converged),
                    "iterations": int(res.iterations),
                    "seconds": float(res.seconds),
                    "status": STATUS_BOUNDARY if boundary else STATUS_OK,
                    "note": boundary,
                    "fitted_on": fitted_on,
                }
            )
    return rows


def failed_rows(fit: str, exc: ModelFitError, note: str) -> list[dict[str, Any]]:
    """model_fit rows of a fit that failed: the parameters it reached (if any), and why."""
    params: dict[str, float | None] = dict(exc.params) or {"none": None}
    return [
        {
            "fit": fit,
            "model": exc.model,
            "param": param,
            "value": value,
            "log_likelihood": None,
            "customers_used": None,
            "customers_excluded": None,
            "converged": False,
            "iterations": None,
            "seconds": None,
            "status": STATUS_FAILED,
            "note": f"{exc} -- {note}",
            "fitted_on": None,
        }
        for param, value in params.items()
    ]
