"""The process's memory as the system sees it, read without importing an engine.

The stages' measurements (`run/metrics.py`) and the build's budget line (`engines.py`) both
read it; a process that only parses a DAG must not import DuckDB or Arrow to do so.
"""

from __future__ import annotations

import os
import resource
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int | None:
    """The resident set size now (None where /proc is missing): Arrow, Polars and DuckDB's
    native allocations included, which tracemalloc cannot see."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
