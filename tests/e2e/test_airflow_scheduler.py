"""The DAG under a real scheduler: `airflow standalone` in a temporary AIRFLOW_HOME.

The metadata database is a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and
the executor LocalExecutor: the README's production profile. (On SQLite, `airflow backfill create`
fails now and then with "database is locked" while the scheduler writes.) The test starts standalone in its own process group, waits for the API, unpauses and
triggers custval_nightly for the first day of a landing directory, then `airflow backfill
create` -- without extra flags, so Airflow starts the backfill's runs in parallel -- for the
following days, and checks that every snapshot equals a `custval backfill` of the same days
run in order. (Unpausing also makes the scheduler start the latest scheduled run, for
yesterday; it is a first snapshot too and may ingest the folders before the backfill does,
which is one more order of events that must give the same snapshots.) Then it shuts every process down by its process group (SIGINT, then SIGTERM,
then SIGKILL), checking that none is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, require

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def metadata_db() -> Iterator[str]:
    """A new, empty PostgreSQL database for Airflow's metadata; dropped after the test."""
    import secrets

    import adbc_driver_postgresql.dbapi as pg

    name = f"custval_airflow_{secrets.token_hex(4)}"
    try:
        admin = pg.connect(ADMIN, autocommit=True)
    except Exception as exc:
        require(False, f"PostgreSQL not reachable at {ADMIN}: {exc}")
        raise
    with admin, admin.cursor() as cur:
        cur.execute(f"create database {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with pg.connect(ADMIN, autocommit=True) as admin, admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def _airflow(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait(what: str, check, timeout: float, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(
        f"timed out waiting for {what}; standalone log tail:\n{log.read_text()[-4000:]}"
    )


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
    port = _free_port()
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
        "CUSTVAL_SOURCE": str(landing),
        "CUSTVAL_WAREHOUSE": str(warehouse),
        "CUSTVAL_WAIT_POKE_SECONDS": "5",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow`
    }
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pgid = os.getpgid(proc.pid)
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2
                ) as r:
                    return json.loads(r.read())["scheduler"]["status"] == "healthy"
            except Exception:  # noqa: BLE001
                return False

        def runs(prefix: str) -> list[dict]:
            listed = _airflow(env, "dags", "list-runs", "custval_nightly", "-o", "json")
            lines = [
                line for line in listed.stdout.splitlines() if line.startswith("[")
            ]  # skip log lines
            return [
                r
                for r in (json.loads(lines[-1]) if listed.returncode == 0 and lines else [])
                if r["run_id"].startswith(prefix)
            ]

        _wait("the API and scheduler", healthy, 240, log)
        _wait(
            "the DAG to be parsed",
            lambda: "custval_nightly" in _airflow(env, "dags", "list").stdout,
            180,
            log,
        )
        conf = json.dumps({"as_of": first.isoformat(), "config": str(config)})
        assert _airflow(env, "dags", "unpause", "custval_nightly").returncode == 0
        triggered = _airflow(
            env,
            "dags",
            "trigger",
            "custval_nightly",
            "--conf",
            conf,
            "--run-id",
            "pytest_manual_run",
        )
        assert triggered.returncode == 0, triggered.stderr[-2000:]

        def manual_done() -> str | None:
            state = next((r["state"] for r in runs("pytest_manual")), None)
            return state if state in ("success", "failed") else None

        state = _wait("the triggered run to finish", manual_done, 600, log)
        assert state == "success", log.read_text()[-4000:]

        # `airflow backfill create` queues one run per day and starts them together (it ignores
        # max_active_runs); each waits for the day before, so the result is the in-order one.
        d1, d2 = first + timedelta(days=1), last_day
        created = _airflow(
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
            found = runs("backfill__")
            if len(found) == days and all(r["state"] in ("success", "failed") for r in found):
                return found
            return None

        done = _wait("the backfill runs to finish", backfill_done, 900, log)
        assert all(r["state"] == "success" for r in done), done  # type: ignore[union-attr]
        by_day = sorted(done, key=lambda r: r["logical_date"])  # type: ignore[union-attr]
        # Airflow really ran them side by side: each later run began before the one before it ended
        assert any(
            later["start_date"] < earlier["end_date"] for earlier, later in zip(by_day, by_day[1:])
        ), by_day
    finally:
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if not _alive(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while _alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.5)
        proc.wait(timeout=10)
    assert _alive(pgid) == [], "standalone left processes behind"

    # The same days with the CLI, in order, into another warehouse: every table equal.
    reference = tmp_path / "reference"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
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
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    day = first
    while day <= last_day:
        built, expected = _tables(warehouse, day), _tables(reference, day)
        assert set(built) == set(expected) and len(built) >= 7
        for name in built:
            assert built[name].equals(expected[name]), (day, name)
        day += timedelta(days=1)
