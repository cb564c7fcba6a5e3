"""The CLV sections: the distribution and deciles of customer lifetime value, and top customers.

Both show a customer's CLV by the same measure (`clv_measure`: predicted at the longest
horizon when a model ran, else a formula CLV), so they live together. The histogram has a
fixed number of bins up to the 99th percentile and the top-customers table a fixed length,
so the page has the same size at a thousand customers and at ten million; customers appear
only by their pseudonymous id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from pipelines.report import figures
from pipelines.report.blocks import (
    NO_CUSTOMERS,
    Block,
    Figure,
    Note,
    Section,
    Table,
    count,
    money,
    percent,
)
from pipelines.report.inputs import (
    ReportInputs,
    collected,
    column_names,
    customers,
    row_count,
)

Formatter = Callable[[Any], str]
HISTOGRAM_BINS = 30
TOP_CUSTOMERS = 10


def clv_measure(clv: pl.DataFrame | pl.LazyFrame) -> tuple[str | None, str]:
    """The CLV the distribution shows: predicted at the longest horizon, else a formula CLV."""
    names = column_names(clv.lazy())
    predicted = sorted(
        (c for c in names if c.startswith("predicted_clv_") and c[14:].isdigit()),
        key=lambda c: int(c[14:]),
    )
    candidates = [c for c in [*reversed(predicted), "clv_retention", "clv_simple"] if c in names]
    if not candidates:
        return None, ""
    valued = collected(clv.lazy().select(pl.col(candidates).count())).row(0, named=True)
    for name in candidates:
        if valued[name] > 0:
            if name.startswith("predicted_clv_"):
                return name, f"predicted CLV, next {name[14:]} days"
            return name, {"clv_retention": "retention CLV", "clv_simple": "simple CLV"}[name]
    return None, ""


def deciles(values: pl.DataFrame, column: str) -> list[dict[str, Any]]:
    """Customers in ten equal groups by CLV, highest first. Which of two customers with the
    same CLV falls on either side of a decile's edge changes no figure, so only the values
    are ranked."""
    ranked = values.select(pl.col(column).sort(descending=True)).with_columns(
        (pl.int_range(pl.len()) * 10 // pl.len() + 1).alias("decile")
    )
    total = float(ranked[column].sum())
    out = (
        ranked.group_by("decile")
        .agg(
            pl.len().alias("customers"),
            pl.col(column).min().alias("lowest"),
            pl.col(column).mean().alias("mean"),
            pl.col(column).sum().alias("sum"),
        )
        .sort("decile")
    )
    return [
        {**r, "share": r["sum"] / total if total > 0 else None} for r in out.iter_rows(named=True)
    ]


def clv_section(inputs: ReportInputs) -> Section:
    read = (
        "How customer lifetime value is spread: most customers are worth little and a few a lot; "
        "the deciles say how much of the total each tenth of customers holds."
    )
    title = "Customer lifetime value"
    clv = inputs.scan("customer_clv")
    column, label = clv_measure(clv)
    if row_count(clv) == 0:
        return Section("clv", title, read, empty=NO_CUSTOMERS)
    if column is None:
        return Section(
            "clv",
            title,
            read,
            empty="No CLV measure has a value in this snapshot: the formula CLVs need a measured "
            "retention (a year of history) and the predicted CLV a fitted model.",
        )
    values = collected(clv.select(pl.col(column).drop_nulls()))
    v = np.asarray(values[column].to_numpy(), dtype=np.float64)
    lo = float(min(0.0, np.quantile(v, 0.01)))
    hi = float(np.quantile(v, 0.99))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(v[(v >= lo) & (v <= hi)], bins=edges)
    above = int((v > hi).sum())
    svg = figures.histogram(
        "clv",
        f"Distribution of {label}",
        edges.tolist(),
        counts.tolist(),
        f"{label} ({inputs.settings.currency})",
    )
    blocks: list[Block] = [
        Figure(svg, f"Customers per {label} band, up to the 99th percentile ({money(hi)})."),
    ]
    if above:
        blocks.append(
            Note(
                f"{above:,} customers above {money(hi)} are left out of the plot, not of the deciles."
            )
        )
    blocks.append(
        Table(
            ["Decile (1 = highest)", "Customers", "Lowest CLV", "Mean CLV", "Share of total CLV"],
            [
                [
                    str(d["decile"]),
                    count(d["customers"]),
                    money(d["lowest"]),
                    money(d["mean"]),
                    percent(d["share"]),
                ]
                for d in deciles(values, column)
            ],
            [False, True, True, True, True],
            caption=f"Deciles of {label}.",
        )
    )
    names = column_names(clv)
    methods = [
        (c, name)
        for c, name in (
            ("clv_simple", "simple (AOV × frequency × lifetime, revenue)"),
            ("clv_retention", "retention (margin × r / (1 + d − r))"),
            *(
                (c, f"predicted, next {c[14:]} days (BG/NBD + Gamma-Gamma)")
                for c in names
                if c.startswith("predicted_clv_")
            ),
        )
        if c in names
    ]
    rows = []
    for c, name in methods:
        # One column at a time: a median needs the column's values at once.
        stats = clv.select(
            pl.col(c).count().alias("n"),
            pl.col(c).mean().alias("mean"),
            pl.col(c).median().alias("median"),
        )
        n, mean, median = collected(stats).row(0)
        rows.append([name, count(n), money(mean if n else None), money(median if n else None)])
    blocks.append(
        Table(
            ["Method", "Customers with a value", "Average", "Median"],
            rows,
            [False, True, True, True],
            caption="Average CLV by method.",
        )
    )
    status = (
        collected(
            clv.drop_nulls("ltv_cac_status")
            .group_by("ltv_cac_status")
            .agg(pl.len().alias("n"))
            .sort(["n", "ltv_cac_status"], descending=[True, False])
        )
        if "ltv_cac_status" in names
        else pl.DataFrame()
    )
    if status.height:
        blocks.append(
            Table(
                ["LTV:CAC reading", "Customers"],
                [[str(r[0]), count(r[1])] for r in status.iter_rows()],
                [False, True],
                caption=f"Customers by their own LTV:CAC against the {inputs.settings.ltv_cac_benchmark:g}:1 benchmark.",
            )
        )
    return Section("clv", title, read, blocks)


def top_customers_section(inputs: ReportInputs) -> Section:
    read = (
        "The customers with the highest net revenue to date, by their pseudonymous id (no name "
        "or e-mail address ever reaches this page), with where they stand now."
    )
    title = "Top customers"
    rfm = customers(inputs)
    if "monetary_total" not in column_names(rfm):
        return Section("top", title, read, empty=NO_CUSTOMERS)
    top = collected(
        rfm.sort(["monetary_total", "customer_id"], descending=[True, False]).head(TOP_CUSTOMERS)
    )
    if top.height == 0:
        return Section("top", title, read, empty=NO_CUSTOMERS)
    clv = inputs.scan("customer_clv")
    column, label = clv_measure(clv)
    extra = [c for c in (column, "p_alive") if c is not None and c in column_names(clv)]
    if extra:
        theirs = clv.filter(pl.col("customer_id").is_in(top["customer_id"].to_list()))
        top = top.join(
            collected(theirs.select("customer_id", *extra)),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
    spec: list[tuple[str, str, Formatter]] = [
        ("customer_id", "Customer", str),
        ("order_count", "Orders", count),
        ("monetary_total", "Net revenue", money),
        ("last_order_date", "Last order", str),
        ("rfm_segment", "Segment", str),
        ("lifecycle_stage", "Stage", str),
        ("loyalty_tier", "Tier", str),
    ]
    if column is not None and column in top.columns:
        spec.append((column, label[:1].upper() + label[1:], money))
    if "p_alive" in top.columns and top["p_alive"].null_count() < top.height:
        spec.append(("p_alive", "P(alive)", percent))
    spec = [s for s in spec if s[0] in top.columns]
    rows = [
        ["–" if r[c] is None else fmt(r[c]) for c, _, fmt in spec]
        for r in top.iter_rows(named=True)
    ]
    numeric = [fmt is not str for _, _, fmt in spec]
    return Section("top", title, read, [Table([s[1] for s in spec], rows, numeric)])
