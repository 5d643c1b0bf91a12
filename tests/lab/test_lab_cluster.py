"""The cluster panel's rows: one per node from its snapshot, down nodes shown as down."""

from __future__ import annotations

from mini_server.lab.cluster import cluster_html, cluster_rows, cluster_text

UP = {
    "running": True,
    "socket_count": 2,
    "channel_count": 5,
    "pubsub": {
        "node": "b",
        "connected": False,
        "published": 3,
        "delivered": 7,
        "skipped": 3,
        "publish_failed": 1,
        "disconnects": 1,
    },
}
DOWN = {"running": False, "sockets": [], "topics": {}, "socket_count": 0, "channel_count": 0}


def test_rows_read_the_adapter_view_and_mark_a_down_node() -> None:
    """A live node shows its counters and 'cut off'; a down node shows 'down' and zeros."""
    b, a = cluster_rows(["b-handle", "a"], [UP, DOWN])
    assert b == {
        "node": "b",
        "up": "yes",
        "sockets": 2,
        "channels": 5,
        "valkey": "cut off",
        "published": 3,
        "delivered": 7,
        "skipped": 3,
        "failed": 1,
        "disconnects": 1,
    }
    assert a["node"] == "a" and a["up"] == "down" and a["valkey"] == "-"
    assert a["sockets"] == a["published"] == 0


def test_text_and_html_show_every_row() -> None:
    """The text table aligns a header and one line per node; the HTML marks trouble red."""
    rows = cluster_rows(["b", "a"], [UP, DOWN])
    lines = cluster_text(rows).splitlines()
    assert lines[0].split() == [
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
    ]
    assert lines[1].split()[:3] == ["b", "yes", "2"] and lines[2].split()[:2] == ["a", "down"]
    html = cluster_html(rows)
    assert html.count("<tr>") == 3 and html.count("color:#c0392b") == 2  # cut off, down
