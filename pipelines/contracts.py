"""Data contracts: the YAML files under `data_contracts/` are the single source of schema truth.

Each file is an Open Data Contract Standard (ODCS v3) document. It is checked against the
standard's JSON schema, parsed with the standard's own model (`open-data-contract-standard`)
and turned into the small typed view the pipeline needs: columns with their Arrow/Polars
types and constraints, and the rules (row-level and batch-level) with a severity and a
reason code. Expectation suites, Parquet field metadata and the data dictionary are all
generated from this view, so a rule is written once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl
import pyarrow as pa
import yaml

from pipelines.errors import CustvalError
from pipelines.resources import contracts_dir

Severity = Literal["quarantine", "reject", "warn"]
SEVERITIES: tuple[str, ...] = ("quarantine", "reject", "warn")


class ContractError(CustvalError, ValueError):
    """A contract file is missing, malformed or inconsistent."""


# Physical types are DuckDB type names; they fix the Arrow type of the published column.
_PHYSICAL: dict[str, tuple[pa.DataType, pl.DataType, tuple[str, ...]]] = {
    "VARCHAR": (pa.string(), pl.String(), ("string",)),
    "BIGINT": (pa.int64(), pl.Int64(), ("integer",)),
    "INTEGER": (pa.int32(), pl.Int32(), ("integer",)),
    "SMALLINT": (pa.int16(), pl.Int16(), ("integer",)),
    "DOUBLE": (pa.float64(), pl.Float64(), ("number",)),
    "DATE": (pa.date32(), pl.Date(), ("date",)),
    "TIMESTAMPTZ": (pa.timestamp("us", tz="UTC"), pl.Datetime("us", "UTC"), ("timestamp",)),
    "BOOLEAN": (pa.bool_(), pl.Boolean(), ("boolean",)),
}
# Exact decimals, `DECIMAL(p,s)` (DuckDB's spelling): money. Precision 1-38 (Arrow decimal128).
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_DECIMAL_FORM = "DECIMAL(p,s)"


def physical_types(physical: str) -> tuple[pa.DataType, pl.DataType, tuple[str, ...]] | None:
    """Arrow type, Polars type and the logical types that fit a physical type (None: unknown)."""
    if physical in _PHYSICAL:
        return _PHYSICAL[physical]
    found = _DECIMAL.fullmatch(physical)
    if found is None:
        return None
    precision, scale = int(found.group(1)), int(found.group(2))
    if not 1 <= precision <= 38 or scale > precision:
        return None
    return pa.decimal128(precision, scale), pl.Decimal(precision, scale), ("number",)


def normalise_physical(text: str | None) -> str:
    """`decimal(18, 2)` -> `DECIMAL(18,2)`; other names upper-cased."""
    return "".join((text or "").upper().split())


@dataclass(frozen=True)
class Rule:
    """One check the pipeline enforces, named `<column>.<kind>` or by the contract's rule name."""

    name: str
    kind: str
    severity: Severity
    column: str | None = None
    reason_code: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""


