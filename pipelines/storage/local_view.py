"""A run's local view of an object-store warehouse: the stages keep reading and writing local paths.

The stages (extract, validate, stage, marts, the models, publish) read and write files with
Polars, DuckDB, Great Expectations and pyarrow, by local path. For a warehouse at
`s3://bucket/prefix` a run therefore works in a *local view*: a directory on the worker's
scratch disk (`$CUSTVAL_SCRATCH`, default `<tmp>/custval-scratch-<uid>`) laid out like a warehouse,
one per run (`<scratch>/<run_id>/`), holding

- the run's work directory (`_work/<run_id>/`: landed rows, accepted rows, staged orders,
  spill, built marts), which never leaves the worker (except between Airflow tasks, see
  `pipelines/orchestration/tasks.py`);
- copies of the persistent zones the stages read (`pull`): the manifests, the accepted
  batches, the raw partition being rebuilt, the Data Docs site, the model tables of earlier
  snapshots;
- what the stages wrote into persistent zones, until it is copied up (`push`): the raw and
  accepted partitions of the run's day, a rejected batch, the Data Docs.

Which zones a stage reads and writes is the run lifecycle's knowledge (`pipelines/run/sync.py`);
this module only copies directories of the view to and from the store. Publishing never goes
through a push: the snapshot's version is uploaded and committed by the object store's own
protocol (`object_snapshots.py`), and leases live only in the store (`object_leases.py`).

A view's root holds a marker (`.custval-remote.json`) naming its warehouse, so the storage
entry points given the view's root -- leases, the commit, recovery -- find the store
(`remote_of`) and carry out their object-store protocol there; a local warehouse has no marker
and nothing changes for it.

A ledger in the view (`.custval-synced.json`) remembers each file's state on both sides after
it was last copied, so a file the run has not changed is neither downloaded again nor uploaded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from pipelines.storage import files, layout
from pipelines.storage.object_store import Entry, ObjectStore, is_object_url, normalise_url

COMMAND_PREFIX = "cmd-"  # views of commands that are not runs (report, unlock, catalog)

_views: dict[Path, ObjectStore] = {}  # view root -> its store, for this process
_stores: dict[str, ObjectStore] = {}  # one client per warehouse URL


def scratch_root() -> Path:
    """Where local views live: `$CUSTVAL_SCRATCH`, else `<tmp>/custval-scratch-<uid>`."""
    given = os.environ.get(layout.SCRATCH_ENV) or ""
    default = Path(tempfile.gettempdir()) / f"custval-scratch-{os.getuid()}"
    root = Path(given).expanduser() if given else default
    return root.resolve()


def store_for(url: str) -> ObjectStore:
    """The store of an `s3://` warehouse URL (one client per URL and process)."""
    url = normalise_url(url)
    if url not in _stores:
        _stores[url] = ObjectStore(url)
    return _stores[url]


def attach(root: Path, url: str) -> Path:
    """Make `root` the local view of the warehouse at `url` (created, restricted, marked)."""
    store = store_for(url)
    layout.restrict(root.parent)
    layout.restrict(root)  # landed rows, PII: only the pipeline's user
    marker = root / layout.VIEW_MARKER
    if not marker.is_file():
        marker.write_text(json.dumps({"warehouse": store.url}) + "\n")
    _views[root] = store
    return root


def command_name() -> str:
    """A fresh view name for a command that is not a run."""
    import secrets

    return f"{COMMAND_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"


def open_view(url: str, name: str) -> Path:
    """The local view `<scratch>/<name>/` of the warehouse at `url`."""
    return attach(scratch_root() / name, url)


def remote_of(root: Path | PurePosixPath) -> ObjectStore | None:
    """The object store `root` is a local view of; None for a local warehouse."""
    if not isinstance(root, Path):
        return None
    if root in _views:
        return _views[root]
    try:
        record = json.loads((root / layout.VIEW_MARKER).read_text())
    except (OSError, ValueError):
        return None
    url = record.get("warehouse") if isinstance(record, dict) else None
    if not isinstance(url, str) or not is_object_url(url):
        return None
    _views[root] = store_for(url)
    return _views[root]


def display(root: Path) -> str:
    """How messages name a warehouse: its URL for a view, else its directory."""
    store = remote_of(root)
    return store.url if store is not None else str(root)


def close(root: Path) -> None:
    """Delete a view (it holds source rows); the store keeps everything published."""
    files.remove_tree(root)


def views_of(store: ObjectStore) -> list[Path]:
    """The views of `store` on this host's scratch directory (for recovery)."""
    scratch = scratch_root()
    if not scratch.is_dir():
        return []
    out = []
    for entry in sorted(scratch.iterdir()):
        try:
            record = json.loads((entry / layout.VIEW_MARKER).read_text())
        except (OSError, ValueError):
            continue
        if entry.name.startswith(COMMAND_PREFIX):
            continue  # a command's own, removed by it
        if isinstance(record, dict) and record.get("warehouse") == store.url:
            out.append(entry)
    return out


# ------------------------------------------------------------------------------------------
# Copies between the view and the store


