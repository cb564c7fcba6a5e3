"""Warehouse-wide views of the leases in `DIR/_locks/`: which runs may still be working.

Recovery must not delete the `_work/<run_id>` of a run that may be live, the CLI names the
run holding a snapshot, and an Airflow task finds the snapshots its run holds. These read
every lease without the guard (leases are replaced whole, so each read sees one version)
and judge it now; they never write one. An unreadable lease might be anyone's: it makes
`live_run_ids` raise LeaseError, `scan_leases` lists it, `leases_of` skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from pipelines.storage.layout import LOCKS
from pipelines.storage.lease_records import (
    LEASE,
    LeaseError,
    lease_path,
    lease_snapshot,
    read_lease,
    unlock_hint,
)
from pipelines.storage.liveness import stale_reason
from pipelines.storage.local_view import remote_of


@dataclass(frozen=True)
class LeaseScan:
    """The warehouse's leases: run ids holding a live one, and files nobody can read."""

    live: frozenset[str]
    unreadable: tuple[Path | str, ...]  # lease files (paths), or objects (URLs)


def lease_files(warehouse: Path) -> list[Path]:
    """Every `*.lease` file in `DIR/_locks/`, sorted by name (listed, never globbed)."""
    locks = warehouse / LOCKS
    if not locks.is_dir():
        return []
    return sorted(entry for entry in locks.iterdir() if entry.name.endswith(LEASE))


def scan_leases(warehouse: Path) -> LeaseScan:
    """Every lease in `DIR/_locks/`, judged now (no guard: leases are replaced whole)."""
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.scan_leases(store)
    live: set[str] = set()
    unreadable: list[Path] = []
    now = datetime.now(UTC)
    for path in lease_files(warehouse):
        try:
            held = read_lease(path)
        except LeaseError:
            unreadable.append(path)
            continue
        if held is not None and stale_reason(held, now) is None:
            live.add(held["run_id"])
    return LeaseScan(frozenset(live), tuple(unreadable))


def live_run_ids(warehouse: Path) -> set[str]:
    """The run ids holding a live lease: their `_work/<run_id>` dirs must not be deleted.

    An unreadable lease counts as live, but its run id is unknown, so this raises LeaseError
    when there is one: the caller should then delete no work dir (or use `scan_leases`, which
    reports those files in `unreadable`).
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.live_run_ids(store)
    scan = scan_leases(warehouse)
    if scan.unreadable:
        raise LeaseError(
            f"{len(scan.unreadable)} lease file(s) unreadable, so any run may still be live: "
            f"{', '.join(map(str, scan.unreadable))}; check them and remove them with "
            f"`{unlock_hint(Path(scan.unreadable[0]))}`"
        )
    return set(scan.live)


def holder_of(warehouse: Path, snapshot: date) -> str | None:
    """The run id holding the snapshot's live lease; None when it is free or stale.

    LeaseError when the lease file is unreadable: nobody can say whether it is free.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.holder_of(store, snapshot)
    held = read_lease(lease_path(warehouse, snapshot))
    if held is None or stale_reason(held, datetime.now(UTC)) is not None:
        return None
    return held["run_id"]


def leases_of(warehouse: Path, run_id: str) -> list[date]:
    """The snapshots whose lease names `run_id`, oldest first (expired too: nobody took them).

    Unreadable lease files are skipped: they may be anyone's.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.leases_of(store, run_id)
    found = []
    for path in lease_files(warehouse):
        snapshot = lease_snapshot(path)
        try:
            held = read_lease(path)
        except LeaseError:
            continue
        if snapshot is not None and held is not None and held["run_id"] == run_id:
            found.append(snapshot)
    return found
