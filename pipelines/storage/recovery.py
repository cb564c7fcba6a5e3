"""Start-up recovery: whatever a crashed or killed run left behind is repaired before any work.

Every command that touches a warehouse calls `recover_warehouse` first. It

- finishes a publish that was interrupted after its atomic switch, and deletes snapshot
  versions that were never made visible (`pipelines/storage/snapshots.py`);
- deletes the work directories (`_work/<run_id>/`) of runs that are no longer live: they
  hold landed source rows, PII included, and must not outlive their run.

Only what no live run owns is touched (`pipelines/storage/locking.py` says which runs are live), so it
is safe while other runs are going on.

For an object-store warehouse (`warehouse` is a run's local view of it) the same repairs are
made in the store (`object_snapshots.recover`), and the local views of this host's runs of that
warehouse that are no longer live are deleted: they hold landed rows.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipelines.storage import layout, local_view, locking, snapshots

log = logging.getLogger(__name__)


class _Everyone(set[str]):
    """Every run id is live (when a lease cannot be read, nothing may be deleted)."""

    def __contains__(self, item: object) -> bool:
        return True


def recover_warehouse(warehouse: Path) -> list[str]:
    """Repair the warehouse after crashed runs; one line per repair (also logged)."""
    if not warehouse.is_dir():
        return []
    work = warehouse / layout.WORK
    # List first, then ask which runs are live: a run that starts meanwhile owns nothing listed.
    leftovers = sorted(p for p in work.iterdir() if p.is_dir()) if work.is_dir() else []
    live: set[str] | None = None

    def live_runs() -> set[str]:
        nonlocal live
        if live is None:
            scan = locking.scan_leases(warehouse)
            if scan.unreadable:  # its run may be live and its id is unknown: delete nothing
                log.warning(
                    "recovery skipped: unreadable lease file(s) %s (remove with `custval unlock --force`)",
                    ", ".join(map(str, scan.unreadable)),
                )
                live = _Everyone()
            else:
                live = set(scan.live)
        return live

    store = local_view.remote_of(warehouse)
    remote_work = list(store.walk_dirs(layout.WORK.as_posix())) if store is not None else []
    # This host's views of the store that a run has worked in (it held its leases then); a view
    # with no work directory holds only copies of manifests, and may be a run about to begin.
    views = (
        [v for v in local_view.views_of(store) if v != warehouse and (v / layout.WORK).is_dir()]
        if store is not None
        else []
    )
    repairs = snapshots.recover(warehouse, live_runs)
    if store is not None:
        for name in remote_work:  # work handed between Airflow tasks
            if name not in live_runs():
                store.remove_tree(f"{layout.WORK.as_posix()}/{name}")
                repairs.append(f"removed the work directory of run {name}, which ended")
        for view in views:
            if view.name not in live_runs():
                local_view.close(view)
                repairs.append(f"removed the local view {view} of run {view.name}, which ended")
    for path in leftovers:
        if path.name not in live_runs():
            shutil.rmtree(path, ignore_errors=True)
            repairs.append(
                f"removed the work directory of run {path.name}, which ended without cleaning up"
            )
    for line in repairs:
        log.warning("recovery: %s", line)
    return repairs
