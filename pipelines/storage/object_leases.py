"""Snapshot leases on object storage: conditional puts instead of a guard file.

The same leases as on a local disk (`locking.py`: one run builds a snapshot at a time, taken
over when stale, renewed while the run works, given back at the end, `custval unlock` for a
stuck one), kept as one object per snapshot, `_locks/snapshot_date=D.lease`, holding the same
JSON record (`lease_records.py`). There is no flock on object storage, so every read-check-write
is made atomic by the write itself:

- taking a free snapshot creates the object with `If-None-Match: *`: of two runs racing for
  it, exactly one create succeeds;
- every other change (renewal, take-over of a stale lease, release) replaces or deletes exactly
  the version that was read (`If-Match: <its ETag>`); if anyone wrote in between, the write
  fails and the run reads again.

Staleness is judged as for a local lease (`liveness.stale_reason`): an expired lease, or, on the
host that took it, a process that is gone. Fencing: right before its commit a run renews its
lease (conditionally, so only while it still holds it), which also pushes the expiry a whole
ttl away: nobody can take the lease over during the commit's few seconds. The commit itself is
a conditional put too (`object_snapshots.py`), so two writers can never both publish one
version over the same predecessor even if a lease went wrong.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from pipelines.errors import RunLockedError
from pipelines.storage import layout
from pipelines.storage.lease_records import (
    DEFAULT_TTL,
    LEASE,
    Holder,
    LeaseError,
    check_fields,
    describe,
    finite,
    lease_snapshot,
    parse,
    when,
)
from pipelines.storage.lease_scans import LeaseScan
from pipelines.storage.liveness import new_record, same_host, stale_reason
from pipelines.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

MAX_PAUSE = 1.0
_ROOT = PurePosixPath()


def lease_key(snapshot: date) -> PurePosixPath:
    return layout.lease_file(_ROOT, snapshot, LEASE)


def _hint(store: ObjectStore, snapshot: date | None) -> str:
    day = snapshot.isoformat() if snapshot else "D"
    return f"custval unlock --as-of {day} --warehouse {store.url} --force"


def read(store: ObjectStore, snapshot: date) -> tuple[dict[str, Any], str] | None:
    """(lease, ETag), or None when there is none; LeaseError when it cannot be read."""
    key = lease_key(snapshot)
    got = store.get(key)
    if got is None:
        return None
    return parse(store.url_of(key), got[0], _hint(store, snapshot)), got[1]


def _body(record: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(record, indent=2) + "\n").encode()


def _check_wait(wait_seconds: float) -> float:
    if not finite(wait_seconds) or wait_seconds < 0:
        raise ValueError(
            f"wait_seconds must be a finite number of seconds >= 0, not {wait_seconds!r}"
        )
    return float(wait_seconds)


def acquire(
    store: ObjectStore,
    snapshot: date,
    run_id: str,
    *,
    wait_seconds: float = 0,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder = "process",
) -> dict[str, Any]:
    """Take the snapshot's lease for `run_id` (or take it again), as `locking.acquire`."""
    wait = _check_wait(wait_seconds)
    check_fields(run_id, holder, ttl)
    key = lease_key(snapshot)
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        current = read(store, snapshot)
        now = datetime.now(UTC)
        held = current[0] if current else None
        own = held is not None and held["run_id"] == run_id
        stale = None if held is None or own else stale_reason(held, now)
        if held is None or own or stale is not None:
            since = held.get("acquired_at") if own and held else None
            record = new_record(run_id, holder, ttl, now, since)
            if current is None:
                written = store.put(key, _body(record), if_absent=True)
            else:
                written = store.put(key, _body(record), if_match=current[1])
            if written is not None:
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
            continue  # someone wrote in between: look again at once
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunLockedError(
                f"snapshot {snapshot} is being built by run {held['run_id']} ({describe(held)}); "
                f"wait for it to finish, or, if it died, remove the lease with "
                f"`custval unlock --as-of {snapshot} --warehouse {store.url}`"
            )
        time.sleep(min(remaining, pause))
        pause = min(pause * 2, MAX_PAUSE)


def renew(
    store: ObjectStore, snapshot: date, run_id: str, ttl: timedelta = DEFAULT_TTL
) -> dict[str, Any]:
    """Push the run's lease expiry to now + ttl; RunLockedError if the run no longer holds it."""
    for _ in range(10):
        current = read(store, snapshot)
        held = current[0] if current else None
        if current is None or held is None or held["run_id"] != run_id:
            now_held = (
                "no lease" if held is None else f"run {held['run_id']} holds it: {describe(held)}"
            )
            raise RunLockedError(f"run {run_id} lost its lease on snapshot {snapshot} ({now_held})")
        now = datetime.now(UTC)
        held = {**held, "renewed_at": now.isoformat(), "expires_at": (now + ttl).isoformat()}
        if store.put(lease_key(snapshot), _body(held), if_match=current[1]) is not None:
            return held
    raise LeaseError(f"the lease on snapshot {snapshot} in {store.url} keeps changing; try again")


