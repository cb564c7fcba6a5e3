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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

try:
    import fcntl
except ImportError:  # pragma: no cover - not a Unix
    fcntl = None  # type: ignore[assignment]

from pipelines.errors import CustvalError, RunLockedError
from pipelines.storage.atomic import fsync_path

log = logging.getLogger("custval.locking")

LEASE = ".lease"
GUARD = ".lock"
DEFAULT_TTL = timedelta(hours=6)
GUARD_TIMEOUT = 10.0  # seconds; the guard is held for milliseconds: longer means a hung holder
MAX_PAUSE = 1.0  # seconds between two attempts while waiting for a busy lease

Holder = Literal["process", "run"]
HOLDERS: tuple[str, ...] = get_args(Holder)


class LeaseError(CustvalError):
    """A lease file exists but cannot be read (or written): nobody can tell who holds it."""


# ------------------------------------------------------------------------------------------
# Paths and reading


def lease_path(warehouse: Path, snapshot: date) -> Path:
    return warehouse / "_locks" / f"snapshot_date={snapshot.isoformat()}{LEASE}"


def _guard_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(LEASE) + GUARD)


def _unlock_hint(path: Path) -> str:
    """The unlock command for a lease path (it encodes the snapshot and the warehouse)."""
    snap = path.name.removeprefix("snapshot_date=").removesuffix(LEASE)
    return f"custval unlock --as-of {snap} --warehouse {path.parent.parent} --force"


def _unreadable(path: Path, reason: str) -> LeaseError:
    return LeaseError(
        f"lease file {path} is unreadable: {reason}; if no run is building that snapshot, "
        f"remove it with `{_unlock_hint(path)}`"
    )


def _when(value: Any) -> datetime:
    """An ISO 8601 date-time from a lease (a naive one is taken as UTC); ValueError if not one."""
    if not isinstance(value, str):
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    """Validate a lease's bytes; every defect becomes one LeaseError saying what is wrong."""
    if not raw.strip():
        raise _unreadable(path, "it is empty (a full disk or a crash while it was written?)")
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _unreadable(path, "it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _unreadable(
            path,
            f"it is not valid JSON, perhaps truncated ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})",
        ) from None
    if not isinstance(record, dict):
        raise _unreadable(path, f"it holds a JSON {type(record).__name__}, not an object")
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        what = "it has no run_id" if run_id is None else f"run_id {run_id!r} is not a name"
        raise _unreadable(path, what)
    if "expires_at" not in record:
        raise _unreadable(path, "it has no expires_at")
    for key in ("expires_at", "acquired_at", "renewed_at"):
        if key == "expires_at" or record.get(key) is not None:
            try:
                _when(record[key])
            except ValueError:
                what = f"{key} {record[key]!r} is not an ISO 8601 date-time"
                raise _unreadable(path, what) from None
    holder = record.get("holder", "process")
    if holder not in HOLDERS:
        raise _unreadable(path, f"holder {holder!r} is neither 'process' nor 'run'")
    for key, least in (("pid", 1), ("pid_start", 0)):
        value = record.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        if value is not None and not ok:
            sign = "positive" if least else "non-negative"
            raise _unreadable(path, f"{key} {value!r} is not a {sign} integer")
    return record


def read_lease(path: Path) -> dict[str, Any] | None:
    """The lease at `path`; None when there is none; LeaseError when it exists but is unreadable.

    Needs no guard: leases are replaced whole (rename), so this sees one version or the other.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, f"it cannot be opened ({exc.strerror or exc})") from None
    return _parse(path, raw)


# ------------------------------------------------------------------------------------------
# This host and its processes


def _require_linux() -> None:
    if fcntl is None or not sys.platform.startswith("linux"):
        raise CustvalError(
            f"snapshot leases need Linux (flock on the guard file, /proc to check a holder's "
            f"process); this is {sys.platform}"
        )


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int]:
    """(state, start time in clock ticks since boot) of `pid`, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    fields = text[text.rindex(")") + 2 :].split()  # the name (field 2) may hold spaces and ')'
    return fields[0], int(fields[19])  # fields 3 and 22


