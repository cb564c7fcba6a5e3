"""Snapshots published whole: a run writes an immutable version, one rename makes it visible.

A snapshot is every file a run publishes for one date: each table's partition, the
quarantine, and the manifest. Readers must never see some of one run and some of another,
so the files live in a run-specific *version* and readers reach them through one switch:

    _snapshots/snapshot_date=D/<run>@<token>/         a version, written completely first
        marts/<table>/part-0.parquet
        quarantine/orders/part-0.parquet
        runs/manifest.json
    _snapshots/snapshot_date=D/current -> <run>@<token>   THE switch: a symlink, replaced by rename(2)

and the paths readers use are symbolic links through `current`:

    marts/<table>/snapshot_date=D/part-0.parquet  -> …/_snapshots/snapshot_date=D/current/marts/<table>/part-0.parquet
    quarantine/orders/snapshot_date=D/part-0.parquet -> …/current/quarantine/orders/part-0.parquet
    runs/snapshot_date=D/manifest.json            -> …/current/runs/manifest.json

Replacing `current` is one atomic rename, so every table, the quarantine and the manifest of
snapshot D change together: a reader (DuckDB, Polars, pyarrow, pandas, Spark; `**` globs
included, since the partition directories are real) sees the old snapshot or the new one. The
links of an existing snapshot never change; only a new snapshot (or a new table) needs links
created, after the switch, the manifest's last -- a snapshot counts as published once its
manifest is readable.

A reader that opens the tables one after another while a switch happens can get the old
version of the first and the new one of the others; a reader that needs one snapshot across
many reads pins it: it reads the manifest, whose `version` names the version directory, and
reads the files there. The version that was current before (`previous`) is kept until the next
commit, so a pinned reader has a whole publish cycle to finish.

Crashes: a version that never became `current` is garbage, and a commit interrupted after the
switch leaves a journal file (`.commit`) that `recover` rolls forward (links made). `recover`
runs at the start of every command; it only touches what no live run owns
(`pipelines/storage/locking.py` says which runs are live).

An object-store warehouse has no links and no rename: given a run's local view of one
(`local_view.py`), `commit`, `discard` and `recover` carry out the object store's protocol
instead (`object_snapshots.py`: immutable versions, one conditional put of a pointer).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

from pipelines.errors import PublishError
from pipelines.storage import layout
from pipelines.storage.atomic import fsync_path
from pipelines.storage.faults import checkpoint
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.storage.local_view import remote_of

CURRENT = "current"
PREVIOUS = "previous"  # the version current before: kept until the next commit, for pinned readers
JOURNAL = ".commit"
MANIFEST = PurePosixPath(layout.RUNS.as_posix()) / layout.MANIFEST_FILE
_SEP = "@"  # run ids never contain it (see RunContext.create)


partition_name = layout.snapshot_partition


def snapshot_root(warehouse: Path, snapshot: date) -> Path:
    return layout.snapshot_root(warehouse, snapshot)


def owner_of(version_name: str) -> str:
    """The run that wrote a version (its directory name is `<run_id>@<token>`)."""
    return version_name.split(_SEP, 1)[0]


def new_version(warehouse: Path, snapshot: date, run_id: str) -> Path:
    """A fresh, empty version directory for `run_id`'s publish of `snapshot`."""
    root = snapshot_root(warehouse, snapshot)
    version = root / f"{run_id}{_SEP}{secrets.token_hex(4)}"
    version.mkdir(parents=True)
    return version


def current_version(warehouse: Path, snapshot: date) -> Path | None:
    link = snapshot_root(warehouse, snapshot) / CURRENT
    try:
        return link.parent / os.readlink(link)
    except (FileNotFoundError, OSError):
        return None


def published_snapshots(warehouse: Path) -> list[date]:
    """Snapshots whose manifest readers can see, oldest first."""
    partitions = layout.dated_partitions(warehouse / layout.RUNS, "snapshot_date")
    return [day for day, entry in partitions.items() if (entry / layout.MANIFEST_FILE).is_file()]


