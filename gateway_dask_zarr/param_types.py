"""The kinds of value a job parameter takes (Parameter and its subclasses), and how a bad one is refused.

params.py declares the parameters with these; kinds/parameters.py adds the derived kinds' own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway_dask_zarr.errors import InvalidParameter

MAX_NDIM = 4
MAX_LENGTH = 10**12
SEED_LIMIT = 2**63


def shown(value: Any) -> str:
    """A value as a person reads it in a message: a query's text as given, anything else in JSON (true, not True)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def bad(name: str, message: str) -> InvalidParameter:
    return InvalidParameter(message, field=name)


@dataclass(frozen=True)
class Parameter:
    """One job parameter: its name, default (None: the server chooses) and help text."""

    name: str
    help: str
    default: Any = None
    # What the page's field starts with when there is no default, and the OpenAPI example.
    example: str = ""
    # What the page's empty field says (e.g. "random").
    placeholder: str = ""
    # Absent is a value of its own (e.g. not sharded): null in a JSON body and in the job document.
    nullable: bool = False

    def parse(self, value: Any) -> Any:
        """The value from a query string (a str) or a JSON body; raise InvalidParameter."""
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the value in a JSON body and in the job document."""
        raise NotImplementedError

    def query_schema(self) -> dict[str, Any]:
        """The JSON schema of the value in a query string."""
        return self.json_schema()

    def form_field(self) -> dict[str, Any]:
        """What the page's template needs to draw this parameter's input."""
        return {
            "name": self.name,
            "label": self.name.capitalize(),
            "kind": "input",
            "value": self.example if self.default is None else _join(self.default),
            "placeholder": self.placeholder,
            "help": self.help,
        }


def _join(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple | list) else str(value)


@dataclass(frozen=True)
class Lengths(Parameter):
    """A tuple of 1 to MAX_NDIM positive lengths: '1000,1000' in a query, [1000, 1000] in JSON."""

    QUERY_PATTERN: ClassVar[str] = rf"^[0-9]{{1,12}}(,[0-9]{{1,12}}){{0,{MAX_NDIM - 1}}}$"

    def parse(self, value: Any) -> tuple[int, ...]:
        """Parse '1000,1000' (query) or [1000, 1000] (JSON) into a tuple of positive ints."""
        name = self.name
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if not all(re.fullmatch(r"[0-9]{1,12}", p) for p in parts):
                raise bad(
                    name, f"{name} must be comma-separated positive integers such as 1000,1000, got {shown(value)}"
                )
            numbers = [int(p) for p in parts]
        elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            numbers = list(value)
        else:
            raise bad(name, f"{name} must be a list of positive integers such as [1000, 1000], got {shown(value)}")
        if not 1 <= len(numbers) <= MAX_NDIM:
            raise bad(name, f"{name} must have 1 to {MAX_NDIM} dimensions, got {shown(value)}")
        if any(n < 1 or n > MAX_LENGTH for n in numbers):
            raise bad(name, f"every {name} length must be between 1 and 10**12, got {name}={shown(value)}")
        return tuple(numbers)

    def json_schema(self) -> dict[str, Any]:
        """A list of 1 to MAX_NDIM positive integers."""
        items = {"type": "integer", "minimum": 1, "maximum": MAX_LENGTH}
        schema = {"type": "array", "items": items, "minItems": 1, "maxItems": MAX_NDIM, "description": self.help}
        return {**schema, "nullable": True} if self.nullable else schema

    def query_schema(self) -> dict[str, Any]:
        """Comma-separated lengths."""
        example = self.example or ("" if self.default is None else _join(self.default))
        return {"type": "string", "pattern": self.QUERY_PATTERN, **({"example": example} if example else {})}


@dataclass(frozen=True)
class Choice(Parameter):
    """One of a fixed set of strings."""

    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> str:
        """The value if it is one of the choices."""
        if value not in self.choices:
            raise bad(self.name, f"{self.name} must be one of {', '.join(self.choices)}, got {shown(value)}")
        return str(value)

    def json_schema(self) -> dict[str, Any]:
        """An enum of the choices."""
        return {"type": "string", "enum": list(self.choices), "description": self.help}

    def form_field(self) -> dict[str, Any]:
        """A select of the choices."""
        return {**super().form_field(), "kind": "select", "choices": list(self.choices)}


@dataclass(frozen=True)
class Integer(Parameter):
    """An integer in [minimum, limit): a decimal string in a query, a number in JSON."""

    minimum: int = 0
    limit: int = SEED_LIMIT
    limit_text: str = "2**63"

    def parse(self, value: Any) -> int:
        """The integer if it is in range."""
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or not self.minimum <= value < self.limit:
            raise bad(
                self.name, f"{self.name} must be an integer in [{self.minimum}, {self.limit_text}), got {shown(value)}"
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        """An integer in range."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.limit - 1, "description": self.help}
