"""Previews: PNGs of real arrays in the real S3 server, and a bounded read for a huge array."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import zarr
from helpers import open_job_array, wait_for
from PIL import Image
from stand_ins import FaultProxy
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.storage import FsspecStore, WrapperStore

from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.server.preview import MAX_SIDE, read_sample
from gateway_dask_zarr.storage.arrays import array_kwargs
from gateway_dask_zarr.storage.backends import S3Backend
from gateway_dask_zarr.worker.blocks import block_data


class CountingStore(WrapperStore):
    """A zarr store that records the key (and byte range) of every read it passes on to the real store."""

    def __init__(self, store: Any, reads: list[str] | None = None, ranges: list[Any] | None = None) -> None:
        super().__init__(store)
        self.reads: list[str] = [] if reads is None else reads
        self.ranges: list[Any] = [] if ranges is None else ranges

    def _with_store(self, store: Any) -> CountingStore:
        # zarr re-wraps the store to open it read-only: the copy records into the same lists.
        return CountingStore(store, self.reads, self.ranges)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.reads.append(key)
        self.ranges.append(byte_range)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
        key_ranges = list(key_ranges)
        self.reads.extend(k for k, _ in key_ranges)
        return await self._store.get_partial_values(prototype, key_ranges)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def assert_picture(png: bytes, size: tuple[int, int] = (640, 560)) -> Image.Image:
    """A real PNG of the expected size that is not one flat colour."""
    image = decode(png)
    assert image.format == "PNG" and image.size == size
    rgb = np.asarray(image.convert("RGB"))
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 100, f"only {len(colours)} colours"
    return image


def test_preview_png_of_a_complete_job(client: Any, s3fs_client: Any) -> None:
    doc = client.get("/run?seed=7").get_json()
    response = client.get(doc["links"]["preview"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    image = assert_picture(response.data)
    # The colormap's spread: random values in [0, 1) use the whole of viridis, dark to light.
    luminance = np.asarray(image.convert("L"))
    assert luminance.min() < 60 and luminance.max() > 200
    thumb = client.get(doc["links"]["preview"] + "?size=thumb")
    assert thumb.status_code == 200 and len(thumb.data) < len(response.data)
    assert_picture(thumb.data, (320, 280))
    wrong = client.get(doc["links"]["preview"] + "?size=huge")
    assert wrong.status_code == 400 and wrong.get_json()["error"]["field"] == "size"
    # Complete arrays never change, so the PNG is cached: it is served even once the array is gone.
    s3fs_client.rm(f"test-bucket/{doc['id']}.zarr", recursive=True)
    again = client.get(doc["links"]["preview"])
    assert again.status_code == 200 and again.data == response.data


def test_preview_values_are_a_stride_of_the_array(client: Any, app: Any) -> None:
    doc = client.get("/run?seed=3&shape=1000,900&chunks=100,100").get_json()
    array = parts(app).service.store.open_array(doc["id"])
    sample = read_sample(array)
    assert np.array_equal(sample.data, open_job_array(doc)[::2, ::2])
    assert sample.chunks_read == sample.chunks_total == 90


@pytest.mark.parametrize(
    ("query", "line"), [("shape=5000&chunks=1024", True), ("shape=30,40,50&chunks=16,16,16", False)]
)
def test_preview_of_1d_and_3d_arrays(client: Any, app: Any, query: str, line: bool) -> None:
    doc = client.get(f"/run?seed=4&{query}").get_json()
    response = client.get(doc["links"]["preview"])
    assert response.status_code == 200
    decode(response.data)
    sample = read_sample(parts(app).service.store.open_array(doc["id"]))
    if line:
        assert np.array_equal(sample.data, open_job_array(doc)[::3])
    else:
        # The middle slice of the leading dimension, whole (it is small): block (0, i, j) of the rule.
        assert sample.fixed == (15,)
        expected = block_data(4, (0, 0, 0), (16, 16, 16), "float32")[15]
        assert np.array_equal(sample.data[:16, :16], expected)


def test_preview_of_a_huge_array_reads_few_chunks(s3: Any, make_app: Any, settings: Any) -> None:
    """A 20000 x 20000 array in 40,000 chunks: the preview reads at most 16 x 16 of them."""
    shape, chunks = (20000, 20000), (100, 100)
    options = S3Backend("s3://test-bucket", s3.endpoint_url).options()
    real = FsspecStore.from_url("s3://test-bucket/huge.zarr", storage_options=options)
    array = zarr.create_array(real, **array_kwargs(shape, chunks, "float32", "none"))
    # Only the chunks of the corners hold data; every other chunk reads as NaN (fill value).
    for i, j in [(0, 0), (199, 199)]:
        array[i * 100 : (i + 1) * 100, j * 100 : (j + 1) * 100] = block_data(1, (i, j), chunks, "float32")
    counting = CountingStore(FsspecStore.from_url("s3://test-bucket/huge.zarr", storage_options=options))
    sample = read_sample(zarr.open_array(counting, mode="r"))
    chunk_reads = [k for k in counting.reads if k.startswith("c/")]
    assert len(chunk_reads) == len(set(chunk_reads)) == sample.chunks_read == 256
    assert sample.chunks_total == 40000
    assert max(sample.data.shape) <= MAX_SIDE and min(sample.data.shape) >= 256
    # The picked chunks span the array, corners included, and their values are the stored ones.
    ys, xs = sample.indices
    assert ys[0] == 0 and ys[-1] >= 19900 and xs[0] == 0 and xs[-1] >= 19900
    corner = block_data(1, (0, 0), chunks, "float32")
    n = int((ys < 100).sum())
    assert np.array_equal(sample.data[:n, :n], corner[ys[:n]][:, xs[:n]])
    assert np.isnan(sample.data[n, n])


def _counted(s3: Any, job_id: str) -> tuple[zarr.Array, CountingStore]:
    """A job's array opened through a store that counts its reads."""
    options = S3Backend("s3://test-bucket", s3.endpoint_url).options()
    counting = CountingStore(FsspecStore.from_url(f"s3://test-bucket/{job_id}.zarr", storage_options=options))
    return zarr.open_array(counting, mode="r"), counting


