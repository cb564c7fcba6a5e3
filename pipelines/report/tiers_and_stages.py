"""The loyalty-tier and lifecycle-stage section: two segmentations shown side by side.

Both are shares of customers and revenue per group (read by `segment_shares.py`), without the
CLV column: tiers are ordered by their average spend and stages by the customer's path
(`LIFECYCLE_ORDER`), not by revenue, so the page reads from new to lapsed.
"""

from __future__ import annotations

from pipelines.report import figures
from pipelines.report.blocks import NO_CUSTOMERS, Block, Figure, Section
from pipelines.report.inputs import ReportInputs
from pipelines.report.segment_shares import share_table, summary_of

LIFECYCLE_ORDER = ("new", "one_time", "repeat", "loyal", "reactivated", "at_risk", "lapsed")


def tiers_section(inputs: ReportInputs) -> Section:
    read = (
        "Loyalty tiers rank customers by their spend and orders of the last 12 months; "
        "lifecycle stages say where each customer is in their relationship (new, repeat, "
        "loyal, at risk, lapsed …) judged against their own purchase rhythm."
    )
    title = "Loyalty tiers and lifecycle stages"
    blocks: list[Block] = []
    tiers = summary_of(inputs, "loyalty_tier")
    if tiers.height and "avg_monetary_total" in tiers.columns:
        tiers = tiers.sort(["avg_monetary_total", "segment"], descending=[True, False])
    stages = summary_of(inputs, "lifecycle_stage", LIFECYCLE_ORDER)
    for key, frame, label in (("tiers", tiers, "Tier"), ("stages", stages, "Stage")):
        if frame.height == 0:
            continue
        blocks.append(
            Figure(
                figures.share_bars(
                    key,
                    f"Share of customers and revenue per {label.lower()}",
                    frame["segment"].to_list(),
                    {
                        "customers": frame["customer_share"].to_list(),
                        "revenue": frame["revenue_share"].to_list(),
                    },
                ),
                f"Share of customers and of net revenue per {label.lower()}.",
            )
        )
        blocks.append(share_table(frame, label, clv=False))
    if not blocks:
        return Section("tiers", title, read, empty=NO_CUSTOMERS)
    return Section("tiers", title, read, blocks)
