"""Keeping a CLI run's leases fresh while it works: the `Heartbeat` thread.

A lease expires `ttl` after it was last renewed; a CLI run may work longer than that, so a
daemon thread renews its leases every `interval` seconds, and the run asks `check()` between
stages and before publishing whether one was lost. (Each task of an Airflow run calls
`locking.renew_run` instead.) The renewal itself is `locking.renew`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType

from pipelines.errors import RunLockedError
from pipelines.storage.lease_guard import GUARD_TIMEOUT
from pipelines.storage.lease_records import DEFAULT_TTL, LeaseError, finite

log = logging.getLogger(__name__)


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
        if not finite(interval) or not 0 < interval < ttl_s:
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
        # Imported here, not at the top: `locking` imports this module to re-export Heartbeat.
        from pipelines.storage import locking

        for snap in self.snapshots:
            last_ok = self._last_ok.setdefault(snap, time.monotonic())
            try:
                locking.renew(self.warehouse, snap, self.run_id, self.ttl)
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
