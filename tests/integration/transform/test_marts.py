"""The SQL models on a tiny hand-built order set; every expected value is worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest

ROWS = [
    # A: two purchases; last on 03-30 -> recency 1, 2 orders, 30.00
    ("A1", "A", "2024-03-01T09:00:00Z", "20.00", "USD", "completed"),
    ("A2", "A", "2024-03-30T09:00:00Z", "10.00", "USD", "completed"),
    # B: bought in the last second of the snapshot day -> recency 0
    ("B1", "B", "2024-03-31T23:59:59Z", "5.00", "USD", "completed"),
    # C: three purchases of 100 -> recency 16, 3 orders, 300.00
    ("C1", "C", "2024-01-15T12:00:00Z", "100.00", "USD", "completed"),
    ("C2", "C", "2024-02-15T12:00:00Z", "100.00", "USD", ""),  # empty status = completed
    ("C3", "C", "2024-03-15T12:00:00Z", "100.00", "USD", "completed"),
    # D: one purchase, one refunded order (not a purchase, nets to 0) -> recency 59, 1 order, 50.00
    ("D1", "D", "2024-02-01T08:00:00Z", "50.00", "USD", "completed"),
    ("D2", "D", "2024-02-10T08:00:00Z", "40.00", "USD", "refunded"),
    # E: a free order (a purchase) and a return line of -5 -> recency 0, 1 order, -5.00;
    #    the +02:00 order is 23:00 UTC on 03-31, inside the snapshot
    ("E1", "E", "2024-04-01T01:00:00+02:00", "0.00", "USD", "completed"),
    ("E2", "E", "2024-03-20T10:00:00Z", "-5.00", "USD", "completed"),
    # F: only refunded orders -> no purchase occasion -> not a customer for RFM
    ("F1", "F", "2024-03-01T10:00:00Z", "30.00", "USD", "refunded"),
    # G: only a cancelled order -> excluded
    ("G1", "G", "2024-03-02T10:00:00Z", "30.00", "USD", "cancelled"),
    # H: first order after the snapshot day (UTC) -> not in this snapshot
    ("H1", "H", "2024-03-31T23:30:00-02:00", "30.00", "USD", "completed"),
]

# R and M: 5 bins over the 5 customers: score = 1 + floor(5 * (rank - 1) / 5) = rank, ties share the lowest rank.
#   recency desc: D 59 (1), C 16 (2), A 1 (3), B 0 = E 0 (4)
#   order_count, fixed breakpoints 2, 3, 4, 6 (rfm.scoring.f): B = D = E 1 (1), A 2 (2), C 3 (3)
#   monetary asc: E -5 (1), B 5 (2), A 30 (3), D 50 (4), C 300 (5)
EXPECTED = {
    #     first,            last,             rec, n, money,  r, f, m
    "A": (date(2024, 3, 1), date(2024, 3, 30), 1, 2, 30.0, 3, 2, 3),
    "B": (date(2024, 3, 31), date(2024, 3, 31), 0, 1, 5.0, 4, 1, 2),
    "C": (date(2024, 1, 15), date(2024, 3, 15), 16, 3, 300.0, 2, 3, 5),
    "D": (date(2024, 2, 1), date(2024, 2, 1), 59, 1, 50.0, 1, 1, 4),
    "E": (date(2024, 3, 31), date(2024, 3, 31), 0, 1, -5.0, 4, 1, 1),
}


@pytest.fixture
def no_predictions(tmp_path: Path) -> Path:
    """Five customers cannot be fitted: run without the predictive models."""
    path = tmp_path / "no_predictions.yaml"
    path.write_text("predictive:\n  enabled: false\n")
    return path


@pytest.fixture
def rfm(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], no_predictions: Path
) -> pl.DataFrame:
    # 13 rows, so a single bad row would exceed the 5% quarantine threshold: all rows are valid.
    manifest = run_pipeline(orders_csv(ROWS), "2024-03-31", config=no_predictions)
    assert manifest["counts"]["rows_accepted"] == len(ROWS)
    assert manifest["counts"]["rows_after_snapshot"] == 1
    return pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))


@pytest.mark.slow
def test_kpis_of_the_same_orders_by_hand(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], no_predictions: Path
) -> None:
    manifest = run_pipeline(orders_csv(ROWS), "2024-03-31", config=no_predictions)
    kpi = pl.read_parquet(Path(manifest["tables"]["kpi_summary"]["path"])).to_dicts()[0]
    assert kpi["customers"] == 5  # A-E; F (only refunded) and G (only cancelled) are not customers
    assert kpi["purchase_orders"] == 8  # A1 A2 B1 C1 C2 C3 D1 E1
    assert kpi["return_orders"] == 3 and kpi["cancelled_orders"] == 1  # D2 E2 F1; G1
    assert kpi["net_revenue"] == pytest.approx(30 + 5 + 300 + 50 - 5)  # refunds net to 0, E2 is -5
    assert kpi["returned_revenue"] == pytest.approx(40 + 5 + 30)
    assert kpi["average_order_value"] == pytest.approx(380 / 8)
    assert kpi["purchase_frequency"] == pytest.approx(8 / 5)
    assert kpi["repeat_purchase_rate"] == pytest.approx(2 / 5)  # A and C
    # last purchases 1, 0, 16, 59 and 0 days before the snapshot: all within 90 days
    assert kpi["active_customers"] == 5
    # first purchases 30 (A), 0 (B), 76 (C: Jan 15 -> Mar 31), 59 (D), 0 (E) days ago: all < 90
    assert kpi["new_customers"] == 5
    # A: 30 of 380 ... ranked C 300, D 50, A 30, B 5 (E is -5: class C, outside the positive total 385)
    # A-class = customers before whom less than 80% of 385 (308) is accumulated: C (0), D (300) -> 350/385
    assert kpi["revenue_share_a"] == pytest.approx(350 / 385)
    # B: A (350 < 365.75) -> 30/385; C class: B (380 >= 365.75) 5/385
    assert kpi["revenue_share_b"] == pytest.approx(30 / 385)
    assert kpi["revenue_share_c"] == pytest.approx(5 / 385)


@pytest.mark.slow
def test_customer_rfm_by_hand(rfm: pl.DataFrame) -> None:
    got = {
        r["customer_id"]: (
            r["first_order_date"],
            r["last_order_date"],
            r["recency_days"],
            r["order_count"],
            r["monetary_total"],
            r["r_score"],
            r["f_score"],
            r["m_score"],
        )
        for r in rfm.to_dicts()
    }
    assert got == EXPECTED
    assert rfm["customer_id"].to_list() == sorted(EXPECTED)  # deterministic row order
