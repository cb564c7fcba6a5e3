"""Synthetic published tables for the report's rendering tests.

The frames are built here from a few random customers -- not by the pipeline -- and conformed
to the published contracts (every contract column present, with its type), so the renderer is
tested against the schema it will meet, including columns it does not use. The customer
tables also carry PII columns (names, e-mail addresses, an e-mail HMAC) that a page must never
show, whatever frames it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from pipelines.contracts import load_contract
from pipelines.report.inputs import ReportInputs, ReportSettings

SNAPSHOT = date(2025, 12, 30)
SEGMENTS = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose_them",
    "hibernating",
    "lost",
)
TIERS = ("Platinum", "Gold", "Silver", "Bronze")
STAGES = ("new", "one_time", "repeat", "loyal", "at_risk", "lapsed", "reactivated")
BGNBD = {"r": 0.357, "alpha": 34.5, "a": 0.82, "b": 4.12}


def conform(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Every column of the table's contract, typed as published; extra columns kept last."""
    schema = load_contract(name).polars_schema()
    height = frame.height
    cols = [
        frame[c].cast(t) if c in frame.columns else pl.Series(c, [None] * height, dtype=t)
        for c, t in schema.items()
    ]
    extra = [frame[c] for c in frame.columns if c not in schema]
    return pl.DataFrame([*cols, *extra]) if cols or extra else pl.DataFrame(schema=schema)


def pii(i: int) -> dict[str, str]:
    return {
        "email": f"person.{i}@secret-mail.example",
        "name": f"Firstname{i} Lastname{i}",
        "email_hmac": f"{i:064x}"[-64:].replace("0", "f"),
    }


def _abc(revenue: np.ndarray) -> list[str]:
    order = np.lexsort((np.arange(revenue.shape[0]), -revenue))
    positive = np.clip(revenue[order], 0, None)
    total = positive.sum()
    before = np.concatenate([[0.0], np.cumsum(positive)[:-1]]) / total if total > 0 else None
    out = ["C"] * revenue.shape[0]
    for rank, idx in enumerate(order):
        if before is None or revenue[idx] <= 0:
            continue
        out[idx] = "A" if before[rank] < 0.8 else "B" if before[rank] < 0.95 else "C"
    return out


CHANNELS = ("web", "app", "store", "marketplace", None)
CHANNEL_CAC = {"web": 18.0, "app": 25.0, "store": 9.0, "marketplace": 31.0}


