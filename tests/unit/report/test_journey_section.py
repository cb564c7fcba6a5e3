"""The customer-journey section, from small hand-made frames: funnel, stage x state, up-sell,
first-order economics (or the sentence saying no CAC is known), and its limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.contracts import load_contract
from pipelines.report.blocks import NO_CUSTOMERS, Cards, Figure, Note, Section, Table
from pipelines.report.inputs import ReportInputs, read_table
from pipelines.report.journey import (
    MAX_CHANNELS,
    NO_CAC,
    NO_JOURNEY,
    aov_by_month,
    journey_section,
)
from pipelines.report.render import render
from pipelines.report.sections import SECTIONS

DAY = date(2025, 12, 30)
MakeInputs = Callable[..., ReportInputs]


def conform(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as the published table: every contract column, typed (absent ones null)."""
    schema = load_contract(name).polars_schema()
    frame = pl.DataFrame(rows, schema_overrides=schema, strict=False)
    return pl.DataFrame(
        [
            frame[c].cast(t) if c in frame.columns else pl.Series(c, [None] * frame.height, t)
            for c, t in schema.items()
        ]
    )


def customer(i: int, stage: str, state: str = "active", **extra: Any) -> dict[str, Any]:
    repeat = stage != "one_time"
    return {
        "customer_id": f"J{i:06d}",
        "first_order_date": DAY - timedelta(days=200),
        "purchase_days": 3 if repeat else 1,
        "journey_stage": stage,
        "activity_state": state,
        "days_to_second_purchase": 20 + i if repeat else None,
        "first_order_value": 40.0,
        "recent_order_value": 50.0 if repeat else None,
        "aov_growth": 1.25 if repeat else None,
        "acquisition_channel": "web",
        "acquisition_month": date(2025, 6, 1),
        "first_order_profit": 10.0,
        **extra,
    }


def summary(**values: Any) -> pl.DataFrame:
    row = {
        "customers": 1_234,
        "one_time_customers": 700,
        "repeat_customers": 400,
        "high_value_customers": 134,
        "active_customers": 1_000,
        "at_risk_customers": 150,
        "lapsed_customers": 84,
        "median_days_to_second_purchase": 37.0,
        "repeat_window_days": 90,
        "repeat_eligible_customers": 1_100,
        "repeat_conversion_rate": 0.2345,
        "high_value_window_days": 365,
        "high_value_eligible_customers": 250,
        "high_value_conversion_rate": 0.1234,
        "previous_snapshot_date": DAY - timedelta(days=1),
        "previous_one_time_customers": 695,
        "previous_repeat_customers": 401,
        "previous_high_value_customers": 131,
        "new_customers_since_previous": 9,
        "became_repeat_since_previous": 4,
        "became_high_value_since_previous": 3,
        "customers_with_cac": 0,
        **values,
    }
    return conform("journey_summary", [row])


def inputs(**tables: pl.DataFrame) -> ReportInputs:
    return ReportInputs(snapshot_date=DAY, tables=tables, manifest={})


def words(section: Section) -> str:
    """All the text of a section's blocks, as the page shows it."""
    out = [section.read, section.empty or ""]
    for b in section.blocks:
        if isinstance(b, Cards):
            out += [f"{c.label} {c.value} {c.detail}" for c in b.cards]
        elif isinstance(b, Table):
            out += [b.caption or "", " | ".join(b.columns)]
            out += [" | ".join(row) for row in b.rows]
        elif isinstance(b, Note):
            out.append(b.text)
        elif isinstance(b, Figure):
            out.append(b.caption)
    return "\n".join(out)


def table(section: Section, *headers: str) -> Table:
    """The one table of the section with all these column headers."""
    found = [b for b in section.blocks if isinstance(b, Table) and set(headers) <= set(b.columns)]
    assert len(found) == 1, [b.columns for b in section.blocks if isinstance(b, Table)]
    return found[0]


def cards(section: Section) -> dict[str, tuple[str, str]]:
    return {
        c.label: (c.value, c.detail)
        for b in section.blocks
        if isinstance(b, Cards)
        for c in b.cards
    }


def test_the_section_follows_the_tiers() -> None:
    names = [s.__name__ for s in SECTIONS]
    assert names.index("journey_section") == names.index("tiers_section") + 1


