"""Byte streams and physical lines of a (possibly compressed) text source.

Line numbers and line counts are the reconciliation's ground truth, so they are computed in
one place, independently of any parser, and do not depend on where reads are cut. Decoding
is lossless: invalid UTF-8 survives as surrogates until a reader reports it.
"""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pyarrow as pa

_CHUNK = 1 << 24


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


@contextmanager
def _open(path: Path, codec: str | None) -> Iterator[_Readable]:
    """The file's (decompressed) bytes as a stream, closed on exit."""
    stream: _Readable
    if codec is None:
        stream = path.open("rb")
    elif codec == "gzip":
        stream = gzip.open(path, "rb")
    elif codec == "bz2":
        stream = bz2.open(path, "rb")
    else:
        stream = pa.input_stream(str(path), compression=codec)
    try:
        yield stream
    finally:
        stream.close()


def _iter_lines(fh: _Readable) -> Iterator[bytes]:
    """Physical lines split on b"\\n" (kept); a last line without a newline is a line too."""
    pending: list[bytes] = []
    while chunk := fh.read(_CHUNK):
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pending.append(chunk)
            continue
        if pending:
            pending.append(parts[0])
            parts[0] = b"".join(pending)
            pending.clear()
        last = parts.pop()
        for part in parts:
            yield part + b"\n"
        if last:
            pending.append(last)
    if pending:
        yield b"".join(pending)


def _count_lines(path: Path, codec: str | None) -> tuple[int, bytes]:
    """Physical lines (a last line without a newline counts), and the last line itself."""
    count = 0
    tail: list[bytes] = []  # bytes after the last newline seen so far
    last_complete = b""
    with _open(path, codec) as fh:
        while chunk := fh.read(_CHUNK):
            newlines = chunk.count(b"\n")
            if not newlines:
                tail.append(chunk)
                continue
            count += newlines
            end = chunk.rfind(b"\n")
            before = chunk.rfind(b"\n", 0, end)
            last_complete = (
                b"".join([*tail, chunk[: end + 1]]) if before < 0 else chunk[before + 1 : end + 1]
            )
            tail = [chunk[end + 1 :]] if end + 1 < len(chunk) else []
    if tail:
        return count + 1, b"".join(tail)
    return count, last_complete


def _read_all(fh: _Readable) -> bytes:
    """The rest of the stream's bytes, read in chunks."""
    return b"".join(iter(lambda: fh.read(_CHUNK), b""))


def _decode(raw: bytes) -> str:
    """Lossless decoding: invalid bytes become surrogates (reported as INVALID_UTF8)."""
    return raw.decode("utf-8", "surrogateescape")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    """Raw text for the quarantine: invalid bytes shown as \\xNN, line ending dropped."""
    return (
        text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").rstrip("\r\n")
    )