def test_preview_of_a_sharded_array_reads_whole_shards_or_only_the_chunks_it_needs(client: Any, s3: Any) -> None:
    # Every chunk sampled (10 x 10 chunks): each of the 4 shards is read whole, in one request.
    small = client.get("/run?shape=1000,1000&chunks=100,100&shards=500,500&seed=6").get_json()
    array, counting = _counted(s3, small["id"])
    sample = read_sample(array)
    assert np.array_equal(sample.data, open_job_array(small)[::2, ::2])
    assert sample.chunks_read == sample.chunks_total == 100
    assert sorted(k for k in counting.reads if k.startswith("c/")) == ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]
    assert all(r is None for k, r in zip(counting.reads, counting.ranges, strict=True) if k.startswith("c/"))
    # 40 x 40 chunks of 50 x 50 in 4 x 4 shards: the preview samples 16 chunks a side, 16 in
    # each shard; zarr reads each shard's index, then each sampled chunk by a range request.
    big = client.get("/run?shape=2000,2000&chunks=50,50&shards=500,500&seed=6").get_json()
    assert client.get(big["links"]["preview"]).status_code == 200
    array, counting = _counted(s3, big["id"])
    sample = read_sample(array)
    assert (sample.chunks_read, sample.chunks_total) == (256, 1600)
    reads = [(k, r) for k, r in zip(counting.reads, counting.ranges, strict=True) if k.startswith("c/")]
    index_reads = [k for k, r in reads if isinstance(r, SuffixByteRequest)]
    chunk_reads = [r for _, r in reads if isinstance(r, RangeByteRequest)]
    assert len(index_reads) == len(set(index_reads)) == 16
    assert len(chunk_reads) == sample.chunks_read and len(reads) == 16 + 256
    # Each range is one chunk (50 x 50 float32 and its crc32c), never a whole shard.
    assert {r.end - r.start for r in chunk_reads} == {50 * 50 * 4 + 4}
    ys, xs = sample.indices
    assert np.array_equal(sample.data, open_job_array(big).get_orthogonal_selection((ys, xs)))


def test_preview_unknown_job_is_404_and_failed_job_409(client: Any, make_app: Any, settings: Any, s3: Any) -> None:
    unknown = client.get("/jobs/no-such-job/preview.png")
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"
    bad = client.get("/jobs/.hidden/preview.png")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_job_id"
    # Chunk writes slower than the job's deadline: the job fails and has no picture.
    slow = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=3.0, only="/c/").start()
    try:
        broken = make_app(settings, s3_endpoint_url=slow.url, job_timeout_s=1, cleanup_grace_s=3).test_client()
        started = broken.post("/jobs", json={"shape": [200, 200], "chunks": [100, 100], "seed": 2}).get_json()
        wait_for(lambda: broken.get(started["links"]["self"]).get_json()["status"] == "failed", timeout=120)
        refused = broken.get(started["links"]["preview"])
    finally:
        slow.stop()
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "job_not_complete" and "failed" in error["message"]
