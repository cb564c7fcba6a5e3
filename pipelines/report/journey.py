"""The customer-journey section: one-time -> repeat -> high-value, up-sell, first-order economics.

Four parts, each read from the published tables as aggregates only (no customer appears):

- the funnel: customers per journey stage, the conversion rates within their configured
  windows, the median days to a second purchase and the movement since D - 1 (journey_summary;
  the counts alone from customer_journey when a snapshot lacks the summary);
- stage x activity state: who of the repeat and high-value customers are at risk or lapsed
  (customer_journey, else segment_summary's journey_state rows);
- up-sell: AOV growth per journey stage and per acquisition channel (segment_summary, else
  aggregated from customer_journey), and the average order value by months since the first
  purchase across cohorts (cohort_retention, weighted by purchase orders);
- first-order economics per acquisition channel against the CAC -- or one sentence saying that
  no CAC is known (config marketing_spend not set) instead of a table of dashes.

The stages and states are fixed sets, months stop at the cohort section's `MAX_MONTHS`, and
channels are capped at `MAX_CHANNELS`, so the section has the same size at any scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from pipelines.report import figures
from pipelines.report.blocks import (
    NO_CUSTOMERS,
    Block,
    Card,
    Cards,
    Figure,
    Note,
    Section,
    Table,
    count,
    delta,
    missing,
    money,
    percent,
    times,
)
from pipelines.report.cohorts import MAX_MONTHS
from pipelines.report.inputs import ReportInputs, collected, column_names
from pipelines.report.kpis import first_row
from pipelines.report.segment_shares import dimension, in_order

Formatter = Callable[[Any], str]
STAGES = ("one_time", "repeat", "high_value")
STATES = ("active", "at_risk", "lapsed")
MAX_CHANNELS = 12
AOV_MONTHS = (0, 1, 2, 3, 6, 12, 18, 24)
NO_JOURNEY = (
    "This snapshot has no customer_journey or journey_summary table: it was published before "
    "the journey tables existed."
)
NO_CAC = (
    "No customer has an acquisition cost (CAC), so first-order profit after CAC and payback are "
    "not shown: config marketing_spend is not set, or has no spend for the customers' "
    "acquisition months and channels."
)
UPSELL: tuple[tuple[str, str, Formatter], ...] = (
    ("avg_first_order_value", "Avg first order", money),
    ("avg_recent_order_value", "Avg recent order", money),
    ("aov_growth", "AOV growth", times),
)
ECONOMICS: tuple[tuple[str, str, Formatter], ...] = (
    ("avg_cac", "Avg CAC", money),
    ("avg_first_order_profit_after_cac", "Avg first-order profit after CAC", money),
    ("cac_unpaid_share", "Not paid back yet", percent),
    ("avg_cac_payback_orders", "Avg orders to pay back", lambda v: money(v, 1)),
    ("avg_cac_payback_days", "Avg days to pay back", lambda v: money(v, 0)),
)


def _ordered(values: Iterable[Any], order: Sequence[str]) -> list[str]:
    """The values present, in the journey's order first and any others after, by name."""
    present = {str(v) for v in values if v is not None}
    return [v for v in order if v in present] + sorted(present - set(order))


def stage_counts(inputs: ReportInputs) -> dict[str, int] | None:
    """Customers per journey stage: journey_summary's, else counted; None without either."""
    summary = first_row(inputs.table("journey_summary"))
    if all(f"{s}_customers" in summary for s in STAGES):
        return {s: int(summary[f"{s}_customers"] or 0) for s in STAGES}
    journey = inputs.scan("customer_journey")
    found: dict[Any, Any] | None = None
    if "journey_stage" in column_names(journey):
        found = dict(collected(journey.group_by("journey_stage").len()).iter_rows())
    else:
        rows = dimension(inputs, "journey_stage")
        if rows.height:
            found = dict(rows.select(pl.col("segment").cast(pl.String), "customers").iter_rows())
    if found is None:
        return None
    return {s: int(found.get(s) or 0) for s in STAGES}


def stage_states(inputs: ReportInputs) -> pl.DataFrame:
    """Customers per journey stage and activity state (journey_stage, activity_state, customers)."""
    journey = inputs.scan("customer_journey")
    if {"journey_stage", "activity_state"} <= set(column_names(journey)):
        counted = collected(
            journey.group_by("journey_stage", "activity_state").agg(pl.len().alias("customers"))
        )
        if counted.height:
            return counted
    rows = dimension(inputs, "journey_state")
    if rows.height == 0:
        return pl.DataFrame()
    parts = pl.col("segment").cast(pl.String).str.split_exact("/", 1)
    return rows.select(
        parts.struct.field("field_0").alias("journey_stage"),
        parts.struct.field("field_1").alias("activity_state"),
        "customers",
    )


