"""
### custval nightly

Raw orders in, customer-value tables out, one snapshot a day.

The run covering day D starts at 02:00 UTC on D+1 and builds snapshot D from every accepted
order up to the end of D (UTC): extract the source, validate it against the data contract
with Great Expectations, stage it with Polars, build the marts with DuckDB SQL, publish each
table's `snapshot_date=D` partition atomically, and write the run manifest last.

Params: `source` (file, directory or glob), `warehouse` (directory), optional `as_of`
(YYYY-MM-DD, overrides the snapshot date) and `config` (YAML overriding the defaults).
Every task is a call into the `pipelines` package; tasks pass paths and counts, never data.
"""

from __future__ import annotations

import os

import pendulum

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task


@dag(
    dag_id="custval_nightly",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["custval"],
    doc_md=__doc__,
    params={
        "source": Param(os.environ.get("CUSTVAL_SOURCE", "/opt/custval/landing/orders"), type="string", minLength=1),
        "warehouse": Param(os.environ.get("CUSTVAL_WAREHOUSE", "/opt/custval/warehouse"), type="string", minLength=1),
        "as_of": Param(None, type=["null", "string"], format="date", description="Snapshot date; default: the day that has just ended"),
        "config": Param(None, type=["null", "string"], description="YAML file overriding the default configuration"),
    },
)
def custval_nightly():
    @task
    def extract(params=None, logical_date=None, dag_run=None) -> dict:
        """
        #### Extract
        Find the source files, fingerprint them and land the batch unchanged as Parquet under
        `raw/orders/snapshot_date=D/`.
        """
        from pipelines.airflow_support import new_run, run_task

        ctx = new_run(params, logical_date, dag_run.run_after, dag_run.run_id)
        return run_task("extract", {"context": ctx.to_dict()})

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
        Cut the accepted orders at the end of the snapshot day and drop (or keyed-hash) PII.
        """
        from pipelines.airflow_support import run_task

        return run_task("stage", run)

    @task
    def build_marts(run: dict) -> dict:
        """
        #### Marts
        Run the DuckDB SQL models in `sql/` and conform each published table to its contract.
        """
        from pipelines.airflow_support import run_task

        return run_task("marts", run)

    @task
    def publish(run: dict) -> dict:
        """
        #### Publish
        Swap each table's `snapshot_date=D` partition into place atomically, and the quarantine.
        """
        from pipelines.airflow_support import run_task

        return run_task("publish", run)

    @task
    def write_manifest(run: dict) -> dict:
        """
        #### Manifest
        Write `runs/snapshot_date=D/manifest.json` last: counts, reconciliation, timings.
        """
        from pipelines.airflow_support import run_task

        return run_task("manifest", run)

    batch = extract()
    validated = validate(batch)
    staged = stage(validated)
    built = build_marts(staged)
    published = publish(built)
    write_manifest(published)


custval_nightly()