@dataclass(frozen=True)
class Column:
    name: str
    logical_type: str
    physical_type: str
    description: str
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    pii: bool = False
    rules: tuple[Rule, ...] = ()

    @property
    def arrow_type(self) -> pa.DataType:
        return self._types[0]

    @property
    def polars_type(self) -> pl.DataType:
        return self._types[1]

    @property
    def _types(self) -> tuple[pa.DataType, pl.DataType, tuple[str, ...]]:
        types = physical_types(self.physical_type)
        if types is None:
            raise ContractError(
                f"column {self.name!r}: unknown physical type {self.physical_type!r}"
            )
        return types

    @property
    def decimal(self) -> tuple[int, int] | None:
        """(precision, scale) of a DECIMAL column, else None."""
        arrow = self.arrow_type
        return (arrow.precision, arrow.scale) if pa.types.is_decimal(arrow) else None

    def rule(self, kind: str) -> Rule | None:
        return next((r for r in self.rules if r.kind == kind), None)


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    description: str
    grain: str
    columns: tuple[Column, ...]
    batch_rules: tuple[Rule, ...] = ()
    allow_empty_batch: bool = False
    path: Path | None = None

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]

    @property
    def row_rules(self) -> list[Rule]:
        return [r for c in self.columns for r in c.rules]

    def batch_rule(self, kind: str) -> Rule | None:
        return next((r for r in self.batch_rules if r.kind == kind), None)

    def arrow_schema(self, columns: list[str] | None = None) -> pa.Schema:
        """Arrow schema with each column's description in its field metadata."""
        cols = self.columns if columns is None else [self.column(n) for n in columns]
        return pa.schema(
            [
                pa.field(
                    c.name,
                    c.arrow_type,
                    nullable=not c.required,
                    metadata={"description": c.description, "logical_type": c.logical_type},
                )
                for c in cols
            ],
            metadata={
                "contract": self.name,
                "contract_version": self.version,
                "grain": self.grain,
            },
        )

    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.polars_type for c in self.columns}

    @property
    def rule_names(self) -> list[str]:
        return [r.name for r in self.row_rules] + [r.name for r in self.batch_rules]

    def with_rule_params(
        self, rule_name: str, severity: Severity | None = None, **params: Any
    ) -> Contract:
        """A copy with one rule's parameters (or severity) changed: config overrides of the contract."""
        found = False

        def patch(rule: Rule) -> Rule:
            nonlocal found
            if rule.name != rule_name:
                return rule
            found = True
            return replace(
                rule, params={**rule.params, **params}, severity=severity or rule.severity
            )

        columns = tuple(replace(c, rules=tuple(patch(r) for r in c.rules)) for c in self.columns)
        batch = tuple(patch(r) for r in self.batch_rules)
        if not found:
            raise ContractError(f"contract {self.name!r} has no rule {rule_name!r}")
        return replace(self, columns=columns, batch_rules=batch)


# --------------------------------------------------------------------------------------------
# Loading


@cache
def _odcs_json_schema() -> dict[str, Any]:
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    return json.loads(text)


def _custom(props: list[Any] | None) -> dict[str, Any]:
    return {p.property: p.value for p in (props or [])}


def _check_against_standard(doc: dict[str, Any], path: Path) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_odcs_json_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ContractError(f"{path}: not a valid ODCS contract at {where}: {err.message[:300]}")


def _operator(q: Any) -> tuple[str, float] | None:
    for op in (
        "mustBe",
        "mustBeGreaterThan",
        "mustBeGreaterOrEqualTo",
        "mustBeLessThan",
        "mustBeLessOrEqualTo",
    ):
        value = getattr(q, op)
        if value is not None:
            return op, value
    return None


def _quality_rule(q: Any, column: str | None, path: Path) -> Rule:
    severity = q.severity or "quarantine"
    if severity not in SEVERITIES:
        raise ContractError(
            f"{path}: rule {q.name!r} has severity {severity!r}; use one of {SEVERITIES}"
        )
    custom = _custom(q.customProperties)
    params: dict[str, Any] = {}
    if q.metric == "invalidValues":
        valid = (q.arguments or {}).get("validValues")
        if not valid:
            raise ContractError(
                f"{path}: rule {q.name!r} (invalidValues) needs arguments.validValues"
            )
        kind, params = "accepted_values", {"values": list(valid)}
    elif q.metric == "rowCount":
        kind = "row_count"
    elif q.type == "custom" and q.engine == "custval":
        impl = (
            q.implementation if isinstance(q.implementation, dict) else {"check": q.implementation}
        )
        kind = impl["check"]
        params = {k: v for k, v in impl.items() if k != "check"}
    else:
        raise ContractError(
            f"{path}: rule {q.name!r}: only ODCS metrics invalidValues/rowCount and custom "
            "rules with engine 'custval' are supported"
        )
    op = _operator(q)
    if op is not None:
        params["operator"], params["threshold"] = op
    return Rule(
        name=q.name or f"{column}.{kind}",
        kind=kind,
        severity=cast(Severity, severity),
        column=column,
        reason_code=custom.get("reasonCode"),
        params=params,
        description=q.description or "",
    )


