"""The synthetic order generator: exact size, determinism, schema, and the BG/NBD story."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.extract.readers import read_raw
from pipelines.tools.generate import GeneratorParams, simulate_orders, write_orders


def test_exact_count_and_determinism() -> None:
    a = simulate_orders(2_500, seed=5)
    b = simulate_orders(2_500, seed=5)
    c = simulate_orders(2_500, seed=6)
    assert a.height == 2_500
    assert a.equals(b)
    assert not a.equals(c)


def test_schema_and_values() -> None:
    f = simulate_orders(5_000, seed=1, start=date(2024, 3, 1), days=100)
    assert f.columns == [
        "order_id",
        "customer_id",
        "order_ts",
        "amount",
        "currency",
        "status",
        "channel",
        "email",
    ]
    assert f["order_id"].n_unique() == f.height
    assert f["order_ts"].is_sorted()
    assert f["order_ts"].min().date() >= date(2024, 3, 1)  # type: ignore[union-attr]
    assert f["order_ts"].max().date() < date(2024, 6, 9)  # type: ignore[union-attr]
    assert (f["amount"] > 0).all()
    assert set(f["status"].unique()) <= {"completed", "cancelled", "refunded", "returned"}
    minimal = simulate_orders(100, seed=1, extra_columns=False)
    assert minimal.columns == ["order_id", "customer_id", "order_ts", "amount", "currency"]


def test_purchase_process_matches_its_parameters() -> None:
    """With no dropout (b tiny vs a -> p ~ 0 is awkward; use a = tiny) the repeat count per
    customer is Poisson-gamma: its mean over customers acquired on day 0 is r/alpha * days."""
    params = GeneratorParams(r=2.0, alpha=20.0, a=1e-3, b=1e3)  # p ~ 1e-6: nobody drops out
    days = 200
    f = simulate_orders(200_000, seed=3, days=days, params=params)
    first = f.group_by("customer_id").agg(pl.col("order_ts").min().alias("t0"), pl.len().alias("n"))
    t0_days = (first["t0"] - first["t0"].min()).dt.total_seconds().to_numpy() / 86_400
    repeats = first["n"].to_numpy() - 1
    # E[repeats | t0] = (r / alpha) * (days - t0); regress through the window.
    expected = (params.r / params.alpha) * (days - t0_days)
    keep = t0_days < days / 2  # the last customer may be truncated; stay far from the end
    ratio = repeats[keep].sum() / expected[keep].sum()
    assert ratio == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    f = simulate_orders(500, seed=2)
    path = write_orders(f, tmp_path / f"orders.{fmt}", fmt)  # type: ignore[arg-type]
    raw = read_raw(path, f.columns)
    assert raw.frame.height == 500
    assert raw.columns == f.columns
    amounts = raw.frame["amount"].cast(pl.Float64).to_numpy()
    np.testing.assert_allclose(amounts, f["amount"].to_numpy())
    if fmt == "csv":
        assert raw.frame["order_ts"][0].endswith("Z")
        assert raw.frame["amount"].str.contains(r"^\d+\.\d{2}$").all()
