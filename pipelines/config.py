"""Pipeline configuration: documented defaults in `defaults.yaml`, overridden by a user file.

The defaults file is the only place a default value is written; the models below only give
the shape, so a typo in a user file is an error rather than a silently ignored key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipelines.errors import CustvalError
from pipelines.resources import default_config_path


class ConfigError(CustvalError, ValueError):
    """The configuration file is missing or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationConfig(_Section):
    accepted_currencies: list[str] | None
    future_skew_minutes: float | None
    max_quarantined_percent: float | None
    row_count_tolerance_percent: float | None
    trailing_window: int | None


class PrivacyConfig(_Section):
    hashed_columns: list[str]
    hmac_key_env: str


class RfmConfig(_Section):
    bins: int

    @field_validator("bins")
    @classmethod
    def _bins(cls, v: int) -> int:
        if not 2 <= v <= 10:
            raise ValueError("rfm.bins must be between 2 and 10")
        return v


class Config(_Section):
    reporting_currency: str
    fx_rates: str | None
    validation: ValidationConfig
    privacy: PrivacyConfig
    rfm: RfmConfig


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path | None = None) -> Config:
    """Defaults merged with the optional user file at `path`."""
    data = _read_yaml(default_config_path())
    if path:
        data = _merge(data, _read_yaml(Path(path)))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path or 'defaults'}: {where}: {first['msg']}") from None
