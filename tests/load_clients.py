"""Fire N concurrent GET /run at a server from this separate process; print each answer as JSON.

A process of its own, so the 50 client threads do not share the GIL with the test's
/healthz probe thread and inflate what it measures.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import requests


def main(url: str, n: int) -> None:
    """Send n GET /run at once (a barrier releases them together) and print [status, headers, body] each."""
    barrier = threading.Barrier(n)

    def run(i: int) -> list[object]:
        barrier.wait()
        response = requests.get(
            f"{url}/run", params={"shape": "1000,1000", "chunks": "100,100", "seed": str(i)}, timeout=300
        )
        return [response.status_code, dict(response.headers), response.text]

    with ThreadPoolExecutor(n) as pool:
        json.dump(list(pool.map(run, range(n))), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
