"""Snapshot leases: one run builds a given snapshot at a time.

A run takes a lease on every snapshot it may publish before it starts, keeps it fresh while
it works, and gives it back at the end. A second run for the same snapshot waits
(`wait_seconds`) or stops with a message naming the run that holds it. The same run may take
its own lease again (an Airflow task retry).

Files, in `DIR/_locks/` (outside every zone readers look at), per snapshot D:

    snapshot_date=D.lease   the lease: one JSON object naming the run that holds D
    snapshot_date=D.lock    the guard: an empty file, created on first use, never deleted

Protocol. Every read-check-write of a lease -- take, take over, renew, release, unlock,
the fencing check -- runs while holding an exclusive `flock` on the guard, for a few
milliseconds only. So "the lease is expired, I take it" is one step: two runs can never both
see it free and both win. The lease is written to a temporary file in the same directory,
fsynced and renamed over the old one, so any reader (even one not holding the guard) sees
the old lease or the new one, never half of one.

Lease fields: `run_id`, `holder` ("process" or "run"), `host`, `boot_id` (the kernel's boot
id), `pid`, `pid_start` (the process start time, /proc/<pid>/stat field 22, in clock ticks
since boot), `acquired_at`, `renewed_at`, `expires_at` (UTC, ISO 8601).

Two kinds of holder:

* `process` -- a CLI run, one process from start to end. On the same host (same hostname,
  same boot id) a lease whose process is gone -- no such pid, a zombie, a pid now used by a
  process with another start time, or the host rebooted since -- is stale.
* `run` -- an Airflow DAG run: its tasks are separate short-lived processes, so the pid
  says nothing; only the expiry counts.

A lease on another host is judged by its expiry only. A stale lease is taken over by the
next acquirer, with a warning on the `custval.locking` logger naming the run it replaces.

A lease file that exists but cannot be parsed (empty, truncated, not JSON, no run_id or
expires_at, a bad date) is never guessed about: `acquire` raises `LeaseError` at once, naming
the file and the remedy, `custval unlock --as-of D --warehouse DIR --force`.

Renewal and fencing. A CLI run keeps its leases with a `Heartbeat` (a daemon thread calling
`renew` every `interval` seconds); `Heartbeat.check()` raises if a lease was lost. Each task
of an Airflow run calls `renew_run` first. Right before its atomic switch the publish step
checks `holds(...)` (or runs the switch inside `fenced(...)`, which keeps the guard for the
duration, so no other run can take the lease in between).

Recovery. `live_run_ids` says which runs may still be working (their `_work/<run_id>` must
stay); an unreadable lease might be anyone's, so it makes `live_run_ids` raise LeaseError
(`scan_leases` lists such files instead).

Assumptions: Linux (flock, /proc); hosts sharing a warehouse have distinct hostnames and
clocks kept in step (NTP) -- keep the ttl far above any skew; on NFS, flock is carried out
with NFS byte-range locks (NFS v4 or v3 with lockd).

Here: taking, renewing and giving back leases, and unlock. The other parts: the lease record
and LeaseError in `lease_records`, the holder checks (/proc, boot id) in `liveness`, the guard
and whole-file writes in `lease_guard`, `holds` and `fenced` in `fencing`, the warehouse-wide
scans in `lease_scans`, the renewal thread in `heartbeat`. Every public name is importable
from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.errors import RunLockedError
from pipelines.storage.fencing import fenced as fenced
from pipelines.storage.fencing import holds as holds
from pipelines.storage.heartbeat import Heartbeat as Heartbeat
from pipelines.storage.lease_guard import GUARD_TIMEOUT as GUARD_TIMEOUT
from pipelines.storage.lease_guard import guarded, remove_lease, write_lease
from pipelines.storage.lease_records import (
    DEFAULT_TTL,
    Holder,
    LeaseError,
    check_fields,
    describe,
    finite,
    lease_path,
    read_lease,
)
from pipelines.storage.lease_records import GUARD as GUARD
from pipelines.storage.lease_records import HOLDERS as HOLDERS
from pipelines.storage.lease_records import LEASE as LEASE
from pipelines.storage.lease_scans import LeaseScan as LeaseScan
from pipelines.storage.lease_scans import holder_of as holder_of
from pipelines.storage.lease_scans import leases_of
from pipelines.storage.lease_scans import live_run_ids as live_run_ids
from pipelines.storage.lease_scans import scan_leases as scan_leases
from pipelines.storage.liveness import new_record, same_host, stale_reason
from pipelines.storage.local_view import display, remote_of

log = logging.getLogger(__name__)

MAX_PAUSE = 1.0  # seconds between two attempts while waiting for a busy lease


# ------------------------------------------------------------------------------------------
# Taking, renewing and giving back


def _check_wait(wait_seconds: float) -> float:
    """A finite, non-negative number of seconds: `nan` or `inf` would wait forever."""
    if not finite(wait_seconds) or wait_seconds < 0:
        raise ValueError(
            f"wait_seconds must be a finite number of seconds >= 0, not {wait_seconds!r}"
        )
    return float(wait_seconds)


def acquire(
    warehouse: Path,
    snapshot: date,
    run_id: str,
    *,
    wait_seconds: float = 0,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder = "process",
) -> dict[str, Any]:
    """Take the snapshot's lease for `run_id` (or take it again); returns the lease written.

    A free, stale or own lease is taken at once; a live one is waited for up to
    `wait_seconds`, then RunLockedError. An unreadable lease file raises LeaseError at once.
    """
    if (store := remote_of(warehouse)) is not None:  # an object-store warehouse's local view
        from pipelines.storage import object_leases

        return object_leases.acquire(
            store, snapshot, run_id, wait_seconds=wait_seconds, ttl=ttl, holder=holder
        )
    wait = _check_wait(wait_seconds)
    check_fields(run_id, holder, ttl)
    path = lease_path(warehouse, snapshot)
    deadline = time.monotonic() + wait
    pause = 0.05
    record: dict[str, Any] = {}
    while True:
        with guarded(path):
            held = read_lease(path)
            now = datetime.now(UTC)
            own = held is not None and held["run_id"] == run_id
            stale = None if held is None or own else stale_reason(held, now)
            if held is None or own or stale is not None:
                since = held.get("acquired_at") if own and held else None
                record = new_record(run_id, holder, ttl, now, since)
                write_lease(path, record)
                break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunLockedError(
                f"snapshot {snapshot} is being built by run {held['run_id']} ({describe(held)}); "
                f"wait for it to finish, or, if it died, remove the lease with "
                f"`custval unlock --as-of {snapshot} --warehouse {warehouse}`"
            )
        time.sleep(min(remaining, pause))
        pause = min(pause * 2, MAX_PAUSE)
    if stale is not None and held is not None:
        log.warning(
            "run %s takes over the lease on snapshot %s from run %s (host %s, pid %s): %s",
            run_id,
            snapshot,
            held["run_id"],
            held.get("host"),
            held.get("pid"),
            stale,
        )
    return record


def renew(
    warehouse: Path, snapshot: date, run_id: str, ttl: timedelta = DEFAULT_TTL
) -> dict[str, Any]:
    """Push the run's lease expiry to now + ttl; RunLockedError if the run no longer holds it.

    The holder fields stay as they are: a `run` lease is renewed by each of its run's tasks.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.renew(store, snapshot, run_id, ttl)
    path = lease_path(warehouse, snapshot)
    with guarded(path):
        held = read_lease(path)
        if held is None or held["run_id"] != run_id:
            now_held = (
                "no lease" if held is None else f"run {held['run_id']} holds it: {describe(held)}"
            )
            raise RunLockedError(f"run {run_id} lost its lease on snapshot {snapshot} ({now_held})")
        now = datetime.now(UTC)
        held = {**held, "renewed_at": now.isoformat(), "expires_at": (now + ttl).isoformat()}
        write_lease(path, held)
    return held


