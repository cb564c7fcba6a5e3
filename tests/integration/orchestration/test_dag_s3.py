"""The Airflow DAG with its warehouse on S3 (moto on 127.0.0.1), credentials from a connection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, free_port
from warehouse_helper import NO_PREDICTIONS, Published, views_left

pytestmark = [pytest.mark.slow, pytest.mark.airflow]


@pytest.mark.parametrize("shards", [None, 3])
def test_dag_runs_on_an_s3_warehouse_with_an_aws_connection(
    shards: int | None,
    airflow_home: Path,
    generated_orders,
    s3_warehouse: str,
    s3_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    # The worker's own environment points nowhere; only the connection knows the server.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": s3_env["AWS_ENDPOINT_URL"]},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CUSTVAL_S3", json.dumps(connection))
    monkeypatch.setenv("CUSTVAL_AWS_CONN_ID", "custval_s3")
    config = tmp_path / "cfg.yaml"
    config.write_text(NO_PREDICTIONS)
    source, frame, last_day = generated_orders
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("custval_nightly")
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={
            "source": str(source),
            "warehouse": s3_warehouse,
            "config": str(config),
            "shards": shards,  # 3: the shard tasks hand their parts on through the store too
        },
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env["AWS_ENDPOINT_URL"])  # the reader's
    wh = Published(s3_warehouse)
    manifest = wh.manifest(last_day)
    assert manifest is not None and manifest["counts"]["rows_in"] == frame.height
    assert (manifest.get("sharding") or {}).get("shards") == shards
    assert manifest["tables"]["customer_rfm"]["path"].startswith(f"{s3_warehouse}/marts/")
    rfm = wh.table("customer_rfm", last_day)
    assert rfm.height == frame.filter(pl.col("status") == "completed")["customer_id"].n_unique()
    assert wh.files("_work") == []  # the work handed between tasks is gone with the run
    assert not [f for f in wh.files("_locks") if f.endswith(".lease")]
    assert views_left() == []
    from pipelines.orchestration.tasks import asset_extra, mart_assets

    assert (
        asset_extra(
            {"context": {"warehouse": "/tmp/view", "remote": s3_warehouse, "snapshot_date": "x"}}
        )["warehouse"]
        == s3_warehouse
    )
    assert mart_assets(s3_warehouse)[0].uri == f"{s3_warehouse}/marts/customer_rfm"
