"""The chaos soak's short form (tests/soak.py; `make soak` runs it for minutes)."""

from __future__ import annotations

from soak import soak


def test_a_short_chaos_soak_loses_no_job_and_leaves_the_store_adding_up() -> None:
    figures = soak(seconds=20, clients=2, seed=3)
    print(f"\nsoak: {figures}")
    assert figures["submitted"] > 0 and figures["completed"] > 0
    assert sum(figures["faults"].values()) >= 1
