"""Pictures of the course's moving parts, drawn with matplotlib (no files to keep in sync).

:func:`pieces` draws what runs where while a chapter runs: the learner's kernel holds the
client (a Socket and its Channels), the panels and, usually, the server; the chaos proxy
sits on the wire between client and server; the panels read both ends and break things.
The channel state machine is drawn from its own table by
:func:`mini_server.client.states.draw`, so neither picture can drift from the code.
"""

from __future__ import annotations

from typing import Any

# (label, detail, x, y, width, colour): one box per piece, in axes units (0-10 x 0-5)
PIECES: tuple[tuple[str, str, float, float, float, str], ...] = (
    ("client", "Socket + Channels\n(phoenix.js semantics)", 0.3, 2.2, 2.6, "#e8f0fe"),
    ("chaos proxy", "Drop · Blackhole · Latency\n(a TCP hop you can break)", 3.7, 2.2, 2.6,
     "#fdecea"),
    ("server", "a Socket per connection,\na process per Channel", 7.1, 2.2, 2.6, "#e6f4ea"),
    ("panel", "shows both ends,\nclicks break things", 3.7, 0.2, 2.6, "#fff4e5"),
)
WIRE = "WebSocket frames: [join_ref, ref, topic, event, payload]"


def pieces() -> Any:
    """The course's pieces and the wires between them, as a matplotlib Figure."""
    from matplotlib.figure import Figure  # only when a picture is drawn
    from matplotlib.patches import FancyBboxPatch

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.1, 0.05), 9.8, 4.3, boxstyle="round,pad=0.05",
                                fc="none", ec="0.6", ls="--"))
    ax.text(0.25, 4.2, "your notebook's kernel (one per learner: nothing shared); the server "
            "may also run as its own OS process", fontsize=9,
            color="0.35", va="top")
    for label, detail, x, y, width, colour in PIECES:
        ax.add_patch(FancyBboxPatch((x, y), width, 1.3, boxstyle="round,pad=0.08", fc=colour,
                                    ec="0.25"))
        ax.text(x + width / 2, y + 0.95, label, ha="center", va="center", fontsize=12,
                weight="bold")
        ax.text(x + width / 2, y + 0.45, detail, ha="center", va="center", fontsize=8.5)

    def arrow(start: tuple[float, float], end: tuple[float, float], style: str = "<|-|>",
              **kwargs: Any) -> None:
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": style, "color": "0.3", **kwargs})

    arrow((2.95, 2.85), (3.65, 2.85))
    arrow((6.35, 2.85), (7.05, 2.85))
    ax.text(5.0, 3.75, WIRE, ha="center", fontsize=9, family="monospace")
    # the panel observes the client and the server and injects faults into the proxy
    arrow((3.9, 1.55), (1.6, 2.15), style="-|>", ls=":")
    arrow((6.1, 1.55), (8.4, 2.15), style="-|>", ls=":")
    arrow((5.0, 1.55), (5.0, 2.15), style="-|>", ls=":")
    ax.text(1.3, 1.55, "reads state,\ncloses the socket", fontsize=8, ha="center", color="0.3")
    ax.text(8.7, 1.55, "reads snapshot(),\nKill / Graceful restart", fontsize=8, ha="center",
            color="0.3")
    ax.set_title("What runs where in a chapter")
    return fig
