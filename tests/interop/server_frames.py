"""Record what mini_server receives, from its transport log, to compare clients by it.

Theory of operation: mini_server's transport logs every received frame at DEBUG as
``< <frame>`` and every connection as ``= socket connected`` / ``x socket closed ...
code=N``. ``ServerFrameLog`` is a logging handler that, while installed, turns those
records into a list of steps: ("connected",), ("closed", code) and decoded V2 frames.
``normalised()`` reduces the frames to what must not depend on the client library:
event, topic, and how the join_ref relates to the topic's joins so far (refs themselves
are opaque, PROTOCOL.md 4.1); heartbeats are dropped, as their timing is not scripted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mini_server.server.transport import log as transport_log


class ServerFrameLog(logging.Handler):
    """Collects connections, closes and received frames from mini_server's transport log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.steps: list[tuple[Any, ...]] = []
        self.closes: list[tuple[Any, Any]] = []  # (code, reason) of every closed connection
        self._saved_level = transport_log.level

    def __enter__(self) -> ServerFrameLog:
        transport_log.addHandler(self)
        transport_log.setLevel(logging.DEBUG)  # the transport logs frames only at DEBUG
        return self

    def __exit__(self, *exc: object) -> None:
        transport_log.removeHandler(self)
        transport_log.setLevel(self._saved_level)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the records that describe the wire; frames are JSON text after "< "."""
        text = record.getMessage()
        if text.startswith("< "):
            try:
                self.steps.append(("frame", json.loads(text[2:])))
            except ValueError:  # binary, or cut short by the server's log formatting
                self.steps.append(("unparsed", text[2:]))
        elif text.startswith("= socket connected"):
            self.steps.append(("connected",))
        elif text.startswith("x socket closed"):
            _socket_id, code, reason = record.args if isinstance(record.args, tuple) else (
                None, None, None)
            self.steps.append(("closed", code))
            self.closes.append((code, reason))

    def normalised(self) -> list[tuple[Any, ...]]:
        """Steps with each frame as (event, topic, join_ref relation), heartbeats left out."""
        joins: dict[str, str | None] = {}
        out: list[tuple[Any, ...]] = []
        for step in self.steps:
            if step[0] != "frame" or not isinstance(step[1], list) or len(step[1]) != 5:
                out.append(step)
                continue
            join_ref, ref, topic, event, _payload = step[1]
            if event == "heartbeat":
                continue
            if event == "phx_join":
                relation = "first join" if topic not in joins else (
                    "new join_ref" if join_ref != joins[topic] else "same join_ref")
                joins[topic] = join_ref
                if join_ref != ref:
                    relation += ", join_ref != ref"
            elif join_ref is None:
                relation = "null join_ref"
            else:
                relation = "current join_ref" if join_ref == joins.get(topic) else "stale join_ref"
            out.append((event, topic, relation))
        return out