def journey_tables(
    rfm: pl.DataFrame, *, seed: int = 1, cac: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """customer_journey, journey_summary and segment_summary's journey rows, made up from
    customer_rfm with a generator of their own (the other tables' numbers stay as they were).
    With `cac`, every customer with a channel has an acquisition cost; without, none has."""
    rng = np.random.default_rng(seed + 1000)
    n = rfm.height
    orders = rfm["order_count"].to_numpy()
    age = rfm["tenure_days"].to_numpy()
    revenue = rfm["monetary_total"].cast(pl.Float64).to_numpy()  # published as DECIMAL
    repeat = orders > 1
    high = repeat & (rfm["abc_class"].to_numpy() == "A")
    gap = np.where(repeat, rng.integers(1, np.maximum(age, 1) + 1), 0)
    first = np.round(np.abs(revenue) / orders * rng.uniform(0.6, 1.1, n), 2)
    growth = rng.uniform(0.8, 1.5, n)
    channel = [CHANNELS[i] for i in rng.integers(0, len(CHANNELS), n)]
    cost = [CHANNEL_CAC.get(c) if cac and c is not None else None for c in channel]
    profit = np.round(first * 0.3 - 2.0, 2)
    first_dates = rfm["first_order_date"].to_list()
    repeat_on = [
        d + timedelta(days=int(g)) if r else None for d, g, r in zip(first_dates, gap, repeat)
    ]
    high_on = [
        d + timedelta(days=int(x) % ((SNAPSHOT - d).days + 1)) if h and d is not None else None
        for d, x, h in zip(repeat_on, rng.integers(0, 200, n), high)
    ]
    paid = [None if c is None else bool(m * 0.3 >= c) for m, c in zip(revenue, cost)]
    journey = pl.DataFrame(
        {
            "customer_id": rfm["customer_id"],
            "first_order_date": first_dates,
            "purchase_days": orders,
            "journey_stage": np.where(high, "high_value", np.where(repeat, "repeat", "one_time")),
            "activity_state": [
                s if s in ("at_risk", "lapsed") else "active"
                for s in rfm["lifecycle_stage"].to_list()
            ],
            "became_repeat_on": repeat_on,
            "days_to_second_purchase": [int(g) if r else None for g, r in zip(gap, repeat)],
            "became_high_value_on": high_on,
            "first_order_value": first,
            "recent_order_value": [f * g if r else None for f, g, r in zip(first, growth, repeat)],
            "aov_growth": [g if r and f > 0 else None for f, g, r in zip(first, growth, repeat)],
            "acquisition_channel": channel,
            "acquisition_month": [d.replace(day=1) for d in first_dates],
            "cac": cost,
            "first_order_profit": profit,
            "first_order_profit_after_cac": [
                None if c is None else p - c for p, c in zip(profit, cost)
            ],
            "cac_paid_back": paid,
            "cac_payback_orders": [
                None if not p else int(min(o, 1 + i % 3)) for p, o, i in zip(paid, orders, range(n))
            ],
            "cac_payback_days": [None if not p else int(a // 2) for p, a in zip(paid, age)],
            "email": [pii(i)["email"] for i in range(n)],
        },
        schema_overrides={
            "became_repeat_on": pl.Date,
            "became_high_value_on": pl.Date,
            "days_to_second_purchase": pl.Int64,
            "recent_order_value": pl.Float64,
            "aov_growth": pl.Float64,
            "acquisition_channel": pl.String,
            "cac": pl.Float64,
            "first_order_profit_after_cac": pl.Float64,
            "cac_paid_back": pl.Boolean,
            "cac_payback_orders": pl.Int64,
            "cac_payback_days": pl.Int64,
        },
    )
    journey = conform("customer_journey", journey)
    day = pl.lit(SNAPSHOT)
    c = pl.col
    summary = journey.select(
        pl.len().alias("customers"),
        *(
            (c("journey_stage") == s).sum().alias(f"{s}_customers")
            for s in ("one_time", "repeat", "high_value")
        ),
        *(
            (c("activity_state") == s).sum().alias(f"{s}_customers")
            for s in ("active", "at_risk", "lapsed")
        ),
        c("days_to_second_purchase").median().alias("median_days_to_second_purchase"),
        pl.lit(90).alias("repeat_window_days"),
        (c("first_order_date") <= SNAPSHOT - timedelta(days=90))
        .sum()
        .alias("repeat_eligible_customers"),
        (
            (
                (c("first_order_date") <= SNAPSHOT - timedelta(days=90))
                & (c("days_to_second_purchase") <= 90)
            ).sum()
            / (c("first_order_date") <= SNAPSHOT - timedelta(days=90)).sum()
        ).alias("repeat_conversion_rate"),
        pl.lit(365).alias("high_value_window_days"),
        (c("became_repeat_on") <= SNAPSHOT - timedelta(days=365))
        .sum()
        .alias("high_value_eligible_customers"),
        pl.lit(0.25 if n else None, pl.Float64).alias("high_value_conversion_rate"),
        pl.lit(SNAPSHOT - timedelta(days=1)).alias("previous_snapshot_date"),
        ((c("first_order_date") < day) & (c("became_repeat_on") >= day).fill_null(True))
        .sum()
        .alias("previous_one_time_customers"),
        ((c("became_repeat_on") < day) & (c("became_high_value_on") >= day).fill_null(True))
        .sum()
        .alias("previous_repeat_customers"),
        (c("became_high_value_on") < day).sum().alias("previous_high_value_customers"),
        (c("first_order_date") == day).sum().alias("new_customers_since_previous"),
        (c("became_repeat_on") == day).sum().alias("became_repeat_since_previous"),
        (c("became_high_value_on") == day).sum().alias("became_high_value_since_previous"),
        c("cac").count().alias("customers_with_cac"),
        ((c("first_order_profit_after_cac") < 0).sum() / c("cac").count()).alias(
            "first_order_loss_share"
        ),
        (c("cac_paid_back").not_().sum() / c("cac").count()).alias("cac_unpaid_share"),
    )
    summary = conform("journey_summary", summary.with_columns(pl.col(pl.Float64).fill_nan(None)))
    both = c("recent_order_value").is_not_null()
    money = pl.col(pl.Decimal).cast(pl.Float64)  # aggregated as floats, published as DECIMAL
    per = (
        journey.with_columns(money)
        .join(rfm.select("customer_id", "monetary_total").with_columns(money), on="customer_id")
        .with_columns(
            (c("journey_stage") + "/" + c("activity_state")).alias("journey_state"),
            c("acquisition_channel").fill_null("unknown"),
        )
    )
    total = float(rfm["monetary_total"].sum()) or None
    rows = [
        per.group_by(c(dim).alias("segment"))
        .agg(
            pl.len().alias("customers"),
            c("monetary_total").sum().alias("revenue"),
            c("first_order_value").mean().alias("avg_first_order_value"),
            c("recent_order_value").mean().alias("avg_recent_order_value"),
            (
                c("recent_order_value").filter(both).sum()
                / c("first_order_value").filter(both).sum()
            ).alias("aov_growth"),
            c("cac").mean().alias("avg_cac"),
            c("first_order_profit_after_cac").mean().alias("avg_first_order_profit_after_cac"),
            (c("cac_paid_back").not_().sum() / c("cac").count()).alias("cac_unpaid_share"),
            c("cac_payback_orders").mean().alias("avg_cac_payback_orders"),
            c("cac_payback_days").mean().alias("avg_cac_payback_days"),
        )
        .with_columns(
            pl.lit(dim).alias("dimension"),
            (c("customers") / max(n, 1)).alias("customer_share"),
            (c("revenue") / total if total else pl.lit(None, pl.Float64)).alias("revenue_share"),
        )
        .with_columns(pl.col(pl.Float64).fill_nan(None))
        for dim in ("journey_stage", "journey_state", "acquisition_channel")
    ]
    return journey, summary, pl.concat(rows, how="diagonal_relaxed")


def build_tables(
    n: int,
    *,
    seed: int = 1,
    repeat: bool = True,
    model: bool = True,
    months: int = 30,
    cac: bool = False,
) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:08d}" for i in range(1, n + 1)]
    age = rng.integers(1, months * 30, n)  # T: days since the first purchase
    orders = 1 + (rng.geometric(0.35, n) - 1 if repeat else np.zeros(n, dtype=int))
    frequency = np.minimum(orders - 1, age)
    recency = np.where(frequency > 0, rng.integers(0, age + 1), 0)
    recency = np.maximum(recency, frequency)
    recency = np.minimum(recency, age)
    revenue = np.round(rng.gamma(2.0, 20.0, n) * orders, 2)
    if n:
        revenue[-1] = -5.0  # a customer whose returns exceed their purchases
    first = [SNAPSHOT - timedelta(days=int(t)) for t in age]
    last = [f + timedelta(days=int(r)) for f, r in zip(first, recency)]
    rfm = pl.DataFrame(
        {
            "customer_id": ids,
            "first_order_date": first,
            "last_order_date": last,
            "recency_days": [(SNAPSHOT - d).days for d in last],
            "order_count": orders,
            "monetary_total": revenue,
            "avg_order_value": revenue / orders,
            "tenure_days": age,
            "rfm_segment": [SEGMENTS[i] for i in rng.integers(0, len(SEGMENTS), n)],
            "abc_class": _abc(revenue),
            "loyalty_tier": [TIERS[min(3, int(o > 1) + int(o > 3) + int(o > 6))] for o in orders][
                ::-1
            ],
            "lifecycle_stage": [STAGES[i] for i in rng.integers(0, len(STAGES), n)],
            **{k: [pii(i)[k] for i in range(n)] for k in ("email_hmac", "email", "name")},
        }
    )
    rfm = conform("customer_rfm", rfm)
    p_alive = np.where(frequency > 0, rng.uniform(0.05, 1.0, n), 1.0) if model else None
    clv = pl.DataFrame(
        {
            "customer_id": ids,
            "clv_simple": revenue * 1.5,
            "clv_retention": revenue * 0.2,
            "frequency": frequency,
            "recency": recency,
            "T": age,
            "p_alive": p_alive if p_alive is not None else [None] * n,
            "predicted_clv_90": revenue * 0.03 if model else [None] * n,
            "predicted_clv_365": revenue * 0.1 if model else [None] * n,
            "email": [pii(i)["email"] for i in range(n)],
        },
        schema_overrides={
            "p_alive": pl.Float64,
            "predicted_clv_90": pl.Float64,
            "predicted_clv_365": pl.Float64,
        },
    )
    clv = conform("customer_clv", clv)
    segment = []
    for dim in ("rfm_segment", "abc_class", "loyalty_tier", "lifecycle_stage"):
        total = float(rfm["monetary_total"].sum()) or None
        segment.append(
            rfm.with_columns(pl.col(pl.Decimal).cast(pl.Float64))
            .group_by(pl.col(dim).alias("segment"))
            .agg(
                pl.len().alias("customers"),
                pl.col("monetary_total").sum().alias("revenue"),
                pl.col("recency_days").mean().alias("avg_recency_days"),
                pl.col("order_count").mean().alias("avg_order_count"),
                pl.col("monetary_total").mean().alias("avg_monetary_total"),
            )
            .with_columns(
                pl.lit(dim).alias("dimension"),
                (pl.col("customers") / max(n, 1)).alias("customer_share"),
                (pl.col("revenue") / total if total else pl.lit(None, pl.Float64)).alias(
                    "revenue_share"
                ),
            )
        )
    journey, journey_summary, journey_segments = journey_tables(rfm, seed=seed, cac=cac)
    if n:
        segment.append(journey_segments)
    segments = conform(
        "segment_summary", pl.concat(segment, how="diagonal_relaxed") if n else pl.DataFrame()
    )
    cohorts = []
    for c in range(months if n else 0):
        size = 40 + c
        for m in range(months - c):
            active = size if m == 0 else int(size * 0.3 * 0.93**m)
            cohorts.append(
                {
                    "cohort_month": date(2023, 7, 1) + timedelta(days=31 * c),
                    "months_since_first": m,
                    "customers": size,
                    "active_customers": active,
                    "retention_rate": active / size,
                    "revenue": active * 30.0,
                    "cumulative_revenue_per_customer": 30.0 * (m + 1),
                    "purchase_orders": round(active * (1.25 - 0.008 * m)),
                    "average_order_value": active * 30.0 / round(active * (1.25 - 0.008 * m))
                    if round(active * (1.25 - 0.008 * m))
                    else None,
                }
            )
    cohort = conform("cohort_retention", pl.DataFrame(cohorts))
    cohort = cohort.with_columns(pl.col("cohort_month").dt.month_start())
    kpi = conform(
        "kpi_summary",
        pl.DataFrame(
            [
                {
                    "customers": n,
                    "active_customers": int(
                        (np.array([(SNAPSHOT - d).days for d in last]) <= 90).sum()
                    ),
                    "new_customers": int((age <= 90).sum()),
                    "repeat_purchase_rate": float((orders >= 2).mean()) if n else 0.0,
                    "retention_rate": 0.4462 if n else None,
                    "churn_rate": 0.5538 if n else None,
                    "net_revenue": float(revenue.sum()),
                    "average_order_value": float(revenue.sum() / orders.sum()) if n else None,
                    "avg_clv_simple": float(revenue.mean() * 1.5) if n else None,
                    "avg_clv_retention": float(revenue.mean() * 0.2) if n else None,
                    "avg_predicted_clv": float(revenue.mean() * 0.1) if n and model else None,
                }
            ]
        ),
    )
    fit_rows: list[dict[str, Any]] = []
    if model and repeat and n:
        for fit in ("snapshot", "calibration"):
            for param, value in BGNBD.items():
                fit_rows.append({"fit": fit, "model": "bgnbd", "param": param, "value": value})
        for param, value in {"p": 5.6, "q": 4.1, "v": 16.9}.items():
            fit_rows.append(
                {"fit": "snapshot", "model": "gamma_gamma", "param": param, "value": value}
            )
        fit_rows = [
            {
                **r,
                "log_likelihood": -1234.5,
                "customers_used": n,
                "customers_excluded": 0,
                "converged": True,
                "iterations": 12,
                "seconds": 0.0123,
                "status": "ok",
            }
            for r in fit_rows
        ]
    fits = conform("model_fit", pl.DataFrame(fit_rows))
    back_rows = []
    if model and repeat and n:
        scopes = [
            "overall",
            *(f"frequency={k}" for k in range(7)),
            "frequency=7+",
            *(f"decile={k}" for k in range(1, 11)),
        ]
        for model_name, scope in [("bgnbd", s) for s in scopes] + [("pnbd", "overall")]:
            back_rows.append(
                {
                    "model": model_name,
                    "scope": scope,
                    "selected": model_name == "bgnbd",
                    "gini": (0.41 if model_name == "bgnbd" else 0.38)
                    if scope == "overall"
                    else None,
                    "calibration_end": SNAPSHOT - timedelta(days=90),
                    "holdout_days": 90,
                    "customers": 100,
                    "predicted_purchases": 40.5,
                    "actual_purchases": 42,
                    "mean_predicted": 0.405,
                    "mean_actual": 0.42,
                    "mae": 0.44,
                    "rmse": 0.79,
                    "correlation": 0.61,
                }
            )
    backtest = conform("model_backtest", pl.DataFrame(back_rows))
    return {
        "customer_rfm": rfm,
        "customer_clv": clv,
        "segment_summary": segments,
        "cohort_retention": cohort,
        "kpi_summary": kpi,
        "model_fit": fits,
        "model_backtest": backtest,
        "customer_journey": journey,
        "journey_summary": journey_summary,
    }


def manifest(n_rows: int = 1000, warnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "run_id": "2025-12-30_20260101T000000_abcdef",
        "version": "2025-12-30_20260101T000000_abcdef@0123abcd",
        "status": "success",
        "source_kind": "files",
        "counts": {
            "rows_in": n_rows,
            "rows_accepted": n_rows - 7,
            "rows_quarantined": 5,
            "rows_duplicate": 2,
            "rows_in_snapshot": n_rows - 7,
            "rows_after_snapshot": 0,
        },
        "files": [
            {
                "path": "/data/in/orders.csv",
                "rows_in": n_rows,
                "rows_accepted": n_rows - 7,
                "rows_quarantined": 5,
                "rows_duplicate": 2,
            }
        ],
        "quarantine_reasons": {"UNPARSEABLE_NUMBER": 3, "FUTURE_TIMESTAMP": 2},
        "warnings": warnings or [],
        "validation": {"success": False, "expectations": 28},
        "gaps": [],
        "quiet_day": False,
    }


@pytest.fixture
def make_inputs() -> Callable[..., ReportInputs]:
    def make(
        n: int = 2000,
        *,
        seed: int = 1,
        repeat: bool = True,
        model: bool = True,
        settings: ReportSettings | None = None,
        previous: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
        drop: tuple[str, ...] = (),
        cac: bool = False,
    ) -> ReportInputs:
        tables = build_tables(n, seed=seed, repeat=repeat, model=model, cac=cac)
        return ReportInputs(
            snapshot_date=SNAPSHOT,
            tables={k: v for k, v in tables.items() if k not in drop},
            manifest=manifest(warnings=warnings),
            settings=settings or ReportSettings(predictive_enabled=model),
            previous_snapshot=SNAPSHOT - timedelta(days=1) if previous is not None else None,
            previous_kpis=previous,
            data_docs_href="../../docs/validation/validations/run/page.html",
        )

    return make
