"""Channel states and the one transition table that defines them (phoenix.js CHANNEL_STATES).

Theory of operation
-------------------
A channel is in one of five states.  Every change is an ``(state, event)`` pair looked up in
:data:`TRANSITIONS`; a pair that is not in the table is a bug and raises
:class:`IllegalTransition` (the h11 habit).  Events:

* ``join`` (the first ``join()``) and ``rejoin`` (from errored) -> joining;
* ``join_ok`` -> joined; ``join_error``, ``join_timeout`` -> errored;
* ``error``: a ``phx_error`` from the server or the transport closing/failing -> errored;
* ``leave`` -> leaving; ``close`` (``phx_close``, or the leave completing) -> closed.

The table draws its own diagram: :meth:`ChannelState.edges` (a list for plotting),
:meth:`ChannelState.diagram` (text) and :func:`draw` (a matplotlib figure).
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["TRANSITIONS", "ChannelState", "IllegalTransition", "draw"]


class ChannelState(enum.StrEnum):
    """The five states of a phoenix.js channel."""

    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    ERRORED = "errored"
    LEAVING = "leaving"

    @classmethod
    def edges(cls) -> list[tuple[str, str, str]]:
        """``(state, event, new_state)`` for every legal transition, from TRANSITIONS."""
        return [(s.value, e, n.value) for (s, e), n in TRANSITIONS.items()]

    @classmethod
    def diagram(cls) -> str:
        """The transition table as text, one ``state --event--> new_state`` line per edge."""
        width = max(len(s) for s, _, _ in cls.edges())
        return "\n".join(f"{s:<{width}} --{e}--> {n}" for s, e, n in cls.edges())


C, JG, JD, E, L = (ChannelState.CLOSED, ChannelState.JOINING, ChannelState.JOINED,
                   ChannelState.ERRORED, ChannelState.LEAVING)

# The whole state machine.  Events: join (first join), rejoin, join_ok, join_error,
# join_timeout, error (phx_error or the transport), close (phx_close or leave done), leave.
TRANSITIONS: dict[tuple[ChannelState, str], ChannelState] = {
    (C, "join"): JG,
    (E, "rejoin"): JG,
    (JG, "join_ok"): JD,
    (JG, "join_error"): E,
    (JG, "join_timeout"): E,
    (JG, "error"): E,
    (JD, "error"): E,
    (E, "error"): E,
    (C, "leave"): L,
    (JG, "leave"): L,
    (JD, "leave"): L,
    (E, "leave"): L,
    (L, "close"): C,
    (JG, "close"): C,
    (JD, "close"): C,
    (E, "close"): C,
}


class IllegalTransition(RuntimeError):
    """An event that the channel state machine does not allow in the current state."""


# Where draw() puts each state: the happy path across the top, trouble below.
_LAYOUT = {"closed": (-1.3, 0.7), "joining": (0.0, 0.7), "joined": (1.3, 0.7),
           "errored": (0.0, -0.7), "leaving": (-1.3, -0.7)}


def draw(ax: Any = None) -> Any:
    """Draw the state machine from TRANSITIONS with matplotlib; returns the Axes."""
    if ax is None:
        from matplotlib.figure import Figure  # only notebooks need it; no pyplot state

        ax = Figure(figsize=(9, 5), layout="constrained").add_subplot()
    labels: dict[tuple[str, str], list[str]] = {}
    for src, event, dst in ChannelState.edges():
        labels.setdefault((src, dst), []).append(event)
    for (src, dst), events in labels.items():
        (x0, y0), (x1, y1) = _LAYOUT[src], _LAYOUT[dst]
        text = "\n".join(events)
        if src == dst:  # a self-loop: label it under the node
            ax.text(x0, y0 - 0.25, f"\u21ba {text}", ha="center", va="top", fontsize=8)
            continue
        rad = 0.25 if (dst, src) in labels else 0.1  # keep the two ways of a pair apart
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={
            "arrowstyle": "-|>", "shrinkA": 24, "shrinkB": 24,
            "connectionstyle": f"arc3,rad={rad}", "color": "0.35"})
        # label a third of the way along, pushed off the chord to the arc's side
        dx, dy = x1 - x0, y1 - y0
        lx, ly = x0 + dx * 0.4 + dy * rad * 0.6, y0 + dy * 0.4 - dx * rad * 0.6
        ax.text(lx, ly, text, fontsize=8, ha="center", va="center", color="0.15",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    for name, (x, y) in _LAYOUT.items():
        ax.text(x, y, name, ha="center", va="center", fontsize=12,
                bbox={"boxstyle": "round", "fc": "#eef", "ec": "black"})
    ax.set_xlim(-1.8, 1.8)
    ax.set_ylim(-1.3, 1.1)
    ax.axis("off")
    ax.set_title("Channel states, drawn from TRANSITIONS")
    return ax
