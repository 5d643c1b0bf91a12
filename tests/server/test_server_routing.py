"""PROTOCOL.md section 3 row by row, and the server lifecycles, without sockets or tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mini_server.protocol import Message
from mini_server.server import routing
from mini_server.server.states import (
    CHANNEL_TRANSITIONS,
    CONNECTION_TRANSITIONS,
    ENDPOINT_TRANSITIONS,
    ChannelProcessState,
    ConnectionState,
    EndpointState,
    IllegalTransition,
    Lifecycle,
)

ROOM = object()  # the channel class the route table returns for "room:*"


@dataclass
class FakeMember:
    """A channel in the table: its registered join_ref and its process state."""

    wire_join_ref: Any
    state: ChannelProcessState = ChannelProcessState.JOINED


def find(topic: Any) -> Any:
    """Routes: "room:*" only."""
    return ROOM if isinstance(topic, str) and topic.startswith("room:") else None


def decide(msg: Message, channels: dict | None = None, max_channels: int = 100) -> Any:
    """The routing decision for one message."""
    return routing.route(msg, channels or {}, find, max_channels)


JOINED = {"room:1": FakeMember("jr")}


def test_row1_heartbeat_is_answered_whatever_channels_exist():
    """Row 1: phoenix/heartbeat is a heartbeat, with or without a join_ref or channels."""
    assert decide(Message("phoenix", "heartbeat", {}, "h", None)) == routing.Heartbeat()
    assert decide(Message("phoenix", "heartbeat", {"x": 1}, "h", "7"), JOINED) == \
        routing.Heartbeat()


def test_row2_join_without_route_is_unmatched():
    """Row 2: a join of a topic no route matches (a non-string topic too) is unmatched."""
    assert decide(Message("nope:1", "phx_join", {}, "1", "1")) == routing.Unmatched()
    assert decide(Message(5, "phx_join", {}, "1", "1")) == routing.Unmatched()
    assert decide(Message([1], "phx_join", {}, "1", "1")) == routing.Unmatched()
    assert decide(Message("phoenix", "phx_join", {}, "1", "1")) == routing.Unmatched()


def test_row2_join_over_max_channels_is_refused():
    """Row 2: with max_channels channels already, a new topic's join is refused."""
    full = {f"room:{n}": FakeMember(str(n)) for n in range(3)}
    assert decide(Message("room:new", "phx_join", {}, "j", "j"), full, 3) == \
        routing.TooManyChannels()


def test_row2_join_of_a_free_routed_topic_starts_the_channel():
    """Row 2: a routed free topic starts its channel, replacing nothing."""
    assert decide(Message("room:1", "phx_join", {}, "j", "j")) == routing.StartJoin(ROOM, None)


def test_row3_duplicate_join_replaces_the_old_channel_even_at_the_limit():
    """Row 3: a join of a joined topic (any join_ref) replaces it; the limit does not apply."""
    old = JOINED["room:1"]
    for join_ref in ("jr", "other", None):
        assert decide(Message("room:1", "phx_join", {}, "5", join_ref), JOINED, 1) == \
            routing.StartJoin(ROOM, old)


@pytest.mark.parametrize("join_ref", ["jr", None])
def test_row4_leave_with_current_or_null_join_ref_reaches_the_channel(join_ref):
    """Row 4: phx_leave with the registered join_ref, or null, goes to the channel."""
    assert decide(Message("room:1", "phx_leave", {}, "r", join_ref), JOINED) == \
        routing.Deliver(JOINED["room:1"])


def test_row4_stale_leave_is_dropped():
    """Row 4: phx_leave with another join_ref is ignored ("client raced a server close")."""
    assert decide(Message("room:1", "phx_leave", {}, "r", "old"), JOINED) == \
        routing.DropStale(JOINED["room:1"])


@pytest.mark.parametrize("join_ref", ["jr", None])
def test_row5_event_with_current_or_null_join_ref_reaches_the_channel(join_ref):
    """Row 5: any other event with the registered join_ref, or null, goes to the channel."""
    for event in ("ping", 5, None):  # a non-string event reaches it too (and crashes it)
        assert decide(Message("room:1", event, {}, "r", join_ref), JOINED) == \
            routing.Deliver(JOINED["room:1"])


