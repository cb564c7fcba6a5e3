"""Snapshot leases: one run builds a given snapshot at a time.

A run takes a lease on every snapshot it will publish before it starts. The lease is a file
`DIR/_locks/snapshot_date=D.lease`, created atomically (O_EXCL), naming the run, host and
process and an expiry that each stage extends. A second run for the same snapshot waits
(`wait_seconds`) or stops with a message naming the run that holds it. The same run can
take its own lease again (an Airflow task retry). An expired lease -- its run crashed --
is taken over; `custval unlock` removes one by hand. Leases live in `DIR/_locks/`, outside
every zone readers look at.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.errors import RunLockedError
from pipelines.jsonfile import read_json, write_json

LEASE = ".lease"
DEFAULT_TTL = timedelta(hours=6)


def lease_path(warehouse: Path, snapshot: date) -> Path:
    return warehouse / "_locks" / f"snapshot_date={snapshot.isoformat()}{LEASE}"


def read_lease(path: Path) -> dict[str, Any] | None:
    return read_json(path)


def _write_new(path: Path, record: dict[str, Any]) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    return True


def acquire(
    warehouse: Path, snapshot: date, run_id: str, *, wait_seconds: float = 0, ttl: timedelta = DEFAULT_TTL
) -> None:
    path = lease_path(warehouse, snapshot)
    deadline = time.monotonic() + wait_seconds
    while True:
        now = datetime.now(UTC)
        record = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now.isoformat(),
            "expires_at": (now + ttl).isoformat(),
        }
        if _write_new(path, record):
            return
        held = read_lease(path)
        if held is None:  # removed between our attempts (or unreadable): try again
            continue
        if held.get("run_id") == run_id:
            renew(warehouse, snapshot, run_id, ttl)
            return
        if datetime.fromisoformat(held["expires_at"]) < now:
            path.unlink(missing_ok=True)  # its run crashed long ago; take over
            continue
        if time.monotonic() >= deadline:
            raise RunLockedError(
                f"snapshot {snapshot} is being built by run {held['run_id']} (host {held.get('host')}, "
                f"pid {held.get('pid')}, since {held.get('acquired_at')}); wait for it to finish, or, if it "
                f"died, remove the lease with `custval unlock --as-of {snapshot} --warehouse {warehouse}`"
            )
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def renew(warehouse: Path, snapshot: date, run_id: str, ttl: timedelta = DEFAULT_TTL) -> None:
    path = lease_path(warehouse, snapshot)
    held = read_lease(path)
    if held is None or held.get("run_id") != run_id:
        raise RunLockedError(f"run {run_id} lost its lease on snapshot {snapshot} (now: {held})")
    held["expires_at"] = (datetime.now(UTC) + ttl).isoformat()
    write_json(path, held)


def acquire_all(warehouse: Path, snapshots: list[date], run_id: str, *, wait_seconds: float = 0) -> None:
    """Leases on every snapshot a run may publish, or none: a refusal gives back those taken."""
    taken: list[date] = []
    try:
        for snapshot in snapshots:
            acquire(warehouse, snapshot, run_id, wait_seconds=wait_seconds)
            taken.append(snapshot)
    except BaseException:
        release_all(warehouse, taken, run_id)
        raise


def release_all(warehouse: Path, snapshots: list[date], run_id: str) -> None:
    for snapshot in snapshots:
        release(warehouse, snapshot, run_id)


def release(warehouse: Path, snapshot: date, run_id: str | None = None) -> bool:
    """Remove the lease (only this run's, unless run_id is None); True if one was removed."""
    path = lease_path(warehouse, snapshot)
    held = read_lease(path)
    if held is None or (run_id is not None and held.get("run_id") != run_id):
        return False
    path.unlink(missing_ok=True)
    return True
