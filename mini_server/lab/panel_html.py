"""What the ConnectionPanel shows, as HTML strings, from plain data: pure, no widgets.

Theory of operation
-------------------
The panel's refresh task collects one plain dict per tick (``shown``: the client's state,
the proxy's stats, the server's counts) and :func:`render` turns it into the HTML of each
label, keyed by the panel attribute it belongs to.  Keeping this pure means the words a
learner reads ("1 socket, 3 channels") are decided in one place and testable without a
kernel, and the panel itself only compares and assigns.  Colours follow one rule: green is
healthy, amber is on its way, red is broken, black is a black hole.  Log lines and errors
pass through the course's one redaction rule (``mini_server.redaction``) on their way to
HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from mini_server.redaction import redact_text

COLORS = {"open": "#2e9d4a", "joined": "#2e9d4a", "running": "#2e9d4a", "pass": "#2e9d4a",
          "connecting": "#e0a100", "joining": "#e0a100", "closing": "#e0a100",
          "leaving": "#999", "latency": "#e0a100", "closed": "#c0392b", "errored": "#c0392b",
          "down": "#c0392b", "drop": "#c0392b", "blackhole": "#222", "none": "#999"}


def light(label: str, state: str) -> str:
    """A coloured dot, a bold label and the state in words."""
    color = COLORS.get(state, "#999")
    return (f'<span style="color:{color};font-size:1.3em">&#9679;</span> '
            f"<b>{html.escape(label)}</b> {html.escape(state)}")


def chip(topic: str, state: str, join_ref: str | None) -> str:
    """One channel: topic, state and join_ref in a rounded box of the state's colour."""
    color = COLORS.get(state, "#999")
    return (f'<span style="display:inline-block;margin:2px;padding:1px 6px;border-radius:9px;'
            f'border:1px solid {color};color:{color}" title="join_ref: the ref of the join '
            f'that made this subscription">{html.escape(topic)} &middot; '
            f"{html.escape(state)} &middot; join_ref {html.escape(str(join_ref))}</span>")


def plural(n: int, word: str) -> str:
    """'1 socket', '3 sockets'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def render(shown: dict[str, Any]) -> dict[str, str]:
    """Panel attribute name -> HTML, for everything that changes."""
    out = _client(shown["client"])
    out.update(_network(shown.get("network")))
    out.update(_server(shown.get("server")))
    return out


def _client(client: dict[str, Any]) -> dict[str, str]:
    if client["reconnect_in"] is not None:
        # the try that is scheduled, numbered as the client's log numbers it: tries made + 1
        reconnect = (f"reconnect try {client['reconnect_tries'] + 1} "
                     f"in {client['reconnect_in']:.2f} s")
    else:
        reconnect = f"reconnect tries: {client['reconnect_tries']}"
    rtt = client["heartbeat_rtt"]
    return {
        "socket_light": light("socket", client["state"]),
        "channel_chips": "".join(chip(*c) for c in client["channels"]) or "<i>no channels</i>",
        "reconnect_label": reconnect,
        "heartbeat_label": "heartbeat round trip: "
                           + ("&mdash;" if rtt is None else f"{rtt * 1000:.1f} ms"),
    }


def _network(net: dict[str, Any] | None) -> dict[str, str]:
    if net is None:
        return {"network_light": light("network", "direct")
                + "<br><i>no proxy: build the panel with proxy=ChaosProxy(server) to break "
                  "the network</i>"}
    mode = "latency" if net["mode"] == "pass" and net["latency"] else net["mode"]
    extra = f" {net['latency']:g} s" if net["latency"] else ""
    up, down = net["client_to_server"], net["server_to_client"]
    return {
        "network_light": light("network", mode) + extra,
        "traffic_label": (f"client&rarr;server {up['frames']} frames / {up['bytes']} B<br>"
                          f"server&rarr;client {down['frames']} frames / {down['bytes']} B<br>"
                          f"{plural(net['connections'], 'connection')} through the proxy"),
    }


def _server(server: dict[str, Any] | None) -> dict[str, str]:
    if server is None:
        return {"server_light": light("server", "unknown")}
    topics = "<br>".join(f"{html.escape(t)} &times;{n}"
                         for t, n in sorted(server["topics"].items()))
    return {
        "server_light": light("server", "running" if server["running"] else "down"),
        "server_counts": (f"<b>{plural(server['sockets'], 'socket')}, "
                          f"{plural(server['channels'], 'channel')}</b>"),
        "topics_label": topics or "<i>no topics</i>",
    }


def log(lines: Iterable[str]) -> str:
    """The frame log, newest line first, in a small preformatted block, secrets redacted."""
    # Lines come redacted from the event stream and the server's log filter; the panel is
    # where a learner shares a screen, so it applies the one rule once more to all of them.
    return ("<pre style='margin:0;font-size:11px'>"
            + html.escape(redact_text("\n".join(reversed(list(lines))))) + "</pre>")


def errors(messages: Iterable[str]) -> str:
    """Error messages in red, one per line."""
    return ("<span style='color:#c0392b'>"
            + "<br>".join(html.escape(redact_text(m)) for m in messages)
            + "</span>")


def closed(reason: str) -> str:
    """The banner of a closed panel: what it shows is history, its buttons do nothing."""
    return ("<div style='padding:4px 8px;background:#eee;border-left:4px solid #999'>"
            "<b>&#9632; panel closed</b>: " + html.escape(reason)
            + ". What it shows is how things were when it closed; its buttons are disabled. "
              "Re-run the cell that made it for a live panel.</div>")