@pytest.mark.slow
def test_funnel_counts_rates_windows_and_movement() -> None:
    section = journey_section(inputs(journey_summary=summary()))
    assert section.id == "journey" and section.empty is None
    shown = cards(section)
    assert shown["One-time customers"] == ("700", "one purchase day; 56.7% of customers")
    assert shown["Repeat customers"][0] == "400"
    assert shown["High-value customers"][0] == "134"
    value, detail = shown["One-time → repeat"]
    assert value == "23.4%" and "within 90 days" in detail and "1,100 customers" in detail
    value, detail = shown["Repeat → high value"]
    assert value == "12.3%" and "within 365 days" in detail and "250 customers" in detail
    assert shown["Days to second purchase"][0] == "37"
    moves = table(section, "Change")
    assert moves.columns == [
        "Stage",
        "On 2025-12-29",
        "On 2025-12-30",
        "Change",
        "Entered on 2025-12-30",
    ]
    assert moves.rows == [
        ["one_time", "695", "700", "+5", "9"],
        ["repeat", "401", "400", "-1", "4"],
        ["high_value", "131", "134", "+3", "3"],
    ]
    figures = [b for b in section.blocks if isinstance(b, Figure)]
    assert figures and figures[0].svg.startswith("<svg") and "one_time" in figures[0].svg


def test_a_window_nobody_has_had_yet_says_so() -> None:
    section = journey_section(
        inputs(
            journey_summary=summary(
                high_value_conversion_rate=None, high_value_eligible_customers=0
            )
        )
    )
    value, detail = cards(section)["Repeat → high value"]
    assert value == "–" and detail == "no customer became repeat 365 days ago or earlier yet"


def test_without_journey_summary_the_counts_come_from_customer_journey() -> None:
    rows = [customer(i, "one_time") for i in range(5)] + [customer(9, "repeat")]
    section = journey_section(inputs(customer_journey=conform("customer_journey", rows)))
    shown = cards(section)
    assert shown["One-time customers"][0] == "5" and shown["Repeat customers"][0] == "1"
    assert shown["High-value customers"][0] == "0"
    assert "One-time → repeat" not in shown  # the rates are journey_summary's alone
    assert shown["Days to second purchase"][0] == "29"
    assert "journey_summary is missing" in words(section)


def test_stage_by_activity_state_from_customers_and_from_segment_summary() -> None:
    rows = [
        customer(1, "repeat", "active"),
        customer(2, "repeat", "at_risk"),
        customer(3, "repeat", "at_risk"),
        customer(4, "high_value", "lapsed"),
        customer(5, "one_time", "active"),
    ]
    section = journey_section(inputs(customer_journey=conform("customer_journey", rows)))
    grid = table(section, "at_risk")
    assert grid.columns == ["Stage", "active", "at_risk", "lapsed", "Customers"]
    assert grid.rows == [
        ["one_time", "1 (100.0%)", "0 (0.0%)", "0 (0.0%)", "1"],
        ["repeat", "1 (33.3%)", "2 (66.7%)", "0 (0.0%)", "3"],
        ["high_value", "0 (0.0%)", "0 (0.0%)", "1 (100.0%)", "1"],
        ["all", "2 (40.0%)", "2 (40.0%)", "1 (20.0%)", "5"],
    ]
    segments = conform(
        "segment_summary",
        [
            {"dimension": "journey_state", "segment": "repeat/at_risk", "customers": 7},
            {"dimension": "journey_state", "segment": "repeat/active", "customers": 3},
            {"dimension": "journey_state", "segment": "one_time/lapsed", "customers": 10},
        ],
    )
    section = journey_section(inputs(journey_summary=summary(), segment_summary=segments))
    grid = table(section, "at_risk")
    assert ["repeat", "3 (30.0%)", "7 (70.0%)", "0 (0.0%)", "10"] in grid.rows
    assert ["one_time", "0 (0.0%)", "0 (0.0%)", "10 (100.0%)", "10"] in grid.rows


