"""The one backoff: full jitter really spreads over the whole window; the client's polls grow
without jitter; Retry-After caps. Pure functions, seeded randomness."""

from __future__ import annotations

import random

import pytest

from shared.backoff import MAX_RETRY_AFTER_SECONDS, backoff_delay, parse_retry_after, spread
from shotline.wire import Backoff


def test_full_jitter_draws_from_zero_to_the_capped_ceiling() -> None:
    rng = random.Random(7)
    draws = [backoff_delay(3, base=2.0, cap=60.0, rng=rng) for _ in range(400)]
    assert all(0.0 <= d <= 8.0 for d in draws)  # ceiling 2 * 2**2
    # Full jitter, not equal jitter: the lower half of the window is used as much as the upper.
    lower = sum(d < 4.0 for d in draws)
    assert 120 < lower < 280
    assert max(backoff_delay(30, base=2.0, cap=60.0, rng=rng) for _ in range(50)) <= 60.0


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    assert [backoff_delay(n, base=0.2, cap=2.0, factor=1.5, jitter=False) for n in (1, 2, 3)] == \
        pytest.approx([0.2, 0.3, 0.45])
    assert backoff_delay(20, base=0.2, cap=2.0, factor=1.5, jitter=False) == 2.0


def test_spread_stays_within_its_fraction() -> None:
    rng = random.Random(3)
    assert all(80 <= spread(100, 0.2, rng=rng) <= 120 for _ in range(100))


def test_client_polls_grow_to_the_maximum_and_honour_retry_after_and_the_deadline() -> None:
    backoff = Backoff(initial=0.2, maximum=1.0, factor=2.0)
    delays = [backoff.next_delay(remaining=100) for _ in range(5)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.next_delay(remaining=100, retry_after=5) == 5
    assert backoff.next_delay(remaining=0.1, retry_after=5) == 0.1


def test_retry_after_is_capped() -> None:
    assert parse_retry_after("999999999") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("20", maximum=10) == 10
