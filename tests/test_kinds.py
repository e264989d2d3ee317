"""Job kinds through the app: rechunk and reduce of a job's array, provenance, owners, and a kind added in a test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle
import numpy as np
import pytest
import tensorstore
from helpers import open_job_array, wait_for
from live import serve
from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from gateway_dask_zarr.client import GatewayClient
from gateway_dask_zarr.grid import BlockIndex, block_index, block_selection, grid
from gateway_dask_zarr.jobs import plan_tasks
from gateway_dask_zarr.jobs.resume import request_of
from gateway_dask_zarr.kinds.base import Kind
from gateway_dask_zarr.kinds.rechunk import BAND_MAX_BYTES, RECHUNK, CopyBands, bound
from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.kinds.verify import mismatched
from gateway_dask_zarr.params import CHUNKS, DTYPE, SHAPE, JobRequest
from gateway_dask_zarr.server.openapi import openapi_document
from gateway_dask_zarr.storage.arrays import array_kwargs, array_metadata
from gateway_dask_zarr.storage.backends import cached_backend
from gateway_dask_zarr.worker.blocks import ArrayTarget, write_blocks

ALICE = {"Authorization": "Bearer alice-kinds-token"}
BOB = {"Authorization": "Bearer bob-kinds-token"}


def finished(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """POST /jobs and poll the job until it ends; its document."""
    started = client.post("/jobs", json=body, headers=headers)
    assert started.status_code == 202, started.get_json()
    url = started.get_json()["links"]["self"]
    wait_for(lambda: client.get(url, headers=headers).get_json()["status"] not in ("queued", "running"), timeout=120)
    document: dict[str, Any] = client.get(url, headers=headers).get_json()
    assert document["status"] == "complete", document
    return document


def verified(document: dict[str, Any], source: dict[str, Any] | None = None) -> Any:
    """The job's array, every block checked by its kind's rule against its input (if any)."""
    array = open_job_array(document)
    assert list(array.shape) == document["shape"] and list(array.chunks) == document["chunks"]
    assert mismatched(request_of(document), array, open_job_array(source) if source else None) == []
    return array


def tensorstore_read(document: dict[str, Any]) -> np.ndarray:
    """The job's array as TensorStore reads it, straight from the store."""
    kvstore = {"driver": "s3", "bucket": "test-bucket", "path": f"{document['id']}.zarr/"}
    kvstore |= {"endpoint": document["endpoint_url"], "aws_region": "us-east-1"}
    return np.asarray(tensorstore.open({"driver": "zarr3", "kvstore": kvstore}, read=True).result().read().result())


def test_rechunk_of_2d_and_3d_arrays_equals_the_input_chunk_by_chunk_with_provenance(client: Any) -> None:
    plain = finished(client, {"shape": [300, 250], "chunks": [100, 100], "seed": 3})
    cube = finished(client, {"shape": [40, 30, 20], "chunks": [10, 10, 10], "dtype": "float64", "seed": 4})
    sharded = finished(client, {"shape": [300, 250], "chunks": [50, 50], "shards": [100, 100], "seed": 8})
    for source, body in (
        (plain, {"chunks": [300, 50]}),
        # Bands of 3 output chunks (90 wide) across the input's 100-wide chunks, the last one 70 wide.
        (plain, {"chunks": [150, 30]}),
        (plain, {"chunks": [50, 50], "shards": [100, 150]}),
        (cube, {"chunks": [40, 15, 7]}),
        # A sharded input: each band's region read one shard at a time.
        (sharded, {"chunks": [300, 10]}),
    ):
        doc = finished(client, {"kind": "rechunk", "input": source["id"], **body})
        assert doc["kind"] == "rechunk" and doc["shape"] == source["shape"] and doc["dtype"] == source["dtype"]
        assert doc["shards"] == body.get("shards") and doc["seed"] is None
        array = verified(doc, source)
        np.testing.assert_array_equal(tensorstore_read(doc), open_job_array(source)[...])
        # Provenance in the document and in the array's attributes, the input linked.
        provenance = doc["provenance"]
        assert provenance["kind"] == "rechunk" and provenance["parameters"]["chunks"] == body["chunks"]
        (used,) = provenance["inputs"]
        assert used["id"] == source["id"] and used["url"] == source["url"]
        assert used["provenance"] == f"{source['url']}/zarr.json#/attributes/gateway/provenance"
        assert set(provenance["versions"]) == {"gateway-dask-zarr", "zarr", "numpy", "dask"}
        assert array.attrs["gateway"]["provenance"] == provenance
        assert doc["links"]["inputs"] == [f"/jobs/{source['id']}"]
        assert client.get(doc["links"]["inputs"][0]).get_json()["provenance"]["kind"] == "random"


