"""The key-figures section: one card per KPI of the whole customer base, with its change.

The cards read kpi_summary's one row and, for the changes, the previous published snapshot's
row; a KPI a mart may or may not have (marts gain columns between releases) gets a card only
when present. The LTV:CAC card is the one figure computed here (from customer_clv, when
kpi_summary does not carry it) and read against the configured benchmark, so it lives with
the cards rather than with the CLV section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from pipelines.report.blocks import (
    Card,
    Cards,
    Note,
    Section,
    change,
    count,
    missing,
    money,
    percent,
    ratio,
)
from pipelines.report.inputs import ReportInputs, collected, column_names

MODEL_ALIVE = (
    "model_alive_customers",
    "expected_active_customers_model",
    "expected_active_customers",
)


def first_row(frame: pl.DataFrame) -> dict[str, Any]:
    return frame.row(0, named=True) if frame.height else {}


def first_present(row: Mapping[str, Any], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in row), None)


def ltv_cac(inputs: ReportInputs) -> float | None:
    """Total margin CLV over total acquisition cost, over the customers that have a CAC."""
    kpis = first_row(inputs.table("kpi_summary"))
    if not missing(kpis.get("ltv_cac_ratio")):
        return float(kpis["ltv_cac_ratio"])
    clv = inputs.scan("customer_clv")
    if not {"cac", "clv_retention"} <= set(column_names(clv)):
        return None
    paid = clv.filter(
        pl.col("cac").is_not_null() & (pl.col("cac") > 0) & pl.col("clv_retention").is_not_null()
    )
    n, margin, cost = collected(
        paid.select(pl.len(), pl.col("clv_retention").sum(), pl.col("cac").sum())
    ).row(0)
    if n == 0:
        return None
    return float(margin) / float(cost)


def ltv_cac_reading(value: float | None, inputs: ReportInputs) -> str:
    s = inputs.settings
    bench = f"{s.ltv_cac_benchmark:g}:1"
    if value is None:
        return f"no acquisition cost known (config marketing_spend); benchmark {bench}"
    if value < s.ltv_cac_break_even:
        return f"losing money: each customer earns back less than they cost (benchmark {bench})"
    if value < s.ltv_cac_benchmark:
        return f"below the {bench} benchmark"
    if value <= s.ltv_cac_generous:
        return f"healthy: at or above the {bench} benchmark"
    return f"above {s.ltv_cac_generous:g}:1: room to spend more on acquisition"


def kpi_section(inputs: ReportInputs) -> Section:
    kpis = first_row(inputs.table("kpi_summary"))
    before = inputs.previous_kpis or {}
    s = inputs.settings
    d = s.active_days
    cur = s.currency
    specs: list[tuple[str | None, str, str, str, bool]] = [
        ("customers", "Customers", "count", "with at least one purchase", False),
        ("active_customers", "Active customers", "count", f"bought in the last {d} days", False),
        ("new_customers", "New customers", "count", f"first purchase in the last {d} days", False),
        (
            "repeat_purchase_rate",
            "Repeat purchase rate",
            "rate",
            "customers with two or more purchases",
            False,
        ),
        (
            "retention_rate",
            "Retention",
            "rate",
            f"of the buyers of the {d} days before, share who bought in the last {d}",
            False,
        ),
        ("churn_rate", "Churn", "rate", "1 − retention", True),
        ("average_order_value", "Average order value", "money", f"{cur} per purchase order", False),
        ("net_revenue", "Net revenue", "money", f"{cur} to date, returns deducted", False),
        (
            "avg_clv_simple",
            "Average CLV, simple",
            "money",
            f"{cur}: AOV × frequency × lifetime",
            False,
        ),
        (
            "avg_clv_retention",
            "Average CLV, retention",
            "money",
            f"{cur}: margin × r / (1 + d − r)",
            False,
        ),
        (
            "avg_predicted_clv",
            "Average CLV, predicted",
            "money",
            f"{cur}: BG/NBD + Gamma-Gamma, longest horizon",
            False,
        ),
        (
            first_present(kpis, MODEL_ALIVE),
            "Alive (model)",
            "count",
            "sum of P(alive): customers the model expects have not dropped out",
            False,
        ),
    ]
    cards = []
    for key, label, kind, detail, lower_is_better in specs:
        if key is None or key not in kpis:
            continue
        value = kpis.get(key)
        shown = {"count": count, "rate": percent, "money": money}[kind](value)
        if missing(value) and key == "avg_predicted_clv":
            detail = "not predicted for this snapshot (see the model section)"
        cards.append(_card(label, shown, detail, kind, value, before.get(key), lower_is_better))
    value = ltv_cac(inputs)
    before_ratio = before.get("ltv_cac_ratio")
    cards.append(
        _card("LTV:CAC", ratio(value), ltv_cac_reading(value, inputs), "ratio", value, before_ratio)
    )
    if not kpis:
        return Section(
            "kpis",
            "Key figures",
            "Each card is one figure of the whole customer base at the end of the snapshot day.",
            empty="The kpi_summary table of this snapshot is missing or empty.",
        )
    since = (
        f"Changes are since the previous published snapshot, {inputs.previous_snapshot}."
        if inputs.previous_kpis is not None
        else "This is the first published snapshot: there is no earlier one to compare with."
    )
    return Section(
        "kpis",
        "Key figures",
        "Each card is one figure of the whole customer base at the end of the snapshot day, "
        "with its change since the previous snapshot (green is better, red is worse).",
        [Cards(cards), Note(since)],
    )


def _card(
    label: str,
    shown: str,
    detail: str,
    kind: str,
    now: Any,
    before: Any,
    lower_is_better: bool = False,
) -> Card:
    moved = change(kind, now, before)
    tone: Any = "neutral"
    if moved is not None and not missing(now) and not missing(before) and now != before:
        better = (float(now) < float(before)) == lower_is_better
        tone = "good" if better else "bad"
    return Card(label, shown, detail, moved, tone)
