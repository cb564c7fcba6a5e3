"""`custval bench`: the whole `custval run` against a bare DuckDB query on the same file.

The baseline is the least work anyone could do with these orders: one DuckDB query computing
lifetimes' RFM summary (frequency, recency, T, monetary value per customer, from purchase
days) and writing it to Parquet. Both run as whole processes (interpreter start and imports
included), alternately, in the same benchmark run, so the ratio of their wall times says how
much the pipeline costs on top of reading the data, whatever else the shared machine is doing.

`python -m pipelines.tools.bench SOURCE SNAPSHOT OUT` is the baseline process itself; this
module imports nothing heavy at the top so that process starts as a bare DuckDB script would.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

READERS = {"parquet": "read_parquet", "csv": "read_csv", "jsonl": "read_json"}

# lifetimes' summary_data_from_transaction_data with custval's purchases (completed, amount >= 0;
# a missing status is completed), per UTC day: what int_model_inputs computes in the pipeline.
BASELINE_SQL = """
copy (
    with purchase_days as (
        select
            customer_id,
            cast(order_ts as date) as purchase_date,
            sum(cast(amount as decimal(18, 4))) as purchase_value
        from {reader}('{source}')
        where coalesce(lower(status), 'completed') = 'completed' and amount >= 0
        group by customer_id, purchase_date
    )
    select
        customer_id,
        count(*) - 1 as frequency,
        datediff('day', min(purchase_date), max(purchase_date)) as recency,
        datediff('day', min(purchase_date), date '{snapshot}') as T,
        case when count(*) > 1
            then (sum(purchase_value) - arg_min(purchase_value, purchase_date)) / (count(*) - 1)
            else 0
        end as monetary_value
    from purchase_days
    group by customer_id
) to '{out}' (format parquet)
"""


@dataclass
class ProcessMeasure:
    """One whole process: wall and CPU seconds, peak resident memory, exit status."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int


def measured(command: list[str], log: Path) -> ProcessMeasure:
    """Run `command` to the end; its own peak RSS comes from wait4 (not this process's)."""
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return ProcessMeasure(
        wall_seconds=round(wall, 3),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        returncode=process.returncode,
    )


def format_of(source: Path) -> str:
    for fmt, suffix in (("parquet", ".parquet"), ("csv", ".csv"), ("jsonl", ".jsonl")):
        if source.name.endswith(suffix):
            return fmt
    raise ValueError(f"{source}: the baseline reads .parquet, .csv or .jsonl")


def baseline(source: Path, snapshot: str, out: Path) -> None:
    """The bare DuckDB query (the baseline process's body)."""
    import duckdb

    def quoted(path: Path) -> str:
        return str(path).replace("'", "''")

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        BASELINE_SQL.format(
            reader=READERS[format_of(source)],
            source=quoted(source),
            snapshot=snapshot,
            out=quoted(out),
        )
    )


def compare(
    source: Path,
    snapshot: str,
    warehouse: Path,
    rounds: int,
    config: Path | None = None,
    progress: Any = None,
    shards: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Alternate the baseline and `custval run` `rounds` times; medians and the ratio.

    Each custval round publishes the same snapshot again (a rerun replaces it), so every
    round does the same work. Per-stage figures are those of the median custval round.
    """
    logs = warehouse.parent / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, "-m", "pipelines", "run", "--source", str(source)]
    run += ["--as-of", snapshot, "--warehouse", str(warehouse)]
    run += ["--config", str(config)] if config else []
    run += ["--shards", str(shards)] if shards else []
    run += ["--workers", str(workers)] if workers else []
    bare = [sys.executable, "-m", "pipelines.tools.bench", str(source), snapshot]
    bare.append(str(warehouse.parent / "baseline-summary.parquet"))
    base_runs: list[ProcessMeasure] = []
    custval_runs: list[tuple[ProcessMeasure, dict[str, Any]]] = []
    for i in range(rounds):
        for name in ("baseline", "custval"):
            if progress:
                progress(f"round {i + 1}/{rounds}: {name} ...")
            log = logs / f"{name}-{i + 1}.log"
            m = measured(bare if name == "baseline" else run, log)
            if m.returncode != 0:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {m.returncode}; its output ends:\n{tail}")
            if name == "baseline":
                base_runs.append(m)
            else:
                manifest = _manifest(warehouse, snapshot)
                custval_runs.append((m, manifest))
    custval_runs.sort(key=lambda r: r[0].wall_seconds)
    median_run, manifest = custval_runs[(len(custval_runs) - 1) // 2]
    base_wall = statistics.median(m.wall_seconds for m in base_runs)
    custval_wall = statistics.median(m.wall_seconds for m, _ in custval_runs)
    return {
        "source": str(source),
        "snapshot": snapshot,
        "rounds": rounds,
        "load_average": list(os.getloadavg()),
        "baseline": {
            "wall_seconds": base_wall,
            "cpu_seconds": statistics.median(m.cpu_seconds for m in base_runs),
            "peak_rss_mb": max(m.peak_rss_mb for m in base_runs),
            "runs": [asdict(m) for m in base_runs],
        },
        "custval": {
            "wall_seconds": custval_wall,
            "cpu_seconds": statistics.median(m.cpu_seconds for m, _ in custval_runs),
            "peak_rss_mb": max(m.peak_rss_mb for m, _ in custval_runs),
            "runs": [asdict(m) for m, _ in custval_runs],
            "median_run": asdict(median_run),
        },
        "wall_ratio": round(custval_wall / base_wall, 2),
        "stages": manifest["stages"],
        "counts": manifest["counts"],
        "customers": (manifest["tables"].get("customer_rfm") or {}).get("rows"),
        "memory_limit": (manifest.get("resources") or {}).get("memory_limit"),
        "duckdb_share": (manifest.get("resources") or {}).get("duckdb_share"),
        **({"sharding": _sharding(manifest["sharding"])} if manifest.get("sharding") else {}),
    }


def _sharding(sharding: dict[str, Any]) -> dict[str, Any]:
    """A sharded run's figures: the split, each phase's seconds (a shard phase's parts, each
    with its worker's peak RSS), and per worker process its parts, busy seconds and peak."""
    keep = ("shards", "orders", "customers", "split", "pool_processes", "workers")
    phases = [
        {"kind": p["kind"], "models": len(p["models"])}
        | {k: v for k, v in p.items() if k in ("seconds", "peak_rss_mb", "parts")}
        for p in sharding["phases"]
    ]
    return {k: sharding[k] for k in keep if k in sharding} | {"phases": phases}


def _manifest(warehouse: Path, snapshot: str) -> dict[str, Any]:
    from datetime import date

    from pipelines.storage import layout

    path = layout.manifest_path(warehouse, date.fromisoformat(snapshot))
    return dict(json.loads(path.read_text()))


if __name__ == "__main__":
    baseline(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
