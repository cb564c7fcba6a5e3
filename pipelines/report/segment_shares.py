"""A segmentation's customers and revenue as shares: the rows and the table several sections show.

segment_summary holds one row per group of each segmentation (RFM segment, ABC class, loyalty
tier, lifecycle stage); the RFM-segment section and the tiers-and-stages section both show such
a dimension as shares of customers and of revenue, so reading one dimension (or counting it
from customer_rfm when segment_summary is missing) and laying it out as a table live here once.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipelines.report.blocks import Table, count, money, percent
from pipelines.report.inputs import ReportInputs, collected, column_names, customers


def dimension(inputs: ReportInputs, name: str) -> pl.DataFrame:
    """One segmentation's rows of segment_summary (empty when the table is missing)."""
    frame = inputs.table("segment_summary")
    if frame.height == 0 or "dimension" not in frame.columns:
        return pl.DataFrame()
    return frame.filter(pl.col("dimension") == name)


def share_table(frame: pl.DataFrame, label: str, clv: bool = True) -> Table:
    """A segmentation's rows of segment_summary as a table."""
    cols = frame.columns
    clv_col = next(
        (
            c
            for c in ("avg_predicted_clv", "avg_clv_retention", "avg_clv_simple")
            if c in cols and frame[c].null_count() < frame.height
        ),
        None,
    )
    headers = [label, "Customers", "% of customers", "Net revenue", "% of revenue"]
    extra = [
        ("avg_recency_days", "Avg days since last purchase", lambda v: money(v, 0)),
        ("avg_order_count", "Avg orders", lambda v: money(v, 1)),
        ("avg_monetary_total", "Avg net revenue", money),
    ]
    extra = [e for e in extra if e[0] in cols]
    headers += [e[1] for e in extra]
    if clv and clv_col is not None:
        headers.append({"avg_predicted_clv": "Avg predicted CLV"}.get(clv_col, "Avg CLV"))
    rows = []
    for r in frame.iter_rows(named=True):
        row = [
            str(r["segment"]),
            count(r.get("customers")),
            percent(r.get("customer_share")),
            money(r.get("revenue"), 0),
            percent(r.get("revenue_share")),
        ]
        row += [fmt(r.get(c)) for c, _, fmt in extra]
        if clv and clv_col is not None:
            row.append(money(r.get(clv_col)))
        rows.append(row)
    return Table(headers, rows, [False] + [True] * (len(headers) - 1))


def summary_of(inputs: ReportInputs, name: str, order: Sequence[str] | None = None) -> pl.DataFrame:
    """segment_summary's rows of one dimension, or the same counted from customer_rfm."""
    frame = dimension(inputs, name)
    if frame.height == 0:
        rfm = customers(inputs)
        names = column_names(rfm)
        if name not in names:
            return pl.DataFrame()
        revenue = (
            pl.col("monetary_total").sum()
            if "monetary_total" in names
            else pl.lit(None, pl.Float64)
        )
        frame = collected(
            rfm.group_by(pl.col(name).alias("segment")).agg(
                pl.len().alias("customers"), revenue.alias("revenue")
            )
        )
        if frame.height == 0:
            return pl.DataFrame()
        n, total = frame["customers"].sum(), frame["revenue"].sum()
        frame = frame.with_columns(
            (pl.col("customers") / n).alias("customer_share"),
            (pl.col("revenue") / total if total else pl.lit(None, pl.Float64)).alias(
                "revenue_share"
            ),
        )
    frame = frame.with_columns(pl.col("segment").cast(pl.String))
    if order is not None:
        return in_order(frame, order)
    return frame.sort(["revenue", "segment"], descending=[True, False], nulls_last=True)


def in_order(frame: pl.DataFrame, order: Sequence[str]) -> pl.DataFrame:
    """Rows in the given order of `segment`; segments not in it last, by name."""
    rank = {v: i for i, v in enumerate(order)}
    return (
        frame.with_columns(
            pl.col("segment")
            .replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
            .alias("_o")
        )
        .sort(["_o", "segment"])
        .drop("_o")
    )
