"""Is a lease's holder still alive? Process identity on this host, for dead-process takeover.

A `process` lease records who took it: the host, its boot id, the pid and the pid's start
time (/proc/<pid>/stat field 22, clock ticks since boot). Read again later on the same host,
the same facts tell a live holder from one that is gone: no such pid, a zombie, a pid reused
by a process with another start time, or a reboot since. A `run` lease, and any lease of
another host, is judged by its expiry only. Linux only (/proc).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.storage.lease_records import Holder, when


def boot_id() -> str | None:
    """The kernel's boot id (changes at every boot); None where it cannot be read."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int]:
    """(state, start time in clock ticks since boot) of `pid`, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    fields = text[text.rindex(")") + 2 :].split()  # the name (field 2) may hold spaces and ')'
    return fields[0], int(fields[19])  # fields 3 and 22


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot; None if that cannot be read."""
    try:
        return _stat(pid)[1]
    except (OSError, ValueError, IndexError):
        return None


def process_gone(pid: int, started: int | None) -> bool:
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


def same_host(record: dict[str, Any]) -> bool:
    return record.get("host") == socket.gethostname()


def stale_reason(record: dict[str, Any], now: datetime) -> str | None:
    """Why the lease protects nothing any more (for messages), or None while it is live."""
    expires = when(record["expires_at"])
    if expires <= now:
        return f"it expired at {expires.isoformat()}"
    pid = record.get("pid")
    if record.get("holder", "process") != "process" or pid is None or not same_host(record):
        return None
    then_boot, boot = record.get("boot_id"), boot_id()
    if then_boot and boot and then_boot != boot:
        return f"host {record['host']} has rebooted since it was taken"
    if process_gone(pid, record.get("pid_start")):
        return f"its process {pid} on host {record['host']} is no longer running"
    return None


def new_record(
    run_id: str, holder: Holder, ttl: timedelta, now: datetime, acquired_at: str | None = None
) -> dict[str, Any]:
    """The lease this process writes for `run_id`: who it is, so others can tell it is gone."""
    pid = os.getpid()
    return {
        "run_id": run_id,
        "holder": holder,
        "host": socket.gethostname(),
        "boot_id": boot_id(),
        "pid": pid,
        "pid_start": start_time(pid),
        "acquired_at": acquired_at or now.isoformat(),
        "renewed_at": now.isoformat(),
        "expires_at": (now + ttl).isoformat(),
    }
