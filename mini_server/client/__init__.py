"""A Python Phoenix Channels client with phoenix.js 1.8.16 semantics, for the course.

``Socket`` (socket.py) holds one connection with heartbeat and reconnect; ``Channel``
(channel.py) joins a topic and rejoins it after every reconnect with a new join_ref;
``Push`` (push.py) is one message awaiting its reply; ``NaiveSocket`` (naive.py) is the
deliberately wrong client chapter 03 takes apart; ``LastSeen`` and ``push_until_acked``
(delivery.py) are catch-up and at-least-once, chapter 05; ``NewestToken`` (tokens.py)
rejoins with the newest token a server pushed, chapter 07; ``capped_jitter`` (jitter.py)
is an optional reconnect schedule that brings a crowd back spread out and within 2.5 s;
buggy.py holds chapter 09's four planted bugs (import it as ``mini_server.client.buggy``).
Every step is on the event stream (``socket.on_event``), see events.py.
"""

from ..protocol import reconnect_after, rejoin_after
from .channel import Channel
from .delivery import Acked, LastSeen, push_until_acked
from .events import PREFIXES, ClientEvent, EventLog
from .jitter import CappedJitter, capped_jitter
from .naive import NaiveSocket
from .push import Push, PushTimeout, Reply
from .socket import Socket
from .states import TRANSITIONS, ChannelState, IllegalTransition, draw
from .timer import Timer
from .tokens import NewestToken
from .transport import WebSocketTransport, endpoint_url

__all__ = [
    "PREFIXES", "TRANSITIONS", "Acked", "CappedJitter", "Channel", "ChannelState", "ClientEvent",
    "EventLog", "IllegalTransition", "LastSeen", "NaiveSocket", "NewestToken",
    "Push", "PushTimeout", "Reply", "Socket", "Timer", "WebSocketTransport",
    "capped_jitter", "draw", "endpoint_url", "push_until_acked", "reconnect_after", "rejoin_after",
]
