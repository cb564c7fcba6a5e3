"""Two runs of the same snapshot: one waits or stops with a clear message; never a mix."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.storage import locking
from pipelines.context import RunContext
from pipelines.errors import RunLockedError
from pipelines.run.pipeline import run_all

SNAP = date(2024, 5, 1)


def test_a_held_lease_stops_another_run_with_a_clear_message(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "run-A")
    with pytest.raises(RunLockedError, match=r"snapshot 2024-05-01 is being built by run run-A .*custval unlock --as-of 2024-05-01"):
        locking.acquire(tmp_path, SNAP, "run-B")
    locking.acquire(tmp_path, SNAP, "run-A")  # the same run (a task retry) may take it again
    assert locking.release(tmp_path, SNAP, "run-B") is False  # not B's to release
    assert locking.release(tmp_path, SNAP, "run-A") is True
    locking.acquire(tmp_path, SNAP, "run-B")


def test_waiting_for_a_lease(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "run-A")
    threading.Timer(0.5, locking.release, args=(tmp_path, SNAP, "run-A")).start()
    locking.acquire(tmp_path, SNAP, "run-B", wait_seconds=10)
    assert locking.read_lease(locking.lease_path(tmp_path, SNAP))["run_id"] == "run-B"


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "crashed", ttl=timedelta(seconds=-1))
    locking.acquire(tmp_path, SNAP, "run-B")
    assert locking.read_lease(locking.lease_path(tmp_path, SNAP))["run_id"] == "run-B"


def test_two_runs_of_the_same_snapshot_at_once(generated_orders, tmp_path: Path) -> None:
    source, _, last_day = generated_orders
    wh = tmp_path / "wh"
    outcomes: list[object] = []

    def run() -> None:
        try:
            ctx = RunContext.create(source=str(source), snapshot_date=last_day, warehouse=wh)
            outcomes.append(run_all(ctx))
        except RunLockedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RunLockedError)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert f"snapshot {last_day} is being built by run" in str(refused[0])
    # the published partition is the finished run's, whole
    published = pl.read_parquet(Path(done[0]["tables"]["customer_rfm"]["path"]))
    assert published.height == done[0]["tables"]["customer_rfm"]["rows"]
    assert not list((wh / "_locks").glob("*.lease"))