def groups(inputs: ReportInputs, name: str) -> pl.DataFrame:
    """segment_summary's rows of one journey dimension (journey_stage, acquisition_channel), or
    the same averages aggregated from customer_journey; only the columns the source has."""
    rows = dimension(inputs, name)
    if rows.height:
        return rows.with_columns(pl.col("segment").cast(pl.String))
    journey = inputs.scan("customer_journey")
    cols = set(column_names(journey))
    if name not in cols:
        return pl.DataFrame()
    aggs = [pl.len().alias("customers")]
    means = (
        ("first_order_value", "avg_first_order_value"),
        ("recent_order_value", "avg_recent_order_value"),
        ("cac", "avg_cac"),
        ("first_order_profit_after_cac", "avg_first_order_profit_after_cac"),
        ("cac_payback_orders", "avg_cac_payback_orders"),
        ("cac_payback_days", "avg_cac_payback_days"),
    )
    aggs += [pl.col(c).mean().alias(alias) for c, alias in means if c in cols]
    after = []
    if {"first_order_value", "recent_order_value"} <= cols:
        both = (
            pl.col("first_order_value").is_not_null() & pl.col("recent_order_value").is_not_null()
        )
        aggs += [
            pl.col("recent_order_value").filter(both).sum().alias("_recent"),
            pl.col("first_order_value").filter(both).sum().alias("_first"),
        ]
        after.append(
            pl.when(pl.col("_first") > 0)
            .then(pl.col("_recent") / pl.col("_first"))
            .alias("aov_growth")
        )
    if "cac_paid_back" in cols:
        aggs += [
            pl.col("cac_paid_back").not_().sum().alias("_unpaid"),
            pl.col("cac_paid_back").count().alias("_with_cac"),
        ]
        after.append(
            pl.when(pl.col("_with_cac") > 0)
            .then(pl.col("_unpaid") / pl.col("_with_cac"))
            .alias("cac_unpaid_share")
        )
    key = pl.col(name).cast(pl.String).fill_null("unknown").alias("segment")
    out = collected(journey.group_by(key).agg(aggs)).with_columns(after)
    return out.drop([c for c in out.columns if c.startswith("_")])


def cac_known(inputs: ReportInputs) -> bool:
    """Whether any customer of the snapshot has an acquisition cost."""
    journey = inputs.scan("customer_journey")
    if "cac" in column_names(journey):
        return int(collected(journey.select(pl.col("cac").count())).item()) > 0
    summary = first_row(inputs.table("journey_summary"))
    if "customers_with_cac" in summary:
        return bool(summary["customers_with_cac"])
    rows = dimension(inputs, "acquisition_channel")
    return "avg_cac" in rows.columns and rows["avg_cac"].null_count() < rows.height


def journey_section(inputs: ReportInputs) -> Section:
    read = (
        "Customers move from a first purchase (one_time) to buying again (repeat) to being among "
        "the most valuable (high_value): how many are at each stage and how fast they move on, "
        "whether they spend more per order as they stay, and whether their first order earned "
        "back what acquiring them cost."
    )
    title = "Customer journey"
    stages = stage_counts(inputs)
    if stages is None:
        return Section("journey", title, read, empty=NO_JOURNEY)
    total = sum(stages.values())
    if total == 0:
        return Section("journey", title, read, empty=NO_CUSTOMERS)
    blocks = [
        *_funnel(inputs, stages, total),
        *_states(inputs),
        *_upsell(inputs),
        *_economics(inputs),
    ]
    return Section("journey", title, read, blocks)


