"""What produced an array: its kind, parameters, inputs and the versions that wrote it (document and attributes)."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import zarr

from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.version import __version__

VERSIONS = {
    "gateway-dask-zarr": __version__,
    "zarr": zarr.__version__,
    "numpy": np.__version__,
    "dask": dask.__version__,
}


def provenance(request: JobRequest) -> dict[str, Any]:
    """The provenance of a job's array; an input's own provenance by reference (its zarr.json's attribute)."""
    parameters = {k: v for k, v in request.document().items() if k not in ("kind", "input")}
    inputs = []
    if request.input is not None:
        inputs.append(
            {
                "id": request.input,
                "url": request.input_url,
                "document": f"/jobs/{request.input}",
                "provenance": f"{request.input_url}/zarr.json#/attributes/gateway/provenance",
            }
        )
    return {"kind": request.kind, "parameters": parameters, "inputs": inputs, "versions": VERSIONS}


def provenance_schema() -> dict[str, Any]:
    """The JSON schema of provenance()."""
    text = {"type": "string"}
    one_input = {"type": "object", "properties": {k: text for k in ("id", "url", "document", "provenance")}}
    return {
        "type": "object",
        "properties": {
            "kind": text,
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": one_input},
            "versions": {"type": "object", "additionalProperties": text},
        },
    }
