"""The DAG under a real scheduler: `airflow standalone` in a temporary AIRFLOW_HOME.

The metadata database is a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and
the executor LocalExecutor: the README's production profile. (On SQLite, `airflow backfill
create` fails now and then with "database is locked" while the scheduler writes.) The test
starts standalone in its own process group; meanwhile `custval run` builds the first day of a
landing directory (the history's start: a run triggered by hand is the Celery test's). Then
`airflow backfill create` -- without extra flags, so Airflow starts the backfill's runs in
parallel -- for the following days, and every snapshot must equal a `custval backfill` of the
same days run in order. The scheduler creates no runs of its own (`[scheduler]
use_job_schedule` off): unpausing would otherwise start the latest scheduled run, for
yesterday, and Asset events the BI-refresh DAG's -- kinds of runs the DAG tests already cover.
The test polls the metadata database, not the `airflow` command (a process importing Airflow
every 2 s took a core from the tasks). Then it shuts every process down by its process group
(SIGINT, then SIGTERM, then SIGKILL), checking that none is left.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from airflow_helper import airflow, healthy, new_metadata_db, parsed, runs, start, stop, wait_for
from conftest import REPO, free_port
from warehouse_helper import custval


@pytest.fixture
def metadata_db() -> Iterator[str]:
    yield from new_metadata_db()


def _landing(root: Path, frame: pl.DataFrame, first: date, last: date) -> Path:
    """Arrival folders: everything up to `first` arrives on `first`, then one folder a day, with
    every 25th order of a day arriving a day late (so later runs rebuild earlier snapshots)."""
    from pipelines.tools.generate import write_orders

    day_of = pl.col("order_ts").dt.date()
    late = (pl.int_range(pl.len()) % 25 == 0) & (day_of > first)
    arrivals = frame.with_columns(
        pl.when(day_of <= first)
        .then(pl.lit(first))
        .when(late)
        .then(day_of + timedelta(days=1))
        .otherwise(day_of)
        .alias("_arrival")
    ).filter(pl.col("_arrival") <= last)
    for (arrival,), part in arrivals.group_by("_arrival"):
        folder = root / f"date={arrival.isoformat()}"
        folder.mkdir(parents=True)
        write_orders(part.drop("_arrival"), folder / "orders.csv", "csv")
    return root


def _tables(warehouse: Path, day: date) -> dict[str, pl.DataFrame]:
    out = {}
    for table in sorted((warehouse / "marts").iterdir()):
        frame = pl.read_parquet(table / f"snapshot_date={day.isoformat()}")
        out[table.name] = frame.drop("seconds") if table.name == "model_fit" else frame
    return out


@pytest.mark.airflow
@pytest.mark.slow
def test_the_dag_runs_under_a_real_scheduler(
    generated_orders, tmp_path: Path, metadata_db: str
) -> None:
    _, frame, last_day = generated_orders
    first, days = last_day - timedelta(days=2), 2  # a backfill of two days runs them at once
    landing = _landing(tmp_path / "landing", frame, first, last_day)
    home = tmp_path / "airflow"
    warehouse = tmp_path / "warehouse"
    config = tmp_path / "cfg.yaml"
    config.write_text("predictive:\n  enabled: false\n")
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the test creates
        "CUSTVAL_SOURCE": str(landing),
        "CUSTVAL_WAREHOUSE": str(warehouse),
        "CUSTVAL_WAIT_POKE_SECONDS": "5",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow`
    }
    log = tmp_path / "standalone.log"
    proc = start(env, log, "standalone")
    try:
        # the history's first snapshot, built while Airflow starts
        built = custval(
            "run",
            *("--source", str(landing), "--as-of", first.isoformat()),
            *("--warehouse", str(warehouse), "--config", str(config)),
            timeout=600,
        )
        assert built.returncode == 0, built.stderr[-3000:]
        wait_for("the API and scheduler", lambda: healthy(port, "scheduler"), 240, [log])
        wait_for("the DAG to be parsed", lambda: parsed(metadata_db, "custval_nightly"), 180, [log])
        assert airflow(env, "dags", "unpause", "custval_nightly").returncode == 0

        # `airflow backfill create` queues one run per day and starts them together (it ignores
        # max_active_runs); each waits for the day before, so the result is the in-order one.
        d1, d2 = first + timedelta(days=1), last_day
        created = airflow(
            env,
            "backfill",
            "create",
            "--dag-id",
            "custval_nightly",
            "--from-date",
            d1.isoformat(),
            "--to-date",
            d2.isoformat(),
            "--dag-run-conf",
            json.dumps({"config": str(config)}),
        )
        assert created.returncode == 0, created.stderr[-2000:]

        def backfill_done() -> list[dict] | None:
            found = runs(metadata_db, "custval_nightly", "backfill__")
            if len(found) == days and all(r["state"] in ("success", "failed") for r in found):
                return found
            return None

        done = wait_for("the backfill runs to finish", backfill_done, 900, [log])
        assert all(r["state"] == "success" for r in done), done  # type: ignore[union-attr]
        by_day = sorted(done, key=lambda r: r["logical_date"])  # type: ignore[union-attr]
        # Airflow really ran them side by side: each later run began before the one before it ended
        assert any(
            later["start_date"] < earlier["end_date"] for earlier, later in zip(by_day, by_day[1:])
        ), by_day
    finally:
        left = stop([proc])
    assert left == [], f"standalone left processes behind: {left}"

    # The same days with the CLI, in order, into another warehouse: every table equal.
    reference = tmp_path / "reference"
    res = custval(
        "backfill",
        "--start",
        first.isoformat(),
        "--end",
        last_day.isoformat(),
        "--source",
        str(landing),
        "--warehouse",
        str(reference),
        "--config",
        str(config),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    day = first
    while day <= last_day:
        built, expected = _tables(warehouse, day), _tables(reference, day)
        assert set(built) == set(expected) and len(built) >= 7
        for name in built:
            assert built[name].equals(expected[name]), (day, name)
        day += timedelta(days=1)