def test_reduce_mean_over_an_axis_and_max_over_all_equal_numpy(client: Any) -> None:
    source = finished(client, {"shape": [300, 200], "chunks": [100, 50], "dtype": "float64", "seed": 5})
    data = open_job_array(source)[...]
    mean = finished(client, {"kind": "reduce", "input": source["id"], "op": "mean", "axes": [0]})
    assert mean["shape"] == [1, 200] and mean["op"] == "mean" and mean["axes"] == [0]
    np.testing.assert_allclose(verified(mean, source)[...], data.mean(axis=0, keepdims=True), rtol=1e-12)
    top = finished(client, {"kind": "reduce", "input": source["id"], "op": "max"})
    assert top["shape"] == [1, 1] and top["axes"] == [0, 1]
    assert verified(top, source)[...].item() == data.max()
    std = finished(client, {"kind": "reduce", "input": source["id"], "op": "std", "axes": [1]})
    np.testing.assert_allclose(open_job_array(std)[...], data.std(axis=1, keepdims=True), rtol=1e-10)


def test_a_derived_job_needs_an_input_the_caller_may_read(make_app: Any, settings: Any) -> None:
    app = make_app(settings, auth="token", api_tokens=("alice:alice-kinds-token", "bob:bob-kinds-token"))
    client = app.test_client()
    source = finished(client, {"shape": [100, 100], "chunks": [50, 50], "seed": 1}, ALICE)
    refused = client.post("/jobs", json={"kind": "rechunk", "input": source["id"], "chunks": [100, 10]}, headers=BOB)
    assert refused.status_code == 404 and refused.get_json()["error"]["field"] == "input"
    missing = client.post("/jobs", json={"kind": "reduce", "op": "sum"}, headers=ALICE)
    assert missing.status_code == 400 and missing.get_json()["error"]["field"] == "input"
    wrong = client.post("/jobs", json={"kind": "reduce", "input": source["id"], "op": "median"}, headers=ALICE)
    assert wrong.status_code == 400 and wrong.get_json()["error"]["field"] == "op"
    unknown = client.post("/jobs", json={"kind": "rechunk", "input": source["id"], "seed": 1}, headers=ALICE)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["field"] == "seed"
    # Nothing was written by a refused request: Bob has no jobs, Alice only her input.
    assert client.get("/jobs", headers=BOB).get_json() == []
    assert [d["id"] for d in client.get("/jobs", headers=ALICE).get_json()] == [source["id"]]


# A kind of a few lines, registered by the test alone (tests/test_kinds.py::ones).
@dataclass(frozen=True)
class OnesBlocks:
    """Every block is ones."""

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """Ones of the block's shape."""
        return np.ones([s.stop - s.start for s in selection], dtype)


class Ones(Kind):
    """An array of ones."""

    name = "ones"
    help = "An array of ones."
    parameters = (SHAPE, CHUNKS, DTYPE)

    def source(self, request: JobRequest) -> OnesBlocks:
        """Ones."""
        return OnesBlocks()

    def expected(self, request: JobRequest, input: Any, index: BlockIndex, selection: tuple[slice, ...]) -> np.ndarray:
        """Ones."""
        return np.ones([s.stop - s.start for s in selection], request.dtype)


@pytest.fixture
def ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ones kind registered (the registry line); its blocks shipped to the workers by value."""
    monkeypatch.setitem(KINDS, "ones", Ones())
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_kind_of_a_few_lines_runs_through_http_the_client_and_verification(app: Any, ones: None) -> None:
    assert "JobRequest_ones" in openapi_document()["components"]["schemas"]
    with serve(app) as url:
        job = GatewayClient(url).submit(kind="ones", shape=[200, 300], chunks=[100, 100], dtype="float64")
        job.wait(progress=False, timeout=120)
    document = app.test_client().get(f"/jobs/{job.id}").get_json()
    assert document["kind"] == "ones" and document["stats"] == {"min": 1.0, "max": 1.0, "mean": 1.0}
    array = verified(document)
    assert array.attrs["gateway"]["provenance"]["kind"] == "ones"
    np.testing.assert_array_equal(array[...], np.ones((200, 300)))


def test_the_cli_runs_a_reduce_of_a_job(app: Any) -> None:
    source = finished(app.test_client(), {"shape": [100, 80], "chunks": [50, 40], "dtype": "float64", "seed": 2})
    with serve(app) as url:
        command = [sys.executable, "-m", "gateway_dask_zarr", "run", "--url", url, "--json", "--kind", "reduce"]
        command += ["--input", source["id"], "--op", "sum", "--axes", "1"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    document = json.loads(done.stdout)
    assert document["kind"] == "reduce" and document["shape"] == [100, 1] and document["axes"] == [1]
    np.testing.assert_allclose(open_job_array(document)[...], open_job_array(source)[...].sum(axis=1, keepdims=True))


class CountingStore(WrapperStore[Store]):
    """A store that counts the GETs of each key."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.gets: Counter[str] = Counter()

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        """The wrapped store's get, counted."""
        self.gets[key] += 1
        return await self._store.get(key, prototype, byte_range)


# The bench's rechunk (20000 x 10000 float64, 1000 x 1000 chunks -> 20000 x 50) at a tenth of
# its side lengths, with 4x its width: 64 MB in 800 input chunks.
SMALL_INPUT = {"shape": [2000, 4000], "chunks": [100, 100], "dtype": "float64", "seed": 6}
SMALL_OUTPUT = {"shape": "2000,4000", "chunks": "2000,5", "dtype": "float64", "seed": "0"}


