"""The three purchase models side by side on the same summary: fit seconds relative to BG/NBD.

    uv run python benchmarks/purchase_models.py [--orders 1000000] [--seed 42] [--runs 3]

Orders come from custval's generator; the lifetimes-style summary (repeat purchase days, recency
and T in days, to the last order's day) is built with Polars, then BG/NBD, Pareto/NBD and
MBG/NBD are fitted on the distinct (frequency, recency, T) rows with weights, as the pipeline
does. Reported per model: the median fit seconds of `--runs` fits, that as a ratio to BG/NBD's
median in the same run (the machine is shared: compare ratios, not seconds), iterations and the
log-likelihood. Pareto/NBD differentiates its likelihood numerically (9 evaluations per
gradient, each with two Gauss hypergeometric terms per row), so it is expected to cost more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import polars as pl

from pipelines.predictive.purchase_models import LABELS, PURCHASE_MODELS, new_model
from pipelines.tools.generate import simulate_orders


def summary(orders: pl.DataFrame) -> pl.DataFrame:
    days = orders.select("customer_id", day=pl.col("order_ts").dt.date()).unique()
    end = days["day"].max()
    return days.group_by("customer_id").agg(
        frequency=pl.len() - 1,
        recency=(pl.col("day").max() - pl.col("day").min()).dt.total_days(),
        T=(pl.lit(end) - pl.col("day").min()).dt.total_days(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    s = summary(simulate_orders(args.orders, seed=args.seed))
    distinct = s.group_by("frequency", "recency", "T").agg(weight=pl.len())
    x, tx, T, w = (
        distinct[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T", "weight")
    )
    print(
        f"{args.orders:,} orders, {s.height:,} customers, {distinct.height:,} distinct rows, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    results = {}
    for name in PURCHASE_MODELS:
        seconds = []
        for _ in range(args.runs):
            started = time.perf_counter()
            model = new_model(name).fit(x, tx, T, weights=w)
            seconds.append(time.perf_counter() - started)
        fit = model.fit_result
        assert fit is not None
        results[name] = {
            "median_seconds": statistics.median(seconds),
            "iterations": fit.iterations,
            "log_likelihood": fit.log_likelihood,
            "params": model.params.as_dict(),
        }
    base = results["bgnbd"]["median_seconds"]
    print(f"{'model':<12}{'seconds':>10}{'x BG/NBD':>10}{'iterations':>12}{'log-likelihood':>18}")
    for name, r in results.items():
        r["ratio_to_bgnbd"] = r["median_seconds"] / base
        print(
            f"{LABELS[name]:<12}{r['median_seconds']:>10.3f}{r['ratio_to_bgnbd']:>10.1f}"
            f"{r['iterations']:>12}{r['log_likelihood']:>18.1f}"
        )
    print(
        json.dumps(
            {
                "orders": args.orders,
                "customers": s.height,
                "distinct_rows": distinct.height,
                "models": results,
            }
        )
    )


if __name__ == "__main__":
    main()
