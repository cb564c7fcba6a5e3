"""The last good fit of an earlier snapshot, for `predictive.on_failure: carry_forward`.

When today's fit of a model fails, the snapshot can still be scored with the parameters of the
newest earlier snapshot whose fit of that model was usable (status ok or boundary, or itself
carried forward), read back from its published `model_fit` table. The rows say where the
parameters came from (`fitted_on`), so a reader never mistakes them for today's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.purchase_models import PURCHASE_MODELS, PurchaseModel, from_params
from pipelines.storage import layout
from pipelines.storage.snapshots import published_snapshots

STATUS_CARRIED = "carried_forward"
STATUS_REUSED = "reused"
USABLE = ("ok", "boundary", STATUS_CARRIED, STATUS_REUSED)

Model = PurchaseModel | GammaGammaModel


# from_params(**as_dict()) round-trips every fit, limit forms (infinite q, v; r_over_alpha) included
def _purchase_builder(name: str) -> Callable[[dict[str, float]], Model]:
    return lambda params: from_params(name, params)


_BUILDERS: dict[str, Callable[[dict[str, float]], Model]] = {
    **{name: _purchase_builder(name) for name in PURCHASE_MODELS},
    "gamma_gamma": lambda p: GammaGammaModel.from_params(**p),
}


@dataclass
class CarriedFit:
    """Models rebuilt from an earlier snapshot's model_fit rows, with those rows."""

    models: dict[str, Model] = field(default_factory=dict)
    fitted_on: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows_of(self, model: str, status: str, note: str) -> list[dict[str, Any]]:
        """The earlier rows of `model`, restated for today's model_fit."""
        return [{**row, "status": status, "note": note} for row in self.rows[model]]


def _usable_rows(path: Path, day: date) -> pl.DataFrame:
    fits = pl.read_parquet(path, glob=False).filter(pl.col("fit") == "snapshot")
    if "status" not in fits.columns:  # published before fits had a status: all were good
        fits = fits.with_columns(status=pl.lit("ok"), note=pl.lit(None, pl.String))
    if "fitted_on" not in fits.columns:
        fits = fits.with_columns(fitted_on=pl.lit(day))
    return fits.filter(pl.col("status").is_in(USABLE))


def last_good_fit(
    warehouse: Path, before: date, models: Iterable[str] = ("bgnbd", "gamma_gamma")
) -> CarriedFit | None:
    """The newest usable fit of each of `models` among the snapshots published before `before`."""
    wanted = {m: _BUILDERS[m] for m in models}
    carried = CarriedFit()
    for day in sorted((d for d in published_snapshots(warehouse) if d < before), reverse=True):
        path = layout.table_file(warehouse, "model_fit", day)
        if not path.is_file():
            continue
        fits = _usable_rows(path, day)
        for model, build in wanted.items():
            if model in carried.models:
                continue
            rows = fits.filter(pl.col("model") == model).to_dicts()
            params = {str(r["param"]): float(r["value"]) for r in rows if r["value"] is not None}
            try:
                carried.models[model] = build(params)
            except (KeyError, TypeError, ValueError):
                continue
            carried.fitted_on[model] = str(rows[0]["fitted_on"])
            carried.rows[model] = rows
        if len(carried.models) == len(wanted):
            break
    return carried if carried.models else None