def small_rechunk(client: Any, settings: Any) -> tuple[dict[str, Any], JobRequest, tuple[int, ...]]:
    """The input job, the rechunk's request and its band."""
    source = finished(client, SMALL_INPUT)
    request = replace(JobRequest.parse(SMALL_OUTPUT, settings), kind="rechunk", input=source["id"])
    return source, request, RECHUNK.band(request, source)


@pytest.mark.fast
def test_a_rechunk_band_is_the_output_units_sharing_input_units_within_its_most_bytes() -> None:
    columns = JobRequest((20000, 10000), (20000, 50), "float64", None, kind="rechunk")
    assert RECHUNK.band(columns, {"chunks": [1000, 1000], "shards": None}) == (20000, 1000)
    # Sharded input: its shards are what a read fetches; no input known: one output unit.
    assert RECHUNK.band(columns, {"chunks": [100, 100], "shards": [1000, 1500]}) == (20000, 1500)
    assert RECHUNK.band(columns, None) == (20000, 50)
    # Output units as wide as the input's or wider along every axis: one unit a band.
    squares = JobRequest((20000, 10000), (2000, 2000), "float64", None, kind="rechunk")
    assert RECHUNK.band(squares, {"chunks": [1000, 1000], "shards": None}) == (2000, 2000)
    # 20 columns of 80 MB would be 1.6 GB: halved until within BAND_MAX_BYTES (3 columns).
    tall = JobRequest((200000, 10000), (200000, 50), "float64", None, kind="rechunk")
    band = RECHUNK.band(tall, {"chunks": [1000, 1000], "shards": None})
    assert band == (200000, 150) and math.prod(band) * 8 <= BAND_MAX_BYTES
    assert [len(task) for task in plan_tasks(tall, 3, band)] == [1] * 67


def test_a_rechunk_band_reads_each_input_chunk_once(client: Any, settings: Any) -> None:
    source, request, band = small_rechunk(client, settings)
    # The output chunks of one input-chunk column: 20 of them, 2000 x 100; tasks own whole bands.
    assert band == (2000, 100) and sum(len(task) for task in plan_tasks(request, 3, band)) == 40
    store = CountingStore(cached_backend(settings.store_url, settings.s3_endpoint_url).worker_store)
    for number in range(math.prod(grid(request.shape, band))):
        selection = block_selection(request.shape, band, block_index(number, grid(request.shape, band)))
        region = sync(CopyBands(source["id"]).band(store, selection, "float64"))
        assert region.data.shape == (2000, 100)
    chunk_gets = {k: n for k, n in store.gets.items() if "/c/" in k}
    assert len(chunk_gets) == 800 and set(chunk_gets.values()) == {1}


def test_a_rechunk_tasks_peak_memory_stays_within_its_bound(client: Any, settings: Any) -> None:
    """One task (run here, as a worker runs it) holds at most rechunk.bound(): its band, reads and units in flight.

    Measured with tracemalloc (numpy's and Python's allocations: the band, the decoded
    input and the encoded output; obstore's buffers are Rust's and `make bench` counts them
    in the workers' RSS instead), over the job's first task (5 bands), against an array 10x the bound.
    """
    source, request, band = small_rechunk(client, settings)
    kwargs = array_kwargs(request.shape, request.chunks, request.dtype, settings.compressor, None)
    concurrency = 2
    target = ArrayTarget(
        settings.store_url, settings.s3_endpoint_url, "rechunk-memory", array_metadata(kwargs),
        CopyBands(source["id"]), time.time() + 120, concurrency, band,
    )  # fmt: skip
    tracemalloc.start()
    try:
        facts = write_blocks(target, plan_tasks(request, 3, band)[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert facts["chunks"] == 5 * 20
    limit = bound(math.prod(band) * 8, 100 * 100 * 8, request.unit_bytes, concurrency)
    assert peak <= limit <= request.nbytes / 10, (peak, limit, request.nbytes)


def test_deleting_an_input_while_a_rechunk_reads_it_fails_the_job_and_publishes_nothing(client: Any) -> None:
    source = finished(client, {**SMALL_INPUT, "shape": [2000, 1000]})
    started = client.post("/jobs", json={"kind": "rechunk", "input": source["id"], "chunks": [2000, 5]})
    assert started.status_code == 202, started.get_json()
    # At once: the rechunk of 16 MB takes a few tenths of a second, the input's zarr.json goes first.
    assert client.delete(f"/jobs/{source['id']}").status_code == 204
    url = started.get_json()["links"]["self"]
    wait_for(lambda: client.get(url).get_json()["status"] not in ("queued", "running"), timeout=120)
    document = client.get(url).get_json()
    assert document["status"] == "failed", document
    # Said so whether a task found the input gone or the job's end did (jobs.runner._check_written).
    assert document["error"] == f"FileNotFoundError: the input job {source['id']} was deleted while this job read it"
    assert client.get(f"{url}/zarr/zarr.json").status_code == 404