def _property_rules(prop: Any, path: Path) -> tuple[Rule, ...]:
    """Rules implied by the standard's own property fields, then the explicit quality rules."""
    custom = _custom(prop.customProperties)
    severity = custom.get("severity", "quarantine")
    name = prop.name
    opts = prop.logicalTypeOptions or {}
    rules: list[Rule] = []

    def add(kind: str, code: str, description: str, **params: Any) -> None:
        rules.append(Rule(f"{name}.{kind}", kind, severity, name, code, params, description))

    if prop.required:
        add("required", "MISSING_REQUIRED", f"{name} must be present and non-empty")
    if prop.unique:
        add("unique", "DUPLICATE_CONFLICT", f"one row per {name}")
    if "minimum" in opts:
        add("minimum", "OUT_OF_RANGE", f"{name} >= {opts['minimum']}", value=opts["minimum"])
    if "maximum" in opts:
        add("maximum", "OUT_OF_RANGE", f"{name} <= {opts['maximum']}", value=opts["maximum"])
    if "pattern" in opts:
        add(
            "pattern",
            "PATTERN_MISMATCH",
            f"{name} matches {opts['pattern']}",
            value=opts["pattern"],
        )
    if "maxLength" in opts:
        add(
            "max_length",
            "TOO_LONG",
            f"{name} is at most {opts['maxLength']} characters",
            value=opts["maxLength"],
        )
    for q in prop.quality or []:
        rules.append(_quality_rule(q, name, path))
    return tuple(rules)


def load_contract_file(path: Path) -> Contract:
    """Load and check one ODCS contract file (cached until the file changes)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ContractError(f"contract file not found: {path}")
    return _load(path, path.stat().st_mtime_ns)


@cache
def _load(path: Path, _mtime_ns: int) -> Contract:
    from open_data_contract_standard.model import OpenDataContractStandard

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    _check_against_standard(doc, path)
    odcs = OpenDataContractStandard(**doc)
    if not odcs.schema_ or len(odcs.schema_) != 1:
        raise ContractError(f"{path}: a custval contract declares exactly one schema object")
    obj = odcs.schema_[0]
    columns = []
    for prop in obj.properties or []:
        physical = normalise_physical(prop.physicalType)
        types = physical_types(physical)
        if types is None:
            raise ContractError(
                f"{path}: column {prop.name!r} has physicalType {prop.physicalType!r}; "
                f"use one of {[*sorted(_PHYSICAL), _DECIMAL_FORM]} (precision 1-38, scale <= precision)"
            )
        if prop.logicalType not in types[2]:
            raise ContractError(
                f"{path}: column {prop.name!r}: logicalType {prop.logicalType!r} does not fit "
                f"physicalType {physical}"
            )
        if not prop.description:
            raise ContractError(f"{path}: column {prop.name!r} has no description")
        custom = _custom(prop.customProperties)
        columns.append(
            Column(
                name=str(prop.name),
                logical_type=prop.logicalType,
                physical_type=physical,
                description=" ".join(prop.description.split()),
                required=bool(prop.required),
                unique=bool(prop.unique),
                primary_key=bool(prop.primaryKey),
                pii=bool(custom.get("pii", False)),
                rules=_property_rules(prop, path),
            )
        )
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: duplicate column names")
    purpose = odcs.description.purpose if odcs.description else None
    return Contract(
        name=str(odcs.name or obj.name),
        version=str(odcs.version),
        description=" ".join((obj.description or purpose or "").split()),
        grain=obj.dataGranularityDescription or "",
        columns=tuple(columns),
        batch_rules=tuple(_quality_rule(q, None, path) for q in obj.quality or []),
        allow_empty_batch=bool(_custom(odcs.customProperties).get("allowEmptyBatch", False)),
        path=path,
    )


def load_contract(name: str, directory: Path | None = None) -> Contract:
    """The contract `<name>.yaml` from the contracts directory."""
    return load_contract_file((directory or contracts_dir()) / f"{name}.yaml")


def all_contracts(directory: Path | None = None) -> dict[str, Contract]:
    directory = directory or contracts_dir()
    return {p.stem: load_contract_file(p) for p in sorted(directory.glob("*.yaml"))}
