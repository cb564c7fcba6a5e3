"""Runs racing for one snapshot lease, in real processes: exactly one wins, every time.

Worker processes are forked once and race 200 times: per trial each waits at a barrier, then
all call `acquire` (wait 0) on that trial's snapshot at the same moment. A fresh snapshot per
trial keeps trials independent without clean-up between them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipelines.errors import RunLockedError
from pipelines.storage import locking

FORK = multiprocessing.get_context("fork")
BASE = date(2000, 1, 1)
TRIALS = 200


def _seed_expired(lock: ModuleType, warehouse: Path, snapshot: date) -> None:
    """An expired lease left by a crashed run, written directly (as any version would read it)."""
    path = lock.lease_path(warehouse, snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    past = datetime.now(UTC) - timedelta(hours=1)
    path.write_text(
        json.dumps(
            {
                "run_id": "crashed",
                "host": socket.gethostname(),
                "pid": 1,
                "acquired_at": (past - timedelta(hours=6)).isoformat(),
                "expires_at": past.isoformat(),
            }
        )
    )


def _worker(
    lock: ModuleType, k: int, warehouse: Path, trials: int, start: Any, results: Any
) -> None:
    logging.getLogger("pipelines.storage.locking").setLevel(
        logging.ERROR
    )  # takeover warnings: not from children
    for t in range(trials):
        try:
            start.wait(timeout=60)
        except threading.BrokenBarrierError:
            return
        try:
            lock.acquire(warehouse, BASE + timedelta(days=t), f"w{k}-t{t}", wait_seconds=0)
            results.put((t, k, "won"))
        except RunLockedError:
            results.put((t, k, "refused"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            results.put((t, k, f"error {exc!r}"))
    # Stay alive until the parent has checked the last trial: a winner's lease is a `process`
    # lease, and once its process is gone the others may rightly take it over.
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=60)


def race(
    lock: ModuleType, warehouse: Path, *, workers: int, trials: int, expired: bool
) -> list[str]:
    """Run the trials; the problems found, one line per bad trial (empty when all were fine)."""
    start = FORK.Barrier(workers + 1)
    results = FORK.Queue()
    procs = [
        FORK.Process(target=_worker, args=(lock, k, warehouse, trials, start, results), daemon=True)
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    problems: list[str] = []
    try:
        for t in range(trials):
            snapshot = BASE + timedelta(days=t)
            if expired:
                _seed_expired(lock, warehouse, snapshot)
            start.wait(timeout=60)
            outcomes = sorted(results.get(timeout=60) for _ in range(workers))
            assert all(o[0] == t for o in outcomes), outcomes
            winners = [k for _, k, r in outcomes if r == "won"]
            errors = [r for _, _, r in outcomes if r.startswith("error")]
            held = lock.read_lease(lock.lease_path(warehouse, snapshot))
            if len(winners) != 1 or errors:
                problems.append(f"trial {t}: winners {winners}, errors {errors}")
            elif held is None or held["run_id"] != f"w{winners[0]}-t{t}":
                problems.append(f"trial {t}: worker {winners[0]} won but the lease names {held}")
        start.wait(timeout=60)  # let the workers exit
    finally:
        start.abort()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return problems


@pytest.mark.parametrize(
    ("workers", "expired"), [(4, True), (2, False)], ids=["takeover-of-expired", "fresh"]
)
@pytest.mark.slow
def test_exactly_one_of_several_racing_runs_gets_the_lease(
    tmp_path: Path, workers: int, expired: bool
) -> None:
    began = time.monotonic()
    problems = race(locking, tmp_path, workers=workers, trials=TRIALS, expired=expired)
    assert not problems, f"{len(problems)} of {TRIALS} trials went wrong: {problems[:10]}"
    assert time.monotonic() - began < 60
    assert len(list((tmp_path / "_locks").glob("*.lease"))) == TRIALS
    assert not list((tmp_path / "_locks").glob("*.tmp"))  # no temp file left behind
