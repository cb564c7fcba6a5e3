"""The beginning and the end of every run: repair, order, leases -- and what a failure leaves.

begin      repair what crashed runs left (`storage/recovery.py`), refuse or wait while an
           earlier day this snapshot depends on is not built yet, take the snapshot leases
end        release the leases, delete the work directory -- on failure too, after
           discarding the unpublished version of the snapshot
"""

from __future__ import annotations

import json
import time as clock
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.run import sync
from pipelines.run.ordering import OutOfOrderError, out_of_order
from pipelines.run.stages import window
from pipelines.storage import locking, snapshots
from pipelines.storage.recovery import recover_warehouse
from pipelines.transform.privacy import hmac_key


@dataclass
class Leases:
    """The snapshot leases a run holds; more are taken when it rebuilds beyond its window."""

    ctx: RunContext
    holder: locking.Holder = "process"
    held: list[date] = field(default_factory=list)

    def take(self, snapshots: list[date], wait_seconds: float = 0) -> None:
        wanted = [s for s in snapshots if s not in self.held]
        if wanted:
            locking.acquire_all(
                self.ctx.warehouse,
                wanted,
                self.ctx.owner_run_id,
                wait_seconds=wait_seconds,
                holder=self.holder,
            )
            self.held.extend(wanted)

    def release(self) -> None:
        locking.release_all(self.ctx.warehouse, self.held, self.ctx.owner_run_id)
        self.held.clear()


def preflight(ctx: RunContext) -> None:
    """What would stop the run later and is known now, reported before any stage runs: the
    config (loaded and checked) and, when PII columns are hashed, the HMAC key."""
    config = ctx.config
    if config.privacy.hashed_columns:
        hmac_key(config.privacy.hmac_key_env)


def begin(ctx: RunContext, wait_seconds: float = 0, holder: locking.Holder = "process") -> Leases:
    """Repair, check the order, take the leases: what every run does before its first stage."""
    if wait_seconds != wait_seconds or wait_seconds < 0 or wait_seconds == float("inf"):
        raise CustvalError(f"--wait must be a number of seconds >= 0, got {wait_seconds}")
    preflight(ctx)
    recover_warehouse(ctx.warehouse)
    deadline = clock.monotonic() + wait_seconds
    leases = Leases(ctx, holder)
    while True:
        sync.refresh(ctx, accepted=True)  # an object-store warehouse: as it is now
        reason = out_of_order(ctx)
        if reason is None:
            leases.take(
                [ctx.snapshot_date, *window(ctx)],
                wait_seconds=max(0.0, deadline - clock.monotonic()),
            )
            sync.refresh(ctx)
            reason = out_of_order(ctx)  # D-1's run may have ended meanwhile, or begun
            if reason is None:
                return leases
            leases.release()
        if clock.monotonic() >= deadline:
            raise OutOfOrderError(reason)
        clock.sleep(min(5.0, max(0.1, deadline - clock.monotonic())))


def discard_unpublished(ctx: RunContext) -> None:
    """A failed run's version of the snapshot, if publish had begun it, is never committed."""
    try:
        state = json.loads((ctx.work_dir / "published.json").read_text())
    except (OSError, ValueError):
        return
    snapshots.discard(ctx.warehouse, ctx.snapshot_date, Path(state["version"]))
