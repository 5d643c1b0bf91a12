"""What a client sends cannot forge lines in the server log or flood it (issue 10, item 4)."""

from __future__ import annotations

import logging

import pytest
from raw_client import reply

from mini_server.server.log_lines import MAX_LINE, one_line


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