def acquire_all(
    warehouse: Path,
    snapshots: Iterable[date],
    run_id: str,
    *,
    wait_seconds: float = 0,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder = "process",
) -> None:
    """Leases on every snapshot a run may publish, or none: a refusal gives back those taken.

    Taken oldest first, so two runs with overlapping windows never wait for each other in a
    circle; `wait_seconds` bounds the whole call, not each snapshot.
    """
    deadline = time.monotonic() + _check_wait(wait_seconds)
    taken: list[date] = []
    try:
        for snapshot in sorted(set(snapshots)):
            acquire(
                warehouse,
                snapshot,
                run_id,
                ttl=ttl,
                holder=holder,
                wait_seconds=max(0.0, deadline - time.monotonic()),
            )
            taken.append(snapshot)
    except BaseException:
        try:
            release_all(warehouse, taken, run_id)
        except Exception as exc:  # noqa: BLE001 - the refusal is the error to report
            log.warning("run %s could not give back its leases on %s: %s", run_id, taken, exc)
        raise


def release_all(warehouse: Path, snapshots: Iterable[date], run_id: str) -> None:
    """Give back every one of the run's leases; tries them all, then raises the first error."""
    errors: list[Exception] = []
    for snapshot in snapshots:
        try:
            release(warehouse, snapshot, run_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    if errors:
        raise errors[0]


def release(warehouse: Path, snapshot: date, run_id: str | None = None) -> bool:
    """Remove the lease (only this run's, unless run_id is None); True if one was removed.

    An unreadable lease is removed only with run_id None: it may be another run's.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.release(store, snapshot, run_id)
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir():
        return False
    with guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            if run_id is None:
                remove_lease(path)
                return True
            log.warning("run %s does not release %s: %s", run_id, path, exc)
            return False
        if held is None or (run_id is not None and held["run_id"] != run_id):
            return False
        remove_lease(path)
    return True


# ------------------------------------------------------------------------------------------
# Removing a dead run's lease


def unlock(warehouse: Path, snapshot: date, *, force: bool = False) -> str:
    """Remove a snapshot's lease left by a run that died; returns a one-line message.

    Without `force` only a lease shown to be stale (expired, or its process on this host is
    gone) is removed; a live one raises RunLockedError and an unreadable file LeaseError.
    `force` removes anything, for when a person has checked that the run is dead.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_leases

        return object_leases.unlock(store, snapshot, force=force)
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir() or not path.exists():
        return f"snapshot {snapshot} has no lease"
    with guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            if not force:
                raise
            remove_lease(path)
            log.warning("removed the unreadable lease %s by force: %s", path, exc)
            return f"removed the unreadable lease file {path} on snapshot {snapshot}"
        if held is None:
            return f"snapshot {snapshot} has no lease"
        stale = stale_reason(held, datetime.now(UTC))
        if stale is None and not force:
            who = f"run {held['run_id']} ({describe(held)})"
            if held.get("holder", "process") == "process" and same_host(held):
                raise RunLockedError(
                    f"{who} is still running on this host; the lease on snapshot {snapshot} stays. "
                    f"Stop that process first, or add --force if you are sure"
                )
            raise RunLockedError(
                f"{who} holds snapshot {snapshot} and cannot be checked from this host; wait for "
                f"the lease to expire, or add --force if you are sure that run is dead"
            )
        remove_lease(path)
    if stale is None:
        log.warning(
            "removed the live lease of run %s on snapshot %s by force", held["run_id"], snapshot
        )
    return (
        f"removed the lease of run {held['run_id']} on snapshot {snapshot} "
        f"(host {held.get('host')}, pid {held.get('pid')}): {stale or 'removed by force'}"
    )


# ------------------------------------------------------------------------------------------
# All of a run's leases (an Airflow run's tasks)


def renew_run(warehouse: Path, run_id: str, ttl: timedelta = DEFAULT_TTL) -> list[date]:
    """Renew every lease of the run (an Airflow task does this first); the snapshots renewed.

    RunLockedError when the run holds none any more, or loses one while this runs.
    """
    snapshots = leases_of(warehouse, run_id)
    if not snapshots:
        raise RunLockedError(
            f"run {run_id} holds no snapshot lease in {display(warehouse)} any more (taken over, or removed "
            f"with `custval unlock`); it stops here"
        )
    for snapshot in snapshots:
        renew(warehouse, snapshot, run_id, ttl)
    return snapshots


def release_run(warehouse: Path, run_id: str) -> list[date]:
    """Give back every lease of the run (a failed DAG run's callback); the snapshots released."""
    snapshots = [s for s in leases_of(warehouse, run_id) if release(warehouse, s, run_id)]
    return snapshots
