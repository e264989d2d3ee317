"""The job arrays' format and JobStore (storage/arrays.py), on file:// stores: no cluster, no server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.errors import ContainsArrayError

from gateway_dask_zarr.storage.arrays import JobStore, array_kwargs, array_metadata, codecs_for, dimension_names
from gateway_dask_zarr.storage.backends import parse_storage

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("compressor", ["none", "zstd", "blosc", "gzip"])
def test_codecs_are_the_compressor_then_crc32c(compressor: str) -> None:
    names = [type(codec).__name__ for codec in codecs_for(compressor)]
    assert names[-1] == "Crc32cCodec"
    assert len(names) == (1 if compressor == "none" else 2)


def test_dimension_names_end_in_x_and_number_beyond_four() -> None:
    assert dimension_names(1) == ["x"]
    assert dimension_names(2) == ["y", "x"]
    assert dimension_names(4) == ["t", "z", "y", "x"]
    assert dimension_names(5) == ["dim_0", "dim_1", "dim_2", "dim_3", "dim_4"]


def test_metadata_is_zarr_v3_with_nan_fill_bytes_and_crc32c_built_in_memory() -> None:
    metadata = array_metadata(array_kwargs((300, 200), (100, 100), "float32", "none"))
    assert metadata["zarr_format"] == 3 and metadata["shape"] == (300, 200)
    assert metadata["chunk_grid"]["configuration"]["chunk_shape"] == (100, 100)
    assert metadata["fill_value"] == "NaN"  # as JSON has it: a missing chunk is never 0.0
    assert [codec["name"] for codec in metadata["codecs"]] == ["bytes", "crc32c"]
    assert metadata["dimension_names"] == ("y", "x")


def test_sharded_metadata_puts_the_codecs_inside_each_shard() -> None:
    metadata = array_metadata(array_kwargs((400, 400), (100, 100), "float64", "zstd", shards=(200, 200)))
    (sharding,) = metadata["codecs"]
    assert sharding["name"] == "sharding_indexed"
    inner = [codec["name"] for codec in sharding["configuration"]["codecs"]]
    assert inner == ["bytes", "zstd", "crc32c"]


def _published(tmp_path: Path) -> tuple[JobStore, dict[str, object]]:
    store = JobStore(parse_storage(f"file://{tmp_path}/jobs"))
    document = {"id": "a", "status": "complete", "seed": 1}
    store.publish("a", array_kwargs((20, 20), (10, 10), "float32", "none"), document)
    return store, document


def test_publish_never_writes_over_an_array(tmp_path: Path) -> None:
    store, document = _published(tmp_path)
    with pytest.raises(ContainsArrayError):
        store.publish("a", array_kwargs((20, 20), (10, 10), "float32", "none"), {**document, "seed": 2})
    assert store.read("a") == document


def test_a_published_array_reads_as_nan_until_chunks_are_written(tmp_path: Path) -> None:
    store, _ = _published(tmp_path)
    array = store.open_array("a")
    assert isinstance(array, zarr.Array) and array.shape == (20, 20)
    # A missing chunk reads as NaN, never as a plausible 0.0.
    assert np.isnan(array[:]).all()


def test_read_gives_only_a_complete_document(tmp_path: Path) -> None:
    store, _ = _published(tmp_path)
    metadata = tmp_path / "jobs" / "a.zarr" / "zarr.json"
    written = json.loads(metadata.read_text())
    written["attributes"]["gateway"]["status"] = "running"
    metadata.write_text(json.dumps(written))
    assert store.read("a") is None
    assert store.read("missing") is None
