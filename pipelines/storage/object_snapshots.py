"""Snapshots published whole on object storage: immutable versions, one conditional put commits.

Object stores have no rename and no symbolic links, so the local protocol
(`snapshots.py`: a version switched in by `rename(2)` of a link) becomes:

    _snapshots/snapshot_date=D/<run>@<token>/…     a version: every file of the run's publish,
                                                    uploaded completely first, never changed
    _snapshots/snapshot_date=D/current.json         THE commit: the pointer naming the version,
                                                    replaced by a conditional put
    marts/<table>/snapshot_date=D/part-0.parquet    the stable view readers glob: copies of the
    quarantine/orders/snapshot_date=D/…             committed version's files, made after the
    reports/snapshot_date=D/index.html              commit, the manifest last
    runs/snapshot_date=D/manifest.json

1. The run uploads its version (tables, quarantine, report; the manifest last).
2. It reads the pointer and its ETag, renews its lease (the fence: only a holder gets past it)
   and writes the new pointer with `If-Match: <that ETag>` (`If-None-Match: *` for a first
   publish). Of two writers racing from the same pointer exactly one put succeeds; the other
   fails, publishes nothing and deletes its version. **This put is the commit.**
3. The winner copies the version's files to the stable paths (server-side copies, each object
   replaced whole), removes files the new version no longer has, and copies the manifest last.
   A snapshot exists for readers once its manifest is readable, and the stable manifest always
   names a version that is whole in `_snapshots/` (it is copied only after every other file).
4. The version before the previous one is deleted; the previous one is kept until the next
   commit, for readers that pinned it.

What readers see. The manifest at `runs/snapshot_date=D/manifest.json` names its version; a
reader that reads it and then the files under `_snapshots/snapshot_date=D/<version>/` reads one
run's snapshot, whole, whatever happens meanwhile (the *pinned* read; it is what `custval report`
does). A reader that globs the stable paths sees whole files, and the tables of the committed
run once the copy is done; while a *republish* of an existing date is being copied (seconds),
such a reader may find some tables of the new run beside others of the old one. Each file
carries its run in its Parquet metadata (`run_id`), so that can be checked. A first publish of a
date has no such window: the manifest, which makes the snapshot exist, is copied last.

Crashes. A run killed before the pointer put leaves only an unreferenced version (deleted by
`recover`); one killed after it leaves the stable copy unfinished, which `recover` -- run at the
start of every command -- finishes: the stable manifest's version differs from the pointer's.
Neither leaves the previous snapshot unreadable: until the copy is finished the stable manifest
is the previous one and names the previous version, kept whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pipelines.errors import PublishError
from pipelines.storage import layout
from pipelines.storage.faults import checkpoint
from pipelines.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from pipelines.storage.snapshots import Committed

log = logging.getLogger(__name__)

_ROOT = PurePosixPath()
_SEP = "@"


def snapshot_root(snapshot: date) -> PurePosixPath:
    return layout.snapshot_root(_ROOT, snapshot)


def pointer_key(snapshot: date) -> PurePosixPath:
    return snapshot_root(snapshot) / layout.POINTER_FILE


def version_prefix(snapshot: date, version: str) -> PurePosixPath:
    return snapshot_root(snapshot) / version


def visible_key(snapshot: date, rel: PurePosixPath) -> PurePosixPath:
    return layout.visible_path(_ROOT, snapshot, rel)


def manifest_rel() -> PurePosixPath:
    return PurePosixPath(layout.RUNS.as_posix()) / layout.MANIFEST_FILE


def owner_of(version: str) -> str:
    return version.split(_SEP, 1)[0]


def pointer(store: ObjectStore, snapshot: date) -> tuple[dict[str, Any], str] | None:
    """The snapshot's committed pointer and its ETag; None before its first commit."""
    got = store.get_json(pointer_key(snapshot))
    if got is None or not isinstance(got[0], dict) or not got[0].get("version"):
        return None
    return got


