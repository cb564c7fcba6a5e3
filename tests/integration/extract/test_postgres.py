"""The PostgreSQL source against the real server on 127.0.0.1:5432 (trust auth, database test).

Each test gets its own schema; the pipeline reads as a role that can only SELECT.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import require

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
READER = "custval_reader"
NO_PREDICTIONS = "predictive:\n  enabled: false\n"


def _admin():
    import adbc_driver_postgresql.dbapi as pg

    try:
        return pg.connect(ADMIN, autocommit=True)
    except Exception as exc:
        require(False, f"PostgreSQL not reachable at {ADMIN}: {exc}")
        raise


def sql(*statements: str) -> None:
    with _admin() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"custval_t_{secrets.token_hex(4)}"
    sql(
        f"do $$ begin if not exists (select from pg_roles where rolname = '{READER}') "
        f"then create role {READER} login; end if; end $$",
        f"create schema {name}",
        f"""create table {name}.orders (
            order_id text primary key, customer_id text not null, order_ts timestamptz not null,
            amount numeric(12, 2) not null, currency text not null, status text,
            updated_at timestamptz not null)""",
        f"grant usage on schema {name} to {READER}",
        f"grant select on all tables in schema {name} to {READER}",
        f"alter default privileges in schema {name} grant select on tables to {READER}",
    )
    yield name
    sql(f"drop schema {name} cascade")


def insert(schema: str, rows: list[tuple]) -> None:
    """Rows of (order_id, customer_id, order_ts, amount); updated_at is the server's clock,
    as an application writing the table would set it."""
    values = ", ".join(
        f"('{o}', '{c}', '{ts}', {a}, 'USD', 'completed', now())" for o, c, ts, a in rows
    )
    sql(f"insert into {schema}.orders values {values}")


def config(tmp_path: Path, retries: int = 0) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        NO_PREDICTIONS
        + f"sources:\n  postgres:\n    lag_seconds: 0\n    retries: {retries}\n    backoff_seconds: 0.1\n"
    )
    return path


def run(schema: str, day: str, wh: Path, cfg: Path, table: str = "orders") -> dict:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    ctx = RunContext.create(
        source=f"postgresql://{READER}@127.0.0.1:5432/test",
        table=f"{schema}.{table}",
        snapshot_date=day,
        warehouse=wh,
        config_path=str(cfg),
    )
    return run_all(ctx)


def revenue(wh: Path, day: str) -> dict[str, float]:
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={day}")
    return dict(zip(rfm["customer_id"].to_list(), rfm["monetary_total"].to_list()))


def ingest_record(wh: Path, day: str) -> dict:
    return json.loads((wh / "raw" / "orders" / f"ingest_date={day}" / "_ingest.json").read_text())


@pytest.mark.slow
def test_full_then_incremental_load_with_an_update_to_an_old_order(
    schema: str, tmp_path: Path
) -> None:
    wh, cfg = tmp_path / "wh", config(tmp_path)
    insert(schema, [(f"O{i}", f"C{i % 5}", "2024-03-01T10:00:00Z", "10.00") for i in range(50)])
    first = run(schema, "2024-03-01", wh, cfg)
    assert first["source_kind"] == "postgres" and first["counts"]["rows_in"] == 50
    assert first["source"] == f"postgresql://{READER}@127.0.0.1:5432/test#{schema}.orders"
    assert ingest_record(wh, "2024-03-01")["watermark"]["low"] is None  # a full load
    assert revenue(wh, "2024-03-01")["C0"] == pytest.approx(100.0)

    # Next day: 20 new orders, and an old order corrected in place.
    insert(schema, [(f"N{i}", f"C{i % 5}", "2024-03-02T10:00:00Z", "20.00") for i in range(20)])
    sql(f"update {schema}.orders set amount = 110.00, updated_at = now() where order_id = 'O0'")
    second = run(schema, "2024-03-02", wh, cfg)
    assert second["counts"]["rows_in"] == 21  # only what changed since the watermark
    mark = ingest_record(wh, "2024-03-02")["watermark"]
    assert mark["low"] == ingest_record(wh, "2024-03-01")["watermark"]["high"]
    day2 = revenue(wh, "2024-03-02")
    assert day2["C0"] == pytest.approx(100.0 + 100.0 + 4 * 20.0)  # O0: 10 -> 110
    assert second["rebuilt_snapshots"] == ["2024-03-01"]  # O0 was placed on Mar 1
    assert revenue(wh, "2024-03-01")["C0"] == pytest.approx(200.0)

    # A rerun of a landed date reuses its batch instead of reading the table again.
    again = run(schema, "2024-03-02", wh, cfg)
    assert again["counts"]["rows_in"] == 21 and again["files"] == second["files"]
    assert again["watermark"] == mark and not [w for w in again["warnings"] if "updated_at" in w]


@pytest.mark.slow
def test_rows_without_updated_at_are_loaded_once_and_reported(schema: str, tmp_path: Path) -> None:
    sql(f"alter table {schema}.orders alter column updated_at drop not null")
    insert(schema, [(f"O{i}", f"C{i % 5}", "2024-03-01T10:00:00Z", "10.00") for i in range(40)])
    sql(f"update {schema}.orders set updated_at = null where order_id in ('O1', 'O2')")
    manifest = run(schema, "2024-03-01", tmp_path / "wh", config(tmp_path))
    assert manifest["counts"]["rows_in"] == 40  # the full load includes them
    assert any("2 rows of the source table have no updated_at" in w for w in manifest["warnings"])


def test_the_extract_runs_in_one_read_only_repeatable_read_transaction(schema: str) -> None:
    from pipelines.extract import postgres

    captured: dict = {}
    original = postgres._read

    def spy(uri, table, columns, low, lag):
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(postgres._uri(uri), autocommit=False) as conn, conn.cursor() as cur:
            cur.execute("set transaction isolation level repeatable read, read only")
            cur.execute(
                "select current_setting('transaction_isolation'), current_setting('transaction_read_only')"
            )
            captured["settings"] = cur.fetchall()[0]
            conn.rollback()
        return original(uri, table, columns, low, lag)

    insert(schema, [("O1", "C1", "2024-03-01T10:00:00Z", "1.00")])
    postgres._read = spy
    try:
        got = postgres.extract(
            f"postgresql://{READER}@127.0.0.1:5432/test",
            f"{schema}.orders",
            ["order_id", "amount"],
            None,
            lag_seconds=0,
        )
    finally:
        postgres._read = original
    assert captured["settings"] == ("repeatable read", "on")
    assert got.table.column_names == ["order_id", "amount"] and got.table.num_rows == 1
    # the reader role cannot write
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(f"postgresql://{READER}@127.0.0.1:5432/test") as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match="permission denied"):
            cur.execute(
                f"insert into {schema}.orders values ('X', 'C', now(), 1, 'USD', null, now())"
            )


def _kill_extract_once(delay: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        for _ in range(100):
            with _admin() as conn, conn.cursor() as cur:
                cur.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where application_name = 'custval-extract' and state = 'active' and query like 'select %'"
                )
                if any(row[0] for row in cur.fetchall()):
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def slow_table(schema: str) -> str:
    """A view that takes ~1.5 s to read, so the connection can be cut in the middle."""
    insert(schema, [(f"O{i}", f"C{i % 5}", "2024-03-01T10:00:00Z", "10.00") for i in range(30)])
    sql(
        f"create view {schema}.slow_orders as select * from {schema}.orders where pg_sleep(0.05)::text = ''"
    )
    sql(f"grant select on {schema}.slow_orders to {READER}")
    return "slow_orders"


def test_a_dropped_connection_fails_cleanly(schema: str, slow_table: str, tmp_path: Path) -> None:
    from pipelines.errors import SourceError

    wh = tmp_path / "wh"
    killer = _kill_extract_once(0.3)
    with pytest.raises(
        SourceError,
        match=r"extract failed after 1 attempts .* nothing was landed and the watermark is unchanged",
    ):
        run(schema, "2024-03-01", wh, config(tmp_path, retries=0), table=slow_table)
    killer.join(10)
    assert not (wh / "raw" / "orders").exists() or not any((wh / "raw" / "orders").iterdir())
    assert not (wh / "marts").exists() and not list((wh / "runs").rglob("manifest.json"))


@pytest.mark.slow
def test_a_dropped_connection_is_retried(schema: str, slow_table: str, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    killer = _kill_extract_once(0.3)
    manifest = run(schema, "2024-03-01", wh, config(tmp_path, retries=1), table=slow_table)
    killer.join(10)
    assert manifest["counts"]["rows_in"] == 30
    assert revenue(wh, "2024-03-01")["C0"] == pytest.approx(60.0)


@pytest.mark.slow
def test_a_rejected_batch_leaves_the_watermark_and_is_read_again(
    schema: str, tmp_path: Path
) -> None:
    """Mar 2's batch fails the quarantined-share gate: it never counts as ingested, the next night
    waits for it, and the retried run (source fixed) reads its rows again -- none is lost."""
    from pipelines.errors import BatchRejected
    from pipelines.run.pipeline import OutOfOrderError

    wh, cfg = tmp_path / "wh", config(tmp_path)
    insert(schema, [(f"O{i}", f"C{i % 5}", "2024-03-01T10:00:00Z", "10.00") for i in range(50)])
    run(schema, "2024-03-01", wh, cfg)
    insert(schema, [(f"N{i}", f"C{i % 7}", "2024-03-02T10:00:00Z", "20.00") for i in range(90)])
    sql(
        f"insert into {schema}.orders select 'B' || g, 'C9', '2024-03-02T11:00:00Z', 5.00, 'ZZZ', 'completed', now() "
        "from generate_series(1, 10) g"
    )
    with pytest.raises(
        BatchRejected, match=r"quarantined_share failed: 10 of 100 lines quarantined"
    ):
        run(schema, "2024-03-02", wh, cfg)
    assert not (wh / "accepted" / "orders" / "ingest_date=2024-03-02").exists()
    with pytest.raises(
        OutOfOrderError, match=r"needs snapshot 2024-03-02 first.*its last run failed"
    ):
        run(schema, "2024-03-03", wh, cfg)
    sql(f"update {schema}.orders set currency = 'USD', updated_at = now() where order_id like 'B%'")
    retried = run(schema, "2024-03-02", wh, cfg)
    assert retried["counts"]["rows_in"] == 100 and retried["counts"]["rows_accepted"] == 100
    assert retried["watermark"]["low"] == ingest_record(wh, "2024-03-01")["watermark"]["high"]
    insert(schema, [(f"T{i}", f"C{i % 3}", "2024-03-03T10:00:00Z", "30.00") for i in range(30)])
    third = run(schema, "2024-03-03", wh, cfg)
    assert third["counts"]["rows_in"] == 30
    with _admin() as conn, conn.cursor() as cur:  # every order in the table, counted independently
        cur.execute(f"select count(*) from {schema}.orders where order_ts < '2024-03-04'")
        expected = cur.fetchall()[0][0]
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / "snapshot_date=2024-03-03")
    assert int(rfm["order_count"].sum()) == expected == 180
    # a quiet night: nothing changed in the table -- the snapshot is published from the history
    quiet = run(schema, "2024-03-04", wh, cfg)
    assert quiet["quiet_day"] is True and quiet["counts"]["rows_in"] == 0
    assert (
        int(
            pl.read_parquet(wh / "marts" / "customer_rfm" / "snapshot_date=2024-03-04")[
                "order_count"
            ].sum()
        )
        == 180
    )
