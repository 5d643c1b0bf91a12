"""What a client sends cannot forge lines in the server log or flood it (issue 10, item 4)."""

from __future__ import annotations

import logging

import pytest
from raw_client import reply

from mini_server.server.log_lines import MAX_FIELD, MAX_LINE, Clip, Repeats, one_line
from mini_server.testing import wait_until


def test_one_line_escapes_control_characters_like_repr():
    assert one_line("a\nb\r\tc\x1b[31md\u2028") == "a\\nb\\r\\tc\\x1b[31md\\u2028"


def test_one_line_cuts_long_text_and_says_how_long_it_was():
    line = one_line("x" * 1_000_000)
    assert len(line) < MAX_LINE + 40 and line.endswith("... (1000000 chars)")


def test_one_line_leaves_ordinary_text_alone():
    assert one_line("= room:lobby joined (join_ref 1)") == "= room:lobby joined (join_ref 1)"


def server_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("mini_server.server")]


async def test_a_topic_with_a_newline_cannot_write_a_fake_log_line(raw, caplog):
    caplog.set_level(logging.DEBUG, logger="mini_server")
    topic = "echo:1\nx socket closed id=admin code=1000"
    client = await raw()
    assert await client.join(topic, "jr") == reply("jr", "jr", topic,
                                                   response={"joined": topic})
    lines = server_lines(caplog)
    assert any("echo:1\\nx socket closed" in line for line in lines), lines
    assert not any("\n" in line for line in lines), lines


async def test_a_huge_topic_writes_short_lines_and_still_joins(raw, caplog):
    caplog.set_level(logging.DEBUG, logger="mini_server")
    topic = "echo:" + "x" * 900_000
    client = await raw()
    assert (await client.join(topic, "jr"))[4]["status"] == "ok"  # the wire is untouched
    lines = server_lines(caplog)
    assert lines and max(map(len, lines)) < MAX_LINE + 40, max(map(len, lines))
    assert any(line.endswith(" chars)") for line in lines)


async def test_an_unmatched_topic_with_a_newline_is_one_escaped_warning(raw, caplog):
    """The 'unmatched topic' warning for a forged topic is exactly one line, escaped."""
    caplog.set_level(logging.INFO, logger="mini_server")
    topic = "nope:1\n! 'admin:1' 'phx_join': unmatched topic"
    client = await raw()
    assert (await client.join(topic, "jr"))[4]["response"] == {"reason": "unmatched topic"}
    warnings = [line for line in server_lines(caplog) if "unmatched topic" in line]
    assert warnings == [r"""! "nope:1\n! 'admin:1' 'phx_join': unmatched topic" 'phx_join': """
                        "unmatched topic"], warnings


async def test_a_long_topic_is_cut_in_the_line_and_the_reason_stays_visible(raw, caplog):
    """Topic, event and ref are cut at MAX_FIELD with a marker; the line's end is kept."""
    caplog.set_level(logging.INFO, logger="mini_server")
    client = await raw()
    await client.send("r" * 5000, "r" * 5000, "nope:" + "x" * 900_000, "e" * 5000, {})
    assert (await client.recv())[4]["response"] == {"reason": "unmatched topic"}
    [line] = [line for line in server_lines(caplog) if "unmatched topic" in line]
    assert line.endswith(": unmatched topic") and "(900005 chars)" in line
    assert "(5000 chars)" in line and len(line) < 2 * MAX_FIELD + 80, line


async def test_repeated_warnings_of_one_connection_are_counted_not_written(raw, caplog):
    """1,000 refused joins: the first few are logged, then one line with the count."""
    caplog.set_level(logging.INFO, logger="mini_server")
    client = await raw()
    for n in range(1000):
        await client.send(str(n), str(n), f"nope:{n}", "phx_join", {})
    for _ in range(1000):
        await client.recv()
    await client.ws.close()
    await wait_until(lambda: any("socket closed" in line for line in server_lines(caplog)))
    warnings = [line for line in server_lines(caplog) if "unmatched topic" in line]
    assert len(warnings) == 6, warnings  # the burst of 5, then the count
    assert warnings[-1] == ("! 'nope:999' 'phx_join': unmatched topic "
                            "[+995 like it within 10 s, not logged]")


def test_repeats_logs_a_burst_per_window_and_reports_what_it_held_back(caplog):
    """Burst per kind and window; the count comes at the next window or at flush()."""
    now = [0.0]
    logger = logging.getLogger("mini_server.server.test_repeats")
    caplog.set_level(logging.INFO, logger=logger.name)
    repeats = Repeats(logger, burst=2, window=10.0, clock=lambda: now[0])
    for n in range(5):
        repeats.warning("! join %s: refused", n)
    repeats.log(logging.INFO, "= other kind %s", 1)  # another template: its own burst
    now[0] = 11.0
    repeats.warning("! join %s: refused", 5)  # a new window: report, then log
    repeats.warning("! join %s: refused", 6)
    repeats.warning("! join %s: refused", 7)
    repeats.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "! join 0: refused", "! join 1: refused", "= other kind 1",
        "! join 4: refused [+3 like it within 10 s, not logged]",
        "! join 5: refused", "! join 6: refused",
        "! join 7: refused [+1 like it within 10 s, not logged]"]
    assert repeats.held_back == 4


def test_clip_cuts_and_escapes_a_field_only_when_formatted():
    """Clip(value) formats as one short escaped field, str or repr."""
    assert str(Clip("a\nb")) == "a\\nb" and repr(Clip("a\nb")) == "'a\\nb'"
    long = Clip("x" * 10_000)
    assert str(long).endswith("... (10000 chars)") and len(str(long)) < MAX_FIELD + 30
    assert repr(long).endswith("... (10000 chars)") and len(repr(long)) < MAX_FIELD + 30
