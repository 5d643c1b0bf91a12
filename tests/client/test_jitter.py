"""capped_jitter: Phoenix's first try, one random phase, then a try every ``cap`` seconds."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from client_probes import EventLog

from mini_server import protocol
from mini_server.client import Socket, capped_jitter
from mini_server.lab.herd import simulate_herd


def test_first_try_is_phoenixs_then_one_phase_then_the_cap_exactly():
    """Try 1 waits Phoenix's 10 ms, try 2 a draw in [0, cap], every later try exactly cap."""
    jitter = capped_jitter(seed=5)
    phases = set()
    for _ in range(200):
        assert jitter(1) == protocol.reconnect_after(1) == 0.01
        phase = jitter(2)
        assert 0.0 <= phase <= jitter.cap == 2.5
        phases.add(round(phase, 3))
        assert [jitter(n) for n in range(3, 30)] == [2.5] * 27
    assert len(phases) > 150  # a fresh phase on every call, not one per instance


def test_fast_tries_keeps_that_many_of_the_schedule_capped():
    """fast_tries=3 keeps 10, 50, 100 ms; fast_tries=0 draws the phase on the first try."""
    three = capped_jitter(fast_tries=3, seed=1)
    assert [three(n) for n in (1, 2, 3)] == [0.01, 0.05, 0.1]
    assert 0.0 <= three(4) <= 2.5 and three(5) == 2.5
    none = capped_jitter(fast_tries=0, seed=1)
    assert 0.0 <= none(1) <= 2.5 and none(2) == 2.5
    tight = capped_jitter(lambda tries: 5.0, cap=0.5, fast_tries=1)
    assert tight(1) == 0.5  # even a kept step is capped


def test_the_same_seed_draws_the_same_schedule():
    """Seeded, the schedule is reproducible (a chapter's figure is the same every run)."""
    first, second = capped_jitter(seed=7), capped_jitter(seed=7)
    assert [first(n % 4 + 1) for n in range(40)] == [second(n % 4 + 1) for n in range(40)]


def test_phoenix_default_schedule_stays_the_socket_default():
    """Jitter is an option: Socket's reconnect_after default is still Phoenix's schedule."""
    default = inspect.signature(Socket).parameters["reconnect_after"].default
    assert default is protocol.reconnect_after


@pytest.mark.parametrize("seed", range(5))
def test_a_thousand_clients_are_back_within_3_s_with_a_tenfold_lower_peak(seed):
    """1,000 clients, 3 s outage: all back within the cap, peak per 100 ms >= 10x lower.

    The previous schedule (random steps of 0.25-1 x Phoenix's, capped at 2 s) managed
    about 10x here; the fixed period after one phase keeps the crowd even over 2.5 s.
    """
    plain = simulate_herd(1000, 3.0, protocol.reconnect_after)
    jittered = simulate_herd(1000, 3.0, capped_jitter(seed=seed))
    assert len(jittered.reconnected) == 1000
    assert jittered.last_reconnect - 3.0 <= 2.5
    assert jittered.peak(0.1) * 15 <= plain.peak(0.1)


@pytest.mark.parametrize("outage", [0.3, 1.0, 2.5, 7.0, 20.0])
def test_every_client_is_back_within_the_cap_whatever_the_outage(outage):
    """No delay exceeds the cap, so nobody waits longer than it once the server is back."""
    result = simulate_herd(300, outage, capped_jitter(cap=1.5, seed=1))
    assert result.last_reconnect - outage <= 1.5


@pytest.mark.parametrize("outage", [1.0, 3.0, 10.0])
def test_the_peak_does_not_depend_on_the_outage_length(outage):
    """A fixed period carries the phases unchanged: long outages do not re-bunch the crowd."""
    result = simulate_herd(1000, outage, capped_jitter(seed=3))
    assert result.peak(0.1) <= 70  # an even spread over 2.5 s is 40 per 100 ms


async def test_a_real_socket_follows_the_schedule_through_a_restart(endpoint, sockets):
    """Live: after a kill the client tries at 10 ms, then its phase, then every cap; it is
    back within one cap of the restart."""
    cap = 0.3
    sock = sockets(endpoint.url, reconnect_after=capped_jitter(cap=cap, seed=11))
    log = EventLog(sock)
    sock.connect()
    await sock.wait_open(3)
    mark = len(log.events)
    await endpoint.kill()
    await log.wait_kind("reconnect_scheduled", since=mark, tries=4, timeout=5)
    await endpoint.restart()
    restarted = asyncio.get_running_loop().time()
    await sock.wait_open(5)
    # the next try comes within one cap; the slack is for a loaded CI machine only
    assert asyncio.get_running_loop().time() - restarted <= cap + 1.0
    delays = [e.data["delay"] for e in log.events[mark:] if e.kind == "reconnect_scheduled"]
    assert delays[0] == 0.01 and 0.0 <= delays[1] <= cap
    assert delays[2:] == [cap] * (len(delays) - 2) and len(delays) >= 4


def test_bad_parameters_are_refused_with_their_meaning():
    """A cap that is not positive or a negative fast_tries is refused, saying what it is."""
    with pytest.raises(ValueError, match="cap is in seconds"):
        capped_jitter(cap=0)
    with pytest.raises(ValueError, match="fast_tries counts tries"):
        capped_jitter(fast_tries=-1)
