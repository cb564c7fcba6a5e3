"""Predictive CLV in the pipeline: the published CDNOW figures, independent checks, failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import SHARED, require
from unit.predictive.fitters.test_fitters_bgnbd import integrated_p_alive_and_expectation
from unit.predictive.fitters.test_fitters_pnbd import integrated_pnbd

from pipelines.predictive.fitters.bgnbd import BetaGeoModel, BetaGeoParams
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel, customer_lifetime_value
from pipelines.predictive.fitters.pnbd import ParetoNBDParams
from pipelines.predictive.predictive import fit_bgnbd
from pipelines.predictive.scoring import customer_scorer, monthly_rate
from pipelines.predictive.summary import CustomerSummary

CDNOW = SHARED / "data" / "cdnow" / "CDNOW_sample.txt"

# Fader, Hardie & Lee (2005), BG/NBD on the CDNOW sample (39-week calibration), time in weeks.
BGNBD_WEEKS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", the 946 repeat customers.
GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
# Fader, Hardie & Lee (2005), Pareto/NBD on the same data ("A Note on Deriving the Pareto/NBD
# Model and Related Expressions"), time in weeks.
PNBD_WEEKS = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PNBD_LL_WEEKS = -9595.0


pytestmark = pytest.mark.slow


def three_sig(value: float) -> str:
    return f"{value:.3g}"


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole pipeline on the CDNOW sample as of the end of the calibration period."""
    return _cdnow(tmp_path_factory, None)


