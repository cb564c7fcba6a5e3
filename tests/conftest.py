"""Shared test set-up.

Airflow reads its configuration when first imported, so the temporary AIRFLOW_HOME (with
examples off and the dags folder pointed at `dags/`) is set here, at import time, before any
test module can import airflow. The metadata DB is migrated once per session, only when a
test asks for it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LAYERS = ("unit", "integration", "e2e")  # tests/<layer>/..., each a marker: `pytest -m unit`


FIRST = (  # longest
    "tests/e2e/test_airflow_scheduler.py",
    "tests/e2e/test_airflow_celery.py",
    "tests/e2e/test_publish_crash.py",
    "tests/e2e/test_publish_crash_s3.py",
    "tests/e2e/test_object_warehouse.py",
    "tests/e2e/test_object_warehouse_incremental.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its layer, from the folder it lives in; end-to-end tests (each
    runs the CLI or Airflow as a subprocess) are also `slow`. Then order the longest first:
    pytest-xdist hands files to its workers in this order, so the long ones do not end the
    run on one worker while the other idles."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if parts and parts[0] == "e2e":
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).relative_to(REPO).as_posix()
        if path in FIRST:
            return FIRST.index(path)
        return len(FIRST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the order within each rank stays


def require(available: bool, what: str) -> None:
    """Skip a test whose resource (../shared, PostgreSQL, mounts) is missing -- except in CI
    (CI=true), where a missing resource is a failure: CI never passes by skipping."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI=true: the test must run here)")
    pytest.skip(what)


def assert_money(got: Any, want: Any, where: str = "", rel: float = 1e-9) -> None:
    """A published number against an independent computation of it.

    Money is published as DECIMAL rounded to its scale (half away from zero), so a DECIMAL may
    be off the exact value by half a unit of its last place (0.005 for DECIMAL(18,2)) and no
    more; a DOUBLE must agree within `rel`.
    """
    assert got is not None and want is not None, f"{where}: {got} vs {want}"
    if isinstance(got, Decimal):
        half = 0.5 * 10.0 ** int(got.as_tuple().exponent)
        assert abs(float(got) - float(want)) <= half * (1 + 1e-9) + abs(float(want)) * 1e-12, (
            f"{where}: published {got} is not {want} rounded to {-int(got.as_tuple().exponent)} places"
        )
    else:
        assert float(got) == pytest.approx(float(want), rel=rel, abs=rel), where


def money_as_float(frame: pl.DataFrame) -> pl.DataFrame:
    """A published frame with its DECIMAL (money) columns as Float64, to compute with."""
    return frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="custval-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """A temporary AIRFLOW_HOME with a migrated SQLite metadata DB."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _AIRFLOW_HOME


# ------------------------------------------------------------------------------------------
# Orders


ORDER_COLUMNS = ["order_id", "customer_id", "order_ts", "amount", "currency", "status"]


def write_csv(path: Path, rows: list[tuple], columns: list[str] | None = None) -> Path:
    """A CSV of text rows as a spreadsheet would write them (fields with commas quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns or ORDER_COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path


@pytest.fixture
def orders_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write hand-built orders: rows of (order_id, customer_id, order_ts, amount, currency, status)."""

    def make(rows: list[tuple], name: str = "orders.csv", columns: list[str] | None = None) -> Path:
        return write_csv(tmp_path / "source" / name, rows, columns)

    return make


@pytest.fixture(scope="session")
def generated_orders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame, date]:
    """A small generated order history as CSV, its frame, and its last day."""
    from pipelines.tools.generate import simulate_orders, write_orders

    frame = simulate_orders(20_000, seed=11, start=date(2024, 1, 1), days=365)
    path = write_orders(frame, tmp_path_factory.mktemp("generated") / "orders.csv", "csv")
    return path, frame, frame["order_ts"].max().date()  # type: ignore[union-attr]


@pytest.fixture
def run_pipeline(tmp_path: Path) -> Callable[..., dict]:
    """Run the whole pipeline in-process; returns the manifest."""
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    def run(
        source: Path | str,
        as_of: str | date,
        warehouse: Path | None = None,
        config: Path | None = None,
    ) -> dict:
        ctx = RunContext.create(
            source=str(source),
            snapshot_date=as_of,
            warehouse=warehouse or tmp_path / "warehouse",
            config_path=str(config) if config else None,
        )
        return run_all(ctx)

    return run


# ------------------------------------------------------------------------------------------
# An S3 server on 127.0.0.1: moto_server as a subprocess (its in-process threaded mode can
# hang under DuckDB), one per test session (per xdist worker), a fresh bucket per test.


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server started for this session."""
    import shutil
    import time
    import urllib.request

    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    require(Path(exe).is_file(), "moto_server is not installed (moto[s3] is in the dev group)")
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"moto_server did not start: {log.read()[-2000:]!r}")
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


S3_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CUSTVAL_SCRATCH",
)


@pytest.fixture
def s3_env(s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS environment of the test server (also for subprocesses: it is in os.environ)."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "CUSTVAL_SCRATCH": str(tmp_path / "scratch"),
    }
    for key in S3_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def new_bucket(endpoint: str) -> str:
    import uuid

    import boto3

    name = f"custval-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_warehouse(s3_env: dict[str, str]) -> str:
    """`s3://<a fresh bucket>/warehouse` on the test server."""
    return f"s3://{new_bucket(s3_env['AWS_ENDPOINT_URL'])}/warehouse"
