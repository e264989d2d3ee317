"""What the OpenAPI paths are made of: an operation with its responses, the JSON bodies, the errors said often."""

from __future__ import annotations

from typing import Any

# The errors many operations share, each said once.
UNAUTHENTICATED = "no or wrong token"
NO_CSRF = "a browser session's write without the page's X-CSRF-Token"


def body(schema: str, description: str) -> dict[str, Any]:
    """A JSON response whose body is one of the document's schemas (Error, Job)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def operation(
    summary: str, responses: dict[str, Any], errors: dict[int, str], parameters: list[Any] | None = None, **more: Any
) -> dict[str, Any]:
    """One operation: its summary, parameters (and `more` keys), its answers and its errors as {status: when}."""
    found: dict[str, Any] = {"summary": summary}
    if parameters is not None:
        found["parameters"] = parameters
    refused = {str(status): body("Error", when) for status, when in errors.items()}
    return {**found, **more, "responses": {**responses, **refused}}
