"""Per-stage wall time and peak memory, measured around each stage and kept in the manifest.

Peak memory is the highest resident set size seen while the stage ran (sampled from
/proc/self/statm every 20 ms, which captures Arrow/Polars/DuckDB native allocations that
tracemalloc cannot see); where /proc is missing it falls back to the process's lifetime peak.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pipelines.memory import current_rss_bytes, lifetime_peak_bytes


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
