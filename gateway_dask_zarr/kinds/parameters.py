"""The parameter types only derived kinds take: axis numbers, and an input job's id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway_dask_zarr.param_types import MAX_NDIM, Parameter, bad, shown


@dataclass(frozen=True)
class Axes(Parameter):
    """A list of distinct axis numbers: '0,1' in a query, [0, 1] in JSON."""

    def parse(self, value: Any) -> tuple[int, ...]:
        """Parse '0,1' (query) or [0, 1] (JSON) into a tuple of distinct non-negative ints."""
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,2}(,[0-9]{1,2})*", value.strip()):
            value = [int(p) for p in value.strip().split(",")]
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok or not 1 <= len(value) <= MAX_NDIM or min(value) < 0 or len(set(value)) != len(value):
            raise bad(self.name, f"{self.name} must be a list of distinct axis numbers such as [0], got {shown(value)}")
        return tuple(sorted(value))

    def json_schema(self) -> dict[str, Any]:
        """A list of axis numbers."""
        items = {"type": "integer", "minimum": 0, "maximum": MAX_NDIM - 1}
        return {
            "type": "array",
            "items": items,
            "minItems": 1,
            "maxItems": MAX_NDIM,
            "nullable": True,
            "description": self.help,
        }

    def query_schema(self) -> dict[str, Any]:
        """Comma-separated axis numbers."""
        return {"type": "string", "pattern": r"^[0-9]{1,2}(,[0-9]{1,2})*$", "example": "0"}


@dataclass(frozen=True)
class JobId(Parameter):
    """The id of another job (an input)."""

    def parse(self, value: Any) -> str:
        """The id if it has a job id's form."""
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise bad(self.name, f"{self.name} must be a job id such as a1b2c3, got {shown(value)}")
        return value

    def json_schema(self) -> dict[str, Any]:
        """A job id."""
        return {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "nullable": True, "description": self.help}

    def form_field(self) -> dict[str, Any]:
        """A text input that offers the caller's complete jobs (the page lists them)."""
        return {**super().form_field(), "kind": "job", "placeholder": self.placeholder or "a complete job's id"}