def _start_time(pid: int) -> int | None:
    try:
        return _stat(pid)[1]
    except (OSError, ValueError, IndexError):
        return None


def _process_gone(pid: int, started: int | None) -> bool:
    """True only when process `pid` of this host surely is not the one that took the lease."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    try:
        state, now_started = _stat(pid)
    except FileNotFoundError:
        return True  # exited just now
    except (OSError, ValueError, IndexError):
        return False  # /proc hides it (hidepid): cannot tell, so it may be alive
    if state in ("Z", "X", "x"):  # killed, not yet reaped by its parent
        return True
    return started is not None and now_started != started


def _same_host(record: dict[str, Any]) -> bool:
    return record.get("host") == socket.gethostname()


def _stale(record: dict[str, Any], now: datetime) -> str | None:
    """Why the lease protects nothing any more (for messages), or None while it is live."""
    expires = _when(record["expires_at"])
    if expires <= now:
        return f"it expired at {expires.isoformat()}"
    pid = record.get("pid")
    if record.get("holder", "process") != "process" or pid is None or not _same_host(record):
        return None
    then_boot, boot = record.get("boot_id"), _boot_id()
    if then_boot and boot and then_boot != boot:
        return f"host {record['host']} has rebooted since it was taken"
    if _process_gone(pid, record.get("pid_start")):
        return f"its process {pid} on host {record['host']} is no longer running"
    return None


def _describe(record: dict[str, Any]) -> str:
    return (
        f"host {record.get('host')}, pid {record.get('pid')}, "
        f"{record.get('holder', 'process')} lease since {record.get('acquired_at')}, "
        f"expires {record.get('expires_at')}"
    )


# ------------------------------------------------------------------------------------------
# The guard and atomic writes


@contextlib.contextmanager
def _guarded(path: Path) -> Iterator[None]:
    """Hold the exclusive flock on the lease's guard file: a short critical section."""
    _require_linux()
    assert fcntl is not None
    guard = _guard_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(guard, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
        except PermissionError:  # another user's guard: a read-only fd can be flocked (not on NFS)
            fd = os.open(guard, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LeaseError(f"cannot open the lease guard {guard}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + GUARD_TIMEOUT
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LeaseError(
                        f"the lease guard {guard} has been locked for over {GUARD_TIMEOUT:.0f} s "
                        f"by another process (stopped or hung?); find it with `fuser {guard}`"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            except OSError as exc:  # e.g. ENOLCK: an NFS mount without a lock service
                what = exc.strerror or exc
                raise LeaseError(f"cannot lock the lease guard {guard}: {what}") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)  # also for copies of the fd a fork may have made
    finally:
        os.close(fd)


def _write(path: Path, record: dict[str, Any]) -> None:
    """Replace the lease whole: temp file in the same dir, fsync, rename (call under the guard)."""
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other users' runs must read it
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise LeaseError(f"could not write the lease {path}: {exc.strerror or exc}") from None
    fsync_path(path.parent)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_path(path.parent)


def _record(
    run_id: str, holder: Holder, ttl: timedelta, now: datetime, acquired_at: str | None = None
) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "run_id": run_id,
        "holder": holder,
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": pid,
        "pid_start": _start_time(pid),
        "acquired_at": acquired_at or now.isoformat(),
        "renewed_at": now.isoformat(),
        "expires_at": (now + ttl).isoformat(),
    }


# ------------------------------------------------------------------------------------------
# Taking, renewing and giving back


def _finite(value: object) -> bool:
    """A real number other than nan and +-inf (and not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _check_wait(wait_seconds: float) -> float:
    """A finite, non-negative number of seconds: `nan` or `inf` would wait forever."""
    if not _finite(wait_seconds) or wait_seconds < 0:
        raise ValueError(
            f"wait_seconds must be a finite number of seconds >= 0, not {wait_seconds!r}"
        )
    return float(wait_seconds)


def _check_args(run_id: str, holder: str, ttl: timedelta) -> None:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, not {run_id!r}")
    if holder not in HOLDERS:
        raise ValueError(f"holder must be one of {HOLDERS}, not {holder!r}")
    if not isinstance(ttl, timedelta):
        raise ValueError(f"ttl must be a timedelta, not {ttl!r}")


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
    wait = _check_wait(wait_seconds)
    _check_args(run_id, holder, ttl)
    path = lease_path(warehouse, snapshot)
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        with _guarded(path):
            held = read_lease(path)
            now = datetime.now(UTC)
            own = held is not None and held["run_id"] == run_id
            stale = None if held is None or own else _stale(held, now)
            if held is None or own or stale is not None:
                since = held.get("acquired_at") if own and held else None
                record = _record(run_id, holder, ttl, now, since)
                _write(path, record)
                break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunLockedError(
                f"snapshot {snapshot} is being built by run {held['run_id']} ({_describe(held)}); "
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
    path = lease_path(warehouse, snapshot)
    with _guarded(path):
        held = read_lease(path)
        if held is None or held["run_id"] != run_id:
            now_held = (
                "no lease" if held is None else f"run {held['run_id']} holds it: {_describe(held)}"
            )
            raise RunLockedError(f"run {run_id} lost its lease on snapshot {snapshot} ({now_held})")
        now = datetime.now(UTC)
        held = {**held, "renewed_at": now.isoformat(), "expires_at": (now + ttl).isoformat()}
        _write(path, held)
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
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir():
        return False
    with _guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            if run_id is None:
                _remove(path)
                return True
            log.warning("run %s does not release %s: %s", run_id, path, exc)
            return False
        if held is None or (run_id is not None and held["run_id"] != run_id):
            return False
        _remove(path)
    return True


# ------------------------------------------------------------------------------------------
# Checking: fencing, unlock, recovery


def _is_holder(held: dict[str, Any] | None, run_id: str) -> bool:
    """`held` names `run_id` and has not expired."""
    if held is None or held["run_id"] != run_id:
        return False
    return _when(held["expires_at"]) > datetime.now(UTC)


def holds(warehouse: Path, snapshot: date, run_id: str) -> bool:
    """True when `run_id` holds the snapshot's unexpired lease (checked under the guard).

    The publish step's last check before its switch; `fenced` also keeps others out during it.
    """
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir():
        return False
    with _guarded(path):
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
    path = lease_path(warehouse, snapshot)
    with _guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            raise RunLockedError(
                f"run {run_id} cannot verify its lease on snapshot {snapshot}: {exc}"
            ) from None
        if not _is_holder(held, run_id):
            now_held = "no lease" if held is None else f"run {held['run_id']}: {_describe(held)}"
            raise RunLockedError(
                f"run {run_id} no longer holds snapshot {snapshot} ({now_held}); not publishing it"
            )
        yield


def unlock(warehouse: Path, snapshot: date, *, force: bool = False) -> str:
    """Remove a snapshot's lease left by a run that died; returns a one-line message.

    Without `force` only a lease shown to be stale (expired, or its process on this host is
    gone) is removed; a live one raises RunLockedError and an unreadable file LeaseError.
    `force` removes anything, for when a person has checked that the run is dead.
    """
    path = lease_path(warehouse, snapshot)
    if not path.parent.is_dir() or not path.exists():
        return f"snapshot {snapshot} has no lease"
    with _guarded(path):
        try:
            held = read_lease(path)
        except LeaseError as exc:
            if not force:
                raise
            _remove(path)
            log.warning("removed the unreadable lease %s by force: %s", path, exc)
            return f"removed the unreadable lease file {path} on snapshot {snapshot}"
        if held is None:
            return f"snapshot {snapshot} has no lease"
        stale = _stale(held, datetime.now(UTC))
        if stale is None and not force:
            who = f"run {held['run_id']} ({_describe(held)})"
            if held.get("holder", "process") == "process" and _same_host(held):
                raise RunLockedError(
                    f"{who} is still running on this host; the lease on snapshot {snapshot} stays. "
                    f"Stop that process first, or add --force if you are sure"
                )
            raise RunLockedError(
                f"{who} holds snapshot {snapshot} and cannot be checked from this host; wait for "
                f"the lease to expire, or add --force if you are sure that run is dead"
            )
        _remove(path)
    if stale is None:
        log.warning(
            "removed the live lease of run %s on snapshot %s by force", held["run_id"], snapshot
        )
    return (
        f"removed the lease of run {held['run_id']} on snapshot {snapshot} "
        f"(host {held.get('host')}, pid {held.get('pid')}): {stale or 'removed by force'}"
    )


@dataclass(frozen=True)
class LeaseScan:
    """The warehouse's leases: run ids holding a live one, and files nobody can read."""

    live: frozenset[str]
    unreadable: tuple[Path, ...]


def scan_leases(warehouse: Path) -> LeaseScan:
    """Every lease in `DIR/_locks/`, judged now (no guard: leases are replaced whole)."""
    locks = warehouse / "_locks"
    live: set[str] = set()
    unreadable: list[Path] = []
    if locks.is_dir():
        now = datetime.now(UTC)
        for path in sorted(locks.glob(f"*{LEASE}")):
            try:
                held = read_lease(path)
            except LeaseError:
                unreadable.append(path)
                continue
            if held is not None and _stale(held, now) is None:
                live.add(held["run_id"])
    return LeaseScan(frozenset(live), tuple(unreadable))


def live_run_ids(warehouse: Path) -> set[str]:
    """The run ids holding a live lease: their `_work/<run_id>` dirs must not be deleted.

    An unreadable lease counts as live, but its run id is unknown, so this raises LeaseError
    when there is one: the caller should then delete no work dir (or use `scan_leases`, which
    reports those files in `unreadable`).
    """
    scan = scan_leases(warehouse)
    if scan.unreadable:
        raise LeaseError(
            f"{len(scan.unreadable)} lease file(s) unreadable, so any run may still be live: "
            f"{', '.join(map(str, scan.unreadable))}; check them and remove them with "
            f"`{_unlock_hint(scan.unreadable[0])}`"
        )
    return set(scan.live)


def _snapshot_of(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.name.removeprefix("snapshot_date=").removesuffix(LEASE))
    except ValueError:
        return None


def holder_of(warehouse: Path, snapshot: date) -> str | None:
    """The run id holding the snapshot's live lease; None when it is free or stale.

    LeaseError when the lease file is unreadable: nobody can say whether it is free.
    """
    held = read_lease(lease_path(warehouse, snapshot))
    if held is None or _stale(held, datetime.now(UTC)) is not None:
        return None
    return held["run_id"]


def leases_of(warehouse: Path, run_id: str) -> list[date]:
    """The snapshots whose lease names `run_id`, oldest first (expired too: nobody took them).

    Unreadable lease files are skipped: they may be anyone's.
    """
    locks = warehouse / "_locks"
    found = []
    for path in sorted(locks.glob(f"*{LEASE}")) if locks.is_dir() else []:
        snapshot = _snapshot_of(path)
        try:
            held = read_lease(path)
        except LeaseError:
            continue
        if snapshot is not None and held is not None and held["run_id"] == run_id:
            found.append(snapshot)
    return found


def renew_run(warehouse: Path, run_id: str, ttl: timedelta = DEFAULT_TTL) -> list[date]:
    """Renew every lease of the run (an Airflow task does this first); the snapshots renewed.

    RunLockedError when the run holds none any more, or loses one while this runs.
    """
    snapshots = leases_of(warehouse, run_id)
    if not snapshots:
        raise RunLockedError(
            f"run {run_id} holds no snapshot lease in {warehouse} any more (taken over, or removed "
            f"with `custval unlock`); it stops here"
        )
    for snapshot in snapshots:
        renew(warehouse, snapshot, run_id, ttl)
    return snapshots


def release_run(warehouse: Path, run_id: str) -> list[date]:
    """Give back every lease of the run (a failed DAG run's callback); the snapshots released."""
    snapshots = [s for s in leases_of(warehouse, run_id) if release(warehouse, s, run_id)]
    return snapshots


# ------------------------------------------------------------------------------------------
# Renewal


class Heartbeat:
    """Renews a run's leases in a daemon thread, so a run longer than the ttl keeps them.

    A lost lease (stolen, removed, unreadable, or not renewable for a whole ttl) stops the
    heartbeat and is remembered: `check()` then raises RunLockedError naming the snapshot.
    Call `check()` between stages and before publishing.
    """

    def __init__(
        self,
        warehouse: Path,
        snapshots: Iterable[date],
        run_id: str,
        *,
        ttl: timedelta = DEFAULT_TTL,
        interval: float | None = None,
    ) -> None:
        ttl_s = ttl.total_seconds()
        if not ttl_s > 0:
            raise ValueError(f"a heartbeat needs a positive ttl, not {ttl}")
        if interval is None:
            interval = min(ttl_s / 4, 60.0)
        if not _finite(interval) or not 0 < interval < ttl_s:
            raise ValueError(
                f"interval must be a number of seconds > 0 and below the ttl ({ttl_s:g} s), "
                f"not {interval!r}"
            )
        self.warehouse = warehouse
        # A list is kept as given, not copied: leases the run takes later (appended to it) are
        # renewed too. Anything else is copied.
        self._snapshots: list[date] = snapshots if isinstance(snapshots, list) else list(snapshots)
        self.run_id = run_id
        self.ttl = ttl
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._last_ok: dict[date, float] = {}

    @property
    def snapshots(self) -> list[date]:
        """The snapshots renewed at the next beat."""
        return sorted(set(self._snapshots))

    @property
    def failure(self) -> str | None:
        """Why a lease was lost, or None."""
        return self._failure

    def start(self) -> Heartbeat:
        if self._thread is None:
            name = f"custval-heartbeat-{self.run_id}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=GUARD_TIMEOUT + 5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def check(self) -> None:
        """Raise RunLockedError if a lease was lost since the heartbeat started."""
        if self._failure is not None:
            raise RunLockedError(self._failure)

    def beat(self) -> bool:
        """Renew every lease once now; False (and the failure remembered) if one was lost."""
        for snap in self.snapshots:
            last_ok = self._last_ok.setdefault(snap, time.monotonic())
            try:
                renew(self.warehouse, snap, self.run_id, self.ttl)
                self._last_ok[snap] = time.monotonic()
            except RunLockedError as exc:
                self._fail(str(exc))
                return False
            except (LeaseError, OSError) as exc:  # perhaps passing (a full disk): retry in the ttl
                if time.monotonic() - last_ok >= self.ttl.total_seconds():
                    self._fail(
                        f"run {self.run_id} could not renew its lease on snapshot {snap} "
                        f"for {self.ttl}: {exc}"
                    )
                    return False
                log.warning(
                    "run %s could not renew its lease on snapshot %s (will retry): %s",
                    self.run_id,
                    snap,
                    exc,
                )
        return True

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = message
            log.error("%s", message)
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    return
            except Exception as exc:  # noqa: BLE001 - a thread must not die silently
                self._fail(f"run {self.run_id}: the lease heartbeat failed: {exc!r}")
                return
