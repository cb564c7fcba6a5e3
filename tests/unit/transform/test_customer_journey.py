"""customer_journey and journey_summary on hand-built customers who move along the journey.

Three customers, snapshot 2024-06-30, margin 30 % (the default), marketing spend for each
customer's acquisition month and channel:
- `one` bought once (web, June): one_time; CAC 10, first-order profit 12 -> paid back at once.
- `rep` bought three times (web, Jan/Mar/May, 20/30/40, 1/2/3 items): repeat (ABC class B);
  CAC 30, first-order profit 6 -> lost 24 on the first order, 27 of profit to date: not paid back.
- `big` bought twice on 1 Feb (100 with 2 items, then 50 without a quantity), then 300 (4 items)
  on 1 Apr and 500 (6 items) on 1 Jun, and returned 100 on 15 Jun: high_value (class A);
  CAC 60, paid back by the third purchase order (1 Apr, 60 days after the first).
Every expected value below is worked out by hand from these orders.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from marts_helper import build_tables

SNAPSHOT = date(2024, 6, 30)


def _rows() -> list[dict[str, Any]]:
    def order(oid: str, cid: str, day: date, amount: float, channel: str, qty: int | None = None):
        return {
            "order_id": oid,
            "customer_id": cid,
            "order_ts": day,
            "amount": amount,
            "channel": channel,
            "quantity": qty,
        }

    return [
        order("A1", "one", date(2024, 6, 10), 40.0, "web"),
        order("B1", "rep", date(2024, 1, 10), 20.0, "web", 1),
        order("B2", "rep", date(2024, 3, 10), 30.0, "web", 2),
        order("B3", "rep", date(2024, 5, 10), 40.0, "web", 3),
        order("C1", "big", date(2024, 2, 1), 100.0, "app", 2),
        order("C2", "big", date(2024, 2, 1), 50.0, "app"),
        order("C3", "big", date(2024, 4, 1), 300.0, "app", 4),
        order("C4", "big", date(2024, 6, 1), 500.0, "app", 6),
        order("C5", "big", date(2024, 6, 15), -100.0, "app"),
    ]


@pytest.fixture
def spend_config(tmp_path: Path) -> str:
    spend = pl.DataFrame(
        {
            "month": [date(2024, 1, 1), date(2024, 2, 1), date(2024, 6, 1)],
            "channel": ["web", "app", "web"],
            "spend": [30.0, 60.0, 10.0],
        }
    )
    spend.write_csv(tmp_path / "spend.csv")
    return f"marketing_spend: {tmp_path / 'spend.csv'}\n"


def _by_customer(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["customer_id"]: row for row in frame.to_dicts()}


@pytest.mark.slow
def test_stages_dates_upsell_and_economics(spend_config: str) -> None:
    tables = build_tables(_rows(), SNAPSHOT, config=spend_config)
    journey = _by_customer(tables["customer_journey"])
    one, rep, big = journey["one"], journey["rep"], journey["big"]

    assert (one["journey_stage"], rep["journey_stage"], big["journey_stage"]) == (
        "one_time",
        "repeat",
        "high_value",
    )
    assert {row["activity_state"] for row in journey.values()} == {"active"}
    assert one["became_repeat_on"] is None and one["days_to_second_purchase"] is None
    assert rep["became_repeat_on"] == date(2024, 3, 10) and rep["days_to_second_purchase"] == 60
    # two orders on 1 Feb are one purchase day: big became repeat on 1 Apr
    assert big["became_repeat_on"] == date(2024, 4, 1) and big["days_to_second_purchase"] == 60
    # the bar is big's net revenue, 850; revenue to date: 150 (Feb), 450 (Apr), 950 (1 Jun)
    assert big["became_high_value_on"] == date(2024, 6, 1)
    assert rep["became_high_value_on"] is None

    # up-sell: the first order, then the last 3 orders after the first purchase day
    assert big["first_order_value"] == 100.0 and big["recent_order_value"] == 400.0
    assert big["aov_growth"] == pytest.approx(4.0)
    assert big["first_order_items"] == 2 and big["recent_items_per_order"] == 5.0
    # items on order number over (1, 2), (3, 4), (4, 6): slope 18 / 14
    assert big["items_per_order_trend"] == pytest.approx(18 / 14)
    assert rep["aov_growth"] == pytest.approx(35 / 20)
    assert rep["items_per_order_trend"] == pytest.approx(1.0)
    assert one["recent_order_value"] is None and one["aov_growth"] is None
    assert one["items_per_order_trend"] is None

    # first-order economics
    assert one["cac"] == 10.0 and one["first_order_profit"] == pytest.approx(12.0)
    assert one["first_order_profit_after_cac"] == pytest.approx(2.0)
    assert (one["cac_paid_back"], one["cac_payback_orders"], one["cac_payback_days"]) == (
        True,
        1,
        0,
    )
    assert rep["first_order_profit_after_cac"] == pytest.approx(-24.0)
    assert (rep["cac_paid_back"], rep["cac_payback_orders"], rep["cac_payback_days"]) == (
        False,
        None,
        None,
    )
    assert big["first_order_profit_after_cac"] == pytest.approx(-30.0)
    assert (big["cac_paid_back"], big["cac_payback_orders"], big["cac_payback_days"]) == (
        True,
        3,
        60,
    )

    summary = tables["journey_summary"].to_dicts()[0]
    assert (summary["one_time_customers"], summary["repeat_customers"]) == (1, 1)
    assert summary["high_value_customers"] == 1
    assert float(summary["high_value_revenue_bar"]) == 850.0
    assert summary["median_days_to_second_purchase"] == 60.0
    # first purchase on or before 2 Apr: rep and big, both back within 60 days
    assert summary["repeat_eligible_customers"] == 2 and summary["repeat_conversion_rate"] == 1.0
    assert summary["high_value_eligible_customers"] == 0
    assert summary["high_value_conversion_rate"] is None
    assert summary["first_order_loss_share"] == pytest.approx(2 / 3)
    assert summary["cac_unpaid_share"] == pytest.approx(1 / 3)
    assert summary["previous_snapshot_date"] == date(2024, 6, 29)
    assert summary["became_repeat_since_previous"] == 0

    # segment_summary: the journey dimensions and the up-sell and economics columns
    segments = tables["segment_summary"]
    stage = {r["segment"]: r for r in segments.filter(dimension="journey_stage").to_dicts()}
    assert stage["high_value"]["customers"] == 1
    assert stage["repeat"]["aov_growth"] == pytest.approx(35 / 20)
    state = segments.filter(dimension="journey_state")["segment"].to_list()
    assert sorted(state) == ["high_value/active", "one_time/active", "repeat/active"]
    web = segments.filter(dimension="acquisition_channel", segment="web").to_dicts()[0]
    assert web["cac_unpaid_share"] == pytest.approx(1 / 2)
    assert web["avg_first_order_profit_after_cac"] == pytest.approx((2.0 - 24.0) / 2)
    assert web["avg_cac_payback_orders"] == 1.0 and web["avg_cac_payback_days"] == 0.0
    assert web["aov_growth"] == pytest.approx(35 / 20)  # one has no recent orders


@pytest.mark.slow
def test_movement_since_the_previous_day() -> None:
    """On 1 Jun big reaches the bar (950, before the return): it moved repeat -> high_value."""
    day = date(2024, 6, 1)
    tables = build_tables([r for r in _rows() if r["order_ts"] <= day], day)
    summary = tables["journey_summary"].to_dicts()[0]
    assert summary["customers"] == 2  # one has not bought yet
    assert summary["became_high_value_since_previous"] == 1
    assert summary["previous_high_value_customers"] == 0
    assert summary["previous_repeat_customers"] == 2
    assert summary["high_value_customers"] == 1 and summary["repeat_customers"] == 1
    assert summary["new_customers_since_previous"] == 0


@pytest.mark.slow
def test_loyalty_tier_rule_never_makes_a_one_time_buyer_high_value() -> None:
    config = (
        "journey:\n  high_value:\n    rule: loyalty_tier\n    loyalty_tiers: [Silver, Bronze]\n"
    )
    journey = _by_customer(build_tables(_rows(), SNAPSHOT, config=config)["customer_journey"])
    assert journey["one"]["journey_stage"] == "one_time"  # Bronze, but one purchase day
    assert journey["rep"]["journey_stage"] == "high_value"
    # the bar is now rep's 90: revenue to date 20, 50, 90 -> reached on 10 May
    assert journey["rep"]["became_high_value_on"] == date(2024, 5, 10)
    # big (Silver) passed 90 on its first day, but became repeat only on 1 Apr
    assert journey["big"]["became_high_value_on"] == date(2024, 4, 1)


@pytest.mark.slow
def test_clv_percentile_rule_without_predictions_has_no_high_value() -> None:
    config = "journey:\n  high_value:\n    rule: clv_percentile\n"
    tables = build_tables(_rows(), SNAPSHOT, config=config)
    assert set(tables["customer_journey"]["journey_stage"]) == {"one_time", "repeat"}
    assert tables["journey_summary"]["high_value_revenue_bar"].to_list() == [None]


def test_a_tier_the_config_does_not_have_is_an_error(tmp_path: Path) -> None:
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        "journey:\n  high_value:\n    rule: loyalty_tier\n    loyalty_tiers: [Diamond]\n"
    )
    with pytest.raises(ConfigError, match="Diamond"):
        load_config(path)
