"""The server room: a small Phoenix-compatible endpoint with channels and pubsub.

``Endpoint`` serves ``/socket/websocket``; subclass ``Channel`` and return the result
helpers (``ok``, ``error``, ``reply``, ``noreply``, ``stop``) from its callbacks.
"""

from mini_server.server.channel import (
    Channel,
    JoinError,
    JoinOk,
    NoReply,
    ReplyResult,
    SocketRef,
    Stop,
    error,
    is_normal_stop,
    noreply,
    ok,
    reply,
    stop,
)
from mini_server.server.endpoint import Endpoint
from mini_server.server.pubsub import LocalAdapter, PubSub, PubSubAdapter, Subscription

__all__ = [
    "Channel",
    "Endpoint",
    "JoinError",
    "JoinOk",
    "LocalAdapter",
    "NoReply",
    "PubSub",
    "PubSubAdapter",
    "ReplyResult",
    "SocketRef",
    "Stop",
    "Subscription",
    "error",
    "is_normal_stop",
    "noreply",
    "ok",
    "reply",
    "stop",
]
