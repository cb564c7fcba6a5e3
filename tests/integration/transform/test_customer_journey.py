"""The customer journey through `custval run`, recomputed independently from the raw orders.

A generated history (with item quantities and marketing spend per month and channel) is run for
two snapshot dates three weeks apart. For each date, customer_journey, journey_summary, the
journey rows of segment_summary and cohort_retention's order values are recomputed here with
Polars from the orders file itself, money in integer cents (so the comparison is exact up to
the published DECIMAL's rounding: half a unit of its last place), the ABC classes and the CAC
included. Only the lifecycle stage is read from the published
customer_rfm (it has its own tests); the activity state maps it. Between the two dates
customers move one_time -> repeat and repeat -> high_value, and their dates say when.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import assert_money

from pipelines.tools.generate import simulate_orders, write_orders

RECENT = 2  # journey.recent_orders
REPEAT_WINDOW, HIGH_VALUE_WINDOW = 60, 120
MARGIN = 0.30
TABLES = (
    "customer_rfm",
    "customer_journey",
    "journey_summary",
    "segment_summary",
    "cohort_retention",
)


pytestmark = pytest.mark.slow


def _run(source: Path, day: date, warehouse: Path, config: Path) -> dict[str, pl.DataFrame]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    ctx = RunContext.create(
        source=str(source), snapshot_date=day, warehouse=warehouse, config_path=str(config)
    )
    manifest = run_all(ctx)
    assert manifest["status"] == "success", manifest.get("error")
    return {name: pl.read_parquet(Path(manifest["tables"][name]["path"])) for name in TABLES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("journey")
    orders = simulate_orders(4_000, seed=11, start=date(2024, 1, 1), days=300)
    rng = np.random.default_rng(5)
    quantity = rng.integers(1, 6, orders.height)
    orders = orders.with_columns(
        quantity=pl.Series(quantity).cast(pl.Int64).scatter(rng.choice(orders.height, 200), None)
    )
    source = write_orders(orders, base / "orders" / "orders.csv", "csv")
    months = pl.date_range(date(2024, 1, 1), date(2024, 12, 1), "1mo", eager=True)
    spend = pl.DataFrame({"month": months}).join(
        pl.DataFrame({"channel": ["web", "app", "store"]}), how="cross"
    )
    spend = spend.with_columns(spend=400.0 + 13.0 * pl.int_range(pl.len()).cast(pl.Float64))
    spend.write_csv(base / "spend.csv")
    config = base / "config.yaml"
    config.write_text(
        "predictive:\n  enabled: false\n"
        "rfm:\n  transition_lookback_days: 1\n"
        f"marketing_spend: {base / 'spend.csv'}\n"
        f"journey:\n  recent_orders: {RECENT}\n  repeat_window_days: {REPEAT_WINDOW}\n"
        f"  high_value_window_days: {HIGH_VALUE_WINDOW}\n"
    )
    raw = pl.read_csv(source, try_parse_dates=True, schema_overrides={"quantity": pl.Int64})
    last = raw["order_ts"].max().date()  # type: ignore[union-attr]
    days = (last - timedelta(days=21), last)
    wh = base / "wh"
    return {
        "raw": raw,
        "spend": spend,
        "days": days,
        "tables": [_run(source, day, wh, config) for day in days],
    }


# ------------------------------------------------------------------------------------------
# The independent computation


def _orders(raw: pl.DataFrame, day: date) -> pl.DataFrame:
    status = pl.col("status").str.to_lowercase().fill_null("completed")
    cents = (pl.col("amount") * 100).round().cast(pl.Int64)
    kind = (
        pl.when(status == "cancelled")
        .then(pl.lit("cancelled"))
        .when(status.is_in(["refunded", "returned"]) | (cents < 0))
        .then(pl.lit("return"))
        .otherwise(pl.lit("purchase"))
    )
    frame = raw.with_columns(
        cents=cents, kind=kind, order_date=pl.col("order_ts").dt.date()
    ).filter(pl.col("order_date") <= day, pl.col("kind") != "cancelled")
    gross = pl.when(pl.col("cents") >= 0).then(pl.col("cents")).otherwise(0)
    returned = pl.when(pl.col("kind") == "return").then(pl.col("cents").abs()).otherwise(0)
    channel = pl.col("channel").str.strip_chars().str.to_lowercase()
    return frame.with_columns(
        gross=gross,
        net=gross - returned,
        channel=pl.when(channel == "").then(None).otherwise(channel),
        is_purchase=pl.col("kind") == "purchase",
    ).sort("customer_id", "order_ts", "order_id")


def _abc_a(customers: pl.DataFrame) -> set[str]:
    ranked = customers.sort(["net", "customer_id"], descending=[True, False])
    positive = ranked["net"].clip(lower_bound=0)
    before = positive.cum_sum() - positive
    total = int(positive.sum())
    is_a = (ranked["net"] > 0) & (before < 0.80 * total)
    return set(ranked.filter(is_a)["customer_id"])


def _expected(raw: pl.DataFrame, spend: pl.DataFrame, day: date, rfm: pl.DataFrame) -> pl.DataFrame:
    orders = _orders(raw, day)
    lifecycle = dict(zip(rfm["customer_id"], rfm["lifecycle_stage"], strict=True))
    purchases = orders.filter("is_purchase")
    net = orders.group_by("customer_id").agg(net=pl.col("net").sum())
    firsts = purchases.group_by("customer_id").agg(
        first_date=pl.col("order_date").first(),
        channel=pl.col("channel").first(),
        days=pl.col("order_date").unique().sort(),
    )
    customers = firsts.join(net, on="customer_id").sort("customer_id")
    high_value_class = _abc_a(customers)
    acquired = customers.with_columns(month=pl.col("first_date").dt.truncate("1mo"))
    counts = acquired.group_by("month", "channel").agg(n=pl.len())
    cac_of = {
        (row["month"], row["channel"]): row["spend"] / n
        for row in spend.to_dicts()
        for n in counts.filter(month=row["month"], channel=row["channel"])["n"]
    }

    rows = []
    by_customer = {key[0]: frame for key, frame in orders.group_by("customer_id")}
    for c in customers.to_dicts():
        cid, purchase_days = c["customer_id"], c["days"]
        second = purchase_days[1] if len(purchase_days) > 1 else None
        stage = "one_time" if second is None else "repeat"
        if second is not None and cid in high_value_class:
            stage = "high_value"
        state = lifecycle[cid] if lifecycle[cid] in ("at_risk", "lapsed") else "active"
        history = by_customer[cid]
        bought = history.filter("is_purchase")
        first = bought.row(0, named=True)
        later = bought.filter(pl.col("order_date") > c["first_date"]).tail(RECENT)
        recent_value = later["gross"].mean() / 100 if later.height else None  # type: ignore[operator]
        recent_items = later["quantity"].drop_nulls()
        numbered = bought.with_row_index("n", offset=1).drop_nulls("quantity")
        x, y = numbered["n"].to_numpy().astype(float), numbered["quantity"].to_numpy().astype(float)
        trend = float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 and x.var() > 0 else None
        month = c["first_date"].replace(day=1)
        cac = cac_of.get((month, c["channel"]))
        profit_milli = history["net"] * 3  # net cents x 30 % in tenths of a cent
        to_date = profit_milli.cum_sum()
        paid = [i for i, p in enumerate(to_date) if cac is not None and p / 1000 >= cac]
        payback_row = history.row(paid[0], named=True) if paid else None
        first_profit = first["net"] * 3 / 1000
        rows.append(
            {
                "customer_id": cid,
                "first_order_date": c["first_date"],
                "purchase_days": len(purchase_days),
                "journey_stage": stage,
                "activity_state": state,
                "became_repeat_on": second,
                "days_to_second_purchase": (second - c["first_date"]).days if second else None,
                "first_order_value": first["gross"] / 100,
                "recent_order_value": recent_value,
                "aov_growth": recent_value / (first["gross"] / 100)
                if recent_value is not None and first["gross"] > 0
                else None,
                "first_order_items": first["quantity"],
                "recent_items_per_order": recent_items.mean() if recent_items.len() else None,
                "items_per_order_trend": trend,
                "acquisition_channel": c["channel"],
                "acquisition_month": month,
                "cac": cac,
                "first_order_profit": first_profit,
                "first_order_profit_after_cac": first_profit - cac if cac is not None else None,
                "cac_paid_back": bool(paid) if cac is not None else None,
                "cac_payback_orders": int(history["is_purchase"][: paid[0] + 1].sum())
                if paid
                else None,
                "cac_payback_days": (payback_row["order_date"] - c["first_date"]).days
                if payback_row
                else None,
                "net": c["net"],
            }
        )
    journey = pl.DataFrame(rows, infer_schema_length=None)
    # became_high_value_on: the first day from the second purchase day on whose net revenue
    # to date reaches the lowest net revenue of a high-value customer
    high_value = journey.filter(journey_stage="high_value")
    bar = high_value["net"].min()
    reached = {}
    daily = (
        orders.group_by("customer_id", "order_date")
        .agg(pl.col("net").sum())
        .sort("customer_id", "order_date")
    )
    daily = daily.with_columns(to_date=pl.col("net").cum_sum().over("customer_id"))
    for row in high_value.select("customer_id", "became_repeat_on").to_dicts():
        days_ok = daily.filter(
            customer_id=row["customer_id"],
        ).filter(pl.col("order_date") >= row["became_repeat_on"], pl.col("to_date") >= bar)
        reached[row["customer_id"]] = days_ok["order_date"].min()
    return journey.with_columns(
        became_high_value_on=pl.col("customer_id").replace_strict(
            reached, default=None, return_dtype=pl.Date
        ),
        bar=pl.lit(bar / 100 if bar is not None else None),  # type: ignore[operator]
    ).sort("customer_id")


def _expected_summary(journey: pl.DataFrame, day: date) -> dict[str, Any]:
    def count(expr: pl.Expr) -> int:
        return journey.filter(expr).height

    stage, repeat_on = pl.col("journey_stage"), pl.col("became_repeat_on")
    high_on, first = pl.col("became_high_value_on"), pl.col("first_order_date")
    eligible = first <= day - timedelta(days=REPEAT_WINDOW)
    hv_eligible = repeat_on <= day - timedelta(days=HIGH_VALUE_WINDOW)
    with_cac = journey.filter(pl.col("cac").is_not_null())
    return {
        "customers": journey.height,
        "one_time_customers": count(stage == "one_time"),
        "repeat_customers": count(stage == "repeat"),
        "high_value_customers": count(stage == "high_value"),
        "at_risk_customers": count(pl.col("activity_state") == "at_risk"),
        "lapsed_customers": count(pl.col("activity_state") == "lapsed"),
        "high_value_revenue_bar": journey["bar"][0],
        "median_days_to_second_purchase": journey["days_to_second_purchase"].median(),
        "repeat_eligible_customers": count(eligible),
        "repeat_conversion_rate": count(
            eligible & (pl.col("days_to_second_purchase") <= REPEAT_WINDOW)
        )
        / count(eligible),
        "high_value_eligible_customers": count(hv_eligible),
        "high_value_conversion_rate": count(
            hv_eligible & ((high_on - repeat_on).dt.total_days() <= HIGH_VALUE_WINDOW)
        )
        / count(hv_eligible),
        "previous_one_time_customers": count(
            (first < day) & (repeat_on.is_null() | (repeat_on >= day))
        ),
        "previous_repeat_customers": count(
            (repeat_on < day) & (high_on.is_null() | (high_on >= day))
        ),
        "previous_high_value_customers": count(high_on < day),
        "new_customers_since_previous": count(first == day),
        "became_repeat_since_previous": count(repeat_on == day),
        "became_high_value_since_previous": count(high_on == day),
        "customers_with_cac": with_cac.height,
        "first_order_loss_share": with_cac.filter(pl.col("first_order_profit_after_cac") < 0).height
        / with_cac.height,
        "cac_unpaid_share": with_cac.filter(~pl.col("cac_paid_back")).height / with_cac.height,
    }


# ------------------------------------------------------------------------------------------
# The checks


def _assert_same(got: Any, want: Any, where: str) -> None:
    if isinstance(got, Decimal):  # money: the exact value rounded to the published scale
        assert_money(got, want, where)
    elif isinstance(want, float) or isinstance(got, float):
        assert got is not None and want is not None, where
        assert float(got) == pytest.approx(float(want), rel=1e-9, abs=1e-9), where
    else:
        assert got == want, where


@pytest.mark.parametrize("which", [0, 1])
def test_customer_journey_matches_an_independent_computation(
    runs: dict[str, Any], which: int
) -> None:
    day, tables = runs["days"][which], runs["tables"][which]
    want = _expected(runs["raw"], runs["spend"], day, tables["customer_rfm"])
    got = tables["customer_journey"].sort("customer_id")
    assert got["customer_id"].to_list() == want["customer_id"].to_list()
    assert set(got["journey_stage"]) == {"one_time", "repeat", "high_value"}
    assert got["cac"].null_count() < got.height  # the spend file gives most customers a CAC
    for column in got.columns:
        for g, w, cid in zip(got[column], want[column], got["customer_id"], strict=True):
            if w is None:
                assert g is None, f"{day} {cid} {column}: {g} (expected null)"
            else:
                _assert_same(g, w, f"{day} {cid} {column}")


@pytest.mark.parametrize("which", [0, 1])
def test_journey_summary_matches_an_independent_computation(
    runs: dict[str, Any], which: int
) -> None:
    day, tables = runs["days"][which], runs["tables"][which]
    journey = _expected(runs["raw"], runs["spend"], day, tables["customer_rfm"])
    want = _expected_summary(journey, day)
    got = tables["journey_summary"].to_dicts()
    assert len(got) == 1
    for column, value in want.items():
        _assert_same(got[0][column], value, f"{day} journey_summary.{column}")
    assert got[0]["previous_snapshot_date"] == day - timedelta(days=1)
    # journey_state rows of segment_summary count the same customers
    states = tables["segment_summary"].filter(dimension="journey_state")
    counted = journey.group_by(
        (pl.col("journey_stage") + "/" + pl.col("activity_state")).alias("segment")
    ).agg(pl.len().alias("customers"))
    assert dict(states.select("segment", "customers").iter_rows()) == dict(counted.iter_rows())


def test_cohort_order_values_match(runs: dict[str, Any]) -> None:
    day, tables = runs["days"][1], runs["tables"][1]
    orders = _orders(runs["raw"], day)
    cohort = (
        orders.filter("is_purchase")
        .group_by("customer_id")
        .agg(cohort_month=pl.col("order_date").min().dt.truncate("1mo"))
    )
    cells = (
        orders.join(cohort, on="customer_id")
        .with_columns(
            months_since_first=(
                (pl.col("order_date").dt.year() - pl.col("cohort_month").dt.year()) * 12
                + pl.col("order_date").dt.month()
                - pl.col("cohort_month").dt.month()
            ).cast(pl.Int64)
        )
        .group_by("cohort_month", "months_since_first")
        .agg(cents=pl.col("net").sum(), orders=pl.col("is_purchase").sum())
    )
    got = tables["cohort_retention"].join(cells, on=["cohort_month", "months_since_first"])
    assert got.height > 20
    assert (got["purchase_orders"] == got["orders"]).all()
    expected_aov = got["cents"] / 100 / got["orders"]
    assert got.schema["average_order_value"] == pl.Decimal(18, 4)
    for g, w in zip(got["average_order_value"], expected_aov, strict=True):
        assert_money(g, w)


def test_customers_move_along_the_journey_between_snapshots(runs: dict[str, Any]) -> None:
    (d1, d2), (t1, t2) = runs["days"], runs["tables"]
    before = t1["customer_journey"].select("customer_id", pl.col("journey_stage").alias("then"))
    now = t2["customer_journey"].join(before, on="customer_id", how="left")
    to_repeat = now.filter(then="one_time", journey_stage="repeat")
    to_high_value = now.filter(then="repeat", journey_stage="high_value")
    assert to_repeat.height > 0 and to_high_value.height > 0
    # each mover's date falls between the two snapshots
    assert to_repeat["became_repeat_on"].is_between(d1 + timedelta(days=1), d2).all()
    assert (to_high_value["became_repeat_on"] <= d1).all()
    # a customer new since d1 starts one_time or became repeat after d1
    new = now.filter(pl.col("then").is_null())
    assert (new["first_order_date"] > d1).all()
    total = t2["journey_summary"]["customers"][0]
    assert total == t2["customer_rfm"].height
