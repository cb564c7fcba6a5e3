"""The fencing check: is this run still the snapshot's holder, right now, under the guard.

A run may lose its lease while it works (it expired and was taken over, or someone ran
`custval unlock --force`). Its publish step must not then switch in what it built, so right
before the atomic switch it checks `holds(...)`, or runs the switch inside `fenced(...)`,
which keeps the guard for the duration so no other run can take the lease in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipelines.errors import RunLockedError
from pipelines.storage.lease_guard import guarded
from pipelines.storage.lease_records import LeaseError, describe, lease_path, read_lease, when
from pipelines.storage.local_view import remote_of


def _is_holder(held: dict[str, Any] | None, run_id: str) -> bool:
    """`held` names `run_id` and has not expired."""
    if held is None or held["run_id"] != run_id:
        return False
    return when(held["expires_at"]) > datetime.now(UTC)


def holds(warehouse: Path, snapshot: date, run_id: str) -> bool:
    """True when `run_id` holds the snapshot's unexpired lease (checked under the guard).

    The publish step's last check before its switch; `fenced` also keeps others out during it.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.holds(store, snapshot, run_id)
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir():
        return False
    with guarded(path):
        try:
            held = read_lease(path)
        except LeaseError:
            return False
        return _is_holder(held, run_id)


@contextlib.contextmanager
def fenced(warehouse: Path, snapshot: date, run_id: str) -> Iterator[None]:
    """Run a short step (an atomic switch) while holding the guard, if the run holds the lease.

    No other run can take the lease over until the block ends, so what the block publishes is
    the lease holder's. Keep it short (others wait at most GUARD_TIMEOUT) and call no other
    lease function on the same snapshot inside it.
    """
    if (store := remote_of(warehouse)) is not None:  # the lease in the store, renewed first
        from pipelines.storage import object_leases

        with object_leases.fenced(store, snapshot, run_id):
            yield
        return
    path = lease_path(warehouse, snapshot)
    with guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            raise RunLockedError(
                f"run {run_id} cannot verify its lease on snapshot {snapshot}: {exc}"
            ) from None
        if not _is_holder(held, run_id):
            now_held = "no lease" if held is None else f"run {held['run_id']}: {describe(held)}"
            raise RunLockedError(
                f"run {run_id} no longer holds snapshot {snapshot} ({now_held}); not publishing it"
            )
        yield