def test_upsell_per_stage_and_channel_from_segment_summary() -> None:
    segments = conform(
        "segment_summary",
        [
            {
                "dimension": "journey_stage",
                "segment": "repeat",
                "customers": 400,
                "avg_first_order_value": 41.5,
                "avg_recent_order_value": 52.25,
                "aov_growth": 1.259,
            },
            {
                "dimension": "journey_stage",
                "segment": "one_time",
                "customers": 700,
                "avg_first_order_value": 30.0,
            },
            {
                "dimension": "acquisition_channel",
                "segment": "app",
                "customers": 90,
                "avg_first_order_value": 20.0,
                "avg_recent_order_value": 18.0,
                "aov_growth": 0.9,
            },
        ],
    )
    section = journey_section(inputs(journey_summary=summary(), segment_summary=segments))
    stages = table(section, "Stage", "AOV growth")
    assert stages.columns == [
        "Stage",
        "Customers",
        "Avg first order",
        "Avg recent order",
        "AOV growth",
    ]
    assert stages.rows == [  # in journey order, not by size
        ["one_time", "700", "30.00", "–", "–"],
        ["repeat", "400", "41.50", "52.25", "1.26×"],
    ]
    channel_tables = [b for b in section.blocks if isinstance(b, Table) and "Channel" in b.columns]
    assert len(channel_tables) == 1  # the up-sell table: no CAC, no economics table
    assert channel_tables[0].rows == [["app", "90", "20.00", "18.00", "0.90×"]]


def test_aov_by_months_since_first_purchase_is_weighted_by_orders() -> None:
    cohorts = conform(
        "cohort_retention",
        [
            {
                "cohort_month": date(2025, 1, 1),
                "months_since_first": 0,
                "customers": 10,
                "purchase_orders": 10,
                "average_order_value": 20.0,
            },
            {
                "cohort_month": date(2025, 2, 1),
                "months_since_first": 0,
                "customers": 30,
                "purchase_orders": 30,
                "average_order_value": 40.0,
            },
            {
                "cohort_month": date(2025, 1, 1),
                "months_since_first": 1,
                "customers": 10,
                "purchase_orders": 2,
                "average_order_value": 60.0,
            },
            {
                "cohort_month": date(2025, 2, 1),
                "months_since_first": 1,
                "customers": 30,
                "purchase_orders": 0,
                "average_order_value": None,
            },
            {
                "cohort_month": date(2024, 1, 1),
                "months_since_first": 40,
                "customers": 5,
                "purchase_orders": 5,
                "average_order_value": 99.0,
            },
        ],
    )
    by_month = aov_by_month(cohorts)
    assert by_month["months_since_first"].to_list() == [0, 1]  # month 40 is past the cap
    assert by_month["aov"].to_list() == pytest.approx([35.0, 60.0])  # (10·20 + 30·40) / 40
    section = journey_section(inputs(journey_summary=summary(), cohort_retention=cohorts))
    tenure = table(section, "vs month 0")
    assert tenure.rows == [
        ["month 0", "2", "40", "35.00", "1.00×"],
        ["month 1", "1", "2", "60.00", "1.71×"],
    ]
    assert any(isinstance(b, Figure) and "rise with tenure" in b.caption for b in section.blocks)
    without = journey_section(inputs(journey_summary=summary()))
    assert "no order values" in words(without)


def test_no_cac_is_one_sentence_not_an_empty_table() -> None:
    rows = [customer(i, "repeat", cac=None) for i in range(4)]
    section = journey_section(
        inputs(journey_summary=summary(), customer_journey=conform("customer_journey", rows))
    )
    text = words(section)
    assert NO_CAC in text and "marketing_spend" in NO_CAC
    assert "Avg first-order profit after CAC" not in text
    assert "Not paid back yet" not in text


