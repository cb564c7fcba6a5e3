"""Each customer-value metric on a tiny hand-built order set; expected values worked out by hand.

The SQL models are built straight from staged orders (tests/marts_helper.py), so each case
states only the orders that matter to it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from marts_helper import build_tables


def by_customer(frame: pl.DataFrame, column: str) -> dict:
    return dict(zip(frame["customer_id"].to_list(), frame[column].to_list()))


# ------------------------------------------------------------------------------------------
# ABC classes


@pytest.mark.slow
def test_abc_boundaries_and_ties() -> None:
    # Revenue 40, 30, 15, 15 (total 100). Ranked by revenue, then id: P, Q, R, S.
    # Revenue before each: P 0 (<80: A), Q 40 (A), R 70 (A), S 85 (<95: B). Z bought for free: C.
    rows = [
        {"customer_id": "P", "order_ts": date(2024, 1, 5), "amount": 40.0},
        {"customer_id": "Q", "order_ts": date(2024, 1, 5), "amount": 30.0},
        {"customer_id": "S", "order_ts": date(2024, 1, 5), "amount": 15.0},
        {"customer_id": "R", "order_ts": date(2024, 1, 5), "amount": 15.0},
        {"customer_id": "Z", "order_ts": date(2024, 1, 5), "amount": 0.0},
    ]
    t = build_tables(rows, date(2024, 1, 31))
    assert by_customer(t["customer_rfm"], "abc_class") == {
        "P": "A",
        "Q": "A",
        "R": "A",
        "S": "B",
        "Z": "C",
    }
    kpi = t["kpi_summary"].to_dicts()[0]
    assert (
        kpi["revenue_share_a"],
        kpi["revenue_share_b"],
        kpi["revenue_share_c"],
    ) == pytest.approx((0.85, 0.15, 0.0))
    seg = t["segment_summary"].filter(pl.col("dimension") == "abc_class")
    assert dict(zip(seg["segment"], seg["customers"])) == {"A": 3, "B": 1, "C": 1}


@pytest.mark.slow
def test_abc_exact_boundary() -> None:
    # 50 + 30 = exactly 80%: the next customer starts at 80%, which is not under 80% -> B.
    rows = [
        {"customer_id": "a", "order_ts": date(2024, 1, 5), "amount": 50.0},
        {"customer_id": "b", "order_ts": date(2024, 1, 5), "amount": 30.0},
        {"customer_id": "c", "order_ts": date(2024, 1, 5), "amount": 15.0},
        {"customer_id": "d", "order_ts": date(2024, 1, 5), "amount": 5.0},
    ]
    t = build_tables(rows, date(2024, 1, 31))
    assert by_customer(t["customer_rfm"], "abc_class") == {"a": "A", "b": "A", "c": "B", "d": "C"}


# ------------------------------------------------------------------------------------------
# RFM segments


def test_rfm_segments_follow_the_map() -> None:
    # Five customers, distinct recency and frequency so that scores are ranks:
    # recency (days): v 0, w 10, x 20, y 30, z 40  -> r: v 5, w 4, x 3, y 2, z 1
    # orders:         v 1, w 2,  x 3,  y 4,  z 6   -> f (breakpoints 2, 3, 4, 6): v 1 .. z 5
    rows = []
    for cid, last_day, n in (("v", 31, 1), ("w", 21, 2), ("x", 11, 3), ("y", 1, 4)):
        rows.append({"customer_id": cid, "order_ts": date(2024, 1, last_day), "amount": 10.0})
        rows += [
            {"customer_id": cid, "order_ts": date(2023, 11, k), "amount": 10.0} for k in range(1, n)
        ]
    rows.append({"customer_id": "z", "order_ts": date(2023, 12, 22), "amount": 10.0})  # 40 days
    rows += [
        {"customer_id": "z", "order_ts": date(2023, 11, k), "amount": 10.0} for k in range(1, 6)
    ]
    t = build_tables(rows, date(2024, 1, 31))
    rfm = t["customer_rfm"].sort("customer_id")
    assert rfm["r_score"].to_list() == [5, 4, 3, 2, 1]
    assert rfm["f_score"].to_list() == [1, 2, 3, 4, 5]
    # map: r5 f1 new_customers; r4 f2 potential_loyalists; r3 f3 need_attention;
    #      r2 f4 at_risk; r1 f5 cannot_lose_them
    assert rfm["rfm_segment"].to_list() == [
        "new_customers",
        "potential_loyalists",
        "need_attention",
        "at_risk",
        "cannot_lose_them",
    ]
    assert rfm["rfm_cell"].to_list()[0] == f"51{rfm['m_score'][0]}"


def _ten_customers() -> list[dict]:
    """Ten customers: c0..c4 one order each, c5..c9 two to six orders; recency 3 x i days."""
    rows = []
    for i in range(10):
        n = 1 if i < 5 else i - 3
        rows += [
            {
                "customer_id": f"c{i}",
                "order_ts": date(2024, 1, 31) - timedelta(3 * i + k),
                "amount": 10.0,
            }
            for k in range(n)
        ]
    return rows


@pytest.mark.slow
def test_rfm_scoring_methods() -> None:
    rows = _ten_customers()
    snapshot = date(2024, 1, 31)
    orders = {f"c{i}": (1 if i < 5 else i - 3) for i in range(10)}
    recency = {f"c{i}": 3 * i for i in range(10)}

    # quantile (ties share a rank): the five one-order customers all rank 1 -> f 1; then
    # ranks 6..10 -> 1 + floor(5 x (rank - 1) / 10) = 3, 4, 4, 5, 5; score 2 is empty
    t = build_tables(rows, snapshot, "rfm:\n  scoring: {f: quantile}\n")
    f = by_customer(t["customer_rfm"], "f_score")
    assert [f[f"c{i}"] for i in range(10)] == [1, 1, 1, 1, 1, 3, 4, 4, 5, 5]

    # rank (ties broken by md5 of the id): equal bins of two, one-order customers split 1 and 2
    t = build_tables(rows, snapshot, "rfm:\n  scoring: {f: rank}\n")
    f = by_customer(t["customer_rfm"], "f_score")
    assert sorted(f.values()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert {f[f"c{i}"] for i in range(5)} <= {1, 2, 3}
    assert [f[f"c{i}"] for i in range(7, 10)] == [4, 5, 5]

    # breakpoints, R included: r 5 within 3 days, 4 within 9, 3 within 15, 2 within 21
    config = (
        "rfm:\n  scoring: {r: breakpoints, f: breakpoints, m: quantile}\n"
        "  breakpoints: {r: [3, 9, 15, 21], f: [2, 3, 4, 6]}\n"
    )
    t = build_tables(rows, snapshot, config)
    got = t["customer_rfm"]
    r, f = by_customer(got, "r_score"), by_customer(got, "f_score")
    for cid in orders:
        assert f[cid] == 1 + sum(orders[cid] >= b for b in (2, 3, 4, 6)), cid
        assert r[cid] == 1 + sum(recency[cid] <= b for b in (3, 9, 15, 21)), cid
    # segment_summary shows each score's distribution
    seg = t["segment_summary"].filter(pl.col("dimension") == "f_score")
    expected = {str(k): list(f.values()).count(k) for k in set(f.values())}
    assert dict(zip(seg["segment"], seg["customers"])) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rfm:\n  scoring: {f: breakpoints}\n  breakpoints: {f: [2, 3]}\n", "needs 4 breakpoints"),
        ("rfm:\n  breakpoints: {f: [2, 3, 3, 6]}\n", "must increase strictly"),
        ("rfm:\n  scoring: {f: deciles}\n", "rfm.scoring.f"),
    ],
)
def test_rfm_scoring_config_errors(tmp_path: Path, text: str, message: str) -> None:
    from pipelines.config import ConfigError, load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_segment_rules_must_cover_every_cell(tmp_path: Path) -> None:
    from pipelines.config import ConfigError, load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("rfm:\n  segments:\n    - {segment: everyone, r: [1, 5], f: [1, 4]}\n")
    with pytest.raises(
        ConfigError, match=r"leave \(r, f\) score cells without a segment: \[\(1, 5\)"
    ):
        load_config(cfg)


# ------------------------------------------------------------------------------------------
# Loyalty tiers


@pytest.mark.slow
def test_loyalty_tiers_use_the_trailing_year() -> None:
    snapshot = date(2024, 12, 31)
    rows = []
    # g: 6 orders of 130 in the window -> 780 spend, 6 orders -> Gold (750 / 6)
    rows += [
        {"customer_id": "g", "order_ts": date(2024, 6, 1 + k), "amount": 130.0} for k in range(6)
    ]
    # p: 12 orders of 200, but one is on 2024-01-01, more than 365 days... no: the window is
    #    (snapshot - 365, snapshot] = 2024-01-02 .. 2024-12-31, so 2024-01-01 is outside:
    #    11 orders, 2200 -> not Platinum (12 orders) -> Gold
    rows += [{"customer_id": "p", "order_ts": date(2024, 1, 1), "amount": 200.0}]
    rows += [
        {"customer_id": "p", "order_ts": date(2024, 3, 1 + k), "amount": 200.0} for k in range(11)
    ]
    # q: 12 orders of 200 inside the window -> 2400 -> Platinum
    rows += [
        {"customer_id": "q", "order_ts": date(2024, 3, 1 + k), "amount": 200.0} for k in range(12)
    ]
    # s: 3 orders, 300 -> Silver; b: 2 orders of 1000 -> Bronze (fewer than 3 orders)
    rows += [
        {"customer_id": "s", "order_ts": date(2024, 5, 1 + k), "amount": 100.0} for k in range(3)
    ]
    rows += [
        {"customer_id": "b", "order_ts": date(2024, 5, 1 + k), "amount": 1000.0} for k in range(2)
    ]
    t = build_tables(rows, snapshot)
    assert by_customer(t["customer_rfm"], "loyalty_tier") == {
        "g": "Gold",
        "p": "Gold",
        "q": "Platinum",
        "s": "Silver",
        "b": "Bronze",
    }


# ------------------------------------------------------------------------------------------
# Lifecycle stages


@pytest.mark.slow
def test_lifecycle_stages(tmp_path: Path) -> None:
    snapshot = date(2024, 6, 30)
    d = date
    purchases = {
        # 3 purchase days 10 apart (rhythm 10), then nothing for 156 days, then back 5 days ago:
        # last gap 156 > 4 x 10 and 5 <= 2 x 10 -> reactivated
        "R": [d(2024, 1, 1), d(2024, 1, 11), d(2024, 1, 21), d(2024, 6, 25)],
        # rhythm 10, silent for 161 days > 4 x 10 -> lapsed
        "L": [d(2024, 1, 1), d(2024, 1, 11), d(2024, 1, 21)],
        # rhythm 10, silent for 40 days: > 2 x 10 but not > 4 x 10 -> at_risk
        "K": [d(2024, 5, 1), d(2024, 5, 11), d(2024, 5, 21)],
        # first purchase 10 days ago -> new
        "N": [d(2024, 6, 20)],
        # 5 purchase days 8 apart, last 2 days ago -> loyal
        "Y": [d(2024, 5, 27), d(2024, 6, 4), d(2024, 6, 12), d(2024, 6, 20), d(2024, 6, 28)],
        # 2 purchase days 24 apart, silent 36 days (< 2 x 24) -> repeat
        "P": [d(2024, 5, 1), d(2024, 5, 25)],
        # one-time buyers have the configured rhythm of 30 days:
        "O": [d(2024, 5, 25)],  # 36 days: not > 60 -> one_time
        "O3": [d(2024, 4, 15)],  # 76 days: > 60 -> at_risk
        "O2": [d(2024, 3, 1)],  # 121 days: > 120 -> lapsed
    }
    rows = [
        {"customer_id": c, "order_ts": day, "amount": 10.0}
        for c, days in purchases.items()
        for day in days
    ]
    t = build_tables(rows, snapshot, config="lifecycle:\n  one_time_gap_days: 30\n")
    assert by_customer(t["customer_rfm"], "lifecycle_stage") == {
        "R": "reactivated",
        "L": "lapsed",
        "K": "at_risk",
        "N": "new",
        "Y": "loyal",
        "P": "repeat",
        "O": "one_time",
        "O3": "at_risk",
        "O2": "lapsed",
    }


@pytest.mark.slow
def test_one_time_buyers_default_to_the_median_rhythm() -> None:
    # Repeat customers with rhythms 10, 20 and 40 days -> median 20 for the one-time buyer T,
    # who last bought 50 days ago: > 2 x 20, not > 4 x 20 -> at_risk.
    d = date
    rows = (
        [
            {"customer_id": "a", "order_ts": day, "amount": 5.0}
            for day in (d(2024, 5, 1), d(2024, 5, 11), d(2024, 5, 21))
        ]
        + [
            {"customer_id": "b", "order_ts": day, "amount": 5.0}
            for day in (d(2024, 4, 1), d(2024, 4, 21))
        ]
        + [
            {"customer_id": "c", "order_ts": day, "amount": 5.0}
            for day in (d(2024, 3, 1), d(2024, 4, 10))
        ]
        + [{"customer_id": "t", "order_ts": d(2024, 5, 11), "amount": 5.0}]
    )
    t = build_tables(rows, d(2024, 6, 30))
    assert by_customer(t["customer_rfm"], "lifecycle_stage")["t"] == "at_risk"


# ------------------------------------------------------------------------------------------
# Cohorts


@pytest.mark.slow
def test_cohort_retention_with_an_empty_month() -> None:
    rows = [
        {"customer_id": "X", "order_ts": date(2024, 1, 5), "amount": 10.0},
        {"customer_id": "X", "order_ts": date(2024, 3, 10), "amount": 20.0},
        {"customer_id": "Z", "order_ts": date(2024, 1, 20), "amount": 30.0},
        {"customer_id": "W", "order_ts": date(2024, 3, 3), "amount": 7.0},
    ]
    t = build_tables(rows, date(2024, 3, 31))
    got = t["cohort_retention"].sort("cohort_month", "months_since_first").rows()
    assert got == [
        # cohort, m, customers, active, rate, revenue, orders, AOV, cumulative per customer
        (date(2024, 1, 1), 0, 2, 2, 1.0, 40.0, 2, 20.0, 20.0),
        (date(2024, 1, 1), 1, 2, 0, 0.0, 0.0, 0, None, 20.0),  # February: nobody bought
        (date(2024, 1, 1), 2, 2, 1, 0.5, 20.0, 1, 20.0, 30.0),
        (date(2024, 3, 1), 0, 1, 1, 1.0, 7.0, 1, 7.0, 7.0),
    ]


# ------------------------------------------------------------------------------------------
# Customer lifetime value


CLV_CONFIG = """
clv:
  retention_rate: 0.6
  discount_rate: 0.1
  gross_margin: 0.3
  servicing_cost_per_order: 1.0
  frequency_prior_days: 90
