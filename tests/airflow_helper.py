"""Airflow's own processes for the end-to-end tests: a fresh metadata database, the `airflow`
command, waiting on a condition with the logs at hand, and stopping a process group whole."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import require

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def new_metadata_db() -> Iterator[str]:
    """A new, empty PostgreSQL database for Airflow's metadata; dropped afterwards (with
    `yield from` in a fixture)."""
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


def query(db: str, sql: str) -> list[dict[str, Any]]:
    """Rows of one query against a metadata database, as dicts."""
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def airflow(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """One `airflow` command, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A long-running `airflow` process in its own process group, its output in `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tails(logs: list[Path], size: int = 3000) -> str:
    return "\n".join(
        f"--- {log.name}:\n{log.read_text(errors='replace')[-size:]}"
        for log in logs
        if log.exists()
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: list[Path]) -> Any:
    """Poll `check` until it returns something true; on timeout fail with the logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; logs:\n{tails(logs)}")


def healthy(port: int, *components: str) -> bool:
    """The API server answers and reports each component healthy."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2
        ) as r:
            health = json.loads(r.read())
    except Exception:  # noqa: BLE001
        return False
    return all(health.get(c, {}).get("status") == "healthy" for c in components)


def runs(db: str, dag_id: str, prefix: str) -> list[dict[str, Any]]:
    """The DAG's runs whose id starts with `prefix`, read from the metadata database.

    Not `airflow dags list-runs`: each `airflow` command is a Python process importing Airflow
    (seconds of CPU), and a test polling every 2 s for minutes took a core from the tasks it
    waited for."""
    return query(
        db,
        "select run_id, state, logical_date, start_date, end_date from dag_run "
        f"where dag_id = '{dag_id}' and run_id like '{prefix}%' order by logical_date",
    )


def parsed(db: str, dag_id: str) -> bool:
    """The DAG processor has serialized the DAG (false until the database is migrated)."""
    try:
        return bool(query(db, f"select 1 from serialized_dag where dag_id = '{dag_id}'"))
    except Exception:  # noqa: BLE001 -- no table yet: `airflow standalone` is still migrating
        return False


def alive(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """Stop each process's group (SIGINT, then SIGTERM, then SIGKILL); the pids left behind."""
    groups = [p.pid for p in procs]  # each leads its own group (start_new_session)
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        live = [g for g in groups if alive(g)]
        if not live:
            break
        for pgid in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while any(alive(g) for g in live) and time.monotonic() < deadline:
            time.sleep(0.5)
    for p in procs:
        p.wait(timeout=10)
    return [pid for g in groups for pid in alive(g)]
