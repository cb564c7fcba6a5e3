"""Failures as one line each: which file or rule, what happened, what to do.

Libraries (Polars, DuckDB, Great Expectations) report a full or read-only disk in their own
exception types; the line still says what happened and what to do.
"""

from __future__ import annotations

import errno

_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, or choose another --warehouse",
    errno.EDQUOT: "the disk quota is exhausted: free some space, or choose another --warehouse",
    errno.EROFS: "the filesystem is read-only: choose a writable --warehouse",
    errno.EACCES: "permission denied: check the directory's owner and mode, or choose another --warehouse",
    errno.EPERM: "operation not permitted: check the directory's owner and mode",
}


_MESSAGE_HINTS = {
    "No space left on device": errno.ENOSPC,
    "Read-only file system": errno.EROFS,
    "Disk quota exceeded": errno.EDQUOT,
}


def os_error_line(exc: OSError) -> str:
    """One line for a failed file operation: which file, what happened, what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = _DISK_HINTS.get(exc.errno or 0)
    return f"{where}{exc.strerror or exc}" + (
        f" ({hint}); nothing was published by this run" if hint else ""
    )


def custval_error_line(exc: BaseException) -> str:
    """Our own errors as one line, with what to do about a full or read-only disk added."""
    text = " ".join(str(exc).split())
    for marker, code in _MESSAGE_HINTS.items():
        if marker in text and _DISK_HINTS[code] not in text:
            return f"{text} ({_DISK_HINTS[code]})"
    return text


def failure_line(exc: BaseException) -> str:
    """One line for any failure. Libraries (Polars, DuckDB, GX) report a full disk in their own
    exception types; the message still says what happened and what to do."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os_error_line(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker, code in _MESSAGE_HINTS.items():
        if marker in text:
            return f"{text[:400]} ({_DISK_HINTS[code]}); nothing was published by this run"
    return f"{type(exc).__name__}: {text[:400]} (unexpected: run with --debug for the traceback, and please report it)"
