"""A request's JSON body, or an error that says why it is not one (with the parser's position)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from gateway_dask_zarr.errors import InvalidParameter


def json_body(example: str) -> Any:
    """The parsed body (an empty body is {}); InvalidParameter naming the parser's position when it does not parse."""
    # get_data, not content_length: a chunked body has none and is still the body.
    data = request.get_data()
    if not data:
        return {}
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(
            f"the body is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; send {example}",
            code="invalid_body",
        ) from None
    except UnicodeDecodeError:
        raise InvalidParameter(
            f"the body is not JSON: it is not UTF-8 text; send {example}", code="invalid_body"
        ) from None
