"""The guard around every read-check-write of a lease, and the whole-file lease writes.

`guarded` holds an exclusive `flock` on the snapshot's guard file (`snapshot_date=D.lock`,
created on first use, never deleted) for the few milliseconds a take, renewal, release,
unlock or fencing check needs, so two runs can never both see a lease free and both take it.
Under the guard a lease is replaced whole (temp file in the same directory, fsync, rename) or
removed, so a reader without the guard sees the old lease or the new one, never half of one.
The protocol built on these is described in `locking`. Linux only (flock).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not a Unix
    fcntl = None  # type: ignore[assignment]

from pipelines.errors import CustvalError
from pipelines.storage.atomic import fsync_path
from pipelines.storage.lease_records import LeaseError, guard_path

GUARD_TIMEOUT = 10.0  # seconds; the guard is held for milliseconds: longer means a hung holder


def require_linux() -> None:
    if fcntl is None or not sys.platform.startswith("linux"):
        raise CustvalError(
            f"snapshot leases need Linux (flock on the guard file, /proc to check a holder's "
            f"process); this is {sys.platform}"
        )


@contextlib.contextmanager
def guarded(path: Path) -> Iterator[None]:
    """Hold the exclusive flock on the lease's guard file: a short critical section."""
    require_linux()
    assert fcntl is not None
    guard = guard_path(path)
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


def write_lease(path: Path, record: dict[str, Any]) -> None:
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


def remove_lease(path: Path) -> None:
    """Delete the lease, durably (call under the guard)."""
    path.unlink(missing_ok=True)
    fsync_path(path.parent)
