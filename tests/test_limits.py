"""The rate limiter's arithmetic against hand-worked numbers, on a clock the
test owns (the HTTP side is in test_api.py)."""

from __future__ import annotations

import pytest

from service.api import limits
from service.api.limits import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_one_per_refill_interval():
    clock = Clock()
    limit = RateLimit(3, what="writes", setting="WENDA_RATE_LIMIT_WRITES", clock=clock)
    # 3 a minute: a burst of 3, then one every 20 s.
    assert [limit.wait("a") for _ in range(3)] == [0, 0, 0]
    assert limit.wait("a") == pytest.approx(20.0)
    clock.now += 5  # a refused request takes nothing: 5 s later it is 15 s to go
    assert limit.wait("a") == pytest.approx(15.0)
    clock.now += 15
    assert limit.wait("a") == 0
    assert limit.wait("a") == pytest.approx(20.0)
    # Another client has its own bucket; a long pause refills to the burst, no more.
    assert limit.wait("b") == 0
    clock.now += 3600
    assert [limit.wait("a") for _ in range(4)] == [0, 0, 0, pytest.approx(20.0)]


def test_zero_turns_the_limit_off():
    limit = RateLimit(0, what="writes", setting="WENDA_RATE_LIMIT_WRITES", clock=Clock())
    assert {limit.wait("a") for _ in range(1000)} == {0}


def test_the_clients_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr(limits, "MAX_CLIENTS", 5)
    clock = Clock()
    limit = RateLimit(1, what="writes", setting="WENDA_RATE_LIMIT_WRITES", clock=clock)
    for i in range(50):
        assert limit.wait(f"10.0.0.{i}") == 0
    assert len(limit._buckets) == 5
    assert list(limit._buckets) == [f"10.0.0.{i}" for i in range(45, 50)]
    assert limit.wait("10.0.0.49") == pytest.approx(60.0)  # still limited: recently seen
    assert limit.wait("10.0.0.0") == 0  # forgotten, so it starts with a full bucket