def test_row5_stale_event_is_dropped():
    """Row 5: a non-null join_ref that is not the registered one is dropped silently."""
    assert decide(Message("room:1", "ping", {}, "r", "old"), JOINED) == \
        routing.DropStale(JOINED["room:1"])


def test_row5_v1_join_registered_null_so_its_ref_as_join_ref_is_stale():
    """A V1 join without join_ref registers null: a later join_ref equal to its ref is stale."""
    v1 = {"lab:v1": FakeMember(None)}
    assert decide(Message("lab:v1", "ping", {}, "3", "1"), v1) == routing.DropStale(v1["lab:v1"])
    assert decide(Message("lab:v1", "ping", {}, "3", None), v1) == routing.Deliver(v1["lab:v1"])


def test_row6_leave_of_a_free_topic_is_answered_ok():
    """Row 6: phx_leave of a topic with no channel is answered ok (routed or not)."""
    assert decide(Message("room:z", "phx_leave", {}, "r", "jr")) == routing.LeaveOk()
    assert decide(Message("nope:z", "phx_leave", {}, "r", None)) == routing.LeaveOk()


def test_row7_other_event_on_a_free_topic_is_unmatched():
    """Row 7: any other event on a topic with no channel is unmatched (topic any value)."""
    assert decide(Message("room:x", "ev", {}, "r", "x")) == routing.Unmatched()
    assert decide(Message({"a": 1}, "ev", {}, "r", None)) == routing.Unmatched()
    assert decide(Message("phoenix", "zzz", {}, "1", None)) == routing.Unmatched()


@pytest.mark.parametrize("state", [ChannelProcessState.STOPPING, ChannelProcessState.CRASHED,
                                   ChannelProcessState.STOPPED, ChannelProcessState.KILLED])
def test_message_for_a_dying_channel_is_lost_without_reply(state):
    """A channel already stopping or crashed gets nothing, as a dead process's mailbox."""
    dying = {"room:1": FakeMember("jr", state)}
    assert decide(Message("room:1", "ping", {}, "r", "jr"), dying) == \
        routing.DropDying(dying["room:1"])


def test_connection_lifecycle_follows_its_table_and_refuses_the_rest():
    """open -> closing -> closed; a killed connection stays killed; reopening raises."""
    life = Lifecycle(ConnectionState.OPEN, CONNECTION_TRANSITIONS, "test")
    assert life.fire("close") is ConnectionState.CLOSING
    assert life.fire("ended") is ConnectionState.CLOSED
    assert life.fire("kill") is ConnectionState.KILLED
    assert life.fire("ended") is ConnectionState.KILLED
    with pytest.raises(IllegalTransition, match="'close' in state 'killed'"):
        life.fire("close")


def test_channel_lifecycle_follows_its_table_and_refuses_the_rest():
    """joining -> joined -> stopping -> stopped; a crashed channel cannot stop or rejoin."""
    life = Lifecycle(ChannelProcessState.JOINING, CHANNEL_TRANSITIONS, "test")
    for event, state in [("joined", "joined"), ("stop", "stopping"), ("stopped", "stopped")]:
        assert life.fire(event) == state
    crashed = Lifecycle(ChannelProcessState.JOINED, CHANNEL_TRANSITIONS, "test")
    crashed.fire("crash")
    for event in ("stop", "joined", "crash", "kill"):
        with pytest.raises(IllegalTransition):
            crashed.fire(event)


def test_every_state_is_reachable_in_both_tables():
    """No state is left out of its own table."""
    for table, states in [(ENDPOINT_TRANSITIONS, EndpointState),
                          (CONNECTION_TRANSITIONS, ConnectionState),
                          (CHANNEL_TRANSITIONS, ChannelProcessState)]:
        seen = {s for s, _ in table} | set(table.values())
        assert seen == set(states)


def test_readme_shows_the_server_lifecycle_tables():
    """The README's "Server lifecycles" tables are exactly what states.py defines."""
    import re
    from pathlib import Path

    from mini_server.server.states import lifecycles_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- server-lifecycles:start -->\n(.*?)<!-- server-lifecycles:end -->",
                      readme, re.S)
    assert shown, "README.md lacks the server-lifecycles markers"
    assert shown[1] == lifecycles_markdown(), "regenerate with states.lifecycles_markdown()"
