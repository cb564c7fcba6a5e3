"""Discovery: which files a `files` or `landing` source consists of.

A source is a file, a directory (read recursively) or a glob pattern. Every regular file found
is either read or refused with a code and a reason, and refused files go to the manifest:
nothing is skipped without being listed. A directory given by the user is walked, never
turned into a glob pattern (a folder named `orders[2024]` is a folder, not a character
class); a glob source is the user's own pattern and is used as one.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import SourceError
from pipelines.extract.readers import file_format, unsupported_reason

HIDDEN = "HIDDEN"
UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
NOT_A_FILE = "NOT_A_FILE"


@dataclass(frozen=True)
class RefusedFile:
    """A file of the source that is not read, and why."""

    path: str
    size: int
    reason: str
    code: str


@dataclass
class Discovered:
    """The files to read (sorted) and those refused (sorted by path)."""

    files: list[Path] = field(default_factory=list)
    refused: list[RefusedFile] = field(default_factory=list)


def discover(source: str, *, allow_empty: bool = False) -> Discovered:
    """The files of a source: a file, a directory (recursively) or a glob pattern.

    `allow_empty`: a directory with nothing to read is a quiet day (an arrival folder that
    holds no files, or only marker files), not an error.
    """
    path = Path(source).expanduser()
    if path.is_file():
        if file_format(path) is None:
            raise SourceError(f"{source}: {unsupported_reason(path)}")
        return Discovered([path.resolve()], [])
    if path.is_dir():
        root = path.resolve()
        found = _classify(_walk(root), root)
        if not found.files and not (allow_empty and all(r.code == HIDDEN for r in found.refused)):
            raise SourceError(
                f"{source}: no readable files in this directory {_refused_summary(found.refused)}"
            )
        return found
    if glob.has_magic(source):
        matches = [Path(p) for p in glob.glob(str(path), recursive=True)]
        candidates = [p for p in matches if not p.is_dir()]
        if not candidates:
            raise SourceError(f"{source}: the pattern matches no files")
        found = _classify(candidates, _literal_root(path))
        if not found.files:
            raise SourceError(
                f"{source}: the pattern matches no readable files {_refused_summary(found.refused)}"
            )
        return found
    raise SourceError(f"{source}: no such file or directory")


def refused_as_dicts(refused: list[RefusedFile]) -> list[dict[str, Any]]:
    """Refused files as plain dicts, for the manifest."""
    return [asdict(r) for r in refused]


def _walk(root: Path) -> list[Path]:
    """Every non-directory entry under `root`, by walking it (no pattern matching)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        out.extend(base / name for name in filenames)
        # os.walk lists symlinks to directories as directories without entering them: a
        # linked folder is refused as a whole rather than silently ignored.
        out.extend(base / name for name in dirnames if (base / name).is_symlink())
    return out


def _classify(paths: list[Path], root: Path) -> Discovered:
    found = Discovered()
    for p in paths:
        refused = _refusal(p, root)
        if refused is None:
            found.files.append(p.resolve())
        else:
            found.refused.append(refused)
    found.files.sort()
    found.refused.sort(key=lambda r: r.path)
    return found


def _refusal(p: Path, root: Path) -> RefusedFile | None:
    """Why `p` is not read (None: it is)."""
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    shown = str(p.absolute())
    if not p.is_file():
        what = (
            "a symbolic link to a directory"
            if p.is_dir()
            else "not a regular file (a broken link, a pipe or a socket)"
        )
        return RefusedFile(shown, size, f"{what}; only regular files are read", NOT_A_FILE)
    hidden = _hidden_part(p, root)
    if hidden is not None:
        return RefusedFile(
            shown,
            size,
            f"{hidden!r} starts with '.' or '_': by convention a temporary or marker file or folder "
            "(_SUCCESS, .part, .crc, _temporary), not data",
            HIDDEN,
        )
    if file_format(p) is None:
        return RefusedFile(shown, size, unsupported_reason(p), UNSUPPORTED_TYPE)
    return None


def _hidden_part(p: Path, root: Path) -> str | None:
    """The first part of `p` below `root` that starts with '.' or '_', if any."""
    try:
        parts = p.relative_to(root).parts
    except ValueError:
        parts = (p.name,)
    return next((part for part in parts if part.startswith((".", "_"))), None)


def _literal_root(pattern: Path) -> Path:
    """The leading part of a glob pattern without wildcards: the folder the pattern searches."""
    parts: list[str] = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def _refused_summary(refused: list[RefusedFile]) -> str:
    if not refused:
        return "(it holds no files)"
    counts: dict[str, int] = {}
    for r in refused:
        counts[r.code] = counts.get(r.code, 0) + 1
    codes = ", ".join(f"{n} {code}" for code, n in sorted(counts.items()))
    examples = ", ".join(Path(r.path).name for r in refused[:3]) + (
        ", ..." if len(refused) > 3 else ""
    )
    return f"({len(refused)} refused: {codes}; e.g. {examples})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()
