"""The cohort section: retention per first-purchase month as a heatmap, and across all cohorts.

The heatmap is capped at the newest `MAX_COHORTS` cohorts and `MAX_MONTHS` months (the page
says when it is, and cohort_retention keeps them all), and its colour scale stops at the later
months' 99th percentile (rounded up to 5%) so their differences show next to month 0's 100%.
"""

from __future__ import annotations

import math

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
    percent,
)
from pipelines.report.inputs import ReportInputs

MAX_COHORTS = 24
MAX_MONTHS = 24


def cohort_section(inputs: ReportInputs) -> Section:
    read = (
        "Each row is the customers whose first purchase fell in that month; each cell the share "
        "of them who bought in the month that many months later (month 0 is always 100%)."
    )
    title = "Cohort retention"
    frame = inputs.table("cohort_retention")
    need = {"cohort_month", "months_since_first", "customers", "active_customers", "retention_rate"}
    if frame.height == 0 or not need <= set(frame.columns):
        return Section("cohorts", title, read, empty=NO_CUSTOMERS)
    cohorts = sorted(frame["cohort_month"].unique().to_list())
    shown = cohorts[-MAX_COHORTS:]
    months = list(range(min(int(frame["months_since_first"].max() or 0), MAX_MONTHS) + 1))  # type: ignore[arg-type]
    sub = frame.filter(
        pl.col("cohort_month").is_in(shown) & (pl.col("months_since_first") <= MAX_MONTHS)
    )
    cells = {
        (r["cohort_month"], r["months_since_first"]): r["retention_rate"]
        for r in sub.iter_rows(named=True)
    }
    sizes = dict(sub.select("cohort_month", "customers").unique().iter_rows())
    grid = [[cells.get((c, m)) for m in months] for c in shown]
    labels = [f"{c:%Y-%m} ({sizes.get(c, 0):,})" for c in shown]
    later = [v for row in grid for m, v in zip(months, row) if m >= 1 and v is not None]
    vmax = max(0.05, math.ceil(float(np.quantile(later, 0.99)) * 20) / 20) if later else 1.0
    svg = figures.heatmap(
        "cohorts",
        "Cohort retention heatmap",
        labels,
        [str(m) for m in months],
        grid,
        xlabel="months since first purchase",
        ylabel="cohort (customers)",
        vmax=vmax,
    )
    blocks: list[Block] = [
        Figure(
            svg,
            "Share of each cohort buying in each later month; the colour scale stops at "
            f"{vmax:.0%} so the later months' differences show (month 0 is 100%).",
        )
    ]
    if len(cohorts) > len(shown) or int(frame["months_since_first"].max() or 0) > MAX_MONTHS:  # type: ignore[arg-type]
        blocks.append(
            Note(
                f"Showing the newest {len(shown)} of {len(cohorts)} cohorts and months 0–"
                f"{months[-1]}; cohort_retention has them all."
            )
        )
    rows = []
    for m in (1, 3, 6, 12):
        reached = frame.filter(pl.col("months_since_first") == m)
        n = int(reached["customers"].sum())
        if n:
            rows.append(
                [
                    f"month {m}",
                    count(reached.height),
                    count(n),
                    percent(reached["active_customers"].sum() / n),
                ]
            )
    if rows:
        blocks.append(
            Table(
                ["After", "Cohorts that reached it", "Their customers", "Bought in that month"],
                rows,
                [False, True, True, True],
                caption="Retention across all cohorts, weighted by cohort size.",
            )
        )
    return Section("cohorts", title, read, blocks)