class _Ledger:
    """What the view and the store held when a file was last copied either way.

    `<view>/.custval-synced.json`: for each file, (local size, local mtime_ns, object size,
    object mtime) right after the copy. A file is unchanged on both sides while both still
    match, so it is neither downloaded nor uploaded again -- without touching any file's
    mtime (a landed Parquet source may be a hard link to the user's own file).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / layout.SYNC_LEDGER
        try:
            self.entries: dict[str, list[Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def _state(path: Path, entry: Entry | None) -> list[Any] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        if entry is None:
            return None
        mtime = entry.mtime.isoformat() if entry.mtime else None
        return [st.st_size, st.st_mtime_ns, entry.size, mtime]

    def same(self, key: str, path: Path, entry: Entry | None) -> bool:
        state = self._state(path, entry)
        return state is not None and self.entries.get(key) == state

    def note(self, key: str, path: Path, entry: Entry | None) -> None:
        state = self._state(path, entry)
        if state is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = state

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.path)


def _local_files(directory: Path) -> list[PurePosixPath]:
    if not directory.is_dir():
        return []
    return sorted(
        PurePosixPath(p.relative_to(directory).as_posix())
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith(".")  # temp files of a write in progress
    )


def pull(
    root: Path, rel: str | PurePosixPath, *, skip: Callable[[str], bool] | None = None
) -> None:
    """Make the view's `rel` directory equal to the store's (changed objects downloaded,
    files the store no longer has removed); `skip(relative name)` leaves some alone."""
    store = remote_of(root)
    if store is None:
        return
    zone = PurePosixPath(str(rel))
    local = root / zone
    ledger = _Ledger(root)
    remote = {e.rel: e for e in store.listing(zone) if skip is None or not skip(e.rel)}
    for name, entry in remote.items():
        path, key = local / name, str(zone / name)
        if not ledger.same(key, path, entry):
            store.download(zone / name, path)
            ledger.note(key, path, entry)
    for here in _local_files(local):
        if str(here) not in remote and (skip is None or not skip(str(here))):
            (local / here).unlink(missing_ok=True)
            ledger.forget(str(zone / here))
    ledger.save()


def pull_manifests(root: Path) -> None:
    """`runs/`: the published manifests and last failures (not every run's history)."""

    def history(name: str) -> bool:  # snapshot_date=D/history/<run>.json
        return name.split("/", 2)[1:2] == [layout.HISTORY]

    pull(root, layout.RUNS.as_posix(), skip=history)


def push(
    root: Path,
    rel: str | PurePosixPath,
    *,
    last: Iterable[str] = (),
    delete: bool = True,
) -> None:
    """Make the store's `rel` prefix equal to the view's directory.

    The files named in `last` (a partition's record, which makes it count) are removed first
    when they change and written after everything else; with `delete`, objects the view no
    longer has go (all of them when the directory is gone).
    """
    store = remote_of(root)
    if store is None:
        return
    zone = PurePosixPath(str(rel))
    local = root / zone
    ledger = _Ledger(root)
    remote = {e.rel: e for e in store.listing(zone)}
    here = _local_files(local)
    changed = [n for n in here if not ledger.same(str(zone / n), local / n, remote.get(str(n)))]
    records = [n for n in changed if n.name in set(last)]
    for name in records:  # the partition does not count while its files are replaced
        if str(name) in remote:
            store.remove(zone / name)
    for name in [n for n in changed if n not in records] + records:
        store.upload(local / name, zone / name)
    if delete:
        keep = {str(n) for n in here}
        for gone in remote:
            if gone not in keep:
                store.remove(zone / gone)
                ledger.forget(str(zone / gone))
    if changed:
        after = {e.rel: e for e in store.listing(zone)}
        for name in changed:
            ledger.note(str(zone / name), local / name, after.get(str(name)))
    ledger.save()


def push_file(root: Path, rel: str | PurePath) -> None:
    """Copy one file of the view up, or delete the object when the view has none."""
    store = remote_of(root)
    if store is None:
        return
    path = root / str(rel)
    if path.is_file():
        store.upload(path, str(rel))
    else:
        store.remove(str(rel))


def published_form(root: Path, value: Any) -> Any:
    """A record (a manifest) with the view's paths as the store's URLs (as readers find them)."""
    store = remote_of(root)
    if store is None:
        return value
    prefix = str(root)

    def convert(v: Any) -> Any:
        if isinstance(v, str) and (v == prefix or v.startswith(prefix + "/")):
            return store.url + v[len(prefix) :]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return convert(value)


def local_form(root: Path, value: Any) -> Any:
    """The reverse of `published_form`: the store's URLs in a record as this view's paths."""
    store = remote_of(root)
    if store is None:
        return value
    prefix = store.url

    def convert(v: Any) -> Any:
        if isinstance(v, str) and (v == prefix or v.startswith(prefix + "/")):
            return str(root) + v[len(prefix) :]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return convert(value)


def publish_records(root: Path, directory: Path, names: Iterable[str]) -> None:
    """Rewrite the JSON records `names` in a directory of the view with the store's URLs in
    place of the view's paths (before it is pushed: another run's view has other paths)."""
    if remote_of(root) is None:
        return
    for name in names:
        path = directory / name
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        published = published_form(root, record)
        if published != record:
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(published, indent=2, default=str) + "\n")
            os.replace(tmp, path)


def text_form(root: Path, text: str) -> str:
    """A message with the view's paths as the store's URLs."""
    store = remote_of(root)
    return text if store is None else text.replace(str(root), store.url)
