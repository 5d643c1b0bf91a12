"""capped_jitter: a reconnect schedule that spreads a crowd and brings it back within its cap."""

from __future__ import annotations

import inspect

import pytest

from mini_server import protocol
from mini_server.client import Socket, capped_jitter
from mini_server.lab.herd import simulate_herd


def test_each_delay_lies_between_low_and_the_capped_step():
    """Delay for try n is in [0.25 x step, step] with step = min(Phoenix's, 2 s)."""
    jitter = capped_jitter(seed=5)
    for tries in range(1, 20):
        step = min(protocol.reconnect_after(tries), 2.0)
        for _ in range(100):
            assert 0.25 * step <= jitter(tries) <= step


def test_the_same_seed_draws_the_same_schedule():
    """Seeded, the schedule is reproducible (a chapter's figure is the same every run)."""
    first, second = capped_jitter(seed=7), capped_jitter(seed=7)
    assert [first(n) for n in range(1, 30)] == [second(n) for n in range(1, 30)]


def test_phoenix_default_schedule_stays_the_socket_default():
    """Jitter is an option: Socket's reconnect_after default is still Phoenix's schedule."""
    default = inspect.signature(Socket).parameters["reconnect_after"].default
    assert default is protocol.reconnect_after


@pytest.mark.parametrize("seed", range(5))
def test_a_thousand_clients_are_back_within_3_s_with_a_fivefold_lower_peak(seed):
    """1,000 clients, 3 s outage: all back within 3 s of the return, peak per 100 ms >= 5x lower."""
    plain = simulate_herd(1000, 3.0, protocol.reconnect_after)
    jittered = simulate_herd(1000, 3.0, capped_jitter(seed=seed))
    assert len(jittered.reconnected) == 1000
    assert jittered.last_reconnect - 3.0 <= 3.0
    assert jittered.peak(0.1) * 5 <= plain.peak(0.1)


@pytest.mark.parametrize("outage", [0.3, 1.0, 2.5, 7.0, 20.0])
def test_every_client_is_back_within_the_cap_whatever_the_outage(outage):
    """No delay exceeds the cap, so nobody waits longer than it once the server is back."""
    result = simulate_herd(300, outage, capped_jitter(cap=1.5, seed=1))
    assert result.last_reconnect - outage <= 1.5


def test_bad_parameters_are_refused_with_their_meaning():
    """A cap that is not positive or a low outside [0, 1] is refused, saying what it is."""
    with pytest.raises(ValueError, match="cap is in seconds"):
        capped_jitter(cap=0)
    with pytest.raises(ValueError, match="fraction of the step"):
        capped_jitter(low=1.5)
