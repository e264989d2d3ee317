"""The naive pattern, for reference: a new Client per request and `da.to_zarr(url)`.

Served like the seed served it: a Flask route that, on every GET, connects a new Client
to a long-lived LocalCluster of the same shape as the app's and calls `to_zarr`.
"""

from __future__ import annotations

import argparse
import uuid

import dask.array as da
from distributed import Client, LocalCluster
from flask import Flask, jsonify, request
from werkzeug.serving import make_server


def naive_app(scheduler: str, root: str, endpoint_url: str) -> Flask:
    """The seed's route: every GET makes a Client and a random array, written with to_zarr."""
    app = Flask(__name__)

    @app.get("/run")
    def run():
        shape = tuple(int(n) for n in request.args.get("shape", "1000,1000").split(","))
        chunks = tuple(int(n) for n in request.args.get("chunks", "100,100").split(","))
        dtype = request.args.get("dtype", "float32")
        url = f"{root}/naive-{uuid.uuid4().hex}.zarr"
        with Client(scheduler, set_as_default=False) as client, client.as_current():
            array = da.random.default_rng().random(shape, chunks=chunks, dtype=dtype)
            array.to_zarr(url, storage_options={"endpoint_url": endpoint_url})
        return jsonify({"url": url})

    @app.get("/readyz")
    def ready():
        return "ok"

    return app


def main() -> None:
    """Command line: python -m bench.naive --port P --root s3://bucket --endpoint-url URL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=1, host="127.0.0.1", scheduler_port=0, dashboard_address=":0"
    ) as cluster:
        server = make_server(
            "127.0.0.1", args.port, naive_app(cluster.scheduler_address, args.root, args.endpoint_url), threaded=True
        )
        server.serve_forever()


if __name__ == "__main__":
    main()
