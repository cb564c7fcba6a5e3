"""The RFM-segment section: each of the 11 RFM segments' share of customers and of revenue.

A section of its own because it is the page's main segmentation (a bar chart and the full
table, with the segments' average CLV); the shares themselves are read by `segment_shares.py`,
which the tiers-and-stages section shares.
"""

from __future__ import annotations

from pipelines.report import figures
from pipelines.report.blocks import NO_CUSTOMERS, Figure, Section
from pipelines.report.inputs import ReportInputs
from pipelines.report.segment_shares import share_table, summary_of


def segments_section(inputs: ReportInputs) -> Section:
    # The segment transition matrix (how many customers moved from each RFM segment to each
    # other since the previous snapshot) is left out on purpose: it needs the two snapshots'
    # customer_rfm joined customer by customer, which belongs in a mart of its own (a later
    # issue), not in a page that reads one snapshot's published tables.
    read = (
        "Customers are grouped by how recently and how often they bought (the 11-segment RFM "
        "map); compare each segment's share of customers with its share of revenue."
    )
    frame = summary_of(inputs, "rfm_segment")
    if frame.height == 0:
        return Section(
            "segments", "Customers and revenue per RFM segment", read, empty=NO_CUSTOMERS
        )
    svg = figures.share_bars(
        "rfm",
        "Share of customers and revenue per RFM segment",
        frame["segment"].to_list(),
        {
            "customers": frame["customer_share"].to_list(),
            "revenue": frame["revenue_share"].to_list(),
        },
    )
    return Section(
        "segments",
        "Customers and revenue per RFM segment",
        read,
        [
            Figure(svg, "Share of customers (blue) and of net revenue (orange) per segment."),
            share_table(frame, "Segment"),
        ],
    )
