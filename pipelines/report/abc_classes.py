"""The ABC section: customers ranked by net revenue, the Pareto curve, and where A and B end.

Kept apart from the segments because it is read differently: not shares per group but a
cumulative curve over the customers ranked from the highest net revenue down. The curve is
sampled at a fixed number of ranks (`CURVE_POINTS`), so the figure has the same size at a
thousand customers and at ten million.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.report import figures
from pipelines.report.blocks import NO_CUSTOMERS, Figure, Section, Table, count, money, percent
from pipelines.report.inputs import ReportInputs, collected, column_names, customers

CURVE_POINTS = 201


def pareto_points(revenue: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative share of positive revenue at evenly spaced customer ranks (highest first)."""
    ordered = np.sort(np.clip(revenue, 0.0, None))[::-1]
    total = float(ordered.sum())
    n = ordered.shape[0]
    ranks = np.unique(np.round(np.linspace(0, n, CURVE_POINTS)).astype(np.int64))
    cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
    return ranks / n, cumulative[ranks] / total, total


def abc_section(inputs: ReportInputs) -> Section:
    read = (
        "Customers are ranked from the highest net revenue to the lowest: the curve shows the "
        "share of revenue the top x% of customers bring, and the dashed lines where class A "
        "and class B end."
    )
    title = "ABC classes: the Pareto curve"
    rfm = customers(inputs)
    if not {"monetary_total", "abc_class"} <= set(column_names(rfm)):
        return Section("abc", title, read, empty=NO_CUSTOMERS)
    by_class = collected(
        rfm.group_by("abc_class")
        .agg(
            pl.len().alias("customers"),
            pl.col("monetary_total").sum().alias("revenue"),
            pl.col("monetary_total").clip(lower_bound=0).sum().alias("positive"),
        )
        .sort("abc_class")
    )
    n = int(by_class["customers"].sum())
    if n == 0:
        return Section("abc", title, read, empty=NO_CUSTOMERS)
    # Only the revenue column, ranked: the curve needs the values in order, not who holds them.
    revenue = collected(rfm.select(pl.col("monetary_total").sort(descending=True)))
    ordered = np.asarray(revenue["monetary_total"].to_numpy(), dtype=np.float64)
    x, y, total = pareto_points(ordered)
    if total <= 0:
        return Section(
            "abc", title, read, empty="No customer has a positive net revenue in this snapshot."
        )
    cumulative = np.concatenate([[0.0], np.cumsum(np.clip(ordered, 0, None))])
    cuts = []
    seen = 0
    for r in by_class.iter_rows(named=True):
        seen += r["customers"]
        if seen < n:
            cuts.append((f"end of {r['abc_class']}", seen / n, float(cumulative[seen]) / total))
    svg = figures.pareto("abc", x.tolist(), y.tolist(), cuts)
    table = Table(
        ["Class", "Customers", "% of customers", "Net revenue", "% of positive revenue"],
        [
            [
                str(r["abc_class"]),
                count(r["customers"]),
                percent(r["customers"] / n),
                money(r["revenue"], 0),
                percent(r["positive"] / total),
            ]
            for r in by_class.iter_rows(named=True)
        ],
        [False, True, True, True, True],
    )
    return Section("abc", title, read, [Figure(svg, "Cumulative share of net revenue."), table])
