"""Pipeline configuration: documented defaults in `defaults.yaml`, overridden by a user file.

The defaults file is the only place a default value is written; the models below only give
the shape, so a typo in a user file is an error rather than a silently ignored key.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pipelines.errors import CustvalError
from pipelines.resources import default_config_path


class ConfigError(CustvalError, ValueError):
    """The configuration file is missing or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostgresConfig(_Section):
    lag_seconds: float
    retries: int
    backoff_seconds: float


class CsvConfig(_Section):
    delimiter: str
    max_record_lines: int
    max_record_chars: int

    @model_validator(mode="after")
    def _check(self) -> CsvConfig:
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(
                "sources.csv.delimiter must be one character (not a quote or a newline)"
            )
        if self.max_record_lines < 1 or self.max_record_chars < 1:
            raise ValueError(
                "sources.csv: max_record_lines and max_record_chars must be at least 1"
            )
        return self


class SourcesConfig(_Section):
    reprocess_days: int
    unsupported_files: Literal["fail", "skip"]
    missing_arrivals: Literal["warn", "fail"]
    csv: CsvConfig
    postgres: PostgresConfig
    shards: int = 1
    shard_workers: int | None = None

    @field_validator("shards")
    @classmethod
    def _shards(cls, v: int) -> int:
        if not 1 <= v <= 4096:
            raise ValueError("sources.shards must be between 1 and 4096")
        return v

    @field_validator("shard_workers")
    @classmethod
    def _workers(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("sources.shard_workers must be at least 1 (or null)")
        return v

    @field_validator("reprocess_days")
    @classmethod
    def _days(cls, v: int) -> int:
        if not 0 <= v <= 366:
            raise ValueError("sources.reprocess_days must be between 0 and 366")
        return v


class ValidationConfig(_Section):
    earliest_order_date: date
    accepted_currencies: list[str] | None
    future_skew_minutes: float | None
    max_quarantined_percent: float | None
    row_count_tolerance_percent: float | None
    trailing_window: int | None
    allow_empty_batch: bool | None
    rule_severity: dict[str, Literal["quarantine", "reject", "warn"]]


class PrivacyConfig(_Section):
    hashed_columns: list[str]
    hmac_key_env: str


class SegmentRule(_Section):
    segment: str
    r: tuple[int, int]
    f: tuple[int, int]


ScoreName = Literal["r", "f", "m"]
ScoringMethod = Literal["quantile", "rank", "breakpoints"]


class RfmConfig(_Section):
    bins: int
    scoring: dict[ScoreName, ScoringMethod]
    breakpoints: dict[ScoreName, list[float]]
    segments: list[SegmentRule]
    transition_lookback_days: int

    def segment_of(self, r: int, f: int) -> str | None:
        """The segment of the first rule whose ranges hold the scores (rules in order)."""
        return next(
            (s.segment for s in self.segments if s.r[0] <= r <= s.r[1] and s.f[0] <= f <= s.f[1]),
            None,
        )

    @model_validator(mode="after")
    def _cover(self) -> RfmConfig:
        if not 2 <= self.bins <= 9:
            raise ValueError("rfm.bins must be between 2 and 9 (one digit per score in rfm_cell)")
        if self.transition_lookback_days < 1:
            raise ValueError(
                "rfm.transition_lookback_days must be at least 1 (the previous day is compared), "
                f"got {self.transition_lookback_days}"
            )
        missing = sorted({"r", "f", "m"} - self.scoring.keys())
        if missing:
            raise ValueError(f"rfm.scoring: give a method for {', '.join(missing)}")
        for name, method in sorted(self.scoring.items()):
            bounds = self.breakpoints.get(name)
            if method != "breakpoints":
                continue
            if bounds is None or len(bounds) != self.bins - 1:
                raise ValueError(
                    f"rfm.breakpoints.{name}: scoring {name} by breakpoints needs "
                    f"{self.bins - 1} breakpoints (bins - 1), got {len(bounds or [])}"
                )
            if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
                raise ValueError(f"rfm.breakpoints.{name}: breakpoints must increase strictly")
        cells = range(1, self.bins + 1)
        uncovered = [(r, f) for r in cells for f in cells if self.segment_of(r, f) is None]
        if uncovered:
            raise ValueError(
                f"rfm.segments leave (r, f) score cells without a segment: {uncovered[:5]}"
            )
        return self


class AbcConfig(_Section):
    a_share: float
    b_share: float

    @model_validator(mode="after")
    def _order(self) -> AbcConfig:
        if not 0 < self.a_share < self.b_share <= 1:
            raise ValueError("abc: need 0 < a_share < b_share <= 1")
        return self


class LoyaltyTier(_Section):
    tier: str
    min_spend: float
    min_orders: int


class LoyaltyConfig(_Section):
    window_days: int
    tiers: list[LoyaltyTier]

    @model_validator(mode="after")
    def _catch_all(self) -> LoyaltyConfig:
        if not self.tiers or self.tiers[-1].min_spend > 0 or self.tiers[-1].min_orders > 0:
            raise ValueError("loyalty.tiers: the last tier must have min_spend 0 and min_orders 0")
        return self


class LifecycleConfig(_Section):
    new_days: int
    at_risk_factor: float
    lapsed_factor: float
    loyal_min_purchase_days: int
    one_time_gap_days: float | None

    @model_validator(mode="after")
    def _factors(self) -> LifecycleConfig:
        if not 0 < self.at_risk_factor < self.lapsed_factor:
            raise ValueError("lifecycle: need 0 < at_risk_factor < lapsed_factor")
        return self


class ActivityConfig(_Section):
    active_days: int


class LtvCacThresholds(_Section):
    break_even: float
    benchmark: float
    generous: float

    @model_validator(mode="after")
    def _order(self) -> LtvCacThresholds:
        if not 0 < self.break_even < self.benchmark < self.generous:
            raise ValueError("clv.ltv_cac_thresholds: need 0 < break_even < benchmark < generous")
        return self


class ClvConfig(_Section):
    gross_margin: float
    servicing_cost_per_order: float
    discount_rate: float
    retention_rate: float | None
    retention_period_days: int
    expected_lifetime_years: float | None
    frequency_prior_days: float
    ltv_cac_thresholds: LtvCacThresholds

    @field_validator("retention_rate")
    @classmethod
    def _retention(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v < 1:
            raise ValueError("clv.retention_rate must be in [0, 1)")
        return v


class HighValueRule(_Section):
    rule: Literal["abc_class", "loyalty_tier", "clv_percentile"]
    abc_classes: list[str]
    loyalty_tiers: list[str]
    min_clv_percentile: float

    @model_validator(mode="after")
    def _rule(self) -> HighValueRule:
        if self.rule == "abc_class" and not set(self.abc_classes) <= {"A", "B", "C"}:
            raise ValueError("journey.high_value.abc_classes: classes are A, B and C")
        if self.rule == "abc_class" and not self.abc_classes:
            raise ValueError("journey.high_value.abc_classes: name at least one class")
        if self.rule == "loyalty_tier" and not self.loyalty_tiers:
            raise ValueError("journey.high_value.loyalty_tiers: name at least one tier")
        if not 0 <= self.min_clv_percentile <= 100:
            raise ValueError("journey.high_value.min_clv_percentile must be in [0, 100]")
        return self


class JourneyConfig(_Section):
    high_value: HighValueRule
    recent_orders: int
    repeat_window_days: int
    high_value_window_days: int

    @model_validator(mode="after")
    def _positive(self) -> JourneyConfig:
        if self.recent_orders < 1:
            raise ValueError("journey.recent_orders must be at least 1")
        if self.repeat_window_days < 1 or self.high_value_window_days < 1:
            raise ValueError("journey: repeat_window_days and high_value_window_days must be >= 1")
        return self


class PredictiveConfig(_Section):
    enabled: bool
    model: Literal["bgnbd", "pnbd", "mbgnbd", "auto"]
    on_failure: Literal["publish_null", "carry_forward", "fail"]
    refit: Literal["always", "on_drift"]
    refit_significance: float
    refit_max_age_days: int
    max_iterations: int
    min_history_days: int
    horizons_days: list[int]
    days_per_month: float
    churn_risk_thresholds: tuple[float, float]
    backtest_holdout_days: int
    backtest_drift_ratio: float

    @model_validator(mode="after")
    def _check(self) -> PredictiveConfig:
        high, medium = self.churn_risk_thresholds
        if not 0.0 < high < medium < 1.0:
            raise ValueError(
                "predictive.churn_risk_thresholds: give two probabilities 0 < high < medium < 1"
            )
        if not 0.0 < self.refit_significance < 1.0 or self.refit_max_age_days < 0:
            raise ValueError("predictive: refit_significance in (0, 1) and refit_max_age_days >= 0")
        if not self.horizons_days or any(h <= 0 for h in self.horizons_days):
            raise ValueError("predictive.horizons_days: give at least one positive horizon")
        if self.backtest_holdout_days <= 0 or self.backtest_drift_ratio <= 1:
            raise ValueError("predictive: backtest_holdout_days > 0 and backtest_drift_ratio > 1")
        return self


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB|%)\s*$", re.IGNORECASE)


class ResourcesConfig(_Section):
    memory_limit: str
    duckdb_share: float
    threads: int | None
    validation_slice_rows: int

    def _size(self) -> tuple[float, str]:
        """`memory_limit` as its number and its unit as written (validated)."""
        match = _SIZE.match(self.memory_limit)
        assert match is not None
        return float(match.group(1)), match.group(2)

    def budget_bytes(self) -> int:
        """`memory_limit` in bytes (a share of memory: of this machine's)."""
        value, unit = self._size()
        unit = unit.upper()
        if unit == "%":
            return int(value / 100 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        powers = {
            "B": 0,
            "KB": 1,
            "MB": 2,
            "GB": 3,
            "TB": 4,
            "KIB": 1,
            "MIB": 2,
            "GIB": 3,
            "TIB": 4,
        }
        base = 1024 if unit.endswith("IB") else 1000  # DuckDB's reading: 4GB is 4 * 1000^3
        return int(value * base ** powers[unit])

    def duckdb_memory_limit(self) -> str:
        """DuckDB's part of the budget (`memory_limit` x `duckdb_share`). The rest is the
        process's own -- Python and its imports, Arrow and Polars batches, the model fits -- and
        what DuckDB holds beyond its limit (freed blocks its allocator keeps a while): at 10M
        orders a connection at 2 GB took the process to 3.9 GB, at 4 GB to 5.6 GB."""
        value, unit = self._size()
        return f"{value * self.duckdb_share:.6g}{unit}"

    def shared(self, ways: int) -> ResourcesConfig:
        """The budget of one of `ways` engines running at once (a sharded build's workers):
        the run's memory_limit divided between them, so together they stay within it."""
        if ways <= 1:
            return self
        value, unit = self._size()
        return self.model_copy(update={"memory_limit": f"{value / ways:.6g}{unit}"})

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        match = _SIZE.match(v)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(
                f"resources.memory_limit: give a size such as 4GB, 512MB or 50%, got {v!r}"
            )
        if match.group(2) == "%" and float(match.group(1)) > 100:
            raise ValueError(f"resources.memory_limit: a share of memory is at most 100%, got {v}")
        return v.strip()

    @field_validator("duckdb_share")
    @classmethod
    def _duckdb_share(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"resources.duckdb_share: give a share in (0, 1], got {v}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("resources.threads must be at least 1 (null = one per core)")
        return v

    @field_validator("validation_slice_rows")
    @classmethod
    def _slice(cls, v: int) -> int:
        if v < 1000:
            raise ValueError("resources.validation_slice_rows must be at least 1000")
        return v


class Config(_Section):
    reporting_currency: str
    fx_rates: str | None
    marketing_spend: str | None
    sources: SourcesConfig
    validation: ValidationConfig
    privacy: PrivacyConfig
    rfm: RfmConfig
    abc: AbcConfig
    loyalty: LoyaltyConfig
    lifecycle: LifecycleConfig
    activity: ActivityConfig
    clv: ClvConfig
    journey: JourneyConfig
    predictive: PredictiveConfig
    resources: ResourcesConfig

    @model_validator(mode="after")
    def _journey_tiers(self) -> Config:
        known = {t.tier for t in self.loyalty.tiers}
        unknown = [t for t in self.journey.high_value.loyalty_tiers if t not in known]
        if self.journey.high_value.rule == "loyalty_tier" and unknown:
            raise ValueError(f"journey.high_value.loyalty_tiers: not in loyalty.tiers: {unknown}")
        return self


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
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{path or 'defaults'}: {where + ': ' if where else ''}{message}"
        ) from None
