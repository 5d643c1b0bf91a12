"""ConnectionPanel: the client's view, the network and the server's view, side by side, live.

Theory of operation
-------------------
Three columns and a log (ipywidgets 8):

* **client** - socket state light, one chip per channel (state and join_ref), reconnect try
  and countdown, last heartbeat round trip, and "Client bug: close";
* **network** (needs a :class:`~mini_server.lab.chaos.ChaosProxy`) - Drop, Blackhole,
  Latency, Restore, the proxy's mode and frames per direction;
* **server** - running light, "1 socket, 3 channels", channels per topic, Kill, Graceful
  restart;
* a bounded frame log (``> < = % x - !`` lines) fed by ``socket.on_event``, plus the lab's
  own actions as ``=`` lines, and an error label.

Rules that keep a notebook responsive and honest:

* Widgets are built once.  One refresh task (about 10 Hz) polls ``server.state()``, the
  client's public state and the proxy's stats, and updates widgets only by assigning
  traits, and only when a value changed.
* Button handlers never block: they schedule the action as a task in the panel's loop
  (thread-safely if a click arrives on another thread) and return.
  ``await panel.idle()`` waits for every scheduled action (tests use it).
* Exceptions are never swallowed: a failed action or refresh is shown in the error label,
  logged with ``!`` and kept in ``panel.errors``.
* ``panel.close()`` cancels the refresh task and pending actions and unsubscribes; ``await
  panel.aclose()`` also waits, at most ``CLOSE_TIMEOUT`` s, for them to finish.  A closed
  panel says so in a banner, blanks its live values and disables every control, so it never
  looks live while it is dead.  A panel closes itself when its server is closed
  (``servers.stop_all()``), and a closed lab server refuses to start again, so no click can
  bring back what a chapter's clean-up stopped.  A new panel with the same ``name`` (default
  ``"default"``: a re-run cell) closes the old one, so two panels shown at once need two names.

"Client bug: close" closes the client's WebSocket directly (``socket.connection.transport
.close()``, like ``socket.conn.close()`` in JS) instead of calling ``socket.disconnect()``:
the Socket did not ask for that close, so with phoenix.js 1.8.16 semantics it reconnects and
rejoins.  The server sees a close frame without a code (1005).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import ipywidgets as w

from mini_server.lab import log_routing, panel_html
from mini_server.lab.servers import read_state

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # aclose(): cancelled tasks end in milliseconds; never hang a clean-up cell


class ConnectionPanel:
    """Client, network and server side by side, with buttons that break things."""

    _live: ClassVar[dict[str, ConnectionPanel]] = {}  # name -> panel, so a re-run cell replaces it

    def __init__(self, socket: Any, server: Any, proxy: Any = None, *,
                 name: str = "default", refresh_interval: float = 0.1, log_lines: int = 200,
                 latency: float = 0.2) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("ConnectionPanel needs a running event loop: create it in a "
                               "notebook cell (Jupyter runs one) or inside async code") from None
        self._loop_thread = threading.get_ident()
        self.socket, self.server, self.proxy = socket, server, proxy
        self.refresh_interval = refresh_interval
        self.errors: list[str] = []
        self.shown: dict[str, Any] = {}
        self._lines: deque[str] = deque(maxlen=log_lines)
        self._heartbeats = 0  # heartbeat lines seen, folded into the latest one
        self._last_was_heartbeat = False
        self._log_dirty = False
        self._t0 = self._loop.time()
        self._wall0 = time.time()  # log records carry wall-clock time; both start together
        self._pending: set[asyncio.Task] = set()
        self._refreshed = asyncio.Event()
        self._build(latency)
        self._event_ref = socket.on_event(self._on_client_event)
        # server and lab log lines (an unmatched topic, an idle timeout) join the frame log,
        # where the learner is looking, instead of stderr under the cell that started them
        self._router = log_routing.install()
        self._log_ref = None if self._router is None else self._router.subscribe(self._on_log)
        self._closed = False
        self.name = name
        previous = ConnectionPanel._live.pop(name, None)
        if previous is not None:
            # a re-run cell: the old panel stops polling an old socket
            previous.close(f"a new panel named {name!r} replaced it")
        ConnectionPanel._live[name] = self
        self._task = self._loop.create_task(self._refresh_loop(), name="panel refresh")

    # --- building ---------------------------------------------------------------------
    def _build(self, latency: float) -> None:
        def button(text: str, tip: str, style: str = "") -> w.Button:
            # width: the full column up to 150 px, so a narrow notebook shrinks, never clips
            return w.Button(description=text, tooltip=tip, button_style=style,
                            layout=w.Layout(width="100%", max_width="150px"))

        self.socket_light = w.HTML()
        self.channel_chips = w.HTML()
        self.reconnect_label = w.HTML()
        self.heartbeat_label = w.HTML()
        self.client_bug_button = button("Client bug: close", "close the WebSocket directly, "
                                        "not via disconnect()", "warning")
        self.network_light = w.HTML()
        self.traffic_label = w.HTML()
        self.drop_button = button("Drop", "reset every connection, refuse new ones", "danger")
        self.blackhole_button = button("Blackhole", "forward nothing, close nothing", "danger")
        self.latency_input = w.BoundedFloatText(value=latency, min=0, max=30, step=0.05,
                                                description="seconds",
                                                layout=w.Layout(width="150px"))
        self.latency_button = button("Latency", "delay every byte each way", "warning")
        self.restore_button = button("Restore", "a healthy network again", "success")
        self.server_light = w.HTML()
        self.server_counts = w.HTML()
        self.topics_label = w.HTML()
        self.kill_button = button("Kill", "abort: no close frames, all memory gone; "
                                  "down until Graceful restart", "danger")
        self.restart_button = button("Graceful restart", "close 1012 if running, then start "
                                     "again on the same port",
                                     "warning")
        self.log_view = w.HTML(layout=w.Layout(max_height="220px", overflow="auto"))
        self.error_label = w.HTML()
        self.status_label = w.HTML()  # empty while live; the closed banner afterwards
        self._controls = [self.kill_button, self.restart_button, self.client_bug_button,
                          self.drop_button, self.blackhole_button, self.latency_button,
                          self.latency_input, self.restore_button]

        self.kill_button.on_click(lambda _b: self._act("server: kill", self.server.kill))
        self.restart_button.on_click(
            lambda _b: self._act("server: graceful restart", self.server.restart))
        self.client_bug_button.on_click(
            lambda _b: self._act("client bug: closing the WebSocket directly", self._client_bug))
        self.drop_button.on_click(lambda _b: self._act("network: drop", self._proxy_call, "drop"))
        self.blackhole_button.on_click(
            lambda _b: self._act("network: blackhole", self._proxy_call, "blackhole"))
        self.latency_button.on_click(lambda _b: self._act(
            f"network: latency {self.latency_input.value:g} s", self._proxy_call, "latency",
            self.latency_input.value))
        self.restore_button.on_click(
            lambda _b: self._act("network: restore", self._proxy_call, "restore"))
        network_controls: list[w.Widget] = [self.drop_button, self.blackhole_button,
                                            self.latency_button, self.latency_input,
                                            self.restore_button]
        if self.proxy is None:
            network_controls = []  # nothing to break: the light says how to get a proxy

        def column(title: str, *children: w.Widget) -> w.VBox:
            # flex: three columns side by side when there is room, wrapped one under the
            # other in a narrow notebook (down to ~400 px), never clipped
            return w.VBox([w.HTML(f"<h4 style='margin:2px 0'>{title}</h4>"), *children],
                          layout=w.Layout(flex="1 1 170px", min_width="170px", padding="4px",
                                          border="1px solid #ddd"))

        self.widget = w.VBox([
            self.status_label,
            w.HBox([
                column("client", self.socket_light, self.channel_chips, self.reconnect_label,
                       self.heartbeat_label, self.client_bug_button),
                column("network", self.network_light, self.traffic_label, *network_controls),
                column("server", self.server_light, self.server_counts, self.topics_label,
                       self.kill_button, self.restart_button),
            ], layout=w.Layout(flex_flow="row wrap", width="100%")),
            self.error_label,
            self.log_view,
        ])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # --- actions ----------------------------------------------------------------------
    def _act(self, label: str, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` in the panel's loop; never block the caller."""
        if self._closed:
            return  # its controls are disabled; a click already in flight does nothing
        if threading.get_ident() == self._loop_thread:
            self._start(label, fn, args)
        else:
            self._loop.call_soon_threadsafe(self._start, label, fn, args)

    def _start(self, label: str, fn: Callable[..., Any], args: tuple) -> None:
        if self._closed:
            return  # closed between a click on another thread and this callback

        async def run() -> None:
            self._note(f"= lab: {label}")
            result = fn(*args)
            if inspect.isawaitable(result):
                await result

        task = self._loop.create_task(run(), name=f"panel action {label}")
        self._pending.add(task)
        task.add_done_callback(lambda t: self._finished(label, t))

    def _finished(self, label: str, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._error(f"{label} failed: {task.exception()!r}")

    def _client_bug(self) -> None:
        connection = getattr(self.socket, "connection", None)
        if connection is None or not connection.is_open():
            raise RuntimeError("no open connection to close (the client is not connected)")
        connection.transport.close()  # not socket.disconnect(): the Socket did not ask

    def _proxy_call(self, method: str, *args: Any) -> Any:
        if self.proxy is None:
            raise RuntimeError("no proxy: build the panel with proxy=ChaosProxy(...)")
        return getattr(self.proxy, method)(*args)

    async def idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (house API)
        """Wait for every scheduled action to finish, then refresh once."""
        async def drained() -> None:
            while self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)

        async with asyncio.timeout(timeout):
            await drained()
        await self.refresh()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until what the panel shows satisfies ``predicate``; returns it."""
        async def shown() -> dict[str, Any]:
            while not (self.shown and predicate(self.shown)):
                self._refreshed.clear()
                await self._refreshed.wait()
            return self.shown

        async with asyncio.timeout(timeout):
            return await shown()

    # --- log and errors ---------------------------------------------------------------
    def _note(self, line: str) -> None:
        self._append(f"{self._loop.time() - self._t0:8.3f} {line}")

    def _on_client_event(self, event: Any) -> None:
        line = f"{event.time - self._t0:8.3f} {event.prefix} {event.text}"
        if event.prefix != "%":
            self._append(line)
            return
        # A run of heartbeat lines folds into its latest line, with a count: with fast timers
        # they would otherwise push the kill and close lines out of the bounded log in a minute.
        if self._last_was_heartbeat and self._lines:
            self._heartbeats += 1
            self._lines[-1] = f"{line}   [latest of {self._heartbeats} heartbeat lines]"
            self._log_dirty = True
        else:
            self._append(line)
            self._heartbeats = 1
        self._last_was_heartbeat = True

    def _on_log(self, line: str, record: logging.LogRecord) -> None:
        if record.name.startswith(("mini_server.client", "mini_server.lab.panels")):
            return  # the client's records come as events already; our own are noted already
        self._append(f"{record.created - self._wall0:8.3f} {line}")

    def _error(self, message: str) -> None:
        logger.warning("! panel: %s", message)
        self.errors.append(message)
        self._note(f"! {message}")  # the label follows at the next refresh

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._last_was_heartbeat = False
        self._log_dirty = True

    @property
    def log_lines(self) -> list[str]:
        """The frame log as plain lines, oldest first."""
        return list(self._lines)

    # --- refreshing -------------------------------------------------------------------
    async def _refresh_loop(self) -> None:
        while True:
            if getattr(self.server, "closed", False):
                # stop_all() or server.close(): nothing here can act on it any more
                self.close(f"its server {getattr(self.server, 'name', '')!r} was closed "
                           "(servers.stop_all() or server.close())")
                return
            try:
                await self.refresh()
            except Exception as exc:  # show it and keep refreshing: the panel must stay live
                self._error(f"panel refresh failed: {exc!r}")
            await asyncio.sleep(self.refresh_interval)  # the refresh period

    async def refresh(self) -> None:
        """Read client, proxy and server state once and update the widgets that changed."""
        shown: dict[str, Any] = {"client": self._client_view()}
        if self.proxy is not None:
            shown["network"] = self.proxy.stats()
        try:
            async with asyncio.timeout(2):
                state = await read_state(self.server)
            shown["server"] = {"running": state["running"], "sockets": state["socket_count"],
                               "channels": state["channel_count"], "topics": state["topics"]}
        except Exception as exc:
            shown["server"] = None
            if not self.errors or "server state" not in self.errors[-1]:
                self._error(f"server state unavailable: {exc!r}")
        self._render(shown)
        self.shown = shown
        self._refreshed.set()

    def _client_view(self) -> dict[str, Any]:
        sock = self.socket
        next_at = sock.next_reconnect_at
        return {
            "state": sock.connection_state,
            "channels": [(ch.topic, getattr(ch.state, "value", str(ch.state)), ch.join_ref)
                         for ch in sock.channels],
            "reconnect_tries": sock.reconnect_tries,
            "reconnect_in": None if next_at is None else max(0.0, next_at - self._loop.time()),
            "heartbeat_rtt": sock.last_heartbeat_rtt,
        }

    def _render(self, shown: dict[str, Any]) -> None:
        for name, value in panel_html.render(shown).items():
            _set(getattr(self, name), value)
        if self.errors:
            _set(self.error_label, panel_html.errors(self.errors[-3:]))
        if self._log_dirty:
            self._log_dirty = False
            self.log_view.value = panel_html.log(self._lines)

    # --- lifetime ---------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the panel was closed: it no longer refreshes or acts."""
        return self._closed

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> None:  # noqa: ASYNC109
        """Close and wait, at most ``timeout`` s, until every task of the panel has finished.

        Raises RuntimeError naming the tasks still running after that: a clean-up cell
        reports a stuck task instead of hanging the notebook.
        """
        tasks = [self._task, *self._pending]
        self.close()
        if self._loop.is_closed():
            return
        # asyncio.wait, not a timeout around gather: a cancelled gather waits for its
        # children, so a task that ignored its cancellation would hang the bound itself.
        _, stuck = await asyncio.wait(tasks, timeout=timeout)
        if stuck:
            names = sorted(task.get_name() for task in stuck)
            raise RuntimeError(f"panel {self.name!r}: {names} still running {timeout:g} s "
                               "after close")

    def close(self, reason: str = "panel.close() was called") -> None:
        """Cancel the refresh task and pending actions; stop listening to the client.

        The panel then shows that it is closed and why, and disables its controls.
        """
        if self._closed:
            return
        self._closed = True
        if ConnectionPanel._live.get(self.name) is self:
            del ConnectionPanel._live[self.name]
        self.socket.off_event(self._event_ref)
        if self._log_ref is not None:
            self._router.unsubscribe(self._log_ref)
        self._show_closed(reason)
        if self._loop.is_closed():
            return  # its tasks died with their loop (a panel from a finished test or run)
        current = asyncio.current_task(self._loop) if self._loop.is_running() else None
        for task in [self._task, *self._pending]:
            if task is not current:  # the refresh task closing itself simply returns
                task.cancel()

    def _show_closed(self, reason: str) -> None:
        for control in self._controls:
            control.disabled = True
        _set(self.status_label, panel_html.closed(reason))
        blank = "&mdash;"
        for label, name in ((self.socket_light, "socket"), (self.network_light, "network"),
                            (self.server_light, "server")):
            _set(label, panel_html.light(name, "not watched"))
        for label in (self.reconnect_label, self.heartbeat_label, self.traffic_label,
                      self.server_counts, self.topics_label, self.channel_chips):
            _set(label, blank)
        self._note("= lab: panel closed: " + reason)
        self.log_view.value = panel_html.log(self._lines)


def _set(widget: w.Widget, value: str) -> None:
    """Assign only on change: every assignment is a message to the browser."""
    if widget.value != value:
        widget.value = value

