"""Job ids (jobs/ids.py): drawn ones sort by time, a caller's are checked."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gateway_dask_zarr.errors import InvalidParameter
from gateway_dask_zarr.jobs.ids import check_job_id, new_job_id

pytestmark = pytest.mark.fast


def test_a_drawn_id_is_its_time_and_8_hex_and_sorts_by_time() -> None:
    earlier = new_job_id(datetime(2026, 11, 26, 3, 15, 0, tzinfo=UTC))
    later = new_job_id(datetime(2026, 11, 26, 3, 15, 1, tzinfo=UTC))
    assert re.fullmatch(r"20261126T031500Z-[0-9a-f]{8}", earlier)
    assert sorted([later, earlier]) == [earlier, later]
    assert len({new_job_id() for _ in range(100)}) == 100


@pytest.mark.parametrize("job_id", ["a", "A-b_c.d", "x" * 64, "-start", "_start", "0.zarr"])
def test_a_callers_id_of_1_to_64_allowed_characters_is_kept(job_id: str) -> None:
    assert check_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", ".hidden", "..", "x" * 65, "a/b", "a b", "a%2e", "é", "a\x00b"])
def test_other_ids_are_refused_naming_the_field(job_id: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        check_job_id(job_id)
    assert (refused.value.code, refused.value.field) == ("invalid_job_id", "job_id")
