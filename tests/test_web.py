"""The page's helpers (server/web.py): byte counts as people read them, the previews' bounded cache."""

from __future__ import annotations

import pytest

from gateway_dask_zarr.server.web import PreviewCache, human_bytes

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (None, ""),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1_234_567, "1.2 MB"),
        (4e12, "4.0 TB"),
        (5e15, "5000.0 TB"),
    ],
)
def test_bytes_in_decimal_units_as_s3_bills_them(n: float | None, shown: str) -> None:
    assert human_bytes(n) == shown


def test_the_preview_cache_forgets_the_least_recently_used() -> None:
    cache = PreviewCache(size=2)
    cache.put(("a", "full"), b"A")
    cache.put(("b", "full"), b"B")
    assert cache.get(("a", "full")) == b"A"  # now the newest used
    cache.put(("c", "full"), b"C")
    assert cache.get(("b", "full")) is None
    assert cache.get(("a", "full")) == b"A" and cache.get(("c", "full")) == b"C"
    assert cache.get(("a", "small")) is None
