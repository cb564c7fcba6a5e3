"""Which source files can be read, decided by name alone: format and compression suffixes.

Kept apart from the readers so discovery can sort files (and explain a refusal) without
opening them, and so the readers and discovery agree on one table of suffixes.
"""

from __future__ import annotations

from pathlib import Path

# Format suffixes (the last suffix, or the one before a compression suffix).
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
# Compression suffixes; only text formats may be compressed (Parquet compresses internally).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl"})
SUPPORTED_TYPES = (
    ", ".join(SUFFIXES) + "; text formats also compressed as " + ", ".join(COMPRESSIONS)
)


def _split_name(path: Path | str) -> tuple[str, str | None]:
    """(format suffix, compression) of a file name: `a.csv.gz` -> (`.csv`, `gzip`)."""
    name = Path(path).name.lower()
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            return Path(name[: -len(suffix)]).suffix, codec
    return Path(name).suffix, None


def file_format(path: Path | str) -> str | None:
    """`csv`, `tsv`, `parquet` or `jsonl`, understanding compression suffixes; None if unsupported."""
    suffix, codec = _split_name(path)
    fmt = SUFFIXES.get(suffix)
    if fmt is None or (codec is not None and fmt not in TEXT_FORMATS):
        return None
    return fmt


def file_compression(path: Path | str) -> str | None:
    """The compression codec implied by the name (`gzip`, `bz2`, `zstd`), or None."""
    return _split_name(path)[1]


def type_suffix(path: Path | str) -> str:
    """The suffix that decides the type, as written (`.csv.gz`, `.txt`; '' if none)."""
    suffix, codec = _split_name(path)
    if codec is None:
        return suffix
    codec_suffix = next(s for s, c in COMPRESSIONS.items() if c == codec)
    return suffix + codec_suffix


def unsupported_reason(path: Path | str) -> str:
    """Why a file's type is not read, naming its suffix and the supported ones."""
    suffix = type_suffix(path)
    what = (
        f"unsupported file type {suffix!r}" if suffix else "unsupported file type: no type suffix"
    )
    return f"{what} (supported: {SUPPORTED_TYPES})"
