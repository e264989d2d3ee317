"""Sharded arrays through the app: one object per shard, each chunk by the rule, read by zarr-python and TensorStore."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorstore
from helpers import assert_verified, open_job_array, wait_for

from gateway_dask_zarr.grid import block_shape
from gateway_dask_zarr.worker.blocks import block_data

# Zarr's crc32c codec appends 4 bytes to each chunk; a shard's index is 16 bytes a chunk, plus its crc32c.
CRC = 4


def objects(s3fs_client: Any, document: dict[str, Any]) -> dict[str, int]:
    """The job's stored objects (key below the array: size)."""
    prefix = f"test-bucket/{document['id']}.zarr/"
    return {k[len(prefix) :]: v["size"] for k, v in s3fs_client.find(prefix, detail=True).items()}


def test_a_sharded_array_is_one_object_per_shard_and_every_chunk_follows_the_rule(
    client: Any, s3fs_client: Any
) -> None:
    doc = client.get("/run?shape=1000,1000&chunks=100,100&shards=500,500&seed=5").get_json()
    assert doc["shards"] == [500, 500] and doc["chunks_written"] == 100
    array = assert_verified(doc)
    assert array.shards == (500, 500) and array.chunks == (100, 100)
    stored = objects(s3fs_client, doc)
    # Exactly shards + 1: four shards of 25 whole chunks each, and zarr.json.
    assert sorted(stored) == ["c/0/0", "c/0/1", "c/1/0", "c/1/1", "zarr.json"]
    assert {stored[k] for k in stored if k != "zarr.json"} == {25 * (100 * 100 * 4 + CRC) + 25 * 16 + CRC}
    (codec,) = json.loads(s3fs_client.cat(f"test-bucket/{doc['id']}.zarr/zarr.json"))["codecs"]
    assert codec["name"] == "sharding_indexed"
    # The crc32c of each chunk inside the shard stays, and the index has its own.
    assert [c["name"] for c in codec["configuration"]["codecs"]] == ["bytes", "crc32c"]
    assert [c["name"] for c in codec["configuration"]["index_codecs"]] == ["bytes", "crc32c"]
    assert array.attrs["gateway"]["shards"] == [500, 500]
    # Unsharded, the document says so.
    plain = client.get("/run?shape=200,200&chunks=100,100&seed=5").get_json()
    assert plain["shards"] is None and len(objects(s3fs_client, plain)) == 4 + 1


def test_a_ragged_sharded_array_has_partial_edge_shards(client: Any, s3fs_client: Any) -> None:
    """250 x 330 in 100 x 100 chunks, 200 x 200 shards: 4 shards holding 4, 4, 2 and 2 of the 12 chunks."""
    started = client.post("/jobs", json={"shape": [250, 330], "chunks": [100, 100], "shards": [200, 200], "seed": 9})
    assert started.status_code == 202
    # Progress counts chunks, sharded or not.
    assert started.get_json()["progress"] == {"done": 0, "total": 12}
    url = started.get_json()["links"]["self"]
    wait_for(lambda: client.get(url).get_json()["status"] in ("complete", "failed"), timeout=120)
    doc = client.get(url).get_json()
    assert doc["chunks_written"] == 12 and doc["shards"] == [200, 200]
    assert_verified(doc)
    stored = objects(s3fs_client, doc)
    assert len(stored) == 4 + 1
    # Edge chunks are stored whole, padded with the fill value, as zarr stores them; chunks
    # wholly outside the array (the shard reaches to 400 x 400) are absent from their shard.
    chunk, index = 100 * 100 * 4 + CRC, 4 * 16 + CRC
    assert stored["c/0/0"] == stored["c/0/1"] == 4 * chunk + index
    assert stored["c/1/0"] == stored["c/1/1"] == 2 * chunk + index


def test_tensorstore_reads_a_sharded_array_as_the_rule_says(client: Any, s3: Any) -> None:
    doc = client.get("/run?shape=700,900&chunks=100,100&shards=400,400&seed=11").get_json()
    assert doc["status"] == "complete"
    spec = {
        "driver": "zarr3",
        "kvstore": {
            "driver": "s3",
            "bucket": "test-bucket",
            "path": f"{doc['id']}.zarr/",
            "endpoint": doc["endpoint_url"],
            "aws_region": "us-east-1",
        },
    }
    array = tensorstore.open(spec, read=True).result()
    assert array.shape == (700, 900) and array.dtype == tensorstore.float32
    chunks = (100, 100)
    # Corners, the middle, and the last chunk (in an edge shard that is half outside the array).
    for index in [(0, 0), (0, 8), (6, 0), (3, 4), (6, 8)]:
        expected = block_data(11, index, block_shape((700, 900), chunks, index), "float32")
        rows, cols = (slice(i * c, i * c + n) for i, c, n in zip(index, chunks, expected.shape, strict=True))
        np.testing.assert_array_equal(array[rows, cols].read().result(), expected)
    # And all of it, as zarr-python reads it.
    np.testing.assert_array_equal(array.read().result(), open_job_array(doc)[:])
