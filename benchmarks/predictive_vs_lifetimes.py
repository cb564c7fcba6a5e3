"""custval's predictive stage (summary + fit + prediction) against `lifetimes`, same data, same machine.

    uv run python benchmarks/predictive_vs_lifetimes.py [--orders 10000000] [--seed 42]
        [--skip-lifetimes] [--custval-runs 3] [--timeout 1200]

Requirement checked: custval's stage is at least 10x faster than lifetimes doing the same.

1. Orders are generated once with custval's own generator (`pipelines.generate`) and cached in
   benchmarks/data/orders-<n>-<seed>.parquet; the snapshot date is the last order's date. The
   staged input the SQL models read (the orders contract's non-PII columns, fx_rate 1.0, null
   *_hmac) is written next to it, as the pipeline's stage step would leave it. Both happen in a
   child process, untimed, so this process's memory is not inflated by them.
2. custval, in this process, timed per phase (wall seconds, peak RSS sampled by
   pipelines.run.metrics.measure):
     summary          DuckDB SQL models stg_orders -> int_model_inputs from the staged Parquet
                      (includes reading the Parquet), fetched as a Polars frame
     fit_bgnbd        pipelines.predictive.predictive.fit_bgnbd
     fit_gamma_gamma  pipelines.predictive.predictive.fit_gamma_gamma
     clv              pipelines.predictive.scoring.customer_scorer: p_alive, expected purchases and
                      the 12-month discounted CLV (horizon 365 days, 30-day months, 10%/year)
   `--custval-runs` repeats it; the least disturbed run is reported (the machine may be shared:
   each run records how many cores other processes kept busy, and `--wait-quiet` waits for an
   idle machine before each side).
3. lifetimes 0.11.3 in its own venv, benchmarks/.venv-lifetimes (created here with `uv venv` +
   `uv pip install -r benchmarks/lifetimes-requirements.txt`), in a child process:
   benchmarks/lifetimes_side.py (its "load" phase - read, filter purchases, UTC date - is
   reported but, like custval's staging, not part of the compared total).
4. The outputs are compared: same customers, identical summaries, BG/NBD and Gamma-Gamma
   parameters within 1e-3 relative, 12-month CLV per customer (custval's CLV / gross margin
   0.30 against lifetimes' margin-free CLV). A mismatch is printed loudly and makes the exit
   code 1, as does a speed ratio below 10 at 10M orders or more (smaller runs: informational).

Results: benchmarks/results/predictive_vs_lifetimes-<n>.json (small, commit-worthy).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH = ROOT / "benchmarks"
DATA = BENCH / "data"
RESULTS = BENCH / "results"
VENV = BENCH / ".venv-lifetimes"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "lifetimes-requirements.txt"
LIFETIMES_SIDE = BENCH / "lifetimes_side.py"

PHASES = ("summary", "fit_bgnbd", "fit_gamma_gamma", "clv")
MARGIN = 0.30  # custval's default clv.gross_margin; lifetimes' CLV has no margin
ANNUAL_DISCOUNT = 0.10
REQUIRED_SPEEDUP = 10.0
REQUIREMENT_ORDERS = 10_000_000  # the requirement is stated for 10M orders
PARAM_RTOL = 1e-3
CLV_RTOL = 1e-3  # per customer, after the fitted parameters (which differ by up to PARAM_RTOL)
FORMULA_RTOL = 1e-6  # custval's CLV formula with lifetimes' parameters vs lifetimes' CLV

RED, GREEN, BOLD, RESET = (
    ("\033[31m", "\033[32m", "\033[1m", "\033[0m") if sys.stdout.isatty() else ("",) * 4
)


# ------------------------------------------------------------------------------------------
# data (child process: --prepare)


def data_paths(n: int, seed: int) -> dict[str, Path]:
    stem = f"{n}-{seed}"
    return {
        "orders": DATA / f"orders-{stem}.parquet",
        "staged": DATA / f"staged-{stem}.parquet",
        "meta": DATA / f"orders-{stem}.json",
        "lifetimes_json": DATA / f"lifetimes-{stem}.json",
        "lifetimes_customers": DATA / f"lifetimes-customers-{stem}.parquet",
        "lifetimes_log": DATA / f"lifetimes-{stem}.log",
    }


def staged_frame(orders: Any, snapshot: date) -> Any:
    """Orders as the stage step leaves them (logic of tests/marts_helper.py::staged_frame).

    The orders contract's non-PII columns with their contract types (missing ones null),
    fx_rate 1.0 (all orders are USD, the reporting currency), null *_hmac (no PII hashed);
    cut at the end of the snapshot day, as pipelines/transform/snapshot_orders.py does.
    """
    import polars as pl

    from pipelines.contracts import load_contract

    contract = load_contract("orders")
    schema = {c.name: c.polars_type for c in contract.columns if not c.pii}
    schema |= {
        "fx_rate": pl.Float64,
        "email_hmac": pl.String,
        "phone_hmac": pl.String,
        "name_hmac": pl.String,
    }
    defaults = {"currency": "USD", "status": "completed", "fx_rate": 1.0}
    columns = []
    for name, dtype in schema.items():
        if name in orders.columns:
            columns.append(pl.col(name).cast(dtype))
        elif name in defaults:
            columns.append(pl.lit(defaults[name], dtype=dtype).alias(name))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    end = datetime.combine(snapshot + timedelta(days=1), dtime(0), tzinfo=UTC)
    return orders.lazy().filter(pl.col("order_ts") < end).select(columns).collect()


def prepare(n: int, seed: int) -> None:
    """Generate (once) the orders, the staged input and a small metadata file."""
    import polars as pl

    from pipelines.tools.generate import simulate_orders

    paths = data_paths(n, seed)
    DATA.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = json.loads(paths["meta"].read_text()) if paths["meta"].exists() else {}
    if not paths["orders"].exists():
        started = time.perf_counter()
        orders = simulate_orders(n, seed=seed)
        meta["generate_seconds"] = round(time.perf_counter() - started, 2)
        tmp = paths["orders"].with_suffix(".tmp")
        orders.write_parquet(tmp)
        tmp.replace(paths["orders"])
    else:
        orders = pl.read_parquet(paths["orders"])
    snapshot = orders["order_ts"].max().date()  # type: ignore[union-attr]
    if not paths["staged"].exists():
        tmp = paths["staged"].with_suffix(".tmp")
        staged_frame(orders, snapshot).write_parquet(tmp)
        tmp.replace(paths["staged"])
    meta |= {
        "orders": orders.height,
        "seed": seed,
        "snapshot_date": snapshot.isoformat(),
        "customers_in_orders": orders["customer_id"].n_unique(),
        "purchase_orders": orders.filter(
            (pl.col("status") == "completed") & (pl.col("amount") >= 0)
        ).height,
        "orders_file_mb": round(paths["orders"].stat().st_size / 2**20, 1),
        "staged_file_mb": round(paths["staged"].stat().st_size / 2**20, 1),
    }
    paths["meta"].write_text(json.dumps(meta, indent=2))


# ------------------------------------------------------------------------------------------
# lifetimes' environment


VERSIONS_SNIPPET = (
    "import json, platform; from importlib.metadata import version as v; print(json.dumps("
    "{'python': platform.python_version(), **{p: v(p) for p in "
    "('lifetimes', 'autograd', 'numpy', 'pandas', 'scipy', 'pyarrow')}}))"
)


def ensure_lifetimes_venv() -> dict[str, str]:
    """benchmarks/.venv-lifetimes with the pinned requirements; rebuilt when they change."""
    stamp = VENV / ".requirements"
    wanted = REQUIREMENTS.read_text()
    if not (VENV_PYTHON.exists() and stamp.exists() and stamp.read_text() == wanted):
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        print(f"creating {VENV.relative_to(ROOT)} (python {py}) ...", flush=True)
        subprocess.run(["uv", "venv", "--quiet", "--clear", "--python", py, str(VENV)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "--quiet", "--python", str(VENV), "-r", str(REQUIREMENTS)],
            check=True,
        )
        stamp.write_text(wanted)
    out = subprocess.run(
        [str(VENV_PYTHON), "-c", VERSIONS_SNIPPET],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


# ------------------------------------------------------------------------------------------
# custval's side (this process)


def custval_side(
    staged: Path, snapshot: date
) -> tuple[dict[str, dict[str, float]], Any, dict[str, Any], Any, Any]:
    """One timed run: phases, the summary frame, the predictions and the fitted models."""

    from pipelines.config import load_config
    from pipelines.predictive.predictive import fit_bgnbd, fit_gamma_gamma
    from pipelines.predictive.scoring import customer_scorer, monthly_rate
    from pipelines.predictive.summary import CustomerSummary
    from pipelines.run.metrics import measure
    from pipelines.transform import marts

    cfg = load_config()
    phases: dict[str, dict[str, float]] = {}
    con = marts.connect()
    try:
        with measure() as m:
            con.execute(f"create view source_orders as select * from read_parquet('{staged}')")
            models = marts.build_models(
                con, marts.model_params(cfg, snapshot), targets={"int_model_inputs"}
            )
            inputs = con.sql("select * from int_model_inputs order by customer_id").pl()
        phases["summary"] = m.as_dict() | {"models_seconds": models}
    finally:
        con.close()
    with measure() as m:
        summary = CustomerSummary.from_frame(inputs)  # distinct (frequency, recency, T), once
        bg = fit_bgnbd(summary, "benchmark")
    phases["fit_bgnbd"] = m.as_dict()
    with measure() as m:
        gg = fit_gamma_gamma(summary, "benchmark")
    phases["fit_gamma_gamma"] = m.as_dict()
    with measure() as m:
        score = customer_scorer(
            bg,
            gg,
            summary,
            horizons=[365],
            days_per_month=30.0,
            monthly_discount_rate=monthly_rate(ANNUAL_DISCOUNT),
            margin_rate=MARGIN,
        )
        predicted = score(slice(None))
    phases["clv"] = m.as_dict()
    return phases, inputs, predicted, bg, gg


def total(phases: dict[str, dict[str, float]]) -> float:
    return round(sum(phases[p]["seconds"] for p in PHASES), 3)


# ------------------------------------------------------------------------------------------
# comparison


class Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.items.append({"check": name, "ok": bool(ok), "detail": detail})
        mark = f"{GREEN}ok{RESET}" if ok else f"{RED}{BOLD}MISMATCH{RESET}"
        print(f"  [{mark}] {name}: {detail}")

    @property
    def failed(self) -> list[str]:
        return [c["check"] for c in self.items if not c["ok"]]


def compare(
    inputs: Any, predicted: dict[str, Any], bg: Any, gg: Any, lt: dict[str, Any], lt_customers: Path
) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    from pipelines.predictive.fitters.base import collapse
    from pipelines.predictive.fitters.bgnbd import BetaGeoModel
    from pipelines.predictive.fitters.bgnbd import log_likelihood as bg_ll
    from pipelines.predictive.fitters.gamma_gamma import (
        GammaGammaModel,
        customer_lifetime_value,
    )
    from pipelines.predictive.fitters.gamma_gamma import (
        log_likelihood as gg_ll,
    )

    checks = Checks()
    out: dict[str, Any] = {}
    print("\noutput comparison (custval vs lifetimes):")

    # customers
    ours = inputs.with_columns(pl.Series("clv", predicted["predicted_clv_365"] / MARGIN))
    theirs = pl.read_parquet(lt_customers)
    checks.add(
        "customer count",
        ours.height == lt["customers"] == theirs.height,
        f"custval {ours.height:,}, lifetimes {lt['customers']:,}",
    )
    joined = ours.join(theirs, on="customer_id", how="inner", suffix="_lt")
    only = ours.height + theirs.height - 2 * joined.height
    checks.add("same customer ids", only == 0, f"{only:,} customer ids on one side only")

    # summaries (lifetimes' summary_data_from_transaction_data vs int_model_inputs)
    detail = []
    ok = True
    for col in ("frequency", "recency", "T"):
        diff = int((joined[col].cast(pl.Float64) != joined[f"{col}_lt"]).sum())
        ok &= diff == 0
        detail.append(f"{col} differs for {diff:,}")
    mv = joined.select(
        (
            (pl.col("monetary_value") - pl.col("monetary_value_lt")).abs()
            / pl.max_horizontal(pl.col("monetary_value_lt").abs(), pl.lit(1e-12))
        ).max()
    ).item()
    ok &= (mv or 0.0) <= 1e-9
    detail.append(f"monetary_value max rel diff {mv or 0.0:.1e}")
    checks.add("summary per customer", ok, ", ".join(detail))

    # parameters
    params = {"bgnbd": {}, "gamma_gamma": {}}
    for model, ours_p, theirs_p in (
        ("bgnbd", bg.params.as_dict(), lt["bgnbd"]),
        ("gamma_gamma", gg.params.as_dict(), lt["gamma_gamma"]),
    ):
        worst = 0.0
        for k, v in ours_p.items():
            rel = abs(v - theirs_p[k]) / abs(theirs_p[k])
            params[model][k] = {"custval": v, "lifetimes": theirs_p[k], "rel_diff": rel}
            worst = max(worst, rel)
        shown = ", ".join(
            f"{k} {p['custval']:.6g}/{p['lifetimes']:.6g}" for k, p in params[model].items()
        )
        checks.add(
            f"{model} parameters (rtol {PARAM_RTOL:g})",
            worst <= PARAM_RTOL,
            f"max rel diff {worst:.1e} ({shown})",
        )
    out["params"] = params

    # which parameter set has the higher likelihood (same likelihood function, custval's code)
    f, r, t, m = (
        inputs[c].to_numpy().astype(np.float64)
        for c in ("frequency", "recency", "T", "monetary_value")
    )
    uf, ur, ut, w = collapse(f, r, t)
    lt_bg = BetaGeoModel.from_params(**lt["bgnbd"])
    lt_gg = GammaGammaModel.from_params(**lt["gamma_gamma"])
    rep = (f > 0) & (m > 0)
    uf2, um2, w2 = collapse(f[rep], m[rep])
    ll = {
        "bgnbd": {
            "at_custval": bg_ll(bg.params, uf, ur, ut, w),
            "at_lifetimes": bg_ll(lt_bg.params, uf, ur, ut, w),
        },
        "gamma_gamma": {
            "at_custval": gg_ll(gg.params, uf2, um2, w2),
            "at_lifetimes": gg_ll(lt_gg.params, uf2, um2, w2),
        },
    }
    out["log_likelihood"] = ll
    for model, v in ll.items():
        gap = v["at_custval"] - v["at_lifetimes"]
        print(
            f"  [info] {model} log-likelihood at custval's params - at lifetimes' params: {gap:+.4g} "
            f"(total {v['at_custval']:.6g})"
        )

    # CLV per customer
    ours_clv = joined["clv"].to_numpy()
    lt_clv = joined["clv_lt"].to_numpy()
    big = np.abs(lt_clv) >= 1.0
    rel = np.abs(ours_clv - lt_clv) / np.maximum(np.abs(lt_clv), 1e-12)
    stats = {
        "customers": len(lt_clv),
        "rel_diff_median": float(np.median(rel[big])) if big.any() else 0.0,
        "rel_diff_p99": float(np.quantile(rel[big], 0.99)) if big.any() else 0.0,
        "rel_diff_max_clv_ge_1": float(rel[big].max()) if big.any() else 0.0,
        "abs_diff_max": float(np.abs(ours_clv - lt_clv).max()),
        "sum_custval": float(ours_clv.sum()),
        "sum_lifetimes": float(lt_clv.sum()),
    }
    out["clv"] = stats
    checks.add(
        f"12-month CLV per customer (rtol {CLV_RTOL:g}; custval / margin {MARGIN})",
        stats["rel_diff_max_clv_ge_1"] <= CLV_RTOL,
        f"rel diff median {stats['rel_diff_median']:.1e}, p99 {stats['rel_diff_p99']:.1e}, "
        f"max {stats['rel_diff_max_clv_ge_1']:.1e} (customers with CLV >= 1), max abs diff "
        f"{stats['abs_diff_max']:.2e}; totals {stats['sum_custval']:,.2f} vs {stats['sum_lifetimes']:,.2f}",
    )
    # The same formula: custval's CLV code with lifetimes' fitted parameters.
    jf, jr, jt, jm = (
        joined[c].to_numpy().astype(np.float64)
        for c in ("frequency", "recency", "T", "monetary_value")
    )
    same = customer_lifetime_value(
        lt_bg,
        lt_gg,
        jf,
        jr,
        jt,
        jm,
        months=12,
        monthly_discount_rate=(1 + ANNUAL_DISCOUNT) ** (1 / 12) - 1,
    )
    frel = np.abs(same - lt_clv) / np.maximum(np.abs(lt_clv), 1e-12)
    fmax = float(frel[big].max()) if big.any() else 0.0
    out["clv_formula_max_rel_diff"] = fmax
    checks.add(
        f"CLV formula (custval's code, lifetimes' params; rtol {FORMULA_RTOL:g})",
        fmax <= FORMULA_RTOL,
        f"max rel diff {fmax:.1e}",
    )

    # a sample, for the eye
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(joined.height, size=min(8, joined.height), replace=False))
    sample = joined[idx].select(
        "customer_id", "frequency", "recency", "T", "monetary_value", "clv", "clv_lt"
    )
    out["sample"] = sample.to_dicts()
    print("  sample (12-month CLV without margin):")
    print(
        f"    {'customer':>10} {'x':>4} {'t_x':>5} {'T':>5} {'m':>9} {'custval':>11} {'lifetimes':>11}"
    )
    for row in out["sample"]:
        print(
            f"    {row['customer_id']:>10} {row['frequency']:>4} {row['recency']:>5} {row['T']:>5} "
            f"{row['monetary_value']:>9.2f} {row['clv']:>11.4f} {row['clv_lt']:>11.4f}"
        )
    out["checks"] = checks.items
    out["failed"] = checks.failed
    return out


# ------------------------------------------------------------------------------------------
# main


def machine() -> dict[str, Any]:
    mem = ""
    with contextlib.suppress(OSError, StopIteration):
        mem = next(
            line
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    return {
        "cores": os.cpu_count(),
        "memory": " ".join(mem.split()[1:]),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


class CpuWatch:
    """CPU time other processes used while a side ran: machine-wide busy time from /proc/stat
    minus this process's and its waited-for children's CPU time. A sign of disturbance by
    whatever else runs on the machine (another engineer's jobs)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def other_cores(self) -> float:
        """Average number of cores other processes kept busy since the start."""
        end = self._read()
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return round(max(other, 0.0) / max(end[2] - self.start[2], 1e-9), 3)


DISTURBED_CORES = 0.2  # other processes' average load above which a run counts as disturbed


def wait_quiet(limit: float, window: float = 5.0, needed: int = 2) -> float:
    """Wait (at most `limit` s) until other processes use < 0.15 cores for `needed` windows.

    Returns the other processes' load in the last window (this process is idle meanwhile).
    """
    deadline = time.monotonic() + limit
    quiet, busy = 0, 0.0
    while True:
        watch = CpuWatch()
        time.sleep(window)
        busy = watch.other_cores()
        quiet = quiet + 1 if busy < 0.15 else 0
        if quiet >= needed:
            return busy
        if time.monotonic() >= deadline:
            print(
                f"  {RED}machine still busy after {limit:.0f} s (other processes {busy:.2f} cores): "
                f"measuring anyway{RESET}",
                flush=True,
            )
            return busy
        if quiet == 0:
            print(
                f"  waiting for a quiet machine (other processes {busy:.2f} cores) ...", flush=True
            )


def code_state() -> dict[str, Any]:
    """The commit measured, and which of custval's code files differed from it (work in progress)."""

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": git("status", "--porcelain", "--", "pipelines", "sql").splitlines(),
    }


