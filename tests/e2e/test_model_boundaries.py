"""Exports whose models sit on a boundary still publish every table, with a clear warning.

The first case is the one a new user met: a small real-looking export (2,013 orders, 393
customers, order values spread evenly between 5 and 300) on which the Gamma-Gamma likelihood is
maximised as q, v -> infinity -- every customer's expected spend is the pooled mean. The second
is an export where nobody ever drops out (BG/NBD's dropout probability -> 0).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import REPO

START, SNAPSHOT = date(2024, 1, 1), date(2025, 6, 30)


def custval_run(source: Path, warehouse: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--source", str(source)]
        + ["--as-of", SNAPSHOT.isoformat(), "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


def write_orders(path: Path, customers: list[str], days: list[int], amounts: list[float]) -> None:
    pl.DataFrame(
        {
            "order_id": [f"O{i:05d}" for i in range(len(days))],
            "customer_id": customers,
            "order_ts": [(START + timedelta(days=d)).isoformat() + "T12:00:00Z" for d in days],
            "amount": [f"{a:.2f}" for a in amounts],
            "currency": "USD",
            "status": "completed",
        }
    ).write_csv(path)


def tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    part = f"snapshot_date={SNAPSHOT}"
    return {
        p.name: pl.read_parquet(p / part / "part-0.parquet")
        for p in (warehouse / "marts").iterdir()
    }


def test_evenly_spread_order_values_put_gamma_gamma_on_its_boundary(tmp_path: Path) -> None:
    rng = np.random.default_rng(2013)
    span = (SNAPSHOT - START).days
    counts = np.concatenate([np.ones(14, int), 2 + rng.poisson(3.3, 379)])
    while counts.sum() != 2013:  # 2,013 orders in all; repeat buyers keep two or more
        i = int(rng.integers(14, 393))
        counts[i] += 1 if counts.sum() < 2013 else -1 if counts[i] > 2 else 0
    customers, days = [], []
    for i, n in enumerate(counts):
        first = int(rng.integers(0, span - 30))
        customers += [f"C{i:04d}"] * int(n)
        days += sorted([first, *rng.integers(first, span, int(n) - 1).tolist()])
    amounts = rng.uniform(5, 300, len(days)).round(2).tolist()
    source = tmp_path / "export.csv"
    write_orders(source, customers, days, amounts)
    assert (len(days), len(counts)) == (2013, 393)

    res = custval_run(source, tmp_path / "wh")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "Gamma-Gamma fit (snapshot) is at a boundary" in res.stderr, res.stderr[-3000:]
    t = tables(tmp_path / "wh")
    assert {"customer_rfm", "customer_clv", "cohort_retention", "kpi_summary"} <= t.keys()
    assert t["customer_rfm"].height == 393
    gg = t["model_fit"].filter(pl.col("model") == "gamma_gamma")
    assert set(gg["status"]) == {"boundary"} and gg["note"][0]

    # the limit: every customer's expected spend is the pooled mean of repeat purchase days,
    # weighted by their number (the ML estimate of a gamma mean with the shape shared)
    # (money is published as DECIMAL(18,4): each value within 0.00005 of the exact one)
    clv = t["customer_clv"].with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    repeat = clv.filter(pl.col("frequency") > 0)
    pooled = (repeat["frequency"] * repeat["monetary_value"]).sum() / repeat["frequency"].sum()
    spend = clv["expected_avg_order_value"].to_numpy()
    np.testing.assert_allclose(spend, pooled, rtol=1e-6, atol=1e-4)
    assert clv["predicted_clv_365"].null_count() == 0


def test_nobody_drops_out_puts_bgnbd_on_its_boundary(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    span = (SNAPSHOT - START).days
    customers, days = [], []
    for i in range(600):
        rate = rng.gamma(2.0, 1 / 60)  # purchases per day; nobody ever drops out
        first = int(rng.integers(0, 120))
        t, gaps = first, []
        while t <= span:
            gaps.append(t)
            t += max(1, int(rng.exponential(1 / rate)))
        customers += [f"C{i:04d}"] * len(gaps)
        days += gaps
    amounts = rng.gamma(4.0, 10.0, len(days)).round(2).tolist()
    source = tmp_path / "loyal.csv"
    write_orders(source, customers, days, amounts)

    res = custval_run(source, tmp_path / "wh")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "BG/NBD fit (snapshot) is at a boundary" in res.stderr, res.stderr[-3000:]
    t = tables(tmp_path / "wh")
    bg = t["model_fit"].filter(pl.col("fit") == "snapshot", pl.col("model") == "bgnbd")
    assert set(bg["status"]) == {"boundary"}
    assert t["customer_clv"]["p_alive"].to_numpy() == pytest.approx(1.0)
    assert t["customer_rfm"].height == 600
