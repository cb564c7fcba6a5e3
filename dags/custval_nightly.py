"""
### custval nightly

Raw orders in, customer-value tables out, one snapshot a day.

The run covering day D starts at 02:00 UTC on D+1 and builds snapshot D from every accepted
order up to the end of D (UTC): extract the source, validate it against the data contract
with Great Expectations, stage it with Polars, build the marts with DuckDB SQL, publish each
table's `snapshot_date=D` partition atomically, write the run manifest, and -- for a landing
directory or a PostgreSQL source -- rebuild the past snapshots that late orders belong to.

Schedule: each data interval is the UTC day D (logical date D 00:00); its run is due at 02:00
UTC on D+1; a run triggered by hand builds the last whole day. Backfills: `airflow backfill
create --dag-id custval_nightly --from-date D1 --to-date D2` queues the runs for snapshots
D1..D2; Airflow starts several at once, and for an incremental source each run waits (first
task, a rescheduling sensor) until the day before is built, so the snapshots equal running
the days in order. `custval backfill` does the same without Airflow.

Params: `source` (files, a landing directory, `postgresql://...` or `conn:<connection id>`),
`source_kind`, `table` (PostgreSQL), `warehouse`, optional `as_of` (overrides the snapshot
date), `config`, `allow_partial_day` and `shards` (K > 1: the marts are built sharded by
customer, each shard's part of a phase a mapped task, the global phases once; the same tables). Every task is a call into the `pipelines` package;
tasks pass paths and counts, never data.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from pipelines.orchestration.tasks import (
    PARAMS_SCHEMA,
    SHARD_PHASES,
    mart_assets,
    on_run_failure,
    on_task_failure,
)
from pipelines.orchestration.timetable import SettledDailyTimetable

WAREHOUSE = os.environ.get("CUSTVAL_WAREHOUSE", "/opt/custval/warehouse")
POKE_SECONDS = float(
    os.environ.get("CUSTVAL_WAIT_POKE_SECONDS", "30")
)  # how often a waiting run looks again
MART_ASSETS = mart_assets(WAREHOUSE)


SHARD_PHASE_DOC = """
#### A shard's part of a phase
The per-customer models of this phase on one shard's orders (a mapped task per shard, over
the ids `plan_shards` returns).
"""  # a mapped task's docs are given, not taken from the docstring


def _param(name: str, default: object) -> Param:
    return Param(default, **PARAMS_SCHEMA[name])


@dag(
    dag_id="custval_nightly",
    schedule=SettledDailyTimetable(
        settle_hours=2
    ),  # interval = the UTC day D; runs at 02:00 on D+1
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # nightly runs one at a time (backfills ignore this; the pipeline orders them)
    tags=["custval"],
    doc_md=__doc__,
    on_failure_callback=on_run_failure,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": on_task_failure,
    },
    params={
        "source": _param("source", os.environ.get("CUSTVAL_SOURCE", "/opt/custval/landing/orders")),
        "source_kind": _param("source_kind", "auto"),
        "table": _param("table", None),
        "warehouse": _param("warehouse", WAREHOUSE),
        "as_of": _param("as_of", None),
        "config": _param("config", None),
        "allow_partial_day": _param("allow_partial_day", False),
        "shards": _param("shards", None),
    },
)
def custval_nightly():
    @task.sensor(
        poke_interval=POKE_SECONDS,
        timeout=timedelta(hours=24),
        mode="reschedule",
        # waiting is idempotent: a poke lost to a scheduler hiccup is simply tried again soon
        retries=5,
        retry_delay=timedelta(seconds=15),
        retry_exponential_backoff=False,
    )
    def wait_for_previous_day(params=None, logical_date=None, dag_run=None) -> bool:
        """
        #### Wait for the previous day
        For an incremental source (landing directory, PostgreSQL), snapshot D is built from the
        batches earlier runs ingested: wait, without holding a worker slot, until snapshot D-1
        is built and no other run holds this run's snapshots.
        """
        from pipelines.orchestration.tasks import ready_to_begin

        return ready_to_begin(
            params, logical_date, dag_run.run_after, dag_run.run_id, dag_run.data_interval_start
        )

    @task
    def extract(params=None, logical_date=None, dag_run=None) -> dict:
        """
        #### Extract
        Repair what crashed runs left, take the run's snapshot leases, ingest batches that
        arrived late for earlier days, read the source's batch and land it unchanged as
        Parquet in the raw zone.
        """
        from pipelines.orchestration.tasks import start_run

        return start_run(
            params, logical_date, dag_run.run_after, dag_run.run_id, dag_run.data_interval_start
        )

    @task
    def validate(run: dict) -> dict:
        """
        #### Validate
        Parse every value strictly against `data_contracts/orders.yaml`, collapse duplicates,
        run the generated Great Expectations suite; quarantine bad rows, stop on batch-level
        failures, and check that the counts reconcile.
        """
        from pipelines.orchestration.tasks import run_task

        return run_task("validate", run)

    @task
    def stage(run: dict) -> dict:
        """
        #### Stage
        Assemble the snapshot's orders (cut at the end of the day, in the reporting currency)
        and drop, or keyed-hash, PII.
        """
        from pipelines.orchestration.tasks import run_task

        return run_task("stage", run)

    @task
    def plan_shards(run: dict) -> list[int]:
        """
        #### Plan the shards
        With the `shards` param (or `sources.shards`) K > 1: split the staged orders by
        customer, md5(customer_id) mod K, into one file per shard; the shard ids the phase
        tasks map over (none unsharded: the phase tasks are then skipped).
        """
        from pipelines.orchestration.tasks import plan_shards

        return plan_shards(run)

    @task
    def shard_phase(run: dict, phase: int, shard: int) -> dict:
        from pipelines.orchestration.tasks import run_shard_part

        return run_shard_part(run, phase, shard)

    @task
    def global_phase(run: dict, phase: int) -> dict:
        """
        #### A global phase
        Once over the shards' tables: the models a customer's rows depend on others for --
        score cuts, the ABC cut, medians, the model fits, totals and summaries.
        """
        from pipelines.orchestration.tasks import run_global_part

        return run_global_part(run, phase)

    @task(trigger_rule="none_failed")  # unsharded, the phase tasks before it are skipped
    def build_marts(run: dict) -> dict:
        """
        #### Marts
        Run the DuckDB SQL models in `sql/` and the predictive models; conform each published
        table to its contract.
        """
        from pipelines.orchestration.tasks import run_task

        return run_task("marts", run)

    @task
    def publish(run: dict) -> dict:
        """
        #### Publish
        Assemble this run's version of snapshot D -- every table and the quarantine -- beside
        the one readers see; nothing becomes visible yet.
        """
        from pipelines.orchestration.tasks import run_task

        return run_task("publish", run)

    @task(outlets=MART_ASSETS)
    def write_manifest(run: dict, outlet_events=None) -> dict:
        """
        #### Manifest and commit
        Write the manifest (counts, reconciliation, timings) into the version, then make the
        whole snapshot visible in one atomic step; each table's Asset event says which
        warehouse and snapshot.
        """
        from pipelines.orchestration.tasks import asset_extra, run_task

        result = run_task("manifest", run)
        for asset in MART_ASSETS:
            outlet_events[asset].extra = asset_extra(run)
        return result

    @task
    def finish(run: dict) -> dict:
        """
        #### Finish
        Rebuild the past snapshots that late orders belong to (incremental sources), release
        the snapshot leases and clean up the run's work directory.
        """
        from pipelines.orchestration.tasks import finish_run

        return finish_run(run)

    batch = wait_for_previous_day() >> extract()
    validated = validate(batch)
    staged = stage(validated)
    shard_ids = plan_shards(staged)
    previous = shard_ids
    for index, kind in enumerate(SHARD_PHASES):  # K shards: mapped tasks; XCom: ids and counts
        if kind == "shard":
            step = (
                shard_phase.override(task_id=f"shard_phase_{index}", doc_md=SHARD_PHASE_DOC)
                .partial(run=staged, phase=index)
                .expand(shard=shard_ids)
            )
        else:
            step = global_phase.override(task_id=f"global_phase_{index}")(run=staged, phase=index)
        previous >> step
        previous = step
    built = build_marts(staged)
    previous >> built
    published = publish(built)
    finish(write_manifest(published))


custval_nightly()