def test_first_order_economics_per_channel_when_cac_is_known() -> None:
    def paying(
        i: int, channel: str, cac: float, profit: float, paid: bool, **more: Any
    ) -> dict[str, Any]:
        return customer(
            i,
            "repeat",
            acquisition_channel=channel,
            cac=cac,
            first_order_profit_after_cac=profit,
            cac_paid_back=paid,
            **more,
        )

    rows = [
        paying(1, "web", 20.0, -10.0, True, cac_payback_orders=2, cac_payback_days=30),
        paying(2, "web", 20.0, -4.0, True, cac_payback_orders=4, cac_payback_days=90),
        paying(3, "web", 20.0, 5.0, False),
        paying(4, "app", 30.0, -25.0, False),
        customer(5, "one_time", acquisition_channel=None),  # no channel, no CAC
    ]
    journey = conform("customer_journey", rows)
    section = journey_section(
        inputs(
            journey_summary=summary(
                customers_with_cac=4, first_order_loss_share=0.75, cac_unpaid_share=0.5
            ),
            customer_journey=journey,
        )
    )
    text = words(section)
    assert NO_CAC not in text
    assert "Of the 4 customers with an acquisition cost, 75.0% lost money" in text
    assert "50.0% have not earned it back yet" in text
    economics = table(section, "Avg first-order profit after CAC")
    assert economics.columns == [
        "Channel",
        "Customers",
        "Avg CAC",
        "Avg first-order profit after CAC",
        "Not paid back yet",
        "Avg orders to pay back",
        "Avg days to pay back",
    ]
    assert economics.rows == [
        ["web", "3", "20.00", "-3.00", "33.3%", "3.0", "60"],
        ["app", "1", "30.00", "-25.00", "100.0%", "–", "–"],
        ["unknown", "1", "–", "–", "–", "–", "–"],
    ]


def test_channels_are_capped() -> None:
    segments = conform(
        "segment_summary",
        [
            {
                "dimension": "acquisition_channel",
                "segment": f"ch{i:02d}",
                "customers": 100 - i,
                "avg_cac": 10.0,
                "avg_first_order_profit_after_cac": -1.0,
                "aov_growth": 1.1,
            }
            for i in range(30)
        ],
    )
    section = journey_section(
        inputs(journey_summary=summary(customers_with_cac=5), segment_summary=segments)
    )
    economics = table(section, "Avg first-order profit after CAC")
    assert len(economics.rows) == MAX_CHANNELS
    assert economics.rows[0][0] == "ch00" and economics.rows[-1][0] == f"ch{MAX_CHANNELS - 1:02d}"
    assert f"Showing the {MAX_CHANNELS} largest of 30 channels." in words(section)


def test_no_customers_and_no_journey_tables_say_why() -> None:
    empty = summary(customers=0, one_time_customers=0, repeat_customers=0, high_value_customers=0)
    assert journey_section(inputs(journey_summary=empty)).empty == NO_CUSTOMERS
    old = journey_section(inputs(customer_rfm=pl.DataFrame({"customer_id": ["C1"]})))
    assert old.empty == NO_JOURNEY and not old.blocks


@pytest.mark.slow
def test_on_the_page_without_pii_and_at_a_fixed_size(make_inputs: MakeInputs) -> None:
    def journey_html(inputs: ReportInputs) -> str:
        html = render(inputs)
        found = dict(re.findall(r'<section id="([a-z]+)">(.*?)</section>', html, flags=re.S))
        return found["journey"]

    small = make_inputs(n=400, seed=4, cac=True)
    body = journey_html(small)
    journey = small.tables["customer_journey"]
    funnel = small.tables["journey_summary"].row(0, named=True)
    assert f">{funnel['one_time_customers']:,}<" in body
    assert "Avg first-order profit after CAC" in body and NO_CAC not in body
    leaked = [v for v in [*journey["customer_id"], *journey["email"]] if v in body]
    assert leaked == []
    big = journey_html(make_inputs(n=40_000, seed=4, cac=True))
    assert len(big) < 1.1 * len(body) + 2_000


def test_the_page_reads_customer_journey_without_ids_or_pii(tmp_path: Path) -> None:
    rows = [customer(i, "repeat") for i in range(3)]
    frame = conform("customer_journey", rows).with_columns(
        pl.Series("email", [f"p{i}@secret.example" for i in range(3)])
    )
    path = tmp_path / "part-0.parquet"
    frame.write_parquet(path)
    scanned = read_table(path, "customer_journey")
    assert isinstance(scanned, pl.LazyFrame)  # a per-customer table is scanned, never read whole
    read = scanned.collect()
    assert read.height == 3
    assert "customer_id" not in read.columns and "email" not in read.columns
    assert {"journey_stage", "activity_state", "cac", "aov_growth"} <= set(read.columns)
