"""Discovery: every file of a source is either read or refused with a code; none vanishes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.errors import SourceError
from pipelines.extract.discovery import (
    Discovered,
    RefusedFile,
    discover,
    refused_as_dicts,
    sha256_file,
)


def _touch(root: Path, rel: str, data: bytes = b"order_id\nO1\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root.resolve()).as_posix() for p in paths]


def test_a_directory_lists_every_file_once(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    read = [
        "a.csv",
        "b.csv.gz",
        "c.tsv",
        "d.parquet",
        "e.jsonl.bz2",
        "nested/deeper/f.ndjson",
        "nested/g.json.gz",
    ]
    hidden = [
        "_x.csv",
        ".x.csv",
        "_SUCCESS",
        ".part-0001.csv.crc",
        "nested/_temporary/0/h.csv",
        ".hidden/i.csv",
    ]
    unsupported = ["notes.txt", "report.xlsx", "nested/README", "k.parquet.gz"]
    for rel in read + hidden + unsupported:
        _touch(root, rel, b"x" * (len(rel) + 3))

    found = discover(str(root))

    assert isinstance(found, Discovered)
    assert _names(found.files, root) == sorted(read)
    refused = {Path(r.path).relative_to(root.resolve()).as_posix(): r for r in found.refused}
    assert {k: r.code for k, r in refused.items()} == {
        **dict.fromkeys(hidden, "HIDDEN"),
        **dict.fromkeys(unsupported, "UNSUPPORTED_TYPE"),
    }
    assert [r.path for r in found.refused] == sorted(r.path for r in found.refused)
    assert all(r.size == len(k) + 3 for k, r in refused.items())
    # every regular file under the directory, counted independently, is in exactly one list
    on_disk = sorted(os.path.join(d, f) for d, _, fs in os.walk(root.resolve()) for f in fs)
    listed = sorted([str(p) for p in found.files] + [r.path for r in found.refused])
    assert listed == on_disk


def test_refusal_reasons_say_why(tmp_path: Path) -> None:
    for rel in ["a.csv", "notes.txt", "_SUCCESS", "nested/_temporary/b.csv", "README"]:
        _touch(tmp_path, rel)
    reasons = {Path(r.path).name: r.reason for r in discover(str(tmp_path)).refused}
    assert (
        "'.txt'" in reasons["notes.txt"]
        and ".csv" in reasons["notes.txt"]
        and ".gz" in reasons["notes.txt"]
    )
    assert "'_SUCCESS'" in reasons["_SUCCESS"] and "marker" in reasons["_SUCCESS"]
    assert "'_temporary'" in reasons["b.csv"]  # the hidden folder, not the file, is named
    assert "no type suffix" in reasons["README"]


def test_a_directory_whose_name_looks_like_a_pattern(tmp_path: Path) -> None:
    # As a glob, "orders[2024]" would mean orders2/orders0/orders4 -- never this folder.
    real = tmp_path / "orders[2024]"
    _touch(real, "a.csv")
    _touch(real, "sub[1]/b.csv")
    _touch(tmp_path, "orders2/decoy.csv")
    found = discover(str(real))
    assert _names(found.files, real) == ["a.csv", "sub[1]/b.csv"]
    assert found.refused == []


def test_a_single_file(tmp_path: Path) -> None:
    p = _touch(tmp_path, "_explicit.csv.gz")  # named explicitly: read, whatever the name
    assert discover(str(p)) == Discovered([p.resolve()], [])
    txt = _touch(tmp_path, "orders.txt")
    with pytest.raises(SourceError, match=r"orders\.txt: unsupported file type '\.txt'"):
        discover(str(txt))


def test_a_glob_refuses_matched_files_it_cannot_read(tmp_path: Path) -> None:
    _touch(tmp_path, "in/a.csv")
    _touch(tmp_path, "in/b.csv.gz")
    _touch(tmp_path, "in/c.txt")
    _touch(tmp_path, "in/_SUCCESS")
    _touch(tmp_path, "in/sub/d.csv")
    _touch(tmp_path, "other/e.csv")
    found = discover(str(tmp_path / "in" / "*"))
    assert _names(found.files, tmp_path) == [
        "in/a.csv",
        "in/b.csv.gz",
    ]  # the folder `sub` is not a file
    assert [(Path(r.path).name, r.code) for r in found.refused] == [
        ("_SUCCESS", "HIDDEN"),
        ("c.txt", "UNSUPPORTED_TYPE"),
    ]
    deep = discover(str(tmp_path / "in" / "**" / "*.csv"))
    assert _names(deep.files, tmp_path) == ["in/a.csv", "in/sub/d.csv"]


def test_a_glob_marks_hidden_parts_below_its_folder(tmp_path: Path) -> None:
    base = tmp_path / "_staging"  # the user's own folder may start with '_'
    _touch(base, "out/p.csv")
    _touch(base, "out/_temporary/0/q.csv")
    found = discover(str(base / "out" / "**" / "*.csv"))
    assert _names(found.files, base) == ["out/p.csv"]
    assert [(Path(r.path).name, r.code) for r in found.refused] == [("q.csv", "HIDDEN")]


def test_a_broken_link_is_refused_not_skipped(tmp_path: Path) -> None:
    _touch(tmp_path, "a.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "gone.csv")
    found = discover(str(tmp_path))
    assert _names(found.files, tmp_path) == ["a.csv"]
    assert [(Path(r.path).name, r.code) for r in found.refused] == [("b.csv", "NOT_A_FILE")]


@pytest.mark.parametrize(
    ("setup", "source", "message"),
    [
        (lambda d: None, "missing", "no such file or directory"),
        (
            lambda d: (d / "empty").mkdir(),
            "empty",
            r"no readable files in this directory \(it holds no files\)",
        ),
        (
            lambda d: [_touch(d, "only/_SUCCESS"), _touch(d, "only/notes.txt")],
            "only",
            r"no readable files in this directory \(2 refused: 1 HIDDEN, 1 UNSUPPORTED_TYPE; e\.g\. _SUCCESS, notes\.txt\)",
        ),
        (lambda d: _touch(d, "a.csv"), "*.parquet", "the pattern matches no files"),
        (
            lambda d: _touch(d, "a.txt"),
            "*.txt",
            r"the pattern matches no readable files \(1 refused: 1 UNSUPPORTED_TYPE",
        ),
    ],
)
def test_nothing_to_read_is_a_one_line_error(
    tmp_path: Path, setup, source: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    with pytest.raises(SourceError, match=message) as err:
        discover(str(tmp_path / source))
    assert str(tmp_path / source) in str(err.value) and "\n" not in str(err.value)


def test_refused_as_dicts_for_the_manifest(tmp_path: Path) -> None:
    _touch(tmp_path, "a.csv")
    _touch(tmp_path, "b.txt", b"12345")
    found = discover(str(tmp_path))
    dicts = refused_as_dicts(found.refused)
    assert dicts == [
        {
            "path": str((tmp_path / "b.txt").resolve()),
            "size": 5,
            "reason": found.refused[0].reason,
            "code": "UNSUPPORTED_TYPE",
        }
    ]
    assert RefusedFile(**dicts[0]) == found.refused[0]


def test_sha256_file(tmp_path: Path) -> None:
    p = _touch(tmp_path, "a.csv", b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
