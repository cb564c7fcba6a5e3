"""The Airflow DAG: it imports cleanly and lightly, is wired as designed, and runs for real."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, require
from polars.testing import assert_frame_equal

DAG_FILE = REPO / "dags" / "custval_nightly.py"
HEAVY = (
    "great_expectations",
    "polars",
    "duckdb",
    "pandas",
    "scipy",
    "pipelines.validate.validate",
    "pipelines.transform.marts",
)


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.mark.slow
def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert {"custval_nightly", "custval_bi_refresh"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_file", ["custval_nightly.py", "custval_bi_refresh.py"])
@pytest.mark.slow
def test_dag_file_has_no_heavy_top_level_imports(dag_file: str) -> None:
    """Parsing must stay fast: the DAG file imports only Airflow; the work is imported in tasks."""
    code = (
        "import runpy, sys, json; runpy.run_path(sys.argv[1]); "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "dags" / dag_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_structure(dagbag) -> None:
    dag = dagbag.get_dag("custval_nightly")
    order = [
        "wait_for_previous_day",
        "extract",
        "validate",
        "stage",
        "plan_shards",
        "shard_phase_0",
        "global_phase_1",
        "shard_phase_2",
        "global_phase_3",
        "build_marts",
        "publish",
        "write_manifest",
        "finish",
    ]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in zip(order, order[1:]):
        # the shard phases and the marts read the staged run's context, and wait for the phase before
        extra = {"stage"} if order.index(downstream) > order.index("plan_shards") else set()
        extra |= {"plan_shards"} if downstream.startswith("shard_phase") else set()  # its ids
        if downstream == "build_marts" or "phase" in downstream:
            assert dag.get_task(downstream).upstream_task_ids == {upstream} | extra, downstream
        else:
            assert dag.get_task(downstream).upstream_task_ids == {upstream}, downstream

    def mapped(task_id: str) -> bool:
        return "Mapped" in type(dag.get_task(task_id)).__name__

    assert mapped("shard_phase_0") and mapped("shard_phase_2")  # .expand() over shard ids
    assert not mapped("global_phase_1") and not mapped("global_phase_3")
    from pipelines.config import load_config
    from pipelines.orchestration.tasks import SHARD_PHASES
    from pipelines.predictive.predictive import Predictive
    from pipelines.transform import marts
    from pipelines.transform.sharded import plan

    # the DAG's phase tasks are the phases the SQL models need
    phases = plan(marts.load_models(), Predictive(load_config()).python_models())
    assert tuple(p.kind for p in phases) == SHARD_PHASES
    assert dag.max_active_runs == 1
    assert {
        "source",
        "source_kind",
        "table",
        "warehouse",
        "as_of",
        "config",
        "allow_partial_day",
        "shards",
    } <= set(dag.params)
    assert (
        dag.params["allow_partial_day"] is False and dag.params["as_of"] is None
    )  # default: the day just ended
    assert dag.params["shards"] is None  # default: the config's sources.shards (1)
    sensor = dag.get_task("wait_for_previous_day")
    assert sensor.mode == "reschedule"  # waits for the day before without holding a worker slot
    assert all(dag.get_task(t).doc_md for t in order)  # task docstrings become task docs
    extract = dag.get_task("extract")
    assert (
        extract.retries == 2
        and extract.retry_exponential_backoff
        and extract.execution_timeout is not None
    )
    assert extract.on_failure_callback and dag.on_failure_callback
    outlets = {
        a.name for a in dag.get_task("write_manifest").outlets
    }  # the commit makes them visible
    assert outlets == {
        f"custval_{t}"
        for t in (
            "customer_rfm",
            "customer_clv",
            "cohort_retention",
            "kpi_summary",
            "segment_summary",
            "segment_transitions",
            "segment_transition_summary",
            "customer_journey",
            "journey_summary",
            "model_fit",
            "model_backtest",
        )
    }
    bi = dagbag.get_dag("custval_bi_refresh")
    assert type(bi.timetable.asset_condition).__name__ == "AssetAll"
    assert {a.name for a in bi.timetable.asset_condition.objects} == outlets
    # The run for day D covers [D 00:00, D+1 00:00) UTC and becomes due at 02:00 UTC on D+1.
    from pipelines.orchestration.timetable import SettledDailyTimetable

    assert isinstance(dag.timetable, SettledDailyTimetable) and dag.timetable.settle_hours == 2


@pytest.mark.airflow
@pytest.mark.slow
def test_dag_runs_for_real(dagbag, generated_orders, tmp_path: Path) -> None:
    source, frame, last_day = generated_orders
    wh = tmp_path / "wh"
    dag = dagbag.get_dag("custval_nightly")
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={"source": str(source), "warehouse": str(wh)},
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    # unsharded, no shard ids: the phase tasks are skipped (no process), the marts task runs
    states = {
        ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower() for ti in run.get_task_instances()
    }
    phases = {t: s for t, s in states.items() if "phase" in t}
    assert set(phases) >= {"shard_phase_0", "global_phase_1", "shard_phase_2", "global_phase_3"}
    assert set(phases.values()) == {"skipped"}, phases
    assert {s for t, s in states.items() if t not in phases} == {"success"}, states
    snapshot = last_day.isoformat()
    manifest = json.loads((wh / "runs" / f"snapshot_date={snapshot}" / "manifest.json").read_text())
    assert manifest["counts"]["rows_in"] == frame.height
    assert set(manifest["stages"]) == {"extract", "validate", "stage", "marts", "publish"}
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={snapshot}")
    buyers = frame.filter(pl.col("status") == "completed")["customer_id"].n_unique()
    assert rfm.height == buyers
    assert rfm["order_count"].sum() == frame.filter(pl.col("status") == "completed").height


def test_the_timetable_runs_each_day_at_two() -> None:
    from airflow.timetables.base import DataInterval, TimeRestriction

    from pipelines.orchestration.timetable import SettledDailyTimetable

    tt = SettledDailyTimetable(settle_hours=2)
    day = datetime(2024, 5, 1, tzinfo=UTC)
    info = tt.next_dagrun_info(
        last_automated_data_interval=DataInterval(day - timedelta(days=1), day),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.data_interval.start == day and info.data_interval.end == day + timedelta(days=1)
    assert info.logical_date == day  # snapshot 2024-05-01
    assert info.run_after == datetime(2024, 5, 2, 2, tzinfo=UTC)  # 02:00 UTC the day after
    assert SettledDailyTimetable.deserialize(tt.serialize()).settle_hours == 2


def test_snapshot_rule() -> None:
    from datetime import date

    from pipelines.orchestration.tasks import snapshot_for

    assert snapshot_for(None, datetime(2024, 5, 1, 2, tzinfo=UTC), None) == date(2024, 5, 1)
    assert snapshot_for("2024-04-15", datetime(2024, 5, 1, 2, tzinfo=UTC), None) == date(
        2024, 4, 15
    )
    assert snapshot_for(None, None, datetime(2024, 5, 2, 9, tzinfo=UTC)) == date(2024, 5, 1)
    # the data interval wins over the logical date (a UI trigger's logical date is "now")
    now = datetime(2024, 5, 2, 21, 7, tzinfo=UTC)
    assert snapshot_for(None, now, now, datetime(2024, 5, 1, tzinfo=UTC)) == date(2024, 5, 1)


def test_a_manual_run_builds_a_day_that_has_ended() -> None:
    import pendulum

    from pipelines.orchestration.timetable import SettledDailyTimetable

    tt = SettledDailyTimetable()
    ui = tt.infer_manual_data_interval(run_after=pendulum.datetime(2024, 5, 2, 21, 7, tz="UTC"))
    assert (ui.start, ui.end) == (
        pendulum.datetime(2024, 5, 1, tz="UTC"),
        pendulum.datetime(2024, 5, 2, tz="UTC"),
    )
    named = tt.infer_manual_data_interval(
        run_after=pendulum.datetime(2024, 4, 15, tz="UTC")
    )  # `-l 2024-04-15`
    assert (named.start, named.end) == (
        pendulum.datetime(2024, 4, 15, tz="UTC"),
        pendulum.datetime(2024, 4, 16, tz="UTC"),
    )


@pytest.mark.airflow
@pytest.mark.slow
def test_a_failed_task_is_retried_and_the_run_recovers(
    dagbag, generated_orders, tmp_path: Path, monkeypatch
) -> None:
    """Inject one failure into the validate task: the retry succeeds and the run completes."""
    from datetime import timedelta

    import pipelines.run.pipeline as pipeline

    source, frame, last_day = generated_orders
    wh = tmp_path / "wh"
    calls = {"validate": 0}
    real = pipeline.STAGES["validate"]

    def flaky(ctx):
        calls["validate"] += 1
        if calls["validate"] == 1:
            raise OSError("injected: the disk hiccupped")
        return real(ctx)

    monkeypatch.setitem(pipeline.STAGES, "validate", flaky)
    dag = dagbag.get_dag("custval_nightly")
    for t in dag.tasks:
        monkeypatch.setattr(t, "retry_delay", timedelta(seconds=0))
        monkeypatch.setattr(t, "retry_exponential_backoff", False)
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={"source": str(source), "warehouse": str(wh)},
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert calls["validate"] == 2
    manifest = json.loads((wh / "runs" / f"snapshot_date={last_day}" / "manifest.json").read_text())
    assert manifest["counts"]["rows_in"] == frame.height
    assert not list((wh / "_locks").glob("*.lease"))  # the finish task released the lease


@pytest.fixture
def webhook():
    """A local HTTP endpoint recording what is posted to it."""
    import http.server
    import threading

    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


@pytest.mark.airflow
@pytest.mark.slow
def test_a_failed_run_alerts_and_releases_its_leases(
    dagbag, generated_orders, tmp_path: Path, monkeypatch, webhook
) -> None:
    import pipelines.run.pipeline as pipeline

    url, received = webhook
    monkeypatch.setenv("CUSTVAL_ALERT_WEBHOOK", url)
    source, _, last_day = generated_orders
    wh = tmp_path / "wh"

    def broken(ctx):
        raise OSError("injected: the warehouse disk is full")

    monkeypatch.setitem(pipeline.STAGES, "marts", broken)
    dag = dagbag.get_dag("custval_nightly")
    for t in dag.tasks:
        monkeypatch.setattr(t, "retries", 0)
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={"source": str(source), "warehouse": str(wh)},
    )
    assert str(run.state) in ("failed", "DagRunState.FAILED")
    texts = [r["text"] for r in received]
    assert any(
        "task build_marts failed" in t and "the warehouse disk is full" in t and str(last_day) in t
        for t in texts
    ), texts
    assert not list((wh / "_locks").glob("*.lease"))  # the run's failure callback released it
    assert not (wh / "marts").exists()
    assert not any((wh / "_work").iterdir())  # and deleted its work dir (landed rows, PII)


@pytest.mark.airflow
@pytest.mark.slow
def test_a_degraded_run_publishes_and_alerts(
    dagbag, generated_orders, tmp_path: Path, monkeypatch, webhook
) -> None:
    """A model that cannot be fitted: the DAG run is green, the tables published, the alert sent."""
    url, received = webhook
    monkeypatch.setenv("CUSTVAL_ALERT_WEBHOOK", url)
    source, _, last_day = generated_orders
    wh = tmp_path / "wh"
    config = tmp_path / "config.yaml"
    config.write_text("predictive:\n  max_iterations: 1\n")  # the optimiser cannot converge
    dag = dagbag.get_dag("custval_nightly")
    run = dag.test(
        logical_date=datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC),
        run_conf={"source": str(source), "warehouse": str(wh), "config": str(config)},
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    manifest = json.loads((wh / "runs" / f"snapshot_date={last_day}" / "manifest.json").read_text())
    assert manifest["status"] == "degraded"
    rfm = wh / "marts" / "customer_rfm" / f"snapshot_date={last_day}" / "part-0.parquet"
    assert pl.read_parquet(rfm).height > 0
    texts = [r["text"] for r in received]
    assert any("DEGRADED" in t and str(last_day) in t and "did not converge" in t for t in texts)
    assert all(r.get("status") == "degraded" for r in received)


@pytest.mark.airflow
@pytest.mark.slow
def test_dag_reads_postgres_through_an_airflow_connection(
    dagbag, tmp_path: Path, monkeypatch
) -> None:
    """source = conn:<id>: the URI comes from the Airflow connection, never from XCom."""
    import secrets

    import adbc_driver_postgresql.dbapi as pg

    schema = f"custval_dag_{secrets.token_hex(4)}"
    try:
        admin = pg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True)
    except Exception as exc:
        require(False, f"PostgreSQL not reachable: {exc}")
        raise
    with admin, admin.cursor() as cur:
        cur.execute(f"create schema {schema}")
        cur.execute(
            f"create table {schema}.orders (order_id text, customer_id text, order_ts timestamptz, amount numeric(12,2), currency text, updated_at timestamptz)"
        )
        cur.execute(
            f"insert into {schema}.orders select 'O' || g, 'C' || (g % 7), timestamptz '2024-05-01 10:00+00', 10 + g, 'USD', now() from generate_series(1, 60) g"
        )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CUSTVAL_ORDERS_DB", "postgresql://postgres@127.0.0.1:5432/test"
    )
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("predictive:\n  enabled: false\nsources:\n  postgres:\n    lag_seconds: 0\n")
    wh = tmp_path / "wh"
    try:
        run = dagbag.get_dag("custval_nightly").test(
            logical_date=datetime(2024, 5, 1, tzinfo=UTC),
            run_conf={
                "source": "conn:custval_orders_db",
                "table": f"{schema}.orders",
                "warehouse": str(wh),
                "config": str(cfg),
            },
        )
    finally:
        with (
            pg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(f"drop schema {schema} cascade")
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    manifest = json.loads((wh / "runs" / "snapshot_date=2024-05-01" / "manifest.json").read_text())
    assert manifest["source_kind"] == "postgres" and manifest["counts"]["rows_in"] == 60
    assert manifest["source"] == f"conn:custval_orders_db#{schema}.orders"  # no URI, no password
    assert pl.read_parquet(wh / "marts" / "customer_rfm" / "snapshot_date=2024-05-01").height == 7


@pytest.mark.airflow
@pytest.mark.slow
def test_a_run_of_a_day_that_has_not_ended_fails_at_once(
    dagbag, generated_orders, tmp_path: Path
) -> None:
    """A manual run for today (UTC) is refused by the first task, without retries."""
    source, _, _ = generated_orders
    wh = tmp_path / "wh"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    dag = dagbag.get_dag("custval_nightly")
    run = dag.test(logical_date=today, run_conf={"source": str(source), "warehouse": str(wh)})
    assert str(run.state) in ("failed", "DagRunState.FAILED")
    assert not (wh / "marts").exists()
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    sensor = tis["wait_for_previous_day"]
    assert (
        str(sensor.state).endswith("failed") and sensor.try_number == 1
    )  # no retries for a date that cannot work
    assert not str(tis["extract"].state).endswith("success")


@pytest.mark.airflow
@pytest.mark.slow
@pytest.mark.parametrize("orders", ["sample", "generated"])
def test_dag_runs_sharded_with_mapped_shard_tasks(
    dagbag, generated_orders, tmp_path: Path, orders: str
) -> None:
    """The `shards` param: one mapped task per shard and phase; the same tables as unsharded.

    The generated orders are fitted (in the global phase's own task); the sample is not.
    """
    from conftest import write_csv
    from integration.transform.test_marts import ROWS

    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    config = tmp_path / "config.yaml"
    if orders == "sample":
        source, day = write_csv(tmp_path / "source" / "orders.csv", ROWS), date(2024, 3, 31)
        config.write_text("predictive:\n  enabled: false\n")
    else:
        source, _, day = generated_orders
        config.write_text("{}\n")
    wh = tmp_path / "wh"
    dag = dagbag.get_dag("custval_nightly")
    run = dag.test(
        logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC),
        run_conf={
            "source": str(source),
            "warehouse": str(wh),
            "config": str(config),
            "shards": 3,
            "table": None,  # the module's DAG object keeps an earlier dag.test's conf (PostgreSQL)
        },
    )
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    mapped = [ti for ti in run.get_task_instances() if ti.task_id.startswith("shard_phase_")]
    assert sorted((ti.task_id, ti.map_index) for ti in mapped) == [
        (f"shard_phase_{p}", k) for p in (0, 2) for k in range(3)
    ]
    manifest_path = wh / "runs" / f"snapshot_date={day.isoformat()}" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sharding"]["shards"] == 3
    unsharded = run_all(
        RunContext.create(
            source=str(source),
            snapshot_date=day,
            warehouse=tmp_path / "wh_1",
            config_path=str(config),
        )
    )
    assert manifest["warnings"] == unsharded["warnings"]  # the fits' warnings reach the manifest
    for name, facts in unsharded["tables"].items():
        one = pl.read_parquet(Path(facts["path"]))
        many = pl.read_parquet(Path(manifest["tables"][name]["path"]))
        if name == "model_fit":
            one, many = one.drop("seconds"), many.drop("seconds")
            assert orders == "sample" or one.filter(pl.col("status") == "ok").height >= 7
        columns = [c for c, t in one.schema.items() if not isinstance(t, pl.List)]
        assert_frame_equal(one.sort(columns), many.sort(columns), rel_tol=1e-9, abs_tol=0.0)
