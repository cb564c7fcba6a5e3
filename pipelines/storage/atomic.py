"""Atomic replacement of a whole directory: a reader sees the old one or the new one, never half.

A directory is written completely next to its target (on the same filesystem, under the
warehouse's `_work/`), then swapped into place. On Linux the swap is one
`renameat2(RENAME_EXCHANGE)` call, atomic even when the target already exists; elsewhere the
old directory is renamed aside first and the new one renamed in (a reader may then briefly
find nothing, but never a partial directory). Used for the raw and accepted zones, whose
batches are single directories; published snapshots, which span many directories, go
through `pipelines/storage/snapshots.py`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
from pathlib import Path

from pipelines.storage.faults import checkpoint

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def swap_in(staged: Path, target: Path) -> None:
    """Make the complete directory `staged` appear at `target`, replacing what was there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint("swap_in")
    if target.exists():
        if _renameat2_exchange(staged, target):
            shutil.rmtree(staged)  # now holds the previous partition
        else:
            aside = target.with_name(f".{target.name}.replaced")
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(target, aside)
            os.rename(staged, target)
            shutil.rmtree(aside)
    else:
        os.rename(staged, target)
    fsync_path(target.parent)
