"""The herd simulator: real reconnect schedules replayed in virtual time."""

from __future__ import annotations

import pytest

from mini_server import protocol
from mini_server.lab.herd import full_jitter, simulate_herd


def test_one_client_attempts_at_phoenix_cumulative_steps():
    """A single client retries at 10, 60, 160, 310 ms and is back at the first try after."""
    result = simulate_herd(1, 0.2, protocol.reconnect_after)
    assert result.attempts == pytest.approx((0.01, 0.06, 0.16, 0.31))
    assert result.reconnected == pytest.approx((0.31,))


def test_default_schedule_moves_the_whole_herd_in_lockstep():
    """With the default schedule all 200 clients reconnect in the same 100 ms bucket."""
    result = simulate_herd(200, 3.0, protocol.reconnect_after)
    assert result.peak(0.1) == 200
    assert set(result.reconnected) == {result.reconnected[0]}


def test_full_jitter_delay_stays_between_zero_and_the_schedule():
    """Every jittered delay lies in [0, schedule(tries)]."""
    jitter = full_jitter(protocol.reconnect_after, seed=3)
    for tries in range(1, 15):
        for _ in range(50):
            assert 0.0 <= jitter(tries) <= protocol.reconnect_after(tries)


def test_full_jitter_lowers_the_peak_at_least_fourfold():
    """Full jitter spreads 200 reconnects so the busiest 100 ms sees under a quarter."""
    plain = simulate_herd(200, 3.0, protocol.reconnect_after)
    jittered = simulate_herd(200, 3.0, full_jitter(protocol.reconnect_after, seed=1))
    assert jittered.peak(0.1) * 4 < plain.peak(0.1)


def test_every_client_reconnects_once_the_server_is_back():
    """Each client reconnects exactly once, never before the server returns."""
    result = simulate_herd(50, 1.0, full_jitter(protocol.reconnect_after, seed=2))
    assert len(result.reconnected) == 50
    assert min(result.reconnected) >= 1.0


def test_buckets_count_every_attempt():
    """Summing the per-bucket counts gives the number of attempts."""
    result = simulate_herd(30, 2.0, full_jitter(protocol.reconnect_after, seed=4),
                           detect_spread=0.5)
    assert sum(result.per_bucket(0.1, what="attempts")) == len(result.attempts)


def test_per_client_factory_builds_one_schedule_per_client():
    """With per_client=True the factory is called once for every client."""
    calls = []

    def factory():
        calls.append(1)
        return protocol.reconnect_after

    simulate_herd(7, 0.5, factory, per_client=True)
    assert len(calls) == 7


def test_rejects_a_herd_of_nobody():
    """Zero clients is a clear ValueError, not an empty figure."""
    with pytest.raises(ValueError, match="clients must be a positive integer"):
        simulate_herd(0, 1.0, protocol.reconnect_after)


def test_rejects_a_schedule_that_never_waits():
    """A schedule of zeros against a down server stops with an explanation."""
    with pytest.raises(RuntimeError, match="zero delays"):
        simulate_herd(1, 1.0, lambda _tries: 0.0)


def test_attempts_while_down_are_counted_separately():
    """Counting attempts includes the refused ones: more than one per client."""
    result = simulate_herd(10, 1.0, protocol.reconnect_after)
    assert sum(result.per_bucket(0.1, what="attempts")) == 70
    assert sum(result.per_bucket(0.1)) == 10


def test_plot_herds_draws_connects_per_bucket_on_one_linear_axis():
    """plot_herds: one panel per run, bars = connects per bucket, linear y shared by all, so
    200 next to 11 reads as the 18x it is (a log axis hid it)."""
    from mini_server.lab.herd import plot_herds

    plain = simulate_herd(200, 3.0, protocol.reconnect_after)
    jittered = simulate_herd(200, 3.0, full_jitter(protocol.reconnect_after, seed=1))
    fig = plot_herds([("default", plain), ("jitter", jittered)], 0.1)
    axes = fig.axes
    assert len(axes) == 2
    until = max(plain.attempts[-1], jittered.attempts[-1])
    for ax, result in zip(axes, (plain, jittered), strict=True):
        assert ax.get_yscale() == "linear"
        heights = [patch.get_height() for patch in ax.patches]
        assert heights == result.per_bucket(0.1, until)
        assert f"at most {result.peak(0.1)} connects" in ax.get_title()
    assert axes[0].get_ylim() == axes[1].get_ylim()
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_herds([])


def test_windowed_jitter_caps_every_step_and_adds_one_phase_on_the_first_try():
    """windowed_jitter: try 1 waits schedule(1) plus up to a window; later tries wait exactly
    min(schedule, window)."""
    from mini_server.lab.herd import windowed_jitter

    schedule = windowed_jitter(protocol.reconnect_after, 1.0, seed=2)
    firsts = [schedule(1) for _ in range(200)]
    assert all(0.01 <= d <= 1.01 for d in firsts)
    assert max(firsts) - min(firsts) > 0.8, "the first wait should spread over the window"
    assert [schedule(n) for n in range(2, 13)] == [
        min(protocol.reconnect_after(n), 1.0) for n in range(2, 13)]
    with pytest.raises(ValueError):
        windowed_jitter(protocol.reconnect_after, 0)


def test_windowed_jitter_gets_a_low_peak_and_a_quick_all_back_on_the_same_herd():
    """200 clients, 3 s down, a 1 s window (a server accepting 200 connects/s): the peak is
    several times below the default's 200 and every client is back within the window, sooner
    than with the default schedule (4.26 s) or full jitter (7.9 s)."""
    from mini_server.lab.herd import accept_window, windowed_jitter

    window = accept_window(200, 200)
    assert window == 1.0
    plain = simulate_herd(200, 3.0, protocol.reconnect_after)
    full = simulate_herd(200, 3.0, full_jitter(protocol.reconnect_after, seed=1))
    windowed = simulate_herd(200, 3.0, windowed_jitter(protocol.reconnect_after, window, seed=1))
    assert windowed.peak(0.1) * 4 < plain.peak(0.1)
    assert windowed.last_reconnect <= 3.0 + window
    assert windowed.last_reconnect < plain.last_reconnect < full.last_reconnect
    assert len(windowed.reconnected) == 200