"""


@pytest.mark.slow
def test_customer_clv_by_hand(tmp_path: Path) -> None:
    spend = tmp_path / "spend.csv"
    spend.write_text("month,channel,spend\n2024-01-01,web,300\n2024-12-01,Web,100\n")
    rows = [
        # A: two orders on Jan 1 (one purchase day of 150), one on Mar 1; acquired through web
        {"customer_id": "A", "order_ts": date(2024, 1, 1), "amount": 100.0, "channel": "Web"},
        {"customer_id": "A", "order_ts": date(2024, 1, 1), "amount": 50.0, "channel": "web"},
        {"customer_id": "A", "order_ts": date(2024, 3, 1), "amount": 60.0, "channel": "app"},
        # B: one order with a cost: margin (40 - 10) / 40
        {
            "customer_id": "B",
            "order_ts": date(2024, 12, 20),
            "amount": 40.0,
            "cost": 10.0,
            "channel": "app",
        },
        # C: referred by A
        {
            "customer_id": "C",
            "order_ts": date(2024, 12, 1),
            "amount": 25.0,
            "channel": "web",
            "referred_by": "A",
        },
    ]
    t = build_tables(rows, date(2024, 12, 30), config=CLV_CONFIG + f"marketing_spend: {spend}\n")
    clv = {r["customer_id"]: r for r in t["customer_clv"].to_dicts()}
    a, b = clv["A"], clv["B"]
    # Purchase frequency: repeat orders per year shrunk towards the population's rate R with a
    # prior worth P = 90 days. Tenures: A 364 days (Jan 1 -> Dec 30), B 10, C 29; repeat orders
    # A 2, B 0, C 0.
    prior = 90 / 365.25
    rate = 2 / ((364 + 10 + 29) / 365.25)
    freq_a = (2 + rate * prior) / (364 / 365.25 + prior)
    freq_b = (0 + rate * prior) / (10 / 365.25 + prior)
    assert a["historical_revenue"] == pytest.approx(210)
    assert a["historical_profit"] == pytest.approx(210 * 0.3 - 3 * 1.0)
    assert a["margin_rate"] == pytest.approx(0.3)
    assert a["average_purchase_value"] == pytest.approx(70)
    assert a["purchase_frequency_per_year"] == pytest.approx(freq_a)
    assert a["expected_lifetime_years"] == pytest.approx(1 / (1 - 0.6))
    assert a["clv_simple"] == pytest.approx(70 * freq_a * 2.5)
    # one profit basis: profit per order (210 x 0.3 - 3 x 1) / 3 = 20, times the frequency
    assert a["annual_margin"] == pytest.approx(20 * freq_a)
    assert a["clv_retention"] == pytest.approx(20 * freq_a * 0.6 / (1 + 0.1 - 0.6))
    # lifetimes inputs: purchase days Jan 1 (150) and Mar 1 (60)
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (
        1,
        60,
        364,
        pytest.approx(60),
    )
    assert (a["referral_count"], a["referred_revenue"]) == (1, pytest.approx(25))
    # acquisition: January, web; 300 of spend / 1 customer
    assert (a["acquisition_channel"], a["acquisition_month"], a["cac"]) == (
        "web",
        date(2024, 1, 1),
        pytest.approx(300),
    )
    assert a["ltv_cac_ratio"] == pytest.approx(a["clv_retention"] / 300)
    assert a["ltv_cac_status"] == "losing_money"  # far under 1
    assert a["payback_months"] == pytest.approx(300 / (20 * freq_a / 12))

    # B bought once 10 days ago: about the population's rate, not 1 order / 10 days
    assert b["historical_profit"] == pytest.approx(40 * 0.75 - 1.0)
    assert b["margin_rate"] == pytest.approx(0.75)
    assert b["purchase_frequency_per_year"] == pytest.approx(freq_b)
    assert freq_b < rate
    assert b["clv_retention"] == pytest.approx(29 * freq_b * 0.6 / 0.5)
    assert b["ltv_cac_status"] is None
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0, 10, 0.0)
    assert b["cac"] is None and b["ltv_cac_ratio"] is None  # no app spend in December
    assert clv["C"]["cac"] == pytest.approx(100)  # December web: C only (B came through the app)


@pytest.mark.slow
def test_measured_retention() -> None:
    # Year before last (2023-01-01 .. 2023-12-31): a, b, c bought; last year: a and b again, d new.
    # r = 2 / 3; expected lifetime 1 / (1 - 2/3) = 3 years.
    rows = [{"customer_id": c, "order_ts": date(2023, 6, 1), "amount": 10.0} for c in "abc"]
    rows += [{"customer_id": c, "order_ts": date(2024, 6, 1), "amount": 10.0} for c in "abd"]
    t = build_tables(rows, date(2024, 12, 31))
    clv = t["customer_clv"]
    assert clv["retention_rate"].to_list() == pytest.approx([2 / 3] * 4)
    assert clv["expected_lifetime_years"].to_list() == pytest.approx([3.0] * 4)
    assert t["kpi_summary"]["annual_retention_rate"].item() == pytest.approx(2 / 3)


@pytest.mark.slow
def test_all_refunded_customer_is_not_a_customer() -> None:
    rows = [
        {"customer_id": "buyer", "order_ts": date(2024, 1, 5), "amount": 20.0},
        {
            "customer_id": "refunder",
            "order_ts": date(2024, 1, 6),
            "amount": 30.0,
            "status": "refunded",
        },
        {
            "customer_id": "refunder",
            "order_ts": date(2024, 1, 7),
            "amount": 15.0,
            "status": "returned",
        },
    ]
    t = build_tables(rows, date(2024, 1, 31))
    assert t["customer_rfm"]["customer_id"].to_list() == ["buyer"]
    assert t["customer_clv"]["customer_id"].to_list() == ["buyer"]
    kpi = t["kpi_summary"].to_dicts()[0]
    assert (
        kpi["customers"],
        kpi["return_orders"],
        kpi["net_revenue"],
        kpi["returned_revenue"],
    ) == (1, 2, 20.0, 45.0)
