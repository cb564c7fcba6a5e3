"""The process's memory as the system sees it, and the measure of a piece of work.

`measure` gives wall time and peak memory around a stage (kept in the manifest), a model of
the build or a shard's part. Peak memory is the highest resident set size seen meanwhile
(sampled from /proc/self/statm every 20 ms, which captures Arrow/Polars/DuckDB native
allocations that tracemalloc cannot see); where /proc is missing it falls back to the
process's lifetime peak. Nothing here imports an engine: a process that only parses a DAG
measures nothing and must not import DuckDB or Arrow.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass
class StageMeasure:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "peak_rss_mb": round(self.peak_rss_mb, 1)}


@contextmanager
def measure(interval: float = 0.02) -> Iterator[StageMeasure]:
    result = StageMeasure()
    peak = current_rss_bytes()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(interval):
            rss = current_rss_bytes()
            if rss is not None and (peak is None or rss > peak):
                peak = rss

    thread = threading.Thread(target=sample, name="custval-memory-sampler", daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.seconds = time.perf_counter() - started
        end = current_rss_bytes()
        if peak is None or end is None:
            result.peak_rss_mb = lifetime_peak_bytes() / 2**20
        else:
            result.peak_rss_mb = max(peak, end) / 2**20
