"""The DAG under a real scheduler: `airflow standalone` in a temporary AIRFLOW_HOME.

The test starts standalone in its own process group, waits for the API, unpauses and
triggers custval_nightly, waits for the run to succeed, and then shuts every process down by
its process group (SIGINT, then SIGTERM, then SIGKILL), checking that none is left.
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
from datetime import timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def _airflow(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _wait(what: str, check, timeout: float, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; standalone log tail:\n{log.read_text()[-4000:]}")


@pytest.mark.airflow
def test_the_dag_runs_under_a_real_scheduler(generated_orders, tmp_path: Path) -> None:
    source, frame, last_day = generated_orders
    home = tmp_path / "airflow"
    warehouse = tmp_path / "warehouse"
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "CUSTVAL_SOURCE": str(source),
        "CUSTVAL_WAREHOUSE": str(warehouse),
    }
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pgid = os.getpgid(proc.pid)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
                    return json.loads(r.read())["scheduler"]["status"] == "healthy"
            except Exception:  # noqa: BLE001
                return False

        _wait("the API and scheduler", healthy, 240, log)
        _wait("the DAG to be parsed", lambda: "custval_nightly" in _airflow(env, "dags", "list").stdout, 180, log)
        conf = json.dumps({"as_of": last_day.isoformat(), "config": None})
        assert _airflow(env, "dags", "unpause", "custval_nightly").returncode == 0
        triggered = _airflow(env, "dags", "trigger", "custval_nightly", "--conf", conf, "--run-id", "pytest_manual_run")
        assert triggered.returncode == 0, triggered.stderr[-2000:]

        def run_state() -> str | None:
            listed = _airflow(env, "dags", "list-runs", "custval_nightly", "-o", "json")
            lines = [line for line in listed.stdout.splitlines() if line.startswith("[")]  # skip log lines
            runs = json.loads(lines[-1]) if listed.returncode == 0 and lines else []
            state = next((r["state"] for r in runs if r["run_id"] == "pytest_manual_run"), None)
            return state if state in ("success", "failed") else None

        state = _wait("the triggered run to finish", run_state, 600, log)
        assert state == "success", log.read_text()[-4000:]
        manifest = json.loads((warehouse / "runs" / f"snapshot_date={last_day}" / "manifest.json").read_text())
        assert manifest["counts"]["rows_in"] == frame.height
        assert (warehouse / "marts" / "customer_rfm" / f"snapshot_date={last_day}").is_dir()

        # `airflow backfill create` queues one run per day for the scheduler: snapshots D1..D2.
        d1, d2 = last_day - timedelta(days=2), last_day - timedelta(days=1)
        created = _airflow(env, "backfill", "create", "--dag-id", "custval_nightly", "--from-date", d1.isoformat(), "--to-date", d2.isoformat())
        assert created.returncode == 0, created.stderr[-2000:]

        def backfill_done() -> bool:
            listed = _airflow(env, "dags", "list-runs", "custval_nightly", "-o", "json")
            lines = [line for line in listed.stdout.splitlines() if line.startswith("[")]
            runs = [r for r in (json.loads(lines[-1]) if lines else []) if r["run_id"].startswith("backfill__")]
            return len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs) and runs

        runs = _wait("the backfill runs to finish", backfill_done, 600, log)
        assert all(r["state"] == "success" for r in runs), runs  # type: ignore[union-attr]
        for day in (d1, d2):
            built = json.loads((warehouse / "runs" / f"snapshot_date={day}" / "manifest.json").read_text())
            assert built["snapshot_date"] == day.isoformat()
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
