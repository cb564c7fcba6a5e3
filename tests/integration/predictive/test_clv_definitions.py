"""The model-based KPI and CLV definitions, recomputed from the raw orders of a run.

A generated history with an order cost column (so margins differ between customers) runs
through the whole pipeline with a servicing cost per order; the test recomputes the lifetimes
summary, each customer's margin rate, the Gamma-Gamma expected spend (its closed form) and the
discounted month-by-month CLV from the orders themselves.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.tools.generate import simulate_orders

SERVICING, ANNUAL_DISCOUNT, ACTIVE_DAYS = 1.5, 0.10, 90


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    base = tmp_path_factory.mktemp("definitions")
    orders = simulate_orders(15_000, seed=5, start=date(2024, 1, 1), days=540)
    orders = orders.filter(pl.col("status") == "completed").with_columns(
        # a cost of 40% to 80% of the amount, by customer: margins differ between customers
        cost=(
            pl.col("amount")
            * (0.4 + 0.4 * (pl.col("customer_id").str.slice(-2).cast(pl.Int64) / 99))
        ).round(2)
    )
    source = base / "orders.csv"
    orders.drop("email").write_csv(source)
    config = base / "config.yaml"
    config.write_text(
        f"clv:\n  servicing_cost_per_order: {SERVICING}\n  discount_rate: {ANNUAL_DISCOUNT}\n"
    )
    snapshot = orders["order_ts"].max().date()  # type: ignore[union-attr]
    ctx = RunContext.create(
        source=str(source), snapshot_date=snapshot, warehouse=base / "wh", config_path=str(config)
    )
    manifest = run_all(ctx)
    tables = {n: pl.read_parquet(Path(t["path"])) for n, t in manifest["tables"].items()}
    return {"orders": orders, "tables": tables, "snapshot": snapshot}


def _summary(orders: pl.DataFrame, snapshot: date) -> pl.DataFrame:
    """lifetimes' summary from purchase days, and the margin rate, per customer."""
    days = orders.group_by("customer_id", pl.col("order_ts").dt.date().alias("day")).agg(
        pl.col("amount").sum().alias("spend")
    )
    per = (
        days.sort("day")
        .group_by("customer_id")
        .agg(
            frequency=pl.len() - 1,
            first=pl.col("day").first(),
            last=pl.col("day").last(),
            repeat_spend=pl.col("spend").sum() - pl.col("spend").first(),
        )
        .with_columns(
            recency=(pl.col("last") - pl.col("first")).dt.total_days(),
            T=(pl.lit(snapshot) - pl.col("first")).dt.total_days(),
            monetary=pl.when(pl.col("frequency") > 0)
            .then(pl.col("repeat_spend") / pl.col("frequency"))
            .otherwise(0.0),
        )
    )
    margins = orders.group_by("customer_id").agg(
        margin_rate=(pl.col("amount") - pl.col("cost")).sum() / pl.col("amount").sum()
    )
    return per.join(margins, on="customer_id").sort("customer_id")


def _params(fits: pl.DataFrame, model: str) -> dict[str, float]:
    rows = fits.filter(pl.col("fit") == "snapshot", pl.col("model") == model)
    return dict(zip(rows["param"].to_list(), rows["value"].to_list()))


def test_model_alive_customers_and_active_customers(run: dict) -> None:
    t, snapshot = run["tables"], run["snapshot"]
    s = _summary(run["orders"], snapshot)
    p = _params(t["model_fit"], "bgnbd")
    bg = BetaGeoModel.from_params(p["r"], p["alpha"], p["a"], p["b"])
    alive = bg.p_alive(*(s[c].to_numpy().astype(float) for c in ("frequency", "recency", "T")))
    repeat = s["frequency"].to_numpy() > 0
    kpi = t["kpi_summary"].row(0, named=True)
    assert kpi["model_alive_customers"] == pytest.approx(alive.sum(), rel=1e-9)
    assert kpi["model_alive_repeat_customers"] == pytest.approx(alive[repeat].sum(), rel=1e-9)
    # BG/NBD scores every one-time buyer alive: the gap is exactly their number
    one_time = int((~repeat).sum())
    assert kpi["model_alive_customers"] - kpi["model_alive_repeat_customers"] == pytest.approx(
        one_time
    )
    # active_customers is a count of buyers in the activity window, not a model estimate
    recent = s.filter(pl.col("last") > snapshot - timedelta(days=ACTIVE_DAYS)).height
    assert kpi["active_customers"] == recent
    assert kpi["active_customers"] < kpi["model_alive_customers"]


def test_predicted_clv_has_the_profit_basis_of_historical_profit(run: dict) -> None:
    t, snapshot = run["tables"], run["snapshot"]
    s = _summary(run["orders"], snapshot)
    clv = t["customer_clv"].sort("customer_id")
    assert clv["customer_id"].to_list() == s["customer_id"].to_list()
    np.testing.assert_allclose(
        clv["margin_rate"].to_numpy(), s["margin_rate"].to_numpy(), rtol=1e-9
    )

    g = _params(t["model_fit"], "gamma_gamma")
    x, m = s["frequency"].to_numpy().astype(float), s["monetary"].to_numpy()
    # Fader & Hardie (2013) eq. 5: a weighted mean of the population mean and the customer's mean
    pop = g["p"] * g["v"] / (g["q"] - 1)
    weight = (g["q"] - 1) / (g["p"] * x + g["q"] - 1)
    spend = weight * pop + (1 - weight) * m
    # money is published as DECIMAL, rounded half away from zero: within half a unit of its scale
    assert clv.schema["expected_avg_order_value"] == pl.Decimal(18, 4)
    np.testing.assert_allclose(
        clv["expected_avg_order_value"].cast(pl.Float64).to_numpy(), spend, rtol=1e-9, atol=5e-5
    )

    b = _params(t["model_fit"], "bgnbd")
    bg = BetaGeoModel.from_params(b["r"], b["alpha"], b["a"], b["b"])
    rft = [s[c].to_numpy().astype(float) for c in ("frequency", "recency", "T")]
    monthly = (1 + ANNUAL_DISCOUNT) ** (1 / 12) - 1
    profit = spend * s["margin_rate"].to_numpy() - SERVICING
    for horizon, months in ((90, 3), (365, 12)):
        total = np.zeros(s.height)
        for i in range(1, months + 1):
            step = bg.predict(30.0 * i, *rft) - bg.predict(30.0 * (i - 1), *rft)
            total += step / (1 + monthly) ** i * profit
        assert clv.schema[f"predicted_clv_{horizon}"] == pl.Decimal(18, 2)
        np.testing.assert_allclose(
            clv[f"predicted_clv_{horizon}"].cast(pl.Float64).to_numpy(),
            total,
            rtol=1e-9,
            atol=0.005,
        )
