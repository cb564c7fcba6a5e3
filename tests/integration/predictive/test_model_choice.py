"""Model choice by evidence (predictive.model auto), refit on_drift, and the new predictions
(p_alive_90, churn_risk, expected_next_order_date), through the whole pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.predictive.purchase_models import PURCHASE_MODELS, from_params

PURCHASE = set(PURCHASE_MODELS)


pytestmark = pytest.mark.slow


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"config-{abs(hash(text))}.yaml"
    path.write_text(text)
    return path


def _tables(manifest: dict) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(Path(t["path"])) for name, t in manifest["tables"].items()}


def _params(fits: pl.DataFrame, fit: str, model: str) -> dict[str, float]:
    rows = fits.filter(pl.col("fit") == fit, pl.col("model") == model)
    return dict(zip(rows["param"].to_list(), rows["value"].to_list()))


def _arrays(clv: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(clv[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T"))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def auto_run(
    generated_orders: tuple, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, dict[str, pl.DataFrame], date]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    source, _, last = generated_orders
    base = tmp_path_factory.mktemp("auto")
    config = _config(base, "predictive:\n  model: auto\n")
    ctx = RunContext.create(
        source=str(source), snapshot_date=last, warehouse=base / "wh", config_path=str(config)
    )
    manifest = run_all(ctx)
    return manifest, _tables(manifest), last


def test_auto_backtests_every_model_and_scores_with_the_lowest_holdout_error(
    auto_run: tuple[dict, dict[str, pl.DataFrame], date],
) -> None:
    manifest, t, _ = auto_run
    assert manifest["status"] == "success"
    overall = t["model_backtest"].filter(pl.col("scope") == "overall")
    assert set(overall["model"]) == PURCHASE
    maes = dict(zip(overall["model"], overall["mae"]))
    best = min(PURCHASE_MODELS, key=lambda m: (maes[m], PURCHASE_MODELS.index(m)))
    assert overall.filter(pl.col("selected"))["model"].to_list() == [best]
    assert t["model_backtest"].filter(pl.col("selected"))["model"].unique().to_list() == [best]

    fits = t["model_fit"]
    calibration = set(fits.filter(pl.col("fit") == "calibration")["model"])
    assert calibration == PURCHASE | {"gamma_gamma"}
    snapshot = fits.filter(pl.col("fit") == "snapshot", pl.col("model") != "gamma_gamma")
    assert set(snapshot["model"]) == {best}
    for note in snapshot["note"]:
        assert "chosen by predictive.model auto" in note
        for m in PURCHASE_MODELS:  # the evidence: every candidate's MAE, as published
            assert f"{maes[m]:.6g}" in note

    # the customers are scored with the chosen model's published parameters
    model = from_params(best, _params(fits, "snapshot", best))
    clv = t["customer_clv"]
    x, tx, T = _arrays(clv)
    np.testing.assert_allclose(clv["p_alive"].to_numpy(), model.p_alive(x, tx, T), rtol=1e-10)
    np.testing.assert_allclose(
        clv["expected_purchases_90"].to_numpy(), model.predict(90.0, x, tx, T), rtol=1e-10
    )


def test_p_alive_90_churn_risk_and_next_order_date(
    auto_run: tuple[dict, dict[str, pl.DataFrame], date],
) -> None:
    _, t, snapshot = auto_run
    fits, clv = t["model_fit"], t["customer_clv"]
    best = fits.filter(pl.col("fit") == "snapshot", pl.col("model") != "gamma_gamma")["model"][0]
    model = from_params(best, _params(fits, "snapshot", best))
    x, tx, T = _arrays(clv)
    alive_90 = model.p_alive_at(90.0, x, tx, T)
    np.testing.assert_allclose(clv["p_alive_90"].to_numpy(), alive_90, rtol=1e-10)
    assert np.all(clv["p_alive_90"].to_numpy() <= clv["p_alive"].to_numpy() + 1e-12)
    risk = np.where(alive_90 < 0.3, "high", np.where(alive_90 < 0.7, "medium", "low"))
    assert clv["churn_risk"].to_list() == risk.tolist()
    assert set(risk) == {"high", "medium", "low"}

    # next-order date: the first whole day with even odds of a purchase, by brute force over
    # every day of the longest horizon (365), for a spread of customers
    days = np.arange(1, 366, dtype=np.float64)
    sample = pl.concat(
        [clv.filter(pl.col("frequency") == f).head(3) for f in (0, 1, 2, 4, 8)]
        + [clv.sort("p_alive").head(3), clv.sort("p_alive").tail(3)]
    )
    seen_null = seen_date = False
    for c in sample.iter_rows(named=True):
        p = model.p_purchase_within(days, c["frequency"], c["recency"], c["T"])
        hit = np.nonzero(p >= 0.5)[0]
        if hit.size:
            seen_date = True
            assert c["expected_next_order_date"] == snapshot + timedelta(days=int(days[hit[0]]))
        else:
            seen_null = True
            assert c["expected_next_order_date"] is None
    assert seen_null and seen_date


def test_refit_on_drift_reuses_or_refits_and_says_why(
    generated_orders: tuple, run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    source, _, last = generated_orders
    wh = tmp_path / "wh"
    earlier = last - timedelta(days=1)
    first = _tables(run_pipeline(source, earlier, warehouse=wh))["model_fit"]

    keep = _config(tmp_path, "predictive:\n  refit: on_drift\n  refit_significance: 1.0e-12\n")
    reused = _tables(run_pipeline(source, last, warehouse=wh, config=keep))
    fits = reused["model_fit"].filter(pl.col("fit") == "snapshot")
    assert set(fits["status"]) == {"reused"}
    assert set(fits["fitted_on"]) == {earlier}
    assert all("reused (predictive.refit: on_drift)" in n for n in fits["note"])
    for model in ("bgnbd", "gamma_gamma"):
        assert _params(reused["model_fit"], "snapshot", model) == _params(first, "snapshot", model)
    # today's customers scored with yesterday's parameters
    bg = from_params("bgnbd", _params(first, "snapshot", "bgnbd"))
    clv = reused["customer_clv"]
    np.testing.assert_allclose(clv["p_alive"].to_numpy(), bg.p_alive(*_arrays(clv)), rtol=1e-12)

    old = _config(tmp_path, "predictive:\n  refit: on_drift\n  refit_max_age_days: 0\n")
    aged = _tables(run_pipeline(source, last, warehouse=wh, config=old))["model_fit"]
    snap = aged.filter(pl.col("fit") == "snapshot")
    assert set(snap["status"]) <= {"ok", "boundary"} and set(snap["fitted_on"]) == {last}
    assert all("1 days old" in n for n in snap["note"])

    strict = _config(tmp_path, "predictive:\n  refit: on_drift\n  refit_significance: 0.999999\n")
    refitted = _tables(run_pipeline(source, last, warehouse=wh, config=strict))["model_fit"]
    snap = refitted.filter(pl.col("fit") == "snapshot")
    assert set(snap["fitted_on"]) == {last}
    assert all("significantly worse" in n for n in snap["note"])
    always = _tables(run_pipeline(source, last, warehouse=wh))["model_fit"]
    for model in ("bgnbd", "gamma_gamma"):  # the warm start lands on the same optimum
        got, want = _params(refitted, "snapshot", model), _params(always, "snapshot", model)
        assert got.keys() == want.keys()
        for k in got:
            assert got[k] == pytest.approx(want[k], rel=1e-4), (model, k)
