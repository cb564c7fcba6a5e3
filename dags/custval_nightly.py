"""
### custval nightly

Raw orders in, customer-value tables out, one snapshot a day.

The run covering day D starts at 02:00 UTC on D+1 and builds snapshot D from every accepted
order up to the end of D (UTC): extract the source, validate it against the data contract
with Great Expectations, stage it with Polars, build the marts with DuckDB SQL, publish each
table's `snapshot_date=D` partition atomically, write the run manifest, and -- for a landing
directory or a PostgreSQL source -- rebuild the past snapshots that late orders belong to.

Schedule: each data interval is the UTC day D (logical date D 00:00); its run is due at 02:00
UTC on D+1. Backfills: `airflow backfill create --dag-id custval_nightly --from-date D1
--to-date D2` queues the runs for snapshots D1..D2 for the scheduler (the DAG must be
unpaused); `custval backfill` does the same without Airflow.

Params: `source` (files, a landing directory, `postgresql://...` or `conn:<connection id>`),
`source_kind`, `table` (PostgreSQL), `warehouse`, optional `as_of` (overrides the snapshot
date) and `config`. Every task is a call into the `pipelines` package; tasks pass paths and
counts, never data.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

from airflow.sdk import Param, dag, task
from pipelines.airflow_support import PARAMS_SCHEMA, mart_assets, on_run_failure, on_task_failure
from pipelines.timetable import SettledDailyTimetable

WAREHOUSE = os.environ.get("CUSTVAL_WAREHOUSE", "/opt/custval/warehouse")
MART_ASSETS = mart_assets(WAREHOUSE)


def _param(name: str, default: object) -> Param:
    return Param(default, **PARAMS_SCHEMA[name])


@dag(
    dag_id="custval_nightly",
    schedule=SettledDailyTimetable(settle_hours=2),  # interval = the UTC day D; runs at 02:00 on D+1
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one warehouse, one writer; backfills queue behind the nightly run
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
    },
)
def custval_nightly():
    @task
    def extract(params=None, logical_date=None, dag_run=None) -> dict:
        """
        #### Extract
        Take the run's snapshot leases, read the source's batch and land it unchanged as
        Parquet in the raw zone.
        """
        from pipelines.airflow_support import start_run

        return start_run(params, logical_date, dag_run.run_after, dag_run.run_id)

    @task
    def validate(run: dict) -> dict:
        """
        #### Validate
        Parse every value strictly against `data_contracts/orders.yaml`, collapse duplicates,
        run the generated Great Expectations suite; quarantine bad rows, stop on batch-level
        failures, and check that the counts reconcile.
        """
        from pipelines.airflow_support import run_task

        return run_task("validate", run)

    @task
    def stage(run: dict) -> dict:
        """
        #### Stage
        Assemble the snapshot's orders (cut at the end of the day, in the reporting currency)
        and drop, or keyed-hash, PII.
        """
        from pipelines.airflow_support import run_task

        return run_task("stage", run)

    @task
    def build_marts(run: dict) -> dict:
        """
        #### Marts
        Run the DuckDB SQL models in `sql/` and the predictive models; conform each published
        table to its contract.
        """
        from pipelines.airflow_support import run_task

        return run_task("marts", run)

    @task(outlets=MART_ASSETS)
    def publish(run: dict, outlet_events=None) -> dict:
        """
        #### Publish
        Swap each table's `snapshot_date=D` partition into place atomically, and the
        quarantine; each table's Asset event says which warehouse and snapshot.
        """
        from pipelines.airflow_support import asset_extra, run_task

        result = run_task("publish", run)
        for asset in MART_ASSETS:
            outlet_events[asset].extra = asset_extra(run)
        return result

    @task
    def write_manifest(run: dict) -> dict:
        """
        #### Manifest
        Write `runs/snapshot_date=D/manifest.json` last: counts, reconciliation, timings.
        """
        from pipelines.airflow_support import run_task

        return run_task("manifest", run)

    @task
    def finish(run: dict) -> dict:
        """
        #### Finish
        Rebuild the past snapshots that late orders belong to (incremental sources), release
        the snapshot leases and clean up the run's work directory.
        """
        from pipelines.airflow_support import finish_run

        return finish_run(run)

    batch = extract()
    validated = validate(batch)
    staged = stage(validated)
    built = build_marts(staged)
    published = publish(built)
    finish(write_manifest(published))


custval_nightly()