def _funnel(inputs: ReportInputs, stages: Mapping[str, int], total: int) -> list[Block]:
    summary = first_row(inputs.table("journey_summary"))
    details = {
        "one_time": ("One-time customers", "one purchase day"),
        "repeat": ("Repeat customers", "two or more purchase days"),
        "high_value": ("High-value customers", "repeat, and meet config journey.high_value"),
    }
    cards = [
        Card(label, count(stages[s]), f"{detail}; {percent(stages[s] / total)} of customers")
        for s, (label, detail) in details.items()
    ]
    conversions = (
        (
            "repeat_conversion_rate",
            "One-time → repeat",
            "repeat_window_days",
            "repeat_eligible_customers",
            "second purchase within {w} days of the first, of the {n} customers whose first "
            "purchase is at least {w} days old",
            "no customer's first purchase is {w} days old yet",
        ),
        (
            "high_value_conversion_rate",
            "Repeat → high value",
            "high_value_window_days",
            "high_value_eligible_customers",
            "high value within {w} days of becoming repeat, of the {n} customers who became "
            "repeat at least {w} days ago",
            "no customer became repeat {w} days ago or earlier yet",
        ),
    )
    for key, label, window, eligible, detail, none in conversions:
        if key not in summary:
            continue
        w, n = count(summary.get(window)), count(summary.get(eligible))
        text = (none if missing(summary[key]) else detail).format(w=w, n=n)
        cards.append(Card(label, percent(summary[key]), text))
    journey = inputs.scan("customer_journey")
    counted_days = "days_to_second_purchase" in column_names(journey)
    median: Any = summary.get("median_days_to_second_purchase")
    if "median_days_to_second_purchase" not in summary and counted_days:
        median = collected(journey.select(pl.col("days_to_second_purchase").median())).item()
    if "median_days_to_second_purchase" in summary or counted_days:
        cards.append(
            Card(
                "Days to second purchase",
                money(median, 0),
                "median, over the repeat and high-value customers",
            )
        )
    blocks: list[Block] = [Cards(cards)]
    blocks.append(
        Figure(
            figures.paired_bars(
                "funnel",
                "Customers per journey stage",
                list(STAGES),
                {"customers": [float(stages[s]) for s in STAGES]},
                "customers",
            ),
            "Customers per journey stage, each counted once at the stage they have reached.",
        )
    )
    moved = {
        "one_time": "new_customers_since_previous",
        "repeat": "became_repeat_since_previous",
        "high_value": "became_high_value_since_previous",
    }
    before = summary.get("previous_snapshot_date")
    if before is not None and all(f"previous_{s}_customers" in summary for s in STAGES):
        day = inputs.snapshot_date
        rows = [
            [
                s,
                count(summary[f"previous_{s}_customers"]),
                count(stages[s]),
                delta(stages[s], summary[f"previous_{s}_customers"]) or "–",
                count(summary.get(moved[s])),
            ]
            for s in STAGES
        ]
        blocks.append(
            Table(
                ["Stage", f"On {before}", f"On {day}", "Change", f"Entered on {day}"],
                rows,
                [False, True, True, True, True],
                caption=f"Movement since the previous day: customers per stage on {before} "
                f"(read off this snapshot's dates) and now, and how many entered each stage on "
                f"{day} (a first purchase, a second purchase day, reaching the high-value bar).",
            )
        )
    elif not summary:
        blocks.append(
            Note(
                "journey_summary is missing from this snapshot, so the conversion rates and the "
                "movement since the previous day are not shown."
            )
        )
    return blocks


def _states(inputs: ReportInputs) -> list[Block]:
    frame = stage_states(inputs)
    if frame.height == 0:
        return []
    cells: dict[tuple[str, str], int] = {}
    for stage, state, n in frame.iter_rows():
        key = (str(stage), str(state))
        cells[key] = cells.get(key, 0) + int(n or 0)
    stages = _ordered((k[0] for k in cells), STAGES)
    states = _ordered((k[1] for k in cells), STATES)
    rows = []
    for stage in stages:
        of_stage = sum(cells.get((stage, st), 0) for st in states)
        shares = [
            f"{count(cells.get((stage, st), 0))} ({percent(cells.get((stage, st), 0) / of_stage if of_stage else None)})"
            for st in states
        ]
        rows.append([stage, *shares, count(of_stage)])
    total = sum(cells.values())
    column_totals = [sum(cells.get((sg, st), 0) for sg in stages) for st in states]
    rows.append(
        [
            "all",
            *(f"{count(n)} ({percent(n / total if total else None)})" for n in column_totals),
            count(total),
        ]
    )
    return [
        Table(
            ["Stage", *states, "Customers"],
            rows,
            [False, *([True] * len(states)), True],
            caption="Customers per journey stage and activity state, with the share of the "
            "stage in brackets: the repeat and high-value customers at risk or lapsed have "
            "stopped buying at their usual rhythm and are the ones worth winning back.",
        )
    ]


def _group_table(
    frame: pl.DataFrame,
    label: str,
    spec: Sequence[tuple[str, str, Formatter]],
    caption: str,
) -> Table:
    shown = [s for s in spec if s[0] in frame.columns]
    rows = [
        [str(r["segment"]), count(r.get("customers")), *(fmt(r.get(c)) for c, _, fmt in shown)]
        for r in frame.iter_rows(named=True)
    ]
    return Table(
        [label, "Customers", *(s[1] for s in shown)],
        rows,
        [False, True, *([True] * len(shown))],
        caption=caption,
    )


def _by_stage(inputs: ReportInputs) -> pl.DataFrame:
    frame = groups(inputs, "journey_stage")
    if frame.height == 0:
        return frame
    return in_order(frame, STAGES)


def _by_channel(inputs: ReportInputs) -> tuple[pl.DataFrame, int]:
    """The largest `MAX_CHANNELS` acquisition channels, and how many channels there are."""
    frame = groups(inputs, "acquisition_channel")
    if frame.height == 0:
        return frame, 0
    frame = frame.sort(["customers", "segment"], descending=[True, False])
    return frame.head(MAX_CHANNELS), frame.height


