"""A sharded build of the SQL models: shard by customer, run the phases, one set of tables.

Orders are split by customer (`shards.py`: md5 of the id, mod K), so a customer's orders all
live in one shard. Each model is either **per shard** or **global** (`SHARD_LOCAL`), or **summed** (`SUMMED`):

- per shard: a customer's rows depend only on that customer's orders (and on small tables every
  shard reads whole: the config's, or a global model's rows). Run in every shard on that
  shard's orders, in a pool of worker processes, each shard's tables in its own DuckDB file.
- global: a row depends on many customers (a rank, a cut, a median, a fit). Run once, in one
  DuckDB file, over the union of the shards' tables it reads.
- summed: counts and sums over customers (order totals, retention counts, cohort cells). Run
  per shard; every later phase reads the shards' rows summed by key: small, and exact.

The phases follow from the dependencies (`plan`): a per-shard model runs in the first shard
phase after every global model it reads, a global model in the first global phase after every
per-shard model it reads; today's models need four (shard, global, shard, global: the
Airflow DAG's `SHARD_PHASES`, a mapped task per shard for each shard phase). A shard phase
sees each global model it reads restricted to its own customers (rows with a `customer_id` of
another shard are filtered out; tables without one are read whole).
Every model's SQL is the unsharded build's, run on the same rows: the published tables are the
same rows whatever K (`tests/e2e/test_sharded_run.py` compares K = 1, 3 and 8).

The split, model by model, and what each global model reads, is in `sql/README.md` (Sharded
builds). Validation and staging stay one pass over the batch (duplicates whose copies name
different customers, the batch's share gates and reconciliation are batch-wide); the staged
orders are split once into the shards' files, and the run checks that every staged order is
in exactly one shard and every customer in the shard its id hashes to.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from pipelines.config import Config
from pipelines.engines import connect
from pipelines.errors import CustvalError
from pipelines.memory import measure
from pipelines.transform import marts
from pipelines.transform.shards import check_shards, shard_sql

log = logging.getLogger(__name__)

# Models whose rows for a customer are a function of that customer's orders alone (given the
# global models they read). Every other model -- and any new one until it is listed here -- is
# global, which is always right, only slower.
SHARD_LOCAL: frozenset[str] = frozenset(
    {
        # orders and their per-customer summaries
        "stg_orders",
        "int_orders",
        "int_purchase_days",
        "int_customer_order_sequence",
        "int_customer_purchase_summary",
        "int_customers",
        "int_customer_margin",
        "int_customer_lookback_states",
        "int_customer_upsell",
        "int_model_inputs",
        "int_backtest_inputs",
        "int_customer_loyalty_tier",
        "int_customer_rfm_measures",
        # per customer, from the global scores, CAC and formula CLV
        "int_customer_rfm_segment_daily",
        "int_customer_rfm_scores",
        "int_customer_rfm_segment",
        "int_customer_segment_transitions",
        "int_customer_acquisition",
        "int_customer_first_order_economics",
        # the customer-level published tables: joins of the above
        "int_customer_clv_basis",
        "mart_customer_rfm",
        "mart_customer_clv",
        "mart_customer_journey",
        "mart_segment_transitions",
    }
)
# Models of sums and counts over customer-disjoint rows, keyed by the columns named: built per
# shard, then read everywhere as the shards' rows summed by key (each sum cast back to its
# type), which is the unsharded table exactly -- the small statistics a global model reads
# instead of the orders. A per-shard model never reads one (it would see its shard's part).
SUMMED: dict[str, tuple[str, ...]] = {
    "int_order_totals": (),
    "int_cohort_activity": ("cohort_month", "months_since_first"),
    "int_retention_counts": ("period", "period_days"),
}
ORDERS_TABLE = "source_orders"  # a shard's staged orders, kept in its file for global phases
SHARD_IDS = "_shard_customer_ids"  # a shard phase's customer ids among the global tables it reads
BATCH_ROWS = marts.BATCH_ROWS


@dataclass(frozen=True)
class Phase:
    kind: Literal["shard", "global"]
    models: tuple[str, ...]
    inputs: tuple[str, ...] = ()  # models of earlier phases that this phase's models read


def plan(
    models: dict[str, marts.SqlModel], python_models: dict[str, marts.PythonModel]
) -> list[Phase]:
    """The phases of a sharded build: alternately per shard (odd levels) and global (even)."""
    deps = marts.dependencies(models, python_models)
    level: dict[str, int] = {}
    for name in marts.build_order(models, python_models):
        local = (name in SHARD_LOCAL or name in SUMMED) and name not in python_models
        need = max((level[d] for d in deps.get(name, ()) if d in level), default=1)
        level[name] = need + ((need % 2 == 0) if local else (need % 2 == 1))
    phases = []
    for lvl in sorted(set(level.values())):
        names = tuple(n for n in level if level[n] == lvl)  # build order within the phase
        inputs = sorted({d for n in names for d in deps[n] if level[d] < lvl})
        if lvl % 2 and SUMMED.keys() & set(inputs):
            raise ValueError(f"a per-shard model reads a summed one: {SUMMED.keys() & set(inputs)}")
        phases.append(Phase("shard" if lvl % 2 else "global", names, tuple(inputs)))
    return phases


def _literal(path: Path) -> str:
    """A path as a SQL string literal (ATTACH and COPY take no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def part_dir(work: Path, shard: int | None) -> Path:
    """What one part of the build writes, and nothing else (a task pushes just this on an
    object-store warehouse): a shard's tables, or the global ones (`shard` None)."""
    return work / ("global" if shard is None else f"shard-{shard}")


def split_dir(work: Path) -> Path:
    return work / "split"


def shard_file(work: Path, shard: int) -> Path:
    return part_dir(work, shard) / "tables.duckdb"


def global_file(work: Path) -> Path:
    return part_dir(work, None) / "tables.duckdb"


@dataclass(frozen=True)
class ShardTask:
    """One shard's part of one phase: what a pool worker needs (picklable)."""

    work: str
    shard: int
    shards: int
    models: tuple[str, ...]
    global_inputs: tuple[str, ...]
    config: Config
    params: dict[str, Any]
    threads: int | None
    orders_files: tuple[str, ...] | None  # set in the first phase: the shard's staged orders
    staged_path: str
    ways: int = 1  # shards built at once on this machine: each takes its share of the memory


def shards_view(con: duckdb.DuckDBPyConnection, name: str, shards: int) -> str:
    """The select reading a per-shard table of every shard as the unsharded one: the union of
    the shards' rows, or for a SUMMED model their sums by key."""
    union = " union all by name ".join(f"select * from s{k}.{name}" for k in range(shards))
    if name not in SUMMED:
        return union
    keys = SUMMED[name]
    columns = con.execute(
        "select column_name, data_type from duckdb_columns() "
        "where database_name = 's0' and table_name = ? order by column_index",
        [name],
    ).fetchall()
    select = [f'"{c}"' if c in keys else f'sum("{c}")::{t} as "{c}"' for c, t in columns]
    quoted = ", ".join(f'"{k}"' for k in keys)
    group = f" group by {quoted}" if keys else ""
    return f"select {', '.join(select)} from ({union}){group}"


def _customer_tables(con: duckdb.DuckDBPyConnection, database: str) -> set[str]:
    rows = con.execute(
        "select table_name from duckdb_columns() where database_name = ? "
        "and column_name = 'customer_id'",
        [database],
    ).fetchall()
    return {r[0] for r in rows}


def run_shard_phase(task: ShardTask) -> dict[str, float]:
    """Build one phase's per-shard models in the shard's own file; seconds per model."""
    work = Path(task.work)
    part_dir(work, task.shard).mkdir(parents=True, exist_ok=True)
    con = connect(
        task.config.resources.shared(task.ways),
        work / "spill" / f"shard-{task.shard}",
        database=shard_file(work, task.shard),
        threads=task.threads,
    )
    try:
        if task.orders_files is not None:
            # an Arrow dataset: the same column types the unsharded build registers
            files = list(task.orders_files) or [task.staged_path]
            con.register("_shard_orders", ds.dataset(files, format="parquet"))
            empty = "" if task.orders_files else " limit 0"
            con.execute(
                f"create or replace table {ORDERS_TABLE} as select * from _shard_orders{empty}"
            )
            con.unregister("_shard_orders")
        if task.global_inputs:
            con.execute(f"attach {_literal(global_file(work))} as glb (read_only)")
            with_customers = _customer_tables(con, "glb")
            keyed = [name for name in task.global_inputs if name in with_customers]
            if keyed:
                # The shard's ids among the global tables', each id hashed once, not every row
                # of a view at each read (md5 of 25M rows: 6.9 s on one thread; a semi-join
                # with the shard's ids: 1.1 s; phase 2 at 10M orders: 87.6 s -> 80.9 s).
                ids = " union ".join(f"select customer_id from glb.{name}" for name in keyed)
                con.execute(
                    f"create temp table {SHARD_IDS} as select customer_id from ({ids}) "
                    f"where {shard_sql('customer_id', task.shards)} = {task.shard}"
                )
            for name in task.global_inputs:
                where = (
                    f" where customer_id in (select customer_id from {SHARD_IDS})"
                    if name in keyed
                    else ""
                )
                con.execute(
                    f"create or replace temp view {name} as select * from glb.{name}{where}"
                )
        for table, frame in marts.config_tables(task.config).items():
            con.register(table, frame)
        return marts.build_named(con, list(task.models), task.params, marts.load_models())
    finally:
        con.close()


@dataclass
class ShardedBuild:
    """The built shards and global file of one sharded build, read as one set of tables."""

    work: Path
    shards: int
    phases: list[Phase]
    model_seconds: dict[str, float]
    # what each step took: the split, then each phase (its parts, with the worker that ran
    # each); for the manifest and `custval bench --shards`
    measures: dict[str, Any] = field(default_factory=dict)

    def connect(self, config: Config) -> duckdb.DuckDBPyConnection:
        """A connection where every model reads as the unsharded build's table: a per-shard
        model as the union of the shards', a global model as built."""
        con = connect(config.resources, self.work / "spill" / "read")
        con.execute(f"attach {_literal(global_file(self.work))} as glb (read_only)")
        for k in range(self.shards):
            con.execute(f"attach {_literal(shard_file(self.work, k))} as s{k} (read_only)")
        for phase in self.phases:
            for name in phase.models:
                view = (
                    f"select * from glb.{name}"
                    if phase.kind == "global"
                    else shards_view(con, name, self.shards)
                )
                con.execute(f"create or replace temp view {name} as {view}")
        return con

    def kind(self, name: str) -> str:
        return next(p.kind for p in self.phases if name in p.models)

    def batches(self, con: duckdb.DuckDBPyConnection, name: str) -> Iterator[pa.RecordBatch]:
        """A table's rows, shard after shard (a global one: as built): a fixed order."""
        sources = (
            [f"glb.{name}"]
            if self.kind(name) == "global"
            else [f"s{k}.{name}" for k in range(self.shards)]
        )
        for source in sources:  # one reader drained before the next is opened
            yield from con.sql(f"select * from {source}").fetch_record_batch(BATCH_ROWS)

    def reconcile(self, con: duckdb.DuckDBPyConnection, staged_rows: int) -> dict[str, Any]:
        """Every staged order in exactly one shard, every customer in the shard its id hashes to.

        Per shard: its orders and customers, and customers found in the wrong shard (none);
        in total: the shards' orders add up to the staged orders.
        """
        per_shard = []
        for k in range(self.shards):
            orders = con.sql(f"select count(*) from s{k}.{ORDERS_TABLE}").fetchall()[0][0]
            customers, misplaced = con.sql(
                f"select count(*), count(*) filter (where {shard_sql('customer_id', self.shards)}"
                f" <> {k}) from s{k}.int_customers"
            ).fetchall()[0]
            per_shard.append(
                {"shard": k, "orders": orders, "customers": customers, "misplaced": misplaced}
            )
        total_orders = sum(s["orders"] for s in per_shard)
        bad = [s for s in per_shard if s["misplaced"]]
        if total_orders != staged_rows or bad:
            raise CustvalError(
                f"sharded build does not reconcile: {total_orders:,} orders in "
                f"{self.shards} shards vs {staged_rows:,} staged"
                + (
                    f"; customers outside their shard in shard(s) {[s['shard'] for s in bad]}"
                    if bad
                    else ""
                )
            )
        timed = self.measures.get("phases") or [{} for _ in self.phases]
        return {
            "shards": self.shards,
            "orders": total_orders,
            "customers": sum(s["customers"] for s in per_shard),
            "per_shard": per_shard,
            "approximated": [],  # every statistic exact: each global model sees every customer
            "phases": [
                {"kind": p.kind, "models": list(p.models)} | measured
                for p, measured in zip(self.phases, timed, strict=True)
            ],
            **{k: v for k, v in self.measures.items() if k != "phases"},
        }


def split_orders(
    con: duckdb.DuckDBPyConnection, staged_path: str, shards: int, directory: Path
) -> None:
    """One pass over the staged orders writing each shard's files (`_shard=<k>/`)."""
    con.register("_staged", ds.dataset(staged_path, format="parquet"))
    con.execute(
        f"copy (select *, {shard_sql('customer_id', shards)} as _shard from _staged) "
        f"to {_literal(directory)} (format parquet, partition_by (_shard), overwrite_or_ignore)"
    )
    con.unregister("_staged")


def _done(directory: Path, index: int | None) -> Path:
    """A part's marker: phase `index` of its shard (or the global one) done; None: the split."""
    return directory / ("done" if index is None else f"done-phase-{index}")


def _mark(directory: Path, index: int | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _done(directory, index).touch()


def prepare(work: Path, config: Config, staged_path: str, shards: int) -> list[Phase]:
    """Split the staged orders into the shards' files (once: a retried task skips it); the plan.

    The plan uses the Python models' names only, so any Predictive's will do.
    """
    from pipelines.predictive.predictive import Predictive

    check_shards(shards)
    if not _done(split_dir(work), None).exists():
        split_dir(work).mkdir(parents=True, exist_ok=True)
        con = connect(config.resources, work / "spill" / "split")
        try:
            split_orders(con, staged_path, shards, split_dir(work) / "orders")
        finally:
            con.close()
        _mark(split_dir(work), None)
    return plan(marts.load_models(), Predictive(config).python_models())


def shard_task(
    work: Path,
    config: Config,
    snapshot_date: date,
    staged_path: str,
    phases: list[Phase],
    index: int,
    shard: int,
    shards: int,
    threads: int | None,
    ways: int = 1,
) -> ShardTask:
    """What one shard's part of phase `index` needs, for a pool worker (`ways` of them at
    once) or an Airflow task."""
    phase = phases[index]
    files = sorted((split_dir(work) / "orders" / f"_shard={shard}").glob("*.parquet"))
    return ShardTask(
        str(work),
        shard,
        shards,
        phase.models,
        tuple(i for i in phase.inputs if i not in SHARD_LOCAL and i not in SUMMED),
        config,
        marts.model_params(config, snapshot_date),
        threads,
        tuple(str(f) for f in files) if index == 0 else None,
        staged_path,
        ways,
    )


def run_shard_part(task: ShardTask, index: int) -> dict[str, float]:
    """One shard's part of phase `index`, skipped when done already (a retried task)."""
    directory = part_dir(Path(task.work), task.shard)
    if _done(directory, index).exists():
        return {}
    seconds = run_shard_phase(task)
    _mark(directory, index)
    return seconds


def measured_shard_part(task: ShardTask, index: int) -> tuple[dict[str, float], dict[str, Any]]:
    """`run_shard_part` in a pool worker, with the part's wall time and the worker's peak RSS
    while it ran (and which worker: its pid), for the per-worker figures of a benchmark."""
    with measure() as m:
        seconds = run_shard_part(task, index)
    return seconds, {"shard": task.shard, "pid": os.getpid()} | m.as_dict()


def _workers(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker process over the shard phases: parts run, busy seconds, peak RSS."""
    by_pid: dict[int, dict[str, Any]] = {}
    for phase in phases:
        for part in phase.get("parts", []):
            w = by_pid.setdefault(
                part["pid"],
                {"worker": len(by_pid) + 1, "parts": 0, "seconds": 0.0, "peak_rss_mb": 0.0},
            )
            w["parts"] += 1
            w["seconds"] = round(w["seconds"] + part["seconds"], 3)
            w["peak_rss_mb"] = max(w["peak_rss_mb"], part["peak_rss_mb"])
    return list(by_pid.values())


def run_global_part(
    work: Path,
    config: Config,
    snapshot_date: date,
    shards: int,
    phases: list[Phase],
    index: int,
    python_models: dict[str, marts.PythonModel],
) -> dict[str, float] | None:
    """Phase `index` (global) once; None when done already (a retried task, or the DAG's)."""
    directory = part_dir(work, None)
    if _done(directory, index).exists():
        return None
    models = marts.load_models()
    phase = phases[index]
    params = marts.model_params(config, snapshot_date)
    seconds = _global_phase(work, config, shards, phase, params, models, python_models)
    _mark(directory, index)
    return seconds


def build(
    work: Path,
    config: Config,
    snapshot_date: date,
    staged_path: str,
    python_models: dict[str, marts.PythonModel],
    shards: int,
    workers: int | None = None,
) -> ShardedBuild:
    """Build every model sharded into `work`: split, then the phases (`plan`) in order.

    Shard phases run in a pool of `workers` processes (default: one per shard, at most the
    cores); global phases, and the Python models (the fits, which hold state between them),
    in this process. Parts already done (by the DAG's mapped tasks, or before a retry) are
    skipped, and no pool is started for them: a process that may not have children (a task
    in a Celery prefork worker is a daemon) runs the parts itself.
    """
    shards = check_shards(shards)
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, shards))
    if workers > 1 and multiprocessing.current_process().daemon:
        log.info("a daemon process may not start a pool: the shards run one after another")
        workers = 1
    threads = config.resources.threads or max(1, cores // workers)
    with measure() as split:
        phases = prepare(work, config, staged_path, shards)
    seconds: dict[str, float] = {}
    timed: list[dict[str, Any]] = []
    pool: ProcessPoolExecutor | None = None
    try:
        for index, phase in enumerate(phases):
            started = time.perf_counter()
            record: dict[str, Any] = {}
            if phase.kind == "shard":
                tasks = [
                    shard_task(
                        work,
                        config,
                        snapshot_date,
                        staged_path,
                        phases,
                        index,
                        k,
                        shards,
                        threads,
                        ways=workers,
                    )
                    for k in range(shards)
                ]
                pending = [t for t in tasks if not _done(part_dir(work, t.shard), index).exists()]
                if pool is None and workers > 1 and len(pending) > 1:
                    pool = ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("spawn")
                    )
                indexes = [index] * len(pending)
                results = list(
                    pool.map(measured_shard_part, pending, indexes)
                    if pool
                    else map(measured_shard_part, pending, indexes)
                )
                for result, _ in results:  # a model's time: its slowest shard
                    for name, s in result.items():
                        seconds[name] = max(seconds.get(name, 0.0), s)
                record["parts"] = [part for _, part in results]
            else:
                with measure() as m:
                    done = run_global_part(
                        work, config, snapshot_date, shards, phases, index, python_models
                    )
                seconds |= done or {}
                record["peak_rss_mb"] = m.as_dict()["peak_rss_mb"]
            record["seconds"] = round(time.perf_counter() - started, 3)
            timed.append(record)
            log.info(
                "%s phase of %d model(s) done in %.1f s",
                phase.kind,
                len(phase.models),
                time.perf_counter() - started,
            )
    finally:
        if pool is not None:
            pool.shutdown()
    measures = {
        "split": split.as_dict(),
        "pool_processes": workers if pool is not None else 0,
        "phases": timed,
        "workers": _workers(timed),
    }
    return ShardedBuild(work, shards, phases, seconds, measures)


def _global_phase(
    work: Path,
    config: Config,
    shards: int,
    phase: Phase,
    params: dict[str, Any],
    models: dict[str, marts.SqlModel],
    python_models: dict[str, marts.PythonModel],
) -> dict[str, float]:
    part_dir(work, None).mkdir(parents=True, exist_ok=True)
    con = connect(config.resources, work / "spill" / "global", database=global_file(work))
    try:
        for k in range(shards):
            con.execute(f"attach {_literal(shard_file(work, k))} as s{k} (read_only)")
        for name in phase.inputs:
            if name in SHARD_LOCAL or name in SUMMED:
                view = shards_view(con, name, shards)
                con.execute(f"create or replace temp view {name} as {view}")
        for table, frame in marts.config_tables(config).items():
            con.register(table, frame)
        return marts.build_named(con, list(phase.models), params, models, python_models)
    finally:
        con.close()