def release(store: ObjectStore, snapshot: date, run_id: str | None = None) -> bool:
    """Remove the lease (only this run's, unless run_id is None); True if one was removed."""
    key = lease_key(snapshot)
    try:
        current = read(store, snapshot)
    except LeaseError as exc:
        if run_id is None:
            store.remove(key)
            return True
        log.warning("run %s does not release %s: %s", run_id, store.url_of(key), exc)
        return False
    if current is None or (run_id is not None and current[0]["run_id"] != run_id):
        return False
    return store.delete(key, if_match=current[1])


def unlock(store: ObjectStore, snapshot: date, *, force: bool = False) -> str:
    """Remove a snapshot's lease left by a run that died; as `locking.unlock`."""
    key = lease_key(snapshot)
    try:
        current = read(store, snapshot)
    except LeaseError as exc:
        if not force:
            raise
        store.remove(key)
        log.warning("removed the unreadable lease %s by force: %s", store.url_of(key), exc)
        return f"removed the unreadable lease {store.url_of(key)} on snapshot {snapshot}"
    if current is None:
        return f"snapshot {snapshot} has no lease"
    held, etag = current
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
    if not store.delete(key, if_match=etag):
        raise RunLockedError(
            f"the lease on snapshot {snapshot} changed while it was being removed; run "
            f"`custval unlock` again to see who holds it now"
        )
    if stale is None:
        log.warning(
            "removed the live lease of run %s on snapshot %s by force", held["run_id"], snapshot
        )
    return (
        f"removed the lease of run {held['run_id']} on snapshot {snapshot} "
        f"(host {held.get('host')}, pid {held.get('pid')}): {stale or 'removed by force'}"
    )


def holds(store: ObjectStore, snapshot: date, run_id: str) -> bool:
    try:
        current = read(store, snapshot)
    except LeaseError:
        return False
    return (
        current is not None
        and current[0]["run_id"] == run_id
        and when(current[0]["expires_at"]) > datetime.now(UTC)
    )


@contextlib.contextmanager
def fenced(
    store: ObjectStore, snapshot: date, run_id: str, ttl: timedelta = DEFAULT_TTL
) -> Iterator[None]:
    """Run a short step (the commit's pointer put) only while the run holds the lease.

    The lease is renewed first, conditionally (so only if the run still holds it, unexpired):
    its expiry is then a whole ttl away, and nobody can take it over before the step ends.
    """
    try:
        current = read(store, snapshot)
    except LeaseError as exc:
        raise RunLockedError(
            f"run {run_id} cannot verify its lease on snapshot {snapshot}: {exc}"
        ) from None
    held = current[0] if current else None
    if held is None or held["run_id"] != run_id or when(held["expires_at"]) <= datetime.now(UTC):
        now_held = "no lease" if held is None else f"run {held['run_id']}: {describe(held)}"
        raise RunLockedError(
            f"run {run_id} no longer holds snapshot {snapshot} ({now_held}); not publishing it"
        )
    renew(store, snapshot, run_id, ttl)
    yield


# ------------------------------------------------------------------------------------------
# Warehouse-wide views (as `lease_scans`)


def lease_keys(store: ObjectStore) -> list[tuple[date, str]]:
    """(snapshot, object name) of every lease in `_locks/`, by name."""
    out = []
    for entry in store.listing(layout.LOCKS.as_posix(), recursive=False):
        if entry.rel.endswith(LEASE):
            day = lease_snapshot(PurePosixPath(entry.rel))  # type: ignore[arg-type]
            if day is not None:
                out.append((day, entry.rel))
    return out


def scan_leases(store: ObjectStore) -> LeaseScan:
    live: set[str] = set()
    unreadable: list[str] = []
    now = datetime.now(UTC)
    for day, name in lease_keys(store):
        try:
            current = read(store, day)
        except LeaseError:
            unreadable.append(store.url_of(layout.LOCKS.as_posix() + "/" + name))
            continue
        if current is not None and stale_reason(current[0], now) is None:
            live.add(current[0]["run_id"])
    return LeaseScan(frozenset(live), tuple(unreadable))


def live_run_ids(store: ObjectStore) -> set[str]:
    scan = scan_leases(store)
    if scan.unreadable:
        raise LeaseError(
            f"{len(scan.unreadable)} lease(s) unreadable, so any run may still be live: "
            f"{', '.join(map(str, scan.unreadable))}; check them and remove them with "
            f"`{_hint(store, None)}`"
        )
    return set(scan.live)


def holder_of(store: ObjectStore, snapshot: date) -> str | None:
    current = read(store, snapshot)
    if current is None or stale_reason(current[0], datetime.now(UTC)) is not None:
        return None
    return str(current[0]["run_id"])


def leases_of(store: ObjectStore, run_id: str) -> list[date]:
    found = []
    for day, _ in lease_keys(store):
        try:
            current = read(store, day)
        except LeaseError:
            continue
        if current is not None and current[0]["run_id"] == run_id:
            found.append(day)
    return sorted(found)