def _upsell(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = []
    stages = _by_stage(inputs)
    if stages.height and any(c in stages.columns for c, _, _ in UPSELL):
        blocks.append(
            _group_table(
                stages,
                "Stage",
                UPSELL,
                "Up-sell per journey stage: the average first order, the average of the recent "
                "orders after the first purchase day, and AOV growth (recent over first) -- "
                "above 1× customers spend more per order than on their first (one-time buyers "
                "have no recent orders).",
            )
        )
    channels, n_channels = _by_channel(inputs)
    if channels.height and any(c in channels.columns for c, _, _ in UPSELL):
        blocks.append(
            _group_table(
                channels,
                "Channel",
                UPSELL,
                "The same per acquisition channel (the channel of the first order): which "
                "channels bring customers whose orders grow.",
            )
        )
        if n_channels > channels.height:
            blocks.append(Note(f"Showing the {channels.height} largest of {n_channels} channels."))
    blocks += _aov_by_tenure(inputs)
    return blocks


def aov_by_month(cohorts: pl.DataFrame) -> pl.DataFrame:
    """Average order value per month since the first purchase, over every cohort, weighted by
    the cohort's purchase orders that month (months_since_first, cohorts, orders, aov)."""
    need = {"months_since_first", "purchase_orders", "average_order_value"}
    if cohorts.height == 0 or not need <= set(cohorts.columns):
        return pl.DataFrame()
    return (
        cohorts.filter(
            (pl.col("months_since_first") <= MAX_MONTHS)
            & (pl.col("purchase_orders") > 0)
            & pl.col("average_order_value").is_not_null()
        )
        .group_by("months_since_first")
        .agg(
            pl.len().alias("cohorts"),
            pl.col("purchase_orders").sum().alias("orders"),
            (pl.col("average_order_value") * pl.col("purchase_orders")).sum().alias("_value"),
        )
        .with_columns((pl.col("_value") / pl.col("orders")).alias("aov"))
        .drop("_value")
        .sort("months_since_first")
    )


def _aov_by_tenure(inputs: ReportInputs) -> list[Block]:
    by_month = aov_by_month(inputs.table("cohort_retention"))
    if by_month.height == 0:
        return [
            Note(
                "cohort_retention has no order values (purchase_orders, average_order_value) "
                "in this snapshot, so the average order value by tenure is not shown."
            )
        ]
    months = by_month["months_since_first"].to_list()
    aov = by_month["aov"].to_list()
    svg = figures.paired_bars(
        "aov",
        "Average order value by months since first purchase",
        [str(m) for m in months],
        {"average order value": aov},
        f"{inputs.settings.currency} per order",
    )
    first = dict(zip(months, aov)).get(0)
    rows = [
        [
            f"month {r['months_since_first']}",
            count(r["cohorts"]),
            count(r["orders"]),
            money(r["aov"]),
            times(r["aov"] / first if first else None),
        ]
        for r in by_month.iter_rows(named=True)
        if r["months_since_first"] in AOV_MONTHS
    ]
    return [
        Figure(
            svg,
            "Does AOV rise with tenure: the average order value in each month since the first "
            f"purchase (0–{months[-1]}), across all cohorts weighted by their orders; the later "
            "months hold only the older cohorts.",
        ),
        Table(
            ["Months since first purchase", "Cohorts", "Purchase orders", "AOV", "vs month 0"],
            rows,
            [False, True, True, True, True],
            caption="Average order value by tenure, across cohorts: above 1× in the last "
            "column, customers spend more per order than in their first month.",
        ),
    ]


def _economics(inputs: ReportInputs) -> list[Block]:
    if not cac_known(inputs):
        return [Note(NO_CAC)]
    blocks: list[Block] = []
    summary = first_row(inputs.table("journey_summary"))
    if {"customers_with_cac", "first_order_loss_share", "cac_unpaid_share"} <= set(summary):
        blocks.append(
            Note(
                f"Of the {count(summary['customers_with_cac'])} customers with an acquisition "
                f"cost, {percent(summary['first_order_loss_share'])} lost money on their first "
                f"order once it is counted and {percent(summary['cac_unpaid_share'])} have not "
                "earned it back yet."
            )
        )
    channels, n_channels = _by_channel(inputs)
    if channels.height and any(c in channels.columns for c, _, _ in ECONOMICS):
        blocks.append(
            _group_table(
                channels,
                "Channel",
                ECONOMICS,
                "First-order economics per acquisition channel: the first order's profit less "
                "the CAC (negative: the first order lost money), the share of the customers with "
                "a CAC who have not paid it back yet, and how many orders and days it took those "
                "who did.",
            )
        )
        if n_channels > channels.height:
            blocks.append(Note(f"Showing the {channels.height} largest of {n_channels} channels."))
    return blocks
