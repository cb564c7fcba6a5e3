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


def build_tables(
    n: int, *, seed: int = 1, repeat: bool = True, model: bool = True, months: int = 30
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
            rfm.group_by(pl.col(dim).alias("segment"))
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
    ) -> ReportInputs:
        tables = build_tables(n, seed=seed, repeat=repeat, model=model)
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