def commit(
    store: ObjectStore,
    view: Path,
    snapshot: date,
    version: Path,
    *,
    fence: Callable[[], AbstractContextManager[None]] | None = None,
) -> Committed:
    """Upload the view's `version` and make it the snapshot readers see (the module's steps)."""
    from pipelines.storage.snapshots import MANIFEST, Committed, version_files

    files = version_files(version)
    if MANIFEST not in files:
        raise PublishError(f"{version}: a version is committed with its manifest ({MANIFEST})")
    prefix = version_prefix(snapshot, version.name)
    current = pointer(store, snapshot)
    if current is not None and current[0]["version"] == version.name:  # a retried commit
        _show(store, snapshot, current[0])
        return Committed(version, None, files)
    for rel in files:  # the manifest last: a version is whole once its manifest is there
        checkpoint("commit.upload")
        store.upload(version / rel, prefix / rel)
    before = current[0] if current is not None else {}
    record = {
        "version": version.name,
        "previous": before.get("version"),
        "files": [str(f) for f in files],
        "previous_files": before.get("files", []),
        "committed_at": datetime.now(UTC).isoformat(),
    }
    body = _json(record)
    with fence() if fence is not None else nullcontext():
        checkpoint("commit.switch")
        if current is None:
            won = store.put(pointer_key(snapshot), body, if_absent=True)
        else:
            won = store.put(pointer_key(snapshot), body, if_match=current[1])
    if won is None:
        store.remove_tree(prefix)
        raise PublishError(
            f"snapshot {snapshot} was committed by another run while this one was publishing "
            f"(the pointer {store.url_of(pointer_key(snapshot))} changed); nothing was published "
            "by this run"
        )
    _show(store, snapshot, record)
    older = before.get("previous")
    if older and older not in (before.get("version"), version.name):
        checkpoint("commit.drop_older")
        store.remove_tree(version_prefix(snapshot, older))
    previous = version.parent / str(before["version"]) if before.get("version") else None
    return Committed(version, previous, files)


def _json(record: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(record, indent=2) + "\n").encode()


def _show(store: ObjectStore, snapshot: date, record: dict[str, Any]) -> None:
    """Copy the committed version's files to the stable paths; the manifest last."""
    prefix = version_prefix(snapshot, str(record["version"]))
    files = [PurePosixPath(f) for f in record.get("files", [])]
    manifest = manifest_rel()
    wanted = {visible_key(snapshot, rel) for rel in files}
    for rel in files:
        if rel != manifest:
            checkpoint("commit.copy")
            store.copy(prefix / rel, visible_key(snapshot, rel))
    for rel in record.get("previous_files", []):  # a table the new version no longer has
        stale = visible_key(snapshot, PurePosixPath(rel))
        if stale not in wanted:
            checkpoint("commit.unlink_stale")
            store.remove(stale)
    checkpoint("commit.copy_manifest")
    store.copy(prefix / manifest, visible_key(snapshot, manifest))


def discard(store: ObjectStore, snapshot: date, version: str) -> None:
    """Delete a version that will never be committed (its run failed)."""
    current = pointer(store, snapshot)
    if current is None or current[0]["version"] != version:
        store.remove_tree(version_prefix(snapshot, version))


def recover(store: ObjectStore, live_runs: Callable[[], set[str]]) -> list[str]:
    """Finish interrupted copies and delete versions no live run will commit (as
    `snapshots.recover`); one line per repair."""
    zone = layout.SNAPSHOTS.as_posix()
    roots = [r for r in store.walk_dirs(zone) if layout.partition_date(r) is not None]
    listed = {r: list(store.walk_dirs(f"{zone}/{r}")) for r in roots}
    live = live_runs()
    repairs: list[str] = []
    for root, versions in listed.items():
        snapshot = layout.partition_date(root)
        assert snapshot is not None
        current = pointer(store, snapshot)
        kept: set[str] = set()
        if current is not None:
            record = current[0]
            kept = {str(record["version"]), str(record.get("previous") or "")}
            shown = store.read_json(visible_key(snapshot, manifest_rel())) or {}
            if shown.get("version") != record["version"] and (
                owner_of(str(record["version"])) not in live
            ):
                _show(store, snapshot, record)
                repairs.append(
                    f"snapshot {snapshot}: finished the interrupted publish of {record['version']}"
                )
        for name in versions:
            if _SEP in name and name not in kept and owner_of(name) not in live:
                store.remove_tree(version_prefix(snapshot, name))
                repairs.append(
                    f"snapshot {snapshot}: removed {name}, left unpublished by a run that ended"
                )
    return repairs
