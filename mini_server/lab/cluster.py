"""One view of a cluster: every node's snapshot() side by side, as text or as one widget.

Theory of operation
-------------------
Each lab server handle answers ``state()`` (the endpoint's snapshot; for an OS-process node
over loopback HTTP).  :func:`cluster_rows` reduces each snapshot to one row (is it up, its
sockets and channels, and its PubSub adapter's view: connected to Valkey or not, broadcasts
published, delivered from other nodes, skipped as its own, failed), :func:`cluster_text`
prints the rows aligned (what headless runs and tests read), and :class:`ClusterPanel` shows
the same rows as one HTML table that ``await panel.refresh()`` updates by trait assignment.
A node that is down shows as down with zero everything, as a dead process keeps no memory.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

COLUMNS = (
    "node",
    "up",
    "sockets",
    "channels",
    "valkey",
    "published",
    "delivered",
    "skipped",
    "failed",
    "disconnects",
)


def cluster_rows(names: Sequence[str], states: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One plain row per node from its name and snapshot."""
    rows = []
    for name, state in zip(names, states, strict=True):
        pubsub = state.get("pubsub") or {}
        up = bool(state.get("running"))
        rows.append(
            {
                "node": pubsub.get("node", name),
                "up": "yes" if up else "down",
                "sockets": state.get("socket_count", 0),
                "channels": state.get("channel_count", 0),
                "valkey": ("connected" if pubsub.get("connected") else "cut off") if up else "-",
                "published": pubsub.get("published", 0),
                "delivered": pubsub.get("delivered", 0),
                "skipped": pubsub.get("skipped", 0),
                "failed": pubsub.get("publish_failed", 0),
                "disconnects": pubsub.get("disconnects", 0),
            }
        )
    return rows


def cluster_text(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def cluster_html(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an HTML table (down and cut-off cells in red)."""

    def cell(value: Any) -> str:
        red = value in ("down", "cut off")
        style = ' style="color:#c0392b;font-weight:bold"' if red else ""
        return f"<td{style}>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(cell(r[c]) for c in COLUMNS) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class ClusterPanel:
    """Every node's snapshot in one table; ``await refresh()`` after each step."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        import ipywidgets as widgets  # imported here: text-only use needs no widgets

        self.nodes = dict(nodes)  # name -> lab server handle
        self.widget = widgets.HTML(value="<i>no snapshot yet</i>")
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, node: Any) -> None:
        """Show one more node (the third one joins the cluster)."""
        self.nodes[name] = node

    async def refresh(self) -> str:
        """Read every node's state, update the table, return it as text."""
        states = [await node.state() for node in self.nodes.values()]
        self.rows = cluster_rows(list(self.nodes), states)
        self.widget.value = cluster_html(self.rows)
        return cluster_text(self.rows)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
