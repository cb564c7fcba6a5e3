"""The lease record: the JSON object in `DIR/_locks/snapshot_date=D.lease` naming D's holder.

Every reader of a lease -- the protocol (`locking`), the warehouse scans (`lease_scans`), the
CLI -- must agree on what a valid lease is, and an unreadable one must fail the same way
everywhere: one LeaseError naming the file and the remedy, `custval unlock --as-of D
--warehouse DIR --force`. So the file names, the parsing and validation, and the description
used in messages live here. The fields are listed in `locking`; whether a lease's holder is
still alive is `liveness`.
"""

from __future__ import annotations

import json
import math
import numbers
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pipelines.errors import CustvalError
from pipelines.storage.layout import lease_file

LEASE = ".lease"
GUARD = ".lock"
DEFAULT_TTL = timedelta(hours=6)

Holder = Literal["process", "run"]
HOLDERS: tuple[str, ...] = get_args(Holder)


class LeaseError(CustvalError):
    """A lease file exists but cannot be read (or written): nobody can tell who holds it."""


# ------------------------------------------------------------------------------------------
# Paths


def lease_path(warehouse: Path, snapshot: date) -> Path:
    return lease_file(warehouse, snapshot, LEASE)


def guard_path(path: Path) -> Path:
    """The guard file next to a lease (`snapshot_date=D.lock` for `snapshot_date=D.lease`)."""
    return path.with_name(path.name.removesuffix(LEASE) + GUARD)


def lease_snapshot(path: Path) -> date | None:
    """The snapshot a lease path is for; None for a name that encodes no date."""
    try:
        return date.fromisoformat(path.name.removeprefix("snapshot_date=").removesuffix(LEASE))
    except ValueError:
        return None


def unlock_hint(path: Path) -> str:
    """The unlock command for a lease path (it encodes the snapshot and the warehouse)."""
    snap = path.name.removeprefix("snapshot_date=").removesuffix(LEASE)
    return f"custval unlock --as-of {snap} --warehouse {path.parent.parent} --force"


# ------------------------------------------------------------------------------------------
# Reading and validating


def unreadable(path: Path | str, reason: str, hint: str | None = None) -> LeaseError:
    """The LeaseError for an unreadable lease: what is wrong, and how to remove it."""
    hint = hint or unlock_hint(Path(path))
    return LeaseError(
        f"lease file {path} is unreadable: {reason}; if no run is building that snapshot, "
        f"remove it with `{hint}`"
    )


def when(value: Any) -> datetime:
    """An ISO 8601 date-time from a lease (a naive one is taken as UTC); ValueError if not one."""
    if not isinstance(value, str):
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(path: Path | str, raw: bytes, hint: str | None = None) -> dict[str, Any]:
    """Validate a lease's bytes; every defect becomes one LeaseError saying what is wrong.

    `path` names the lease in messages, `hint` the command that removes it (by default the
    one for a local warehouse's lease file).
    """

    def unreadable(where: Path | str, reason: str) -> LeaseError:
        return _unreadable(where, reason, hint)

    if not raw.strip():
        raise unreadable(path, "it is empty (a full disk or a crash while it was written?)")
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise unreadable(path, "it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise unreadable(
            path,
            f"it is not valid JSON, perhaps truncated ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})",
        ) from None
    if not isinstance(record, dict):
        raise unreadable(path, f"it holds a JSON {type(record).__name__}, not an object")
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        what = "it has no run_id" if run_id is None else f"run_id {run_id!r} is not a name"
        raise unreadable(path, what)
    if "expires_at" not in record:
        raise unreadable(path, "it has no expires_at")
    for key in ("expires_at", "acquired_at", "renewed_at"):
        if key == "expires_at" or record.get(key) is not None:
            try:
                when(record[key])
            except ValueError:
                what = f"{key} {record[key]!r} is not an ISO 8601 date-time"
                raise unreadable(path, what) from None
    holder = record.get("holder", "process")
    if holder not in HOLDERS:
        raise unreadable(path, f"holder {holder!r} is neither 'process' nor 'run'")
    for key, least in (("pid", 1), ("pid_start", 0)):
        value = record.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        if value is not None and not ok:
            sign = "positive" if least else "non-negative"
            raise unreadable(path, f"{key} {value!r} is not a {sign} integer")
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
        raise unreadable(path, f"it cannot be opened ({exc.strerror or exc})") from None
    return _parse(path, raw)


def describe(record: dict[str, Any]) -> str:
    """Who holds a lease, for messages: host, pid, kind, since when, until when."""
    return (
        f"host {record.get('host')}, pid {record.get('pid')}, "
        f"{record.get('holder', 'process')} lease since {record.get('acquired_at')}, "
        f"expires {record.get('expires_at')}"
    )


# ------------------------------------------------------------------------------------------
# Checking what callers ask to write


def finite(value: object) -> bool:
    """A real number other than nan and +-inf (and not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def check_fields(run_id: str, holder: str, ttl: timedelta) -> None:
    """ValueError unless a lease for these could be written (and read back)."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, not {run_id!r}")
    if holder not in HOLDERS:
        raise ValueError(f"holder must be one of {HOLDERS}, not {holder!r}")
    if not isinstance(ttl, timedelta):
        raise ValueError(f"ttl must be a timedelta, not {ttl!r}")


_unreadable = unreadable
parse = _parse  # the object-store leases (`object_leases`) validate their bodies the same way
