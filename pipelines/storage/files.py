"""Moving and removing warehouse files, over `pyarrow.fs`: the one place stages do either.

Stages never call `os.replace`, `shutil.move` or `shutil.rmtree` on the warehouse; they ask
here. The operations are expressed over a `pyarrow.fs.FileSystem` (the local one today), so
the object-storage warehouse can supply its own. The commit primitives themselves -- the
directory exchange (`atomic.py`), the snapshot switch (`snapshots.py`) and the leases
(`locking.py`) -- are protocols of a local filesystem and get their own object-store
counterparts (conditional puts) rather than a shim.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pyarrow import fs


@cache
def local() -> fs.FileSystem:
    return fs.LocalFileSystem()


def remove_tree(path: Path) -> None:
    """Delete a directory and everything under it; nothing there is fine."""
    info = local().get_file_info(str(path))
    if info.type == fs.FileType.Directory:
        local().delete_dir(str(path))
    elif info.type != fs.FileType.NotFound:
        local().delete_file(str(path))


def fresh_dir(path: Path) -> Path:
    """An empty directory at `path` (whatever was there removed): a stage's staging area."""
    remove_tree(path)
    local().create_dir(str(path), recursive=True)
    return path


def move(source: Path, dest: Path) -> None:
    """Rename a file or directory within the warehouse (replacing a file at `dest`)."""
    local().move(str(source), str(dest))
