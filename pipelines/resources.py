"""Where the SQL models and data contracts live, in a checkout or in an installed wheel.

In a checkout (the usual `uv run` set-up) they are the top-level `sql/` and `data_contracts/`
folders; a wheel carries copies under `pipelines/_bundled/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_bundled" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder next to the custval package")


def sql_dir() -> Path:
    return _locate("sql")


def contracts_dir() -> Path:
    return _locate("data_contracts")


def default_config_path() -> Path:
    return _PACKAGE / "defaults.yaml"
