"""Where a command's run-wide inputs come from: its options, else `CUSTVAL_*` environment variables.

Every command reads the same variables -- `CUSTVAL_SOURCE`, `CUSTVAL_WAREHOUSE`, `CUSTVAL_CONFIG`
-- so a deployment sets them once (a container's environment, an Airflow worker's) and
`custval run --as-of D` works like `custval backfill ...` or `custval report ...`. An option
given on the command line wins over the variable. pydantic-settings does the merging, so the
precedence is the library's documented one (init arguments, then the environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.errors import CustvalError

ENV_PREFIX = "CUSTVAL_"
_OPTION = {"source": "--source", "warehouse": "--warehouse", "config": "--config"}


class SettingsError(CustvalError, ValueError):
    """A required input is given neither as an option nor in the environment."""


class Settings(BaseSettings):
    """The inputs every command may take from the environment."""

    # An empty variable (`CUSTVAL_WAREHOUSE=`) is unset, never the current directory.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    source: str | None = None
    warehouse: Path | None = None
    config: Path | None = None


def resolve(**options: Any) -> Settings:
    """The options given (None = not given) over the environment's `CUSTVAL_*` values."""
    try:
        return Settings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "setting"
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: {first['msg']}") from None


def required(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    if value is None or value == "":
        raise SettingsError(
            f"{_OPTION[name]} is required: give it, or set {ENV_PREFIX}{name.upper()}"
        )
    return value
