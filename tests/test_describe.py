"""errors.describe: the one way an exception becomes a line a person reads (jobs, records, cluster, workers)."""

from __future__ import annotations

import pytest

from gateway_dask_zarr.errors import describe, s3_error

pytestmark = pytest.mark.fast

S3_TEXT = (
    "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/k in 1ms - Server returned non-2xx status code: "
    "403 Forbidden: <?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>"
)


def test_an_s3_error_is_said_by_its_code_and_message() -> None:
    assert describe(OSError(S3_TEXT)) == "S3 AccessDenied: Access Denied."
    assert s3_error(OSError(S3_TEXT)) == "S3 AccessDenied: Access Denied."
    assert s3_error(ValueError("no xml here")) is None


def test_any_other_error_is_its_type_and_first_line_only() -> None:
    assert describe(ValueError("first line\nsecond line")) == "ValueError: first line"
    assert describe(KeyError()) == "KeyError"
    assert describe(RuntimeError("  \n ")) == "RuntimeError"
    assert len(describe(RuntimeError("x" * 10_000))) == len("RuntimeError: ") + 300
