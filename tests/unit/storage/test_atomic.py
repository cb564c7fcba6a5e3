"""Whole directories swapped in atomically (the raw and accepted zones): a reader sees one whole version."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.publish.tables import write_partition_files
from pipelines.storage.atomic import swap_in


def _partition(root: Path, name: str, rows: int, tag: str) -> Path:
    staged = root / name
    write_partition_files(pa.table({"v": [tag] * rows, "i": list(range(rows))}), staged)
    return staged


def test_swap_replaces_an_existing_partition(tmp_path: Path) -> None:
    target = tmp_path / "t" / "snapshot_date=2024-01-01"
    swap_in(_partition(tmp_path, "s1", 3, "old"), target)
    swap_in(_partition(tmp_path, "s2", 5, "new"), target)
    assert pq.read_table(target)["v"].to_pylist() == ["new"] * 5
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()
    assert [p.name for p in target.parent.iterdir()] == ["snapshot_date=2024-01-01"]


def test_readers_never_see_a_mix(tmp_path: Path) -> None:
    """A reader polling while partitions are swapped back and forth sees one whole version."""
    target = tmp_path / "t" / "snapshot_date=2024-01-01"
    swap_in(_partition(tmp_path, "s0", 20_000, "A"), target)
    seen: list[tuple[int, set[str]]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                t = pq.read_table(target)
            except (FileNotFoundError, OSError):
                continue  # only possible on systems without an atomic exchange
            seen.append((t.num_rows, set(t["v"].to_pylist())))

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(30):
        tag = "A" if k % 2 else "B"
        swap_in(_partition(tmp_path, f"s{k + 1}", 20_000 if tag == "A" else 10_000, tag), target)
    stop.set()
    reader.join()
    assert seen
    for rows, tags in seen:
        assert (rows, tags) in ((20_000, {"A"}), (10_000, {"B"}))