@pytest.fixture(scope="module")
def cdnow_pnbd_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same with predictive.model: pnbd."""
    return _cdnow(tmp_path_factory, "predictive:\n  model: pnbd\n")


def _cdnow(tmp_path_factory: pytest.TempPathFactory, config: str | None) -> dict:
    require(CDNOW.is_file(), f"CDNOW sample not found at {CDNOW}")
    fields = np.array(CDNOW.read_text().split()).reshape(-1, 5)
    orders = pl.DataFrame(
        {
            "order_id": [f"T{i}" for i in range(len(fields))],
            "customer_id": fields[:, 1],
            "order_ts": [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in fields[:, 2]],
            "amount": fields[:, 4],
            "currency": ["USD"] * len(fields),
        }
    )
    base = tmp_path_factory.mktemp("cdnow")
    source = base / "cdnow_orders.csv"
    orders.write_csv(source)
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    config_path = None
    if config is not None:
        config_path = base / "config.yaml"
        config_path.write_text(config)
    ctx = RunContext.create(
        source=str(source),
        snapshot_date="1997-09-30",
        warehouse=base / "wh",
        config_path=None if config_path is None else str(config_path),
    )
    manifest = run_all(ctx)
    tables = {name: pl.read_parquet(Path(t["path"])) for name, t in manifest["tables"].items()}
    return {"manifest": manifest, "tables": tables, "orders": orders}


def _params(fit: pl.DataFrame, model: str) -> dict[str, float]:
    rows = fit.filter(pl.col("fit") == "snapshot", pl.col("model") == model)
    return dict(zip(rows["param"].to_list(), rows["value"].to_list()))


def test_cdnow_reproduces_the_published_bgnbd_parameters(cdnow_run: dict) -> None:
    fit = cdnow_run["tables"]["model_fit"]
    p = _params(fit, "bgnbd")
    weeks = {"r": p["r"], "alpha": p["alpha"] / 7, "a": p["a"], "b": p["b"]}  # fitted in days
    assert {k: three_sig(v) for k, v in weeks.items()} == {
        k: three_sig(v) for k, v in BGNBD_WEEKS.items()
    }
    assert cdnow_run["manifest"]["counts"]["rows_in"] == 6919
    clv = cdnow_run["tables"]["customer_clv"]
    assert clv.height == 2357
    assert (
        fit.filter(pl.col("model") == "bgnbd", pl.col("fit") == "snapshot")["customers_used"][0]
        == 2357
    )


def test_cdnow_reproduces_the_published_pareto_nbd_parameters(cdnow_pnbd_run: dict) -> None:
    """Fader, Hardie & Lee (2005), Pareto/NBD on CDNOW in weeks: r = 0.553, alpha = 10.578,
    s = 0.606, beta = 11.669, LL = -9595.0; the pipeline fits in days."""
    fit = cdnow_pnbd_run["tables"]["model_fit"]
    p = _params(fit, "pnbd")
    weeks = {"r": p["r"], "alpha": p["alpha"] / 7, "s": p["s"], "beta": p["beta"] / 7}
    assert {k: three_sig(v) for k, v in weeks.items()} == {
        k: three_sig(v) for k, v in PNBD_WEEKS.items()
    }
    clv = cdnow_pnbd_run["tables"]["customer_clv"]
    row = fit.filter(pl.col("fit") == "snapshot", pl.col("model") == "pnbd").row(0, named=True)
    # the density of x purchase times in weeks is 7^x that in days
    ll_weeks = row["log_likelihood"] + float(clv["frequency"].sum()) * np.log(7.0)
    assert ll_weeks == pytest.approx(PNBD_LL_WEEKS, abs=0.05)
    assert row["customers_used"] == 2357
    bt = cdnow_pnbd_run["tables"]["model_backtest"]
    assert set(bt["model"]) == {"pnbd"} and bt["selected"].all()
    # one-time buyers are not all alive under Pareto/NBD: P(alive) falls with T
    once = clv.filter(pl.col("frequency") == 0).sort("T")
    assert once["p_alive"][0] > once["p_alive"][-1] and once["p_alive"].max() < 1


def test_cdnow_pareto_nbd_predictions_by_numerical_integration(cdnow_pnbd_run: dict) -> None:
    """P(alive), P(alive in 90 days) and E[purchases in 90 days] of a few published customers,
    integrated over the posterior of (lambda, mu) from the fitted parameters by quadrature
    (tests/unit/.../test_fitters_pnbd.py; independent of fitters/pnbd.py's 2F1 terms)."""
    p = ParetoNBDParams(**_params(cdnow_pnbd_run["tables"]["model_fit"], "pnbd"))
    clv = cdnow_pnbd_run["tables"]["customer_clv"].sort("customer_id")
    picks = pl.concat(
        [clv.filter(pl.col("frequency") == f).head(1) for f in (0, 1, 3)]
        + [clv.filter(pl.col("frequency") >= 8).head(1)]
    )
    for c in picks.iter_rows(named=True):
        want = integrated_pnbd(p, c["frequency"], c["recency"], c["T"], 90.0)
        assert c["p_alive"] == pytest.approx(want["p_alive"], rel=1e-7)
        assert c["p_alive_90"] == pytest.approx(want["alive_at"], rel=1e-7)
        assert c["expected_purchases_90"] == pytest.approx(want["expected"], rel=1e-7)


def test_cdnow_reproduces_the_published_gamma_gamma_parameters(cdnow_run: dict) -> None:
    fit = cdnow_run["tables"]["model_fit"]
    p = _params(fit, "gamma_gamma")
    assert {k: three_sig(v) for k, v in p.items()} == {
        k: three_sig(v) for k, v in GAMMA_GAMMA.items()
    }
    row = fit.filter(pl.col("model") == "gamma_gamma").row(0, named=True)
    assert (row["customers_used"], row["customers_excluded"]) == (
        946,
        2357 - 946,
    )  # reported, not hidden


def test_cdnow_p_alive_and_expected_purchases_by_numerical_integration(cdnow_run: dict) -> None:
    """For a handful of customers, integrate over the latent purchase rate and dropout
    probability (tests/fitters) with the fitted parameters and compare the published values."""
    fit = cdnow_run["tables"]["model_fit"]
    prm = BetaGeoParams(**_params(fit, "bgnbd"))
    clv = cdnow_run["tables"]["customer_clv"].sort("customer_id")
    picks = pl.concat(
        [
            clv.filter(pl.col("frequency") == 0).head(2),
            clv.filter(pl.col("frequency") == 1).head(1),
            clv.filter(pl.col("frequency") >= 5).head(2),
        ]
    )
    for c in picks.iter_rows(named=True):
        p_alive, expected_90 = integrated_p_alive_and_expectation(
            prm, c["frequency"], c["recency"], c["T"], 90.0
        )
        assert c["p_alive"] == pytest.approx(p_alive, rel=1e-6)
        assert c["expected_purchases_90"] == pytest.approx(expected_90, rel=1e-6)


def test_cdnow_summary_matches_an_independent_count(cdnow_run: dict) -> None:
    """frequency/recency/T from the raw file with Polars, the way lifetimes defines them."""
    o = cdnow_run["orders"].with_columns(
        pl.col("order_ts").str.to_date(), pl.col("amount").cast(pl.Float64)
    )
    o = o.filter(pl.col("order_ts") <= date(1997, 9, 30))
    days = o.group_by("customer_id", "order_ts").agg(pl.col("amount").sum())
    expected = (
        days.group_by("customer_id")
        .agg(
            (pl.len() - 1).alias("frequency"),
            (pl.col("order_ts").max() - pl.col("order_ts").min()).dt.total_days().alias("recency"),
            (pl.lit(date(1997, 9, 30)) - pl.col("order_ts").min()).dt.total_days().alias("T"),
        )
        .sort("customer_id")
    )
    got = cdnow_run["tables"]["customer_clv"].sort("customer_id").select(expected.columns)
    assert got.cast({"frequency": pl.Int64, "recency": pl.Int64, "T": pl.Int64}).equals(
        expected.cast({"frequency": pl.Int64, "recency": pl.Int64, "T": pl.Int64})
    )


def test_cdnow_backtest_is_consistent(cdnow_run: dict) -> None:
    bt = cdnow_run["tables"]["model_backtest"]
    overall = bt.filter(pl.col("scope") == "overall").row(0, named=True)
    buckets = bt.filter(pl.col("scope").str.starts_with("frequency="))
    deciles = bt.filter(pl.col("scope").str.starts_with("decile="))
    assert deciles.height == 10 and deciles["customers"].sum() == overall["customers"]
    assert deciles["actual_purchases"].sum() == overall["actual_purchases"]
    assert set(bt["model"]) == {"bgnbd"} and bt["selected"].all()
    assert 0 < overall["gini"] <= 1
    assert overall["calibration_end"] == date(1997, 7, 2) and overall["holdout_days"] == 90
    assert buckets["customers"].sum() == overall["customers"]
    assert buckets["actual_purchases"].sum() == overall["actual_purchases"]
    # actual holdout purchase days, counted independently from the raw orders
    o = cdnow_run["orders"].with_columns(pl.col("order_ts").str.to_date())
    first = o.group_by("customer_id").agg(pl.col("order_ts").min().alias("first"))
    cohort = first.filter(pl.col("first") <= date(1997, 7, 2))["customer_id"]
    holdout = o.filter(
        pl.col("customer_id").is_in(cohort.implode()),
        pl.col("order_ts") > date(1997, 7, 2),
        pl.col("order_ts") <= date(1997, 9, 30),
    )
    assert overall["actual_purchases"] == holdout.select("customer_id", "order_ts").unique().height
    assert overall["customers"] == cohort.len()
    assert 0 < overall["correlation"] <= 1 and overall["mae"] > 0


def test_predicted_clv_equals_the_reference_formula() -> None:
    """The pipeline's shared-evaluation CLV equals fitters.customer_lifetime_value (itself
    checked against lifetimes) for every horizon."""
    rng = np.random.default_rng(3)
    n = 5_000
    T = rng.integers(1, 400, n).astype(float)
    r = np.floor(rng.random(n) * T)
    f = np.where(r > 0, rng.integers(1, 15, n), 0).astype(float)
    m = np.where(f > 0, rng.gamma(4, 10, n), 0.0)
    bg = BetaGeoModel.from_params(0.3, 40.0, 0.8, 3.0)
    gg = GammaGammaModel.from_params(6.25, 3.74, 15.44)
    rate = monthly_rate(0.1)
    summary = CustomerSummary.from_frame(
        pl.DataFrame({"frequency": f, "recency": r, "T": T, "monetary_value": m})
    )
    out = customer_scorer(
        bg,
        gg,
        summary,
        horizons=[90, 365],
        days_per_month=30.0,
        monthly_discount_rate=rate,
        margin_rate=0.3,
    )(slice(None))
    for h, months in ((90, 3), (365, 12)):
        ref = customer_lifetime_value(
            bg, gg, f, r, T, m, months=months, monthly_discount_rate=rate, margin=0.3
        )
        np.testing.assert_allclose(out[f"predicted_clv_{h}"], ref, rtol=1e-12)
        np.testing.assert_allclose(
            out[f"expected_purchases_{h}"], bg.predict(float(h), f, r, T), rtol=1e-12
        )
    np.testing.assert_allclose(out["p_alive"], bg.p_alive(f, r, T), rtol=1e-12)


def test_scoring_slice_by_slice_equals_scoring_everyone_at_once() -> None:
    rng = np.random.default_rng(5)
    n = 1_000
    T = rng.integers(30, 400, n).astype(float)
    r = np.floor(rng.uniform(0, 1, n) * T)
    f = np.where(r > 0, rng.integers(1, 15, n), 0).astype(float)
    m = np.where(f > 0, rng.gamma(4, 10, n), 0.0)
    summary = CustomerSummary.from_frame(
        pl.DataFrame({"frequency": f, "recency": r, "T": T, "monetary_value": m})
    )
    kw: dict = {
        "horizons": [90, 365],
        "days_per_month": 30.0,
        "monthly_discount_rate": monthly_rate(0.1),
        "margin_rate": rng.uniform(0.1, 0.5, n),
        "servicing_cost": 1.5,
    }
    bg = BetaGeoModel.from_params(0.3, 40.0, 0.8, 3.0)
    gg = GammaGammaModel.from_params(6.25, 3.74, 15.44)
    score = customer_scorer(bg, gg, summary, **kw)
    whole = score(slice(None))
    sliced = [score(slice(start, start + 333)) for start in range(0, n, 333)]
    assert list(sliced[0]) == list(whole)
    for name, values in whole.items():
        np.testing.assert_array_equal(np.concatenate([s[name] for s in sliced]), values)


def test_predictions_handed_to_duckdb_in_batches_are_the_same_rows(
    cdnow_run: dict, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CDNOW's 2,357 customers scored 1,000 at a time (a 1M-customer batch in production)."""
    from pipelines.predictive import predictive

    monkeypatch.setattr(predictive, "PREDICTION_BATCH", 1_000)
    batched = _cdnow(tmp_path_factory, None)
    for table in ("customer_clv", "customer_rfm"):
        want = cdnow_run["tables"][table].sort("customer_id")
        got = batched["tables"][table].sort("customer_id")
        assert got.height == want.height == 2357
        assert got.equals(want), table


def test_fitting_distinct_rows_with_weights_equals_fitting_every_customer() -> None:
    from pipelines.predictive.fitters.bgnbd import simulate_summary

    rng = np.random.default_rng(9)
    n = 20_000
    f, r, T = simulate_summary(
        BetaGeoParams(0.25, 30.0, 0.8, 2.5), rng.integers(30, 400, n).astype(float), rng
    )
    r = np.floor(r)  # whole days, so customers share rows as in the pipeline
    frame = pl.DataFrame({"frequency": f, "recency": r, "T": T, "monetary_value": np.zeros(n)})
    weighted = fit_bgnbd(frame, "weighted").params.as_dict()
    direct = BetaGeoModel().fit(f, r, T).params.as_dict()
    assert weighted == pytest.approx(direct, rel=1e-5)


def test_a_history_without_repeat_buyers_fails_the_fit_under_on_failure_fail(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    from pipelines.predictive.fit_records import ModelFitError

    # 300 customers over a year, nobody ever buys twice: dropout is not identifiable.
    rows = [
        (
            f"O{i}",
            f"C{i}",
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
            "10.00",
            "USD",
            "completed",
        )
        for i in range(300)
    ]
    wh = tmp_path / "wh"
    with pytest.raises(
        ModelFitError,
        match=r"BG/NBD fit \(snapshot\).*300 customers, 0 with repeat purchases.*Nothing was published",
    ):
        strict = tmp_path / "strict.yaml"
        strict.write_text("predictive:\n  on_failure: fail\n")
        run_pipeline(orders_csv(rows), "2024-12-31", warehouse=wh, config=strict)
    assert not (wh / "marts").exists() and not list((wh / "runs").rglob("manifest.json"))


def test_short_history_skips_the_models_with_a_warning(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict]
) -> None:
    rows = [
        (f"O{i}", f"C{i % 40}", f"2024-03-{1 + i % 28:02d}T10:00:00Z", "10.00", "USD", "completed")
        for i in range(200)
    ]
    manifest = run_pipeline(orders_csv(rows), "2024-03-31")
    assert any(
        "predictions skipped: 30 days of purchase history" in w for w in manifest["warnings"]
    )
    clv = pl.read_parquet(Path(manifest["tables"]["customer_clv"]["path"]))
    assert clv["p_alive"].null_count() == clv.height
    assert pl.read_parquet(Path(manifest["tables"]["model_fit"]["path"])).height == 0


def test_horizons_need_their_contract_columns(tmp_path: Path) -> None:
    from pipelines.config import load_config
    from pipelines.transform.marts import ModelError, check_contract_horizons

    cfg = tmp_path / "c.yaml"
    cfg.write_text("predictive:\n  horizons_days: [30, 365]\n")
    with pytest.raises(
        ModelError,
        match="expected_purchases_30, predicted_clv_30 in data_contracts/customer_clv.yaml",
    ):
        check_contract_horizons(load_config(cfg))
