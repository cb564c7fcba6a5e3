"""The `lifetimes` side of benchmarks/predictive_vs_lifetimes.py.

Runs in the benchmark's own virtual environment (benchmarks/.venv-lifetimes, created by
predictive_vs_lifetimes.py); lifetimes is never a dependency of custval. It imports nothing
from `pipelines`.

    benchmarks/.venv-lifetimes/bin/python benchmarks/lifetimes_side.py \
        --orders benchmarks/data/orders-N-SEED.parquet --snapshot YYYY-MM-DD \
        --out result.json [--customers-out per_customer.parquet]

Reads the orders with pandas, keeps purchases as custval defines them (status 'completed' and
amount >= 0), with order_date = the UTC date of order_ts (the "load" phase: input
preparation, reported but not part of the compared total), then times separately lifetimes'
summary_data_from_transaction_data, BetaGeoFitter.fit, GammaGammaFitter.fit (customers with
frequency > 0 and monetary_value > 0) and GammaGammaFitter.customer_lifetime_value over 12
months at a 10% annual discount rate. The JSON is rewritten after every phase, so a run
killed by a timeout still tells which phases finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


@contextmanager
def measure(
    phases: dict[str, dict[str, float]], name: str, interval: float = 0.02
) -> Iterator[None]:
    """Wall seconds and peak RSS (sampled every 20 ms, as pipelines/run/metrics.py does)."""
    peak = _rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(interval):
            peak = max(peak, _rss())

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        seconds = time.perf_counter() - started
        phases[name] = {
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(max(peak, _rss()) / 2**20, 1),
        }
        print(f"lifetimes {name}: {seconds:.2f} s", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--orders", required=True, type=Path, help="orders Parquet (from the custval generator)"
    )
    ap.add_argument("--snapshot", required=True, help="observation period end, YYYY-MM-DD")
    ap.add_argument("--out", required=True, type=Path, help="result JSON")
    ap.add_argument(
        "--customers-out",
        type=Path,
        help="per-customer summary and CLV (Parquet), for the comparison",
    )
    args = ap.parse_args()

    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    phases: dict[str, dict[str, float]] = {}
    result: dict = {
        "status": "running",
        "phases": phases,
        "versions": {
            "python": platform.python_version(),
            **{
                p: version(p)
                for p in ("lifetimes", "autograd", "numpy", "pandas", "scipy", "pyarrow")
            },
        },
    }

    def save(**extra) -> None:
        result.update(extra)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(args.out)

    save()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        # Input preparation: read, keep purchases, UTC order date. Not part of the compared stage.
        with measure(phases, "load"):
            df = pd.read_parquet(
                args.orders, columns=["customer_id", "order_ts", "amount", "status"]
            )
            orders_read = len(df)
            df = df[(df["status"] == "completed") & (df["amount"] >= 0)]
            df = df.assign(
                order_date=df["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
            )
            df = df[["customer_id", "order_date", "amount"]]
        save(orders_read=orders_read, purchase_orders=len(df))

        with measure(phases, "summary"):
            summary = summary_data_from_transaction_data(
                df,
                "customer_id",
                "order_date",
                monetary_value_col="amount",
                observation_period_end=args.snapshot,
                freq="D",
            )
        del df
        save(customers=len(summary))

        freq, rec, age, mon = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
        with measure(phases, "fit_bgnbd"):
            bgf = BetaGeoFitter(penalizer_coef=0.0).fit(freq, rec, age)
        save(bgnbd={k: float(v) for k, v in bgf.params_.items()})

        with measure(phases, "fit_gamma_gamma"):
            repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
            ggf = GammaGammaFitter(penalizer_coef=0.0).fit(
                repeat["frequency"], repeat["monetary_value"]
            )
        save(
            gamma_gamma={k: float(v) for k, v in ggf.params_.items()},
            gamma_gamma_customers=len(repeat),
        )

        with measure(phases, "clv"):
            clv = ggf.customer_lifetime_value(
                bgf, freq, rec, age, mon, time=12, discount_rate=1.1 ** (1 / 12) - 1, freq="D"
            )

    compared = ("summary", "fit_bgnbd", "fit_gamma_gamma", "clv")
    warned: dict[str, int] = {}
    for w in caught:
        key = f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}"
        warned[key] = warned.get(key, 0) + 1
    save(
        status="ok",
        total_seconds=round(sum(phases[p]["seconds"] for p in compared), 3),
        warnings=warned,
        clv_sum=float(np.sum(clv.to_numpy())),
    )
    if args.customers_out:
        out = summary.assign(clv=clv.to_numpy()).reset_index()
        out["customer_id"] = out["customer_id"].astype(str)
        out.to_parquet(args.customers_out, index=False)


if __name__ == "__main__":
    main()
