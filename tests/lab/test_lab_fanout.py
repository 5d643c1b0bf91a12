"""lab/fanout.py: both fan-outs deliver everything and report a ratio (figures not asserted)."""

from __future__ import annotations

import asyncio

from mini_server.lab.fanout import Fanout, measure


async def test_measure_times_both_ways_and_leaves_no_task():
    """Tiny sizes: positive times for both ways, the ratio line last, nothing left running."""
    result = await measure(subscribers=3, messages=5, rounds=1)
    assert result.deliveries == 15 and result.fastlane > 0 and result.intercept > 0
    assert result.lines()[-1] == f"ratio intercept/fastlane time: {result.ratio:.2f}"
    current = asyncio.current_task()
    assert not [t for t in asyncio.all_tasks() if t is not current and not t.done()]


def test_ratio_is_intercept_time_over_fastlane_time():
    """2 s against 0.5 s is a ratio of 4."""
    assert Fanout(10, 10, 1, fastlane=0.5, intercept=2.0).ratio == 4.0
