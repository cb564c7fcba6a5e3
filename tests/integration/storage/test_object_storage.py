"""The object-store protocols against a real S3 server (moto on 127.0.0.1): conditional puts.

Leases: of many runs racing for one snapshot exactly one takes it; a stale lease is taken over
once; a run that lost its lease can neither renew it nor release the new holder's. Commits: of
two writers that read the same pointer exactly one publishes, the loser's version is deleted
and the stable view is the winner's; an interrupted copy is finished by recovery.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from warehouse_helper import Published, s3_client

from pipelines.errors import PublishError, RunLockedError
from pipelines.storage import local_view, object_leases, object_snapshots
from pipelines.storage.lease_records import LeaseError
from pipelines.storage.object_store import ObjectStore

DAY = date(2024, 3, 1)


@pytest.fixture
def store(s3_warehouse: str) -> ObjectStore:
    return ObjectStore(s3_warehouse)


def test_many_racing_runs_one_lease(store: ObjectStore) -> None:
    barrier = threading.Barrier(8)
    won: list[str] = []
    refused: list[str] = []

    def take(run_id: str) -> None:
        barrier.wait()
        try:
            object_leases.acquire(store, DAY, run_id)
            won.append(run_id)
        except RunLockedError:
            refused.append(run_id)

    threads = [threading.Thread(target=take, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7, (won, refused)
    held = object_leases.read(store, DAY)
    assert held is not None and held[0]["run_id"] == won[0]


def _expired(store: ObjectStore, run_id: str) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    record = {
        "run_id": run_id,
        "holder": "run",
        "host": "elsewhere",
        "acquired_at": (past - timedelta(hours=6)).isoformat(),
        "renewed_at": (past - timedelta(hours=6)).isoformat(),
        "expires_at": past.isoformat(),
    }
    store.put(object_leases.lease_key(DAY), json.dumps(record).encode())


def test_a_stale_lease_is_taken_over_once_and_the_old_holder_is_fenced_out(
    store: ObjectStore,
) -> None:
    _expired(store, "dead")
    barrier = threading.Barrier(4)
    won: list[str] = []

    def take(run_id: str) -> None:
        barrier.wait()
        with contextlib.suppress(RunLockedError):
            object_leases.acquire(store, DAY, run_id)
            won.append(run_id)

    threads = [threading.Thread(target=take, args=(f"next-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1, won
    with pytest.raises(RunLockedError, match="lost its lease"):
        object_leases.renew(store, DAY, "dead")
    assert object_leases.release(store, DAY, "dead") is False  # not the new holder's
    with pytest.raises(RunLockedError, match="no longer holds"):
        with object_leases.fenced(store, DAY, "dead"):
            pytest.fail("a run that lost its lease got past the fence")
    with object_leases.fenced(store, DAY, won[0]):
        pass
    assert object_leases.leases_of(store, won[0]) == [DAY]
    assert object_leases.holder_of(store, DAY) == won[0]
    assert object_leases.release(store, DAY, won[0]) is True
    assert object_leases.read(store, DAY) is None


def test_an_unreadable_lease_is_named_and_only_force_removes_it(store: ObjectStore) -> None:
    store.put(object_leases.lease_key(DAY), b"")
    with pytest.raises(LeaseError, match=r"is unreadable: it is empty") as info:
        object_leases.acquire(store, DAY, "run-1")
    assert f"--warehouse {store.url} --force" in str(info.value)
    with pytest.raises(LeaseError):
        object_leases.unlock(store, DAY)
    assert object_leases.scan_leases(store).unreadable
    assert "removed the unreadable lease" in object_leases.unlock(store, DAY, force=True)
    assert object_leases.read(store, DAY) is None


# ------------------------------------------------------------------------------------------
# Commits


def _version(view: Path, run_id: str, marker: str) -> Path:
    """A tiny version in the view: one 'table', a report and its manifest."""
    version = view / "_snapshots" / f"snapshot_date={DAY}" / f"{run_id}@{marker}"
    (version / "marts" / "t").mkdir(parents=True)
    (version / "marts" / "t" / "part-0.parquet").write_text(f"table of {run_id}")
    (version / "reports").mkdir()
    (version / "reports" / "index.html").write_text(f"page of {run_id}")
    (version / "runs").mkdir()
    manifest = {"run_id": run_id, "version": version.name}
    (version / "runs" / "manifest.json").write_text(json.dumps(manifest))
    return version


@pytest.fixture
def view(s3_warehouse: str, tmp_path: Path) -> Iterator[Path]:
    root = local_view.attach(tmp_path / "view", s3_warehouse)
    yield root
    local_view.close(root)


def test_of_two_writers_from_one_pointer_exactly_one_publishes(
    view: Path, s3_warehouse: str
) -> None:
    store = local_view.store_for(s3_warehouse)
    object_snapshots.commit(store, view, DAY, _version(view, "first", "0"))
    barrier = threading.Barrier(2)

    @contextlib.contextmanager
    def together() -> Iterator[None]:  # both have read the pointer; both put now
        barrier.wait()
        yield

    outcomes: dict[str, object] = {}

    def publish(run_id: str) -> None:
        try:
            object_snapshots.commit(store, view, DAY, _version(view, run_id, "1"), fence=together)
            outcomes[run_id] = "published"
        except PublishError as exc:
            outcomes[run_id] = exc

    threads = [threading.Thread(target=publish, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r, o in outcomes.items() if o == "published"]
    losers = [o for o in outcomes.values() if isinstance(o, PublishError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "was committed by another run while this one was publishing" in str(losers[0])
    wh = Published(s3_warehouse)
    part = f"snapshot_date={DAY}"
    assert wh.manifest(DAY) == {"run_id": winners[0], "version": f"{winners[0]}@1"}
    assert wh.read_bytes(f"marts/t/{part}/part-0.parquet") == f"table of {winners[0]}".encode()
    assert wh.read_bytes(f"reports/{part}/index.html") == f"page of {winners[0]}".encode()
    loser = "b" if winners[0] == "a" else "a"
    versions = {f.split("/")[0] for f in wh.files(f"_snapshots/{part}")}
    assert versions == {"first@0", f"{winners[0]}@1", "current.json"}, versions  # loser gone
    assert f"{loser}@1" not in versions


def test_a_first_publish_raced_by_two_writers(view: Path, s3_warehouse: str) -> None:
    store = local_view.store_for(s3_warehouse)
    barrier = threading.Barrier(2)

    @contextlib.contextmanager
    def together() -> Iterator[None]:
        barrier.wait()
        yield

    outcomes: list[object] = []

    def publish(run_id: str) -> None:
        try:
            object_snapshots.commit(store, view, DAY, _version(view, run_id, "1"), fence=together)
            outcomes.append(run_id)
        except PublishError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=publish, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["PublishError", "str"], outcomes


def test_recovery_finishes_a_copy_interrupted_after_the_commit(
    view: Path, s3_warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local_view.store_for(s3_warehouse)
    object_snapshots.commit(store, view, DAY, _version(view, "first", "0"))
    real_copy = store.copy
    calls = {"n": 0}

    def dies_after_one(source: object, dest: object) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("killed")
        real_copy(source, dest)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "copy", dies_after_one)
    with pytest.raises(OSError):
        object_snapshots.commit(store, view, DAY, _version(view, "second", "1"))
    monkeypatch.setattr(store, "copy", real_copy)
    wh = Published(s3_warehouse)
    assert wh.manifest(DAY)["run_id"] == "first"  # type: ignore[index]
    assert wh.json(f"_snapshots/snapshot_date={DAY}/current.json")["version"] == "second@1"  # type: ignore[index]
    repairs = object_snapshots.recover(store, lambda: set())
    assert repairs == [f"snapshot {DAY}: finished the interrupted publish of second@1"]
    assert wh.manifest(DAY)["run_id"] == "second"  # type: ignore[index]
    part = f"snapshot_date={DAY}"
    assert wh.read_bytes(f"marts/t/{part}/part-0.parquet") == b"table of second"
    assert wh.read_bytes(f"reports/{part}/index.html") == b"page of second"
    # a third commit drops the oldest version, keeps the one it replaces
    object_snapshots.commit(store, view, DAY, _version(view, "third", "2"))
    versions = {f.split("/")[0] for f in wh.files(f"_snapshots/{part}")}
    assert versions == {"second@1", "third@2", "current.json"}


def test_objects_written_conditionally(store: ObjectStore) -> None:
    first = store.put("k", b"1", if_absent=True)
    assert first is not None
    assert store.put("k", b"2", if_absent=True) is None
    second = store.put("k", b"3", if_match=first)
    assert second is not None and store.put("k", b"4", if_match=first) is None
    assert store.get("k") == (b"3", second)
    assert store.delete("k", if_match=first) is False and store.delete("k", if_match=second)
    assert store.get("k") is None
    bucket, prefix = store.bucket, store.prefix
    assert not s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents")
