"""A model that cannot be fitted never takes the descriptive tables down (predictive.on_failure).

The fits are made to fail for real: `predictive.max_iterations: 1` stops the optimiser before
it converges. Every expectation is checked against a run of the same input whose fits succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.predictive.fit_records import ModelFitError
from pipelines.predictive.fitters.bgnbd import BetaGeoModel

PREDICTED = (
    "p_alive",
    "p_alive_90",
    "churn_risk",
    "expected_next_order_date",
    "expected_avg_order_value",
    "clv_percentile",
)
MODEL_KPIS = ("avg_predicted_clv", "model_alive_customers", "model_alive_repeat_customers")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"config-{abs(hash(text))}.yaml"
    path.write_text(text)
    return path


def _tables(manifest: dict) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(Path(t["path"])) for name, t in manifest["tables"].items()}


def _predicted(frame: pl.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c in PREDICTED or c.startswith(("expected_purchases_", "predicted_clv_"))
    ]


@pytest.mark.slow
def test_a_failed_fit_publishes_every_descriptive_table_degraded(
    generated_orders: tuple, run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    source, _, last = generated_orders
    good = run_pipeline(source, last, warehouse=tmp_path / "good")
    failing = _config(tmp_path, "predictive:\n  max_iterations: 1\n")
    bad = run_pipeline(source, last, warehouse=tmp_path / "bad", config=failing)

    assert good["status"] == "success" and not good["model_failures"]
    assert bad["status"] == "degraded"
    assert len(bad["model_failures"]) == 3  # BG/NBD, Gamma-Gamma, the backtest's BG/NBD
    assert any("did not converge" in w and "null" in w for w in bad["warnings"])
    ok, t = _tables(good), _tables(bad)
    assert ok.keys() == t.keys()

    # the descriptive tables are exactly those of the successful run
    for name in ("customer_rfm", "cohort_retention"):
        assert_frame_equal(t[name], ok[name])
    clv_ok, clv = ok["customer_clv"], t["customer_clv"]
    predicted = _predicted(clv)
    assert len(predicted) >= 5
    assert_frame_equal(clv.drop(predicted), clv_ok.drop(predicted))
    for column in predicted:
        assert clv[column].null_count() == clv.height, column
        assert clv_ok[column].null_count() < clv_ok.height, column
    kpi_ok, kpi = ok["kpi_summary"], t["kpi_summary"]
    assert_frame_equal(kpi.drop(MODEL_KPIS), kpi_ok.drop(MODEL_KPIS))
    assert all(kpi[c][0] is None for c in MODEL_KPIS)
    summary_ok, summary = ok["segment_summary"], t["segment_summary"]
    assert_frame_equal(summary.drop("avg_predicted_clv"), summary_ok.drop("avg_predicted_clv"))

    # model_fit says why, per model
    fits = t["model_fit"]
    assert set(fits["status"]) == {"failed"}
    assert set(zip(fits["fit"], fits["model"])) == {
        ("snapshot", "bgnbd"),
        ("snapshot", "gamma_gamma"),
        ("calibration", "bgnbd"),
        ("calibration", "gamma_gamma"),  # the backtest's spend model: its failure only nulls
    }  # model_backtest's predicted value and Gini, so it is not a model failure of the run
    assert all("did not converge" in note for note in fits["note"])
    assert fits["fitted_on"].null_count() == fits.height
    assert set(ok["model_fit"]["status"]) <= {"ok", "boundary"}


@pytest.mark.slow
def test_on_failure_fail_stops_the_run_and_publishes_nothing(
    generated_orders: tuple, run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    source, _, last = generated_orders
    strict = _config(tmp_path, "predictive:\n  on_failure: fail\n  max_iterations: 1\n")
    wh = tmp_path / "wh"
    with pytest.raises(ModelFitError, match=r"BG/NBD fit \(snapshot\).*Nothing was published"):
        run_pipeline(source, last, warehouse=wh, config=strict)
    assert not list((wh / "marts").rglob("*.parquet")) if (wh / "marts").exists() else True
    assert not list((wh / "runs").rglob("manifest.json")) if (wh / "runs").exists() else True


@pytest.mark.slow
def test_carry_forward_scores_with_the_last_good_fit(
    generated_orders: tuple, run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    source, _, last = generated_orders
    wh = tmp_path / "wh"
    earlier = last - timedelta(days=30)
    first = run_pipeline(source, earlier, warehouse=wh)
    carry = _config(tmp_path, "predictive:\n  on_failure: carry_forward\n  max_iterations: 1\n")
    second = run_pipeline(source, last, warehouse=wh, config=carry)

    assert first["status"] == "success" and second["status"] == "degraded"
    before, now = _tables(first), _tables(second)
    fits = now["model_fit"]
    carried = fits.filter(pl.col("status") == "carried_forward")
    assert set(carried["model"]) == {"bgnbd", "gamma_gamma"}
    assert set(carried["fitted_on"]) == {earlier}
    assert all("today's fit failed" in n for n in carried["note"])
    old = before["model_fit"].filter(pl.col("fit") == "snapshot")
    assert dict(zip(carried["param"], carried["value"])) == dict(zip(old["param"], old["value"]))
    assert set(fits.filter(pl.col("status") == "failed")["model"]) == {"bgnbd", "gamma_gamma"}

    # today's customers scored with the earlier parameters
    p = dict(zip(old.filter(pl.col("model") == "bgnbd")["param"], old["value"]))
    model = BetaGeoModel.from_params(p["r"], p["alpha"], p["a"], p["b"])
    clv = now["customer_clv"]
    expected = model.p_alive(
        clv["frequency"].to_numpy().astype(float),
        clv["recency"].to_numpy().astype(float),
        clv["T"].to_numpy().astype(float),
    )
    np.testing.assert_allclose(clv["p_alive"].to_numpy(), expected, rtol=1e-12)
    assert clv["predicted_clv_365"].null_count() == 0
    assert any("scored with the fit of" in w for w in second["warnings"])


@pytest.mark.slow
def test_carry_forward_without_an_earlier_fit_publishes_null(
    generated_orders: tuple, run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    source, _, last = generated_orders
    carry = _config(tmp_path, "predictive:\n  on_failure: carry_forward\n  max_iterations: 1\n")
    manifest = run_pipeline(source, last, warehouse=tmp_path / "wh", config=carry)
    assert manifest["status"] == "degraded"
    assert any("no earlier good fit to carry forward" in w for w in manifest["warnings"])
    assert _tables(manifest)["customer_clv"]["p_alive"].null_count() > 0
