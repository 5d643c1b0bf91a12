"""Teaching timers: Phoenix's numbers come from protocol.py; fast mode is shorter still."""

from __future__ import annotations

from mini_server import protocol
from mini_server.lab import timing


def test_phoenix_column_is_read_from_protocol():
    """The Phoenix defaults quoted next to ours are protocol.py's constants and schedules."""
    assert timing.PHOENIX.heartbeat_interval == protocol.DEFAULT_HEARTBEAT_INTERVAL
    assert timing.PHOENIX.timeout == protocol.DEFAULT_TIMEOUT
    assert timing.PHOENIX.idle_timeout == protocol.SERVER_IDLE_TIMEOUT
    assert timing.PHOENIX.reconnect_after is protocol.reconnect_after
    assert timing.PHOENIX.rejoin_after is protocol.rejoin_after


def test_course_fast_selects_the_fast_timers(monkeypatch):
    """COURSE_FAST=1 switches timers() to the fast set; unset it gives the teaching set."""
    monkeypatch.setenv("COURSE_FAST", "1")
    assert timing.timers() is timing.FAST
    monkeypatch.delenv("COURSE_FAST")
    assert timing.timers() is timing.TEACHING


def test_each_set_is_shorter_than_the_one_before():
    """Fast < teaching < Phoenix for every timer, so demos take seconds and CI less."""
    for name in ("heartbeat_interval", "timeout", "idle_timeout"):
        fast, teach, phx = (getattr(t, name) for t in (timing.FAST, timing.TEACHING,
                                                       timing.PHOENIX))
        assert fast < teach < phx, name


def test_schedules_keep_phoenix_shape_scaled():
    """Reconnect and rejoin schedules are Phoenix's steps times a constant factor."""
    for tries in range(1, 12):
        assert timing.FAST.reconnect_after(tries) == protocol.reconnect_after(tries) * 0.2
        assert timing.TEACHING.rejoin_after(tries) == protocol.rejoin_after(tries) * 0.5


def test_server_idle_timeout_outlasts_two_heartbeats():
    """A healthy client (heartbeat every interval) is never cut by the server's idle timeout."""
    for t in (timing.FAST, timing.TEACHING, timing.PHOENIX):
        assert t.idle_timeout > t.heartbeat_interval


def test_socket_and_endpoint_options_name_real_parameters():
    """The option dicts use the Socket and Endpoint keyword names from the API contract."""
    assert set(timing.FAST.socket_options()) == {"heartbeat_interval", "timeout",
                                                 "reconnect_after", "rejoin_after"}
    assert timing.FAST.endpoint_options() == {"idle_timeout": timing.FAST.idle_timeout}


def test_comparison_table_quotes_both_columns():
    """The printed table shows Phoenix's 30 s heartbeat next to ours."""
    text = timing.comparison_text(fast=False)
    assert "heartbeat interval" in text and "30" in text
    assert f"{timing.TEACHING.heartbeat_interval:g}" in text.splitlines()[1]


def test_comparison_table_never_wraps_in_a_narrow_notebook():
    """No line is wider than 78 characters, the schedules included (they get a block)."""
    for fast in (False, True):
        text = timing.comparison_text(fast=fast)
        assert max(len(line) for line in text.splitlines()) <= timing.TEXT_WIDTH, text
        assert "0.01, 0.05" in text and "rejoin after" in text