def visible_path(warehouse: Path, snapshot: date, rel: PurePosixPath) -> Path:
    """Where readers find a version's file: `<zone…>/snapshot_date=D/<file>`."""
    return layout.visible_path(warehouse, snapshot, rel)


def version_files(version: Path) -> list[PurePosixPath]:
    """Every file of a version, relative to it; the manifest last."""
    files = sorted(
        PurePosixPath(p.relative_to(version).as_posix())
        for p in version.rglob("*")
        if (p.is_file() or p.is_symlink())
        and not p.name.startswith(".")  # a temp file of a killed write
    )
    files.sort(key=lambda rel: rel == MANIFEST)
    return files


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            fsync_path(path)
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        fsync_path(path)
    fsync_path(root)


@dataclass(frozen=True)
class Committed:
    version: Path
    previous: Path | None
    files: list[PurePosixPath]


def commit(
    warehouse: Path,
    snapshot: date,
    version: Path,
    *,
    fence: Callable[[], AbstractContextManager[None]] | None = None,
) -> Committed:
    """Make `version` the snapshot readers see, in one atomic step.

    The switch happens inside `fence()`, which raises when the run no longer holds its lease
    and keeps anyone from taking it over meanwhile: a run that was taken over can never
    overwrite the run that took over.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_snapshots

        return object_snapshots.commit(store, warehouse, snapshot, version, fence=fence)
    root = version.parent
    files = version_files(version)
    if MANIFEST not in files:
        raise PublishError(f"{version}: a version is committed with its manifest ({MANIFEST})")
    _fsync_tree(version)
    previous = current_version(warehouse, snapshot)
    journal = root / JOURNAL
    if previous is not None and previous.name == version.name:  # a retried commit: finish it
        record = read_json(journal) or {}
        _link_all(
            warehouse, snapshot, files, [PurePosixPath(f) for f in record.get("previous_files", [])]
        )
        journal.unlink(missing_ok=True)
        return Committed(version, None, files)
    old_files = version_files(previous) if previous is not None and previous.is_dir() else []
    # Every partition directory must exist and be writable before anything becomes visible.
    for rel in files:
        parent = visible_path(warehouse, snapshot, rel).parent
        parent.mkdir(parents=True, exist_ok=True)
        if not os.access(parent, os.W_OK):
            raise PublishError(
                f"cannot write to {parent}: nothing was published (check its permissions)"
            )
    checkpoint("commit.journal")
    write_json(
        journal,
        {"version": version.name, "previous_files": [str(f) for f in old_files]},
        durable=True,
    )
    tmp = root / f".{CURRENT}.{version.name}.tmp"
    tmp.unlink(missing_ok=True)
    checkpoint("commit.symlink")
    os.symlink(version.name, tmp)
    with fence() if fence is not None else nullcontext():
        checkpoint("commit.switch")
        os.replace(tmp, root / CURRENT)
        fsync_path(root)
    _link_all(warehouse, snapshot, files, old_files)
    if previous is not None:  # kept for readers that pinned it; the one before goes
        older = _target(root / PREVIOUS)
        checkpoint("commit.keep_previous")
        _point(root / PREVIOUS, previous.name)
        if older is not None and older not in (previous.name, version.name):
            checkpoint("commit.drop_older")
            shutil.rmtree(root / older, ignore_errors=True)
    checkpoint("commit.journal_done")
    journal.unlink(missing_ok=True)
    return Committed(version, previous, files)


def _target(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


def _point(link: Path, target: str) -> None:
    """Make the symlink `link` point at `target`, atomically."""
    tmp = link.with_name(f".{link.name}.{target}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _link_all(
    warehouse: Path, snapshot: date, files: list[PurePosixPath], old_files: Iterable[PurePosixPath]
) -> None:
    """Links for every file of the current version (manifest last); stale ones removed."""
    root = snapshot_root(warehouse, snapshot)
    wanted = {visible_path(warehouse, snapshot, rel) for rel in files}
    for rel in old_files:  # a table the new version no longer has: its link would dangle
        link = visible_path(warehouse, snapshot, PurePosixPath(rel))
        if link not in wanted and link.is_symlink():
            checkpoint("commit.unlink_stale")
            link.unlink(missing_ok=True)
    for rel in files:
        link = visible_path(warehouse, snapshot, rel)
        _ensure_link(link, os.path.relpath(root / CURRENT / rel, link.parent))
    for partition in {link.parent for link in wanted}:
        if partition.parent.name != layout.RUNS.name:  # runs/snapshot_date=D/ also keeps history/
            _drop_strays(partition, keep={link.name for link in wanted if link.parent == partition})


def _ensure_link(link: Path, target: str) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    checkpoint("commit.link")
    os.symlink(target, tmp)
    os.replace(tmp, link)  # also replaces a real file left by an older layout


def _drop_strays(partition: Path, keep: set[str]) -> None:
    """Files in a visible partition that belong to no version (an older layout, a crash)."""
    for entry in partition.iterdir():
        if entry.name not in keep and (entry.is_symlink() or entry.is_file()):
            entry.unlink(missing_ok=True)


def discard(warehouse: Path, snapshot: date, version: Path) -> None:
    """Delete a version that will never be committed (its run failed)."""
    if (store := remote_of(warehouse)) is not None:  # uploaded, perhaps, before it failed
        from pipelines.storage import object_snapshots

        object_snapshots.discard(store, snapshot, version.name)
    current = current_version(warehouse, snapshot)
    if version.is_dir() and (current is None or current.name != version.name):
        shutil.rmtree(version, ignore_errors=True)


def _date_of(root: Path) -> date:
    return date.fromisoformat(root.name.split("=", 1)[1])


def recover(warehouse: Path, live_runs: Callable[[], set[str]]) -> list[str]:
    """Roll interrupted commits forward and delete versions no live run will commit.

    `live_runs` is called after everything has been listed, so a run that starts during
    the scan (and so is not in the set) cannot own anything listed. Returns one line per
    repair, for the log.
    """
    if (store := remote_of(warehouse)) is not None:
        from pipelines.storage import object_snapshots

        return object_snapshots.recover(store, live_runs)
    zone = warehouse / layout.SNAPSHOTS
    if not zone.is_dir():
        return []
    roots = [
        r for r in sorted(zone.iterdir()) if r.name.startswith("snapshot_date=") and r.is_dir()
    ]
    listed = {root: sorted(root.iterdir()) for root in roots}
    live = live_runs()
    repairs: list[str] = []
    for root, entries in listed.items():
        snapshot = _date_of(root)
        current = current_version(warehouse, snapshot)
        kept = {current.name if current else None, _target(root / PREVIOUS)}
        journal = root / JOURNAL
        if journal in entries:
            record = read_json(journal) or {}
            if owner_of(str(record.get("version", ""))) not in live:
                if (
                    current is not None
                    and current.name == record.get("version")
                    and current.is_dir()
                ):
                    old = [PurePosixPath(f) for f in record.get("previous_files", [])]
                    _link_all(warehouse, snapshot, version_files(current), old)
                    repairs.append(
                        f"snapshot {snapshot}: finished the interrupted publish of {current.name}"
                    )
                journal.unlink(missing_ok=True)
        for entry in entries:
            link_tmp = next(
                (n for n in (CURRENT, PREVIOUS) if entry.name.startswith(f".{n}.")), None
            )
            if link_tmp and entry.name.endswith(".tmp"):  # a link being replaced when its run died
                if owner_of(entry.name[len(link_tmp) + 2 :]) not in live:
                    entry.unlink(missing_ok=True)
            elif _SEP in entry.name and entry.name not in kept and entry.is_dir():
                if owner_of(entry.name) not in live:
                    shutil.rmtree(entry, ignore_errors=True)
                    repairs.append(
                        f"snapshot {snapshot}: removed {entry.name}, left unpublished by a run that ended"
                    )
    return repairs