def load() -> dict[str, Any]:
    up = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "uptime": up,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_table(n: int, custval: dict[str, dict[str, float]], lt: dict[str, Any] | None) -> None:
    lp = (lt or {}).get("phases", {})
    print(f"\n{BOLD}summary + fit + prediction, {n:,} orders, {os.cpu_count()} cores{RESET}")
    print(f"{'phase':<18}{'custval s':>11}{'MB':>8}{'lifetimes s':>14}{'MB':>8}{'ratio':>9}")
    for p in PHASES:
        c = custval[p]
        line = f"{p:<18}{c['seconds']:>11.2f}{c['peak_rss_mb']:>8.0f}"
        if p in lp:
            ratio = lp[p]["seconds"] / c["seconds"] if c["seconds"] else float("inf")
            line += f"{lp[p]['seconds']:>14.2f}{lp[p]['peak_rss_mb']:>8.0f}{ratio:>8.1f}x"
        print(line)
    ct = total(custval)
    line = f"{'total':<18}{ct:>11.2f}{max(custval[p]['peak_rss_mb'] for p in PHASES):>8.0f}"
    if lt and lt.get("status") == "ok":
        line += f"{lt['total_seconds']:>14.2f}{lt['peak_rss_mb']:>8.0f}{lt['total_seconds'] / ct:>8.1f}x"
    print(line)
    if "load" in lp:
        print(
            f"(lifetimes' input load - pandas read + purchase filter + UTC date - not in its total: "
            f"{lp['load']['seconds']:.2f} s; custval's summary includes reading its Parquet)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--orders", type=int, default=10_000_000, help="orders to generate (default 10M)"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-lifetimes", action="store_true", help="measure custval only")
    ap.add_argument(
        "--custval-runs",
        type=int,
        default=3,
        help="timed custval runs; the least disturbed one is reported (all are saved)",
    )
    ap.add_argument(
        "--timeout", type=float, default=1200, help="seconds before the lifetimes side is killed"
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=300,
        metavar="SECONDS",
        help="before each side, wait up to this long for other processes to leave the CPUs "
        "idle (the machine may be shared); 0 = don't wait",
    )
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # internal: data only
    args = ap.parse_args()
    if args.custval_runs < 1:
        ap.error("--custval-runs must be at least 1")
    if args.prepare:
        prepare(args.orders, args.seed)
        return 0

    n, seed = args.orders, args.seed
    paths = data_paths(n, seed)
    result: dict[str, Any] = {
        "benchmark": "predictive_vs_lifetimes",
        "orders": n,
        "seed": seed,
        "machine": machine(),
        "code": code_state(),
    }

    print(f"preparing {n:,} orders (seed {seed}) in {DATA.relative_to(ROOT)}/ ...", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--prepare", "--orders", str(n), "--seed", str(seed)], check=True
    )
    meta = json.loads(paths["meta"].read_text())
    snapshot = date.fromisoformat(meta["snapshot_date"])
    print(
        f"  {time.perf_counter() - started:.1f} s; snapshot {snapshot}, {meta['customers_in_orders']:,} customers, "
        f"{meta['purchase_orders']:,} purchase orders"
    )
    result["data"] = meta

    lt_versions = None
    if not args.skip_lifetimes:
        lt_versions = ensure_lifetimes_venv()

    # custval
    import polars as pl  # noqa: F401  (imported before timing, as are duckdb/numpy/scipy below)

    import pipelines.predictive.predictive  # noqa: F401
    from pipelines.transform import marts  # noqa: F401

    result["versions"] = {
        "custval": {p: version(p) for p in ("polars", "duckdb", "numpy", "scipy", "pyarrow")}
        | {"python": platform.python_version()},
        "lifetimes_venv": lt_versions,
    }
    runs = []
    kept = None
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    result["load_custval_before"] = load()
    print(
        f"custval side ({args.custval_runs} run(s)); load {result['load_custval_before']['loadavg']}",
        flush=True,
    )
    for i in range(args.custval_runs):
        watch = CpuWatch()
        phases, inputs, predicted, bg, gg = custval_side(paths["staged"], snapshot)
        phases["other_processes_cores"] = watch.other_cores()  # type: ignore[assignment]
        runs.append(phases)
        busy = phases["other_processes_cores"]
        flag = (
            f" {RED}(disturbed: other processes used {busy:.2f} cores){RESET}"
            if busy > DISTURBED_CORES
            else ""
        )
        print(
            f"  run {i + 1}: "
            + ", ".join(f"{p} {phases[p]['seconds']:.2f}s" for p in PHASES)
            + f"; total {total(phases):.2f} s; other processes {busy:.2f} cores{flag}",
            flush=True,
        )
        if kept is None:
            kept = (inputs, predicted, bg, gg)
        del inputs, predicted, bg, gg
        gc.collect()
    result["load_custval_after"] = load()
    totals = [total(r) for r in runs]
    # Report the least disturbed run (other processes' CPU use), the faster one on a tie.
    best = min(
        range(len(runs)), key=lambda i: (round(runs[i]["other_processes_cores"] / 0.05), totals[i])
    )
    chosen = runs[best]
    if chosen["other_processes_cores"] > DISTURBED_CORES:
        print(
            f"{RED}{BOLD}every custval run was disturbed by other processes; rerun on a quiet machine{RESET}"
        )
    result["custval"] = {
        "reported_run": best + 1,
        "phases": chosen,
        "total_seconds": total(chosen),
        "peak_rss_mb": round(max(r[p]["peak_rss_mb"] for r in runs for p in PHASES), 1),
        "runs": runs,
        "run_totals": totals,
        "customers": kept[0].height,
    }

    lt: dict[str, Any] | None = None
    if not args.skip_lifetimes:
        paths["lifetimes_json"].unlink(missing_ok=True)
        paths["lifetimes_customers"].unlink(missing_ok=True)
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        result["load_lifetimes_before"] = load()
        print(
            f"lifetimes side (timeout {args.timeout:.0f} s); load {result['load_lifetimes_before']['loadavg']}",
            flush=True,
        )
        cmd = [
            str(VENV_PYTHON),
            str(LIFETIMES_SIDE),
            "--orders",
            str(paths["orders"]),
            "--snapshot",
            snapshot.isoformat(),
            "--out",
            str(paths["lifetimes_json"]),
            "--customers-out",
            str(paths["lifetimes_customers"]),
        ]
        started = time.perf_counter()
        watch = CpuWatch()
        with open(paths["lifetimes_log"], "w") as log:
            try:
                proc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout, check=False
                )
                code: int | str = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        wall = time.perf_counter() - started
        result["load_lifetimes_after"] = load()
        lt = (
            json.loads(paths["lifetimes_json"].read_text())
            if paths["lifetimes_json"].exists()
            else {"phases": {}}
        )
        lt["wall_seconds_incl_startup"] = round(wall, 2)
        lt["other_processes_cores"] = watch.other_cores()
        busy = lt["other_processes_cores"]
        print(
            f"  done in {wall:.1f} s; other processes {busy:.2f} cores"
            + (f" {RED}(disturbed){RESET}" if busy > DISTURBED_CORES else ""),
            flush=True,
        )
        if code != 0 or lt.get("status") != "ok":
            done = list(lt.get("phases", {}))
            lt["status"] = (
                f"failed ({code})" if code != "timeout" else f"timed out after {args.timeout:.0f} s"
            )
            tail = paths["lifetimes_log"].read_text().splitlines()[-15:]
            print(
                f"{RED}{BOLD}lifetimes side {lt['status']}; phases finished: {done or 'none'}{RESET}"
            )
            print("\n".join("  | " + line for line in tail))
        result["lifetimes"] = lt

    print_table(n, result["custval"]["phases"], lt)
    exit_code = 0
    if lt and lt.get("status") == "ok":
        ratio = lt["total_seconds"] / result["custval"]["total_seconds"]
        result["speedup"] = round(ratio, 2)
        result["speedup_requirement"] = (
            f">= {REQUIRED_SPEEDUP:g}x at >= {REQUIREMENT_ORDERS:,} orders"
        )
        print(f"\n{BOLD}custval is {ratio:.1f}x faster than lifetimes{RESET}", end="")
        if n >= REQUIREMENT_ORDERS:
            result["speedup_ok"] = ratio >= REQUIRED_SPEEDUP
            verdict = (
                f"{GREEN}PASS{RESET}" if ratio >= REQUIRED_SPEEDUP else f"{RED}{BOLD}FAIL{RESET}"
            )
            print(f" (required >= {REQUIRED_SPEEDUP:g}x): {verdict}")
            if ratio < REQUIRED_SPEEDUP:
                exit_code = 1
        else:
            print(
                f" (the >= {REQUIRED_SPEEDUP:g}x requirement is checked at {REQUIREMENT_ORDERS:,} orders; informational here)"
            )
        result["comparison"] = compare(*kept, lt, paths["lifetimes_customers"])
        if result["comparison"]["failed"]:
            print(f"{RED}{BOLD}OUTPUT MISMATCH: {', '.join(result['comparison']['failed'])}{RESET}")
            exit_code = 1
    elif not args.skip_lifetimes:
        exit_code = 1

    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-custval-only" if args.skip_lifetimes else ""  # never overwrite a full comparison
    out = RESULTS / f"predictive_vs_lifetimes-{n}{suffix}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
