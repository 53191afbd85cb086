"""What the UI, the API and the command line may know about backends, without importing backends themselves.

A backend's parameters arrive as the JSON schema of its Params model; ParameterField reads one property of
it (type, default, bounds, choices, description) for forms and listings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fairsynth.backends import registry


def backend_catalog() -> list[dict[str, Any]]:
    """Every declared backend as a plain dict: name, available, reason, capabilities, parameters (JSON schema)."""
    return [
        {
            "name": info.name,
            "available": info.available,
            "reason": info.reason,
            "capabilities": asdict(info.capabilities) if info.capabilities else {},
            "parameters": info.parameter_schema(),
            "target": info.target,
        }
        for info in registry.list_backends()
    ]


@dataclass(frozen=True)
class ParameterField:
    """One backend parameter as a form or a listing shows it, read from the backend's JSON schema."""

    name: str
    kind: str  # the JSON type of a value: integer | number | boolean | string
    default: Any = None
    description: str = ""
    optional: bool = False  # empty (null) is allowed: the backend then chooses
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    multiple_of: float | None = None
    pattern: str | None = None

    def allowed(self) -> str:
        """The choices or bounds in words, e.g. "'auto', 'cpu'", ">= 0 and < 0.5", "multiple of 10"."""
        if self.choices:
            return ", ".join(map(repr, self.choices))
        bounds = [
            f"{sign} {value:g}"
            for sign, value in (
                (">=", self.minimum),
                (">", self.exclusive_minimum),
                ("<=", self.maximum),
                ("<", self.exclusive_maximum),
            )
            if value is not None
        ]
        if self.multiple_of is not None:
            bounds.append(f"multiple of {self.multiple_of:g}")
        if self.pattern is not None:
            bounds.append(f"matches {self.pattern}")
        return " and ".join(bounds)


def parameter_fields(schema: dict[str, Any]) -> list[ParameterField]:
    """The parameters a backend's JSON schema declares, in its order."""
    return [_parameter_field(name, prop) for name, prop in schema.get("properties", {}).items()]


def parameter_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's default, by name."""
    return {field.name: field.default for field in parameter_fields(schema)}


def _parameter_field(name: str, prop: dict[str, Any]) -> ParameterField:
    options = prop.get("anyOf", [prop])
    value: dict[str, Any] = next((option for option in options if option.get("type") != "null"), {})
    choices = value.get("enum", [value["const"]] if "const" in value else [])
    return ParameterField(
        name=name,
        kind=value.get("type", "string"),
        default=prop.get("default"),
        description=prop.get("description", ""),
        optional=any(option.get("type") == "null" for option in options),
        choices=tuple(choices),
        minimum=value.get("minimum"),
        maximum=value.get("maximum"),
        exclusive_minimum=value.get("exclusiveMinimum"),
        exclusive_maximum=value.get("exclusiveMaximum"),
        multiple_of=value.get("multipleOf"),
        pattern=value.get("pattern"),
    )
