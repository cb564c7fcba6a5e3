"""The customer models on a generated two-year order history, against independent computations.

20,000 generated orders with referrals and a marketing spend are built by the SQL models
(without predictions); every expected value here is recomputed in Polars/Python from the
orders themselves, never read from another model. Money is summed in integer cents, so ties
between customers are exact, as they are in the SQL (DECIMAL) sums.
"""

from __future__ import annotations

import bisect
import statistics
from datetime import date, timedelta

import polars as pl
import pytest
from marts_helper import NO_PREDICTIONS, staged_frame

from pipelines.config import load_config
from pipelines.tools.generate import simulate_orders
from pipelines.transform.marts import build_snapshot, connect, load_models

SNAPSHOT = date(2025, 12, 30)  # the generated history's last day
CALIBRATION = SNAPSHOT - timedelta(days=90)  # predictive.backtest_holdout_days
BINS, A_PERCENT, B_PERCENT = 5, 80, 95  # rfm.bins, abc.a_share, abc.b_share
MARGIN, DISCOUNT, PRIOR_DAYS = 0.30, 0.10, 90  # clv.frequency_prior_days
F_BREAKPOINTS = [2, 3, 4, 6]  # rfm.breakpoints.f (rfm.scoring.f: breakpoints)
LTV_CAC = (1.0, 3.0, 5.0)  # clv.ltv_cac_thresholds
TIERS = [("Platinum", 2000, 12), ("Gold", 750, 6), ("Silver", 250, 3), ("Bronze", 0, 0)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sql_golden")
    orders = simulate_orders(20_000, seed=11, start=date(2024, 1, 1), days=730).drop("email")
    ids = orders["customer_id"].unique().sort().to_list()
    referrer = dict(zip(ids[5::5], ids[4::5]))  # every fifth customer names the one before
    orders = orders.with_columns(
        referred_by=pl.col("customer_id").replace_strict(referrer, default=None),
        cents=(pl.col("amount") * 100).round().cast(pl.Int64),
        day=pl.col("order_ts").dt.date(),
    )
    months = pl.date_range(date(2024, 1, 1), date(2025, 12, 1), "1mo", eager=True)
    spend = pl.DataFrame({"month": months}).join(
        pl.DataFrame({"channel": ["web", "app"]}), how="cross"
    )
    spend = spend.with_columns(spend=100.0 + pl.int_range(pl.len()).cast(pl.Float64))
    spend.write_csv(tmp / "spend.csv")
    (tmp / "config.yaml").write_text(f"marketing_spend: {tmp / 'spend.csv'}\n{NO_PREDICTIONS}")
    con = connect()
    try:
        build_snapshot(
            con,
            load_config(tmp / "config.yaml"),
            SNAPSHOT,
            staged_frame(orders.drop("cents", "day").to_dicts()),
            load_models(),
        )
        tables = {
            name: con.sql(f"select * from {name}").pl()
            for name in ("mart_customer_rfm", "mart_customer_clv", "mart_kpi_summary")
            + ("int_backtest_inputs",)
        }
    finally:
        con.close()
    return {"orders": orders, "spend": spend, **tables}


def per_customer(orders: pl.DataFrame, until: date) -> dict[str, dict]:
    """Purchase orders (completed, generated amounts are >= 0) up to `until`, by customer."""
    purchases = orders.filter((pl.col("status") == "completed") & (pl.col("day") <= until))
    out: dict[str, dict] = {}
    for row in purchases.sort("order_ts", "order_id").iter_rows(named=True):
        c = out.setdefault(row["customer_id"], {"orders": 0, "channel": row["channel"], "days": {}})
        c["orders"] += 1
        c["days"][row["day"]] = c["days"].get(row["day"], 0) + row["cents"]
    for c in out.values():
        days = sorted(c["days"])
        c["first"], c["last"], c["n_days"] = days[0], days[-1], len(days)
        c["previous"] = days[-2] if len(days) > 1 else None
        c["repeat_cents"] = sum(c["days"].values()) - c["days"][days[0]]
    return out


def by_id(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["customer_id"]: row for row in frame.iter_rows(named=True)}


def bins(values: dict[str, float]) -> dict[str, int]:
    """1 + floor(bins * (rank - 1) / n), rank = 1 + how many values are lower (ties share it)."""
    ordered = sorted(values.values())
    n = len(ordered)
    return {k: 1 + BINS * bisect.bisect_left(ordered, v) // n for k, v in values.items()}


@pytest.mark.slow
def test_rfm_scores_and_abc_classes(built: dict) -> None:
    customers = per_customer(built["orders"], SNAPSHOT)
    rfm = by_id(built["mart_customer_rfm"])
    assert rfm.keys() == customers.keys()
    revenue = {k: sum(c["days"].values()) for k, c in customers.items()}  # refunds net to 0
    r = bins({k: -(SNAPSHOT - c["last"]).days for k, c in customers.items()})
    f = {k: 1 + sum(c["orders"] >= b for b in F_BREAKPOINTS) for k, c in customers.items()}
    m = bins(revenue)
    total = sum(max(v, 0) for v in revenue.values())
    before, abc = 0, {}
    for k in sorted(revenue, key=lambda k: (-revenue[k], k)):
        # exact in integer cents: the revenue ranked before < share x the positive total
        if revenue[k] <= 0:
            abc[k] = "C"
        elif before * 100 < A_PERCENT * total:
            abc[k] = "A"
        elif before * 100 < B_PERCENT * total:
            abc[k] = "B"
        else:
            abc[k] = "C"
        before += max(revenue[k], 0)
    for k, row in rfm.items():
        assert (row["r_score"], row["f_score"], row["m_score"]) == (r[k], f[k], m[k]), k
        assert row["rfm_cell"] == f"{r[k]}{f[k]}{m[k]}"
        assert float(row["monetary_total"]) == pytest.approx(revenue[k] / 100)
        assert row["avg_order_value"] == pytest.approx(revenue[k] / 100 / customers[k]["orders"])
        assert row["abc_class"] == abc[k], k
    # every score occurs, and every segment of the default map is populated
    for score in (r, f, m):
        assert set(score.values()) == set(range(1, BINS + 1))
    segments = {s.segment for s in load_config().rfm.segments}
    assert {row["rfm_segment"] for row in rfm.values()} == segments
    kpi = built["mart_kpi_summary"].row(0, named=True)
    for cls in "ABC":
        share = sum(max(revenue[k], 0) for k in abc if abc[k] == cls) / total
        assert kpi[f"revenue_share_{cls.lower()}"] == pytest.approx(share)


@pytest.mark.slow
def test_loyalty_tiers_and_lifecycle_stages(built: dict) -> None:
    customers = per_customer(built["orders"], SNAPSHOT)
    rfm = by_id(built["mart_customer_rfm"])
    window = built["orders"].filter(
        (pl.col("status") != "cancelled") & (pl.col("day") > SNAPSHOT - timedelta(days=365))
    )
    net = window.with_columns(
        net=pl.when(pl.col("status") == "completed").then(pl.col("cents")).otherwise(0),
        purchase=pl.col("status") == "completed",
    )
    spend = dict(net.group_by("customer_id").agg(pl.col("net").sum()).iter_rows())
    counts = dict(net.group_by("customer_id").agg(pl.col("purchase").sum()).iter_rows())

    def mean_gap(c: dict) -> float | None:
        return (c["last"] - c["first"]).days / (c["n_days"] - 1) if c["n_days"] > 1 else None

    population = statistics.median(g for c in customers.values() if (g := mean_gap(c)))
    for k, c in customers.items():
        tier = next(
            t
            for t, min_spend, min_orders in TIERS
            if max(spend.get(k, 0), 0) >= min_spend * 100 and counts.get(k, 0) >= min_orders
        )
        assert rfm[k]["loyalty_tier"] == tier, k
        recency, tenure = (SNAPSHOT - c["last"]).days, (SNAPSHOT - c["first"]).days
        gap = mean_gap(c) or population
        prior = (c["previous"] - c["first"]).days / (c["n_days"] - 2) if c["n_days"] > 2 else None
        prior = prior or population
        if tenure < 30:
            stage = "new"
        elif recency > 4 * gap:
            stage = "lapsed"
        elif recency > 2 * gap:
            stage = "at_risk"
        elif (
            c["n_days"] >= 2
            and (c["last"] - c["previous"]).days > 4 * prior
            and recency <= 2 * prior
        ):
            stage = "reactivated"
        else:
            stage = "loyal" if c["n_days"] >= 5 else "repeat" if c["n_days"] >= 2 else "one_time"
        assert rfm[k]["lifecycle_stage"] == stage, k


@pytest.mark.slow
def test_lifetimes_summary_at_the_snapshot_and_the_calibration_date(built: dict) -> None:
    for cutoff, table in ((SNAPSHOT, "mart_customer_clv"), (CALIBRATION, "int_backtest_inputs")):
        customers = per_customer(built["orders"], cutoff)
        rows = by_id(built[table])
        assert rows.keys() == customers.keys()
        later = per_customer(built["orders"], SNAPSHOT)
        for k, c in customers.items():
            row = rows[k]
            assert (row["frequency"], row["recency"], row["T"]) == (
                c["n_days"] - 1,
                (c["last"] - c["first"]).days,
                (cutoff - c["first"]).days,
            )
            if table == "int_backtest_inputs":
                assert row["actual_purchases"] == later[k]["n_days"] - c["n_days"]
            else:
                expected = c["repeat_cents"] / 100 / (c["n_days"] - 1) if c["n_days"] > 1 else 0
                assert row["monetary_value"] == pytest.approx(expected)


@pytest.mark.slow
def test_formula_clv_acquisition_cost_and_referrals(built: dict) -> None:
    orders = built["orders"]
    customers = per_customer(orders, SNAPSHOT)
    clv = by_id(built["mart_customer_clv"])
    # measured annual retention: bought in the year before last, and again in the last year
    base = {
        k
        for k, c in customers.items()
        if any(SNAPSHOT - timedelta(730) < d <= SNAPSHOT - timedelta(365) for d in c["days"])
    }
    retained = {k for k in base if customers[k]["last"] > SNAPSHOT - timedelta(365)}
    r = len(retained) / len(base)
    acquired: dict[tuple, int] = {}
    for c in customers.values():
        key = (c["first"].replace(day=1), c["channel"])
        acquired[key] = acquired.get(key, 0) + 1
    spend = {
        (row["month"], row["channel"]): row["spend"] for row in built["spend"].iter_rows(named=True)
    }
    statuses: dict[str, str] = {}
    referrals: dict[str, list[str]] = {}
    for row in orders.unique("customer_id").iter_rows(named=True):
        if row["referred_by"] and row["customer_id"] in customers:
            referrals.setdefault(row["referred_by"], []).append(row["customer_id"])
    # purchase frequency: repeat orders per year shrunk to the population rate (gamma-Poisson)
    years = {k: (SNAPSHOT - c["first"]).days / 365.25 for k, c in customers.items()}
    population = sum(c["orders"] - 1 for c in customers.values()) / sum(years.values())
    prior = PRIOR_DAYS / 365.25
    for k, c in customers.items():
        row = clv[k]
        revenue = sum(c["days"].values()) / 100
        frequency = (c["orders"] - 1 + population * prior) / (years[k] + prior)
        margin = revenue * MARGIN / c["orders"] * frequency  # profit per order x frequency
        assert row["retention_rate"] == pytest.approx(r)
        assert row["margin_rate"] == pytest.approx(MARGIN)
        assert row["purchase_frequency_per_year"] == pytest.approx(frequency, rel=1e-9)
        assert row["annual_margin"] == pytest.approx(margin, rel=1e-6)
        assert row["clv_retention"] == pytest.approx(margin * r / (1 + DISCOUNT - r), rel=1e-6)
        assert row["clv_simple"] == pytest.approx(revenue / c["orders"] * frequency / (1 - r))
        key = (c["first"].replace(day=1), c["channel"])
        cac = spend[key] / acquired[key] if key in spend else None
        assert row["acquisition_channel"] == c["channel"]
        assert row["cac"] == (pytest.approx(cac) if cac is not None else None)
        if cac is None:
            assert row["ltv_cac_ratio"] is None and row["payback_months"] is None
            assert row["ltv_cac_status"] is None
        else:
            ratio = margin * r / (1 + DISCOUNT - r) / cac
            assert row["ltv_cac_ratio"] == pytest.approx(ratio, rel=1e-6)
            assert row["payback_months"] == pytest.approx(cac / (margin / 12), rel=1e-6)
            statuses[k] = (
                "losing_money"
                if ratio < LTV_CAC[0]
                else "below_benchmark"
                if ratio < LTV_CAC[1]
                else "healthy"
                if ratio <= LTV_CAC[2]
                else "room_to_spend"
            )
            assert row["ltv_cac_status"] == statuses[k], (k, ratio)
        referred = referrals.get(k, [])
        assert row["referral_count"] == len(referred)
        assert float(row["referred_revenue"]) == pytest.approx(
            sum(sum(customers[j]["days"].values()) for j in referred) / 100
        )
    assert sum(len(v) for v in referrals.values()) > 100 and len(spend) == 48
    assert len(set(statuses.values())) >= 2  # the readings are exercised, not all one
