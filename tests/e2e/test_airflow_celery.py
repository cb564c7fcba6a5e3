"""The sharded DAG under a real CeleryExecutor: Redis on 127.0.0.1:6379 as the broker, a fresh
PostgreSQL metadata database (also Celery's result backend), and Airflow's API server,
scheduler, DAG processor and two `airflow celery worker` processes, each started and stopped by
the test in its own process group.

The run is triggered with `shards: 3`, so each shard phase is a task mapped over three shard
ids. Each worker takes one task at a time (concurrency 1; Airflow's Celery config acknowledges
late and prefetches one), so the three shard tasks of a phase, queued together, must spread
over both workers. Each worker reports its own name as the task instance's hostname (the
`[core] hostname_callable` below): every task of the run names one of the two workers, and
both ran shard tasks. The test's own queue keeps it apart from anything else on the Redis
server. The published snapshot then equals an unsharded `custval run` of the same input.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from airflow_helper import (
    airflow,
    healthy,
    new_metadata_db,
    parsed,
    query,
    runs,
    start,
    stop,
    tails,
    wait_for,
)
from conftest import REPO, free_port
from polars.testing import assert_frame_equal
from warehouse_helper import custval

WORKERS = ("custval-worker-1", "custval-worker-2")
HOSTNAME_MODULE = '''
import os
import socket


def hostname() -> str:
    """The worker's name the test gave it; other processes keep their host's name."""
    return os.environ.get("CUSTVAL_TEST_WORKER") or socket.getfqdn()
'''


@pytest.fixture
def metadata_db() -> Iterator[str]:
    yield from new_metadata_db()


@pytest.mark.airflow
@pytest.mark.slow
def test_the_sharded_dag_runs_on_two_celery_workers(
    generated_orders, tmp_path: Path, metadata_db: str
) -> None:
    source, _, day = generated_orders
    config = tmp_path / "cfg.yaml"
    config.write_text("{}\n")  # the models are fitted, in the global phase's task
    warehouse = tmp_path / "warehouse"
    hostmod = tmp_path / "hostmod"
    hostmod.mkdir()
    (hostmod / "custval_test_host.py").write_text(HOSTNAME_MODULE)
    queue = f"custval_{secrets.token_hex(4)}"
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "custval_test_host.hostname",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),  # one for the API and workers
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the run the test triggers
        "CUSTVAL_WAREHOUSE": str(warehouse),
        "CUSTVAL_SOURCE": str(source),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(hostmod), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    migrated = airflow(env, "db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    logs = {
        name: tmp_path / f"{name}.log"
        for name in ("api-server", "scheduler", "dag-processor", *WORKERS)
    }
    procs = [
        start(env, logs["api-server"], "api-server", "--port", str(port)),
        start(env, logs["scheduler"], "scheduler"),
        start(env, logs["dag-processor"], "dag-processor"),
    ]
    for name in WORKERS:
        procs.append(
            start(
                {**env, "CUSTVAL_TEST_WORKER": name},
                logs[name],
                "celery",
                "worker",
                "--queues",
                queue,
                "--concurrency",
                "1",
                "--celery-hostname",
                f"{name}@%h",
            )
        )
    all_logs = list(logs.values())
    run_id = "pytest_celery_run"
    try:
        wait_for("the API and scheduler", lambda: healthy(port, "scheduler"), 240, all_logs)
        wait_for(
            "the DAG to be parsed", lambda: parsed(metadata_db, "custval_nightly"), 180, all_logs
        )
        assert airflow(env, "dags", "unpause", "custval_nightly").returncode == 0
        conf = {"as_of": day.isoformat(), "config": str(config), "shards": 3}
        triggered = airflow(
            env,
            "dags",
            "trigger",
            "custval_nightly",
            "--conf",
            json.dumps(conf),
            "--run-id",
            run_id,
        )
        assert triggered.returncode == 0, triggered.stderr[-2000:]

        def finished() -> str | None:
            state = next((r["state"] for r in runs(metadata_db, "custval_nightly", run_id)), None)
            return state if state in ("success", "failed") else None

        state = wait_for("the run to finish", finished, 900, all_logs)
        tis = query(
            metadata_db,
            "select task_id, map_index, state, hostname, queue from task_instance "
            f"where dag_id = 'custval_nightly' and run_id = '{run_id}'",
        )
        assert state == "success", f"{tis}\n{tails(all_logs)}"
    finally:
        left = stop(procs)
    assert left == [], f"processes left behind: {left}"

    # every task ran on one of the two Celery workers, from the test's queue
    assert tis and all(ti["state"] == "success" for ti in tis), tis
    assert {ti["hostname"] for ti in tis} <= set(WORKERS), tis
    assert {ti["queue"] for ti in tis} == {queue}, tis
    shard_tis = [ti for ti in tis if ti["task_id"].startswith("shard_phase_")]
    assert sorted((ti["task_id"], ti["map_index"]) for ti in shard_tis) == [
        (f"shard_phase_{p}", k) for p in (0, 2) for k in range(3)
    ], shard_tis
    assert {ti["hostname"] for ti in shard_tis} == set(WORKERS), shard_tis
    for name in WORKERS:  # and each worker's log shows it took work from the queue
        assert "Executing workload in Celery" in logs[name].read_text(errors="replace"), name

    # the published snapshot equals an unsharded local run of the same input
    manifest = json.loads(
        (warehouse / "runs" / f"snapshot_date={day.isoformat()}" / "manifest.json").read_text()
    )
    assert manifest["sharding"]["shards"] == 3
    reference = tmp_path / "reference"
    res = custval(
        "run",
        "--source",
        str(source),
        "--as-of",
        day.isoformat(),
        "--warehouse",
        str(reference),
        "--config",
        str(config),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    tables = sorted(p.name for p in (reference / "marts").iterdir())
    assert tables == sorted(p.name for p in (warehouse / "marts").iterdir())
    assert "model_fit" in tables and len(tables) >= 7
    for name in tables:
        one = pl.read_parquet(reference / "marts" / name / f"snapshot_date={day.isoformat()}")
        many = pl.read_parquet(warehouse / "marts" / name / f"snapshot_date={day.isoformat()}")
        if name == "model_fit":
            one, many = one.drop("seconds"), many.drop("seconds")
        columns = [c for c, t in one.schema.items() if not isinstance(t, pl.List)]
        assert_frame_equal(one.sort(columns), many.sort(columns), rel_tol=1e-9, abs_tol=0.0)
