"""Snapshot leases: a held lease stops another run with a clear message, waits, expiry."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipelines.errors import RunLockedError
from pipelines.storage import locking

SNAP = date(2024, 5, 1)


def test_a_held_lease_stops_another_run_with_a_clear_message(tmp_path: Path) -> None:
    locking.acquire(tmp_path, SNAP, "run-A")
    with pytest.raises(
        RunLockedError,
        match=r"snapshot 2024-05-01 is being built by run run-A .*custval unlock --as-of 2024-05-01",
    ):
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
