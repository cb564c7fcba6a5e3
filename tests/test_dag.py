"""The Airflow DAG: it imports cleanly and lightly, is wired as designed, and runs for real."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "custval_nightly.py"
HEAVY = ("great_expectations", "polars", "duckdb", "pandas", "scipy", "pipelines.validate", "pipelines.marts")


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "custval_nightly" in dagbag.dag_ids


def test_dag_file_has_no_heavy_top_level_imports() -> None:
    """Parsing must stay fast: the DAG file imports only Airflow; the work is imported in tasks."""
    code = (
        "import runpy, sys, json; runpy.run_path(sys.argv[1]); "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAG_FILE)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_structure(dagbag) -> None:
    dag = dagbag.get_dag("custval_nightly")
    order = ["extract", "validate", "stage", "build_marts", "publish", "write_manifest"]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in zip(order, order[1:]):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.max_active_runs == 1
    assert {"source", "warehouse", "as_of", "config"} <= set(dag.params)
    assert all(dag.get_task(t).doc_md for t in order)  # task docstrings become task docs
    # Daily at 02:00 UTC; the run for day D covers [D 02:00, D+1 02:00).
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 2 * * *"
    assert str(dag.timetable.timezone) in ("UTC", "Timezone('UTC')")


@pytest.mark.airflow
def test_dag_runs_for_real(dagbag, generated_orders, tmp_path: Path) -> None:
    source, frame, last_day = generated_orders
    wh = tmp_path / "wh"
    dag = dagbag.get_dag("custval_nightly")
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={"source": str(source), "warehouse": str(wh)},
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    snapshot = last_day.isoformat()
    manifest = json.loads((wh / "runs" / f"snapshot_date={snapshot}" / "manifest.json").read_text())
    assert manifest["counts"]["rows_in"] == frame.height
    assert set(manifest["stages"]) == {"extract", "validate", "stage", "marts", "publish"}
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={snapshot}")
    buyers = frame.filter(pl.col("status") == "completed")["customer_id"].n_unique()
    assert rfm.height == buyers
    assert rfm["order_count"].sum() == frame.filter(pl.col("status") == "completed").height


def test_snapshot_rule() -> None:
    from datetime import date

    from pipelines.airflow_support import snapshot_for

    assert snapshot_for(None, datetime(2024, 5, 1, 2, tzinfo=UTC), None) == date(2024, 5, 1)
    assert snapshot_for("2024-04-15", datetime(2024, 5, 1, 2, tzinfo=UTC), None) == date(2024, 4, 15)
    assert snapshot_for(None, None, datetime(2024, 5, 2, 9, tzinfo=UTC)) == date(2024, 5, 1)
