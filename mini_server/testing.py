"""Helpers for tests and graders: run learner code with a time limit, servers, raw clients.

Theory of operation
-------------------
An exercise's test cell must survive whatever the learner wrote: an endless loop, a
coroutine that never returns, a forgotten ``await``.  A kernel interrupt cannot stop a stuck
top-level ``await``, and nbgrader's per-cell timeout would cost the rest of the notebook, so
:func:`run_async` runs the code somewhere else:

* a fresh event loop in a **daemon worker thread**; the calling thread waits for the result
  with a timeout (it does not need a loop, so it works in a notebook cell and in pytest);
* on timeout the worker's task is cancelled, so ``finally`` blocks and ``async with``
  servers clean up; if the worker is stuck in plain Python code (``while True: pass``) the
  cancellation never runs, so an exception is raised *inside* that thread
  (``PyThreadState_SetAsyncExc``, checked between bytecodes) and its cleanup runs after all;
* code stuck inside one C call (``time.sleep(10**9)``) cannot be interrupted: the thread is
  abandoned, and being a daemon it never keeps the interpreter alive;
* the caller always gets :class:`LearnerTimeout`, an ``AssertionError`` whose message says
  what probably went wrong, so nbgrader scores that one question zero and moves on.

Exceptions raised by the code (a failed assert included) reach the caller unchanged.  A
function that returns a coroutine instead of awaiting it is reported as a forgotten await.

What the code writes to stderr, warns or logs while it runs is collected and printed on
stdout after the result (a debug print must not zero a correct answer: nbgrader scores a test
cell that wrote to stderr zero), and an un-awaited coroutine becomes a hint.  Test cells call
:func:`guard` first; it and the reference frames for graded-on-its-own questions live in
:mod:`mini_server.grading_guard` and here.

:func:`run_with_fake_clock` is :func:`run_async` on a fake-clock loop
(:mod:`mini_server.fake_clock`): timers fire at their exact virtual time, at once.
:func:`failure_of` runs a learner's *test* that way and says whether (and how) it failed:
exercise 08 grades a test by running it on the right channel and on broken ones.

The other helpers are small: :func:`quiet_logs` keeps server warnings out of stderr
(nbgrader scores a test cell that wrote to stderr zero), :func:`wait_until` polls a
condition (a server snapshot) with a deadline, and :class:`RawClient` speaks V2 frames over
a plain websocket, ChannelTest style (``join``, ``push``, ``assert_reply``, ``assert_push``,
``assert_broadcast``), reading them into the same :class:`~mini_server.channel_test.Inbox`
as the ChannelTest helpers, which are re-exported here (``connect``, ``ANY``; see
:mod:`mini_server.channel_test`).  Servers and the chaos proxy need no helper:
``async with Endpoint()`` and ``async with ChaosProxy(server)`` both clean up after themselves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from mini_server import grading_guard
from mini_server.channel_test import ANY, Closed, Inbox, Item, JoinResult, connect
from mini_server.fake_clock import VirtualClockLoop
from mini_server.grading_guard import Tampered, guard, using
from mini_server.protocol import (
    DEFAULT_VSN,
    PHX_JOIN,
    PHX_REPLY,
    Message,
    V2JSONSerializer,
)

__all__ = [
    "ANY",
    "JoinResult",
    "LearnerTimeout",
    "RawClient",
    "Tampered",
    "connect",
    "failure_of",
    "guard",
    "quiet_logs",
    "reference_encode_frame",
    "reference_join_frame",
    "run_async",
    "run_with_fake_clock",
    "using",
    "wait_until",
]

logger = logging.getLogger(__name__)

GRACE = 2.0  # seconds a timed-out worker gets to clean up (servers drain in about 1.5 s)


class LearnerTimeout(AssertionError):
    """Learner code did not finish in time (an AssertionError, so graders score it 0)."""


class _Abandoned(BaseException):
    """Raised inside a stuck worker thread to unwind it; never reaches learner-facing code."""


def _message(target: Any, timeout: float) -> str:
    if inspect.iscoroutine(target) or inspect.iscoroutinefunction(target):
        return (f"your coroutine did not finish within {timeout:g} s: "
                "an endless loop or a forgotten await?")
    return (f"your code did not finish within {timeout:g} s: an endless loop, "
            "or waiting for something that never happens?")


async def _call(target: Any, args: tuple, kwargs: dict) -> Any:
    if inspect.isawaitable(target):
        if args or kwargs:
            raise TypeError("run_async: pass arguments with a function, not with a coroutine")
        value = await target
    elif callable(target):
        value = target(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
    else:
        raise TypeError(f"run_async needs a coroutine or a function, got {target!r}")
    if inspect.iscoroutine(value):
        value.close()  # nobody will await it: close it so no "never awaited" warning follows
        raise AssertionError("your function returned a coroutine instead of its result: "
                             "did you forget an await?")
    return value


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, give it a moment to clean up, close the loop."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=GRACE))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except _Abandoned:
        pass
    finally:
        loop.close()


def _interrupt(thread: threading.Thread) -> None:
    """Raise _Abandoned inside ``thread`` at its next bytecode."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(_Abandoned))


def run_async(target: Awaitable[Any] | Callable[..., Any], *args: Any,
              timeout: float = 10.0, **kwargs: Any) -> Any:
    """Run a coroutine (or call a function) on a fresh loop in a worker thread, with a timeout.

    Returns its result or re-raises its exception; raises LearnerTimeout after ``timeout``.
    What the code writes to stderr, warns or logs is shown on stdout afterwards (see
    :func:`mini_server.grading_guard.captured`): noise never costs a correct answer points.
    """
    grading_guard.guard_objects()
    with grading_guard.captured():
        return _run_async(target, args, kwargs, timeout)


def run_with_fake_clock(target: Awaitable[Any] | Callable[..., Any], *args: Any,
                        timeout: float = 10.0, **kwargs: Any) -> Any:
    """:func:`run_async` on a fake clock: virtual time, each timer exactly on time, no waiting.

    ``timeout`` is real seconds, as for run_async; inside, ``fake_clock.advance(s)`` and every
    sleep or timeout take no real time.  For code without sockets (ChannelTest in process).
    """
    grading_guard.guard_objects()
    with grading_guard.captured():
        return _run_async(target, args, kwargs, timeout, VirtualClockLoop)


def failure_of(test: Callable[..., Any], *args: Any, timeout: float = 10.0,
               **kwargs: Any) -> str | None:
    """Run a learner's test function on the fake clock: None if it passed, else its failure.

    A test is good when it passes on the right code and fails on broken code, so graders run
    it against both.  Any exception counts as a failure (as in pytest) and is described as
    ``Type: message``; running out of ``timeout`` real seconds is not a failure of the code
    under test but of the test, so LearnerTimeout propagates and costs the question.
    """
    try:
        run_with_fake_clock(test, *args, timeout=timeout, **kwargs)
    except LearnerTimeout:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _run_async(target: Awaitable[Any] | Callable[..., Any], args: tuple, kwargs: dict,
               timeout: float,
               loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
               ) -> Any:
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
    loop = loop_factory()
    task_box: list[asyncio.Task[Any]] = []
    started = threading.Event()

    def worker() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(_call(target, args, kwargs))
            task_box.append(task)
            started.set()
            value = loop.run_until_complete(task)
        except _Abandoned:
            pass
        except BaseException as exc:  # handed to the caller, who re-raises it
            if not outcome.done():
                outcome.set_exception(exc)
        else:
            if not outcome.done():
                outcome.set_result(value)
        finally:
            started.set()
            try:
                _shutdown(loop)
            except _Abandoned:
                pass

    thread = threading.Thread(target=worker, name="run_async", daemon=True)
    thread.start()
    try:
        return outcome.result(timeout)
    except concurrent.futures.TimeoutError:
        pass
    except BaseException:  # a kernel interrupt: stop the worker too, then let it propagate
        _stop(loop, task_box, thread, started)
        raise
    outcome.cancel()
    _stop(loop, task_box, thread, started)
    raise LearnerTimeout(_message(target, timeout)) from None


def _stop(loop: asyncio.AbstractEventLoop, task_box: list[asyncio.Task[Any]],
          thread: threading.Thread, started: threading.Event) -> None:
    """Cancel the worker's task; interrupt the thread if it does not unwind in time."""
    started.wait(GRACE)
    if task_box and not loop.is_closed():
        try:
            loop.call_soon_threadsafe(task_box[0].cancel)
        except RuntimeError:  # the loop closed in between: the worker has finished
            pass
    thread.join(GRACE)
    if thread.is_alive():
        logger.warning("! worker stuck in plain code after the timeout: interrupting it")
        _interrupt(thread)
        thread.join(GRACE)
    if thread.is_alive():
        logger.warning("! worker thread could not be stopped; abandoned (daemon)")


def reference_encode_frame(join_ref: str | None, ref: str | None, topic: str, event: str,
                           payload: Any) -> str:
    """The course's V2 frame encoder, for tests that must not depend on an earlier answer."""
    return V2JSONSerializer().encode_client(Message(topic, event, payload, ref, join_ref))


def reference_join_frame(topic: str, params: dict | None, ref: str) -> str:
    """The phx_join frame phoenix.js sends, from the course's encoder."""
    return reference_encode_frame(ref, ref, topic, PHX_JOIN, {} if params is None else params)


def quiet_logs(*names: str) -> None:
    """Keep library logs out of stderr: nbgrader scores a test cell that wrote there zero.

    Without any handler, Python prints warnings through its last-resort handler to stderr;
    a NullHandler stops that and still lets records propagate to handlers you configure.
    """
    for name in names or ("mini_server", "websockets", "asyncio"):
        log = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0,  # noqa: ASYNC109
                     message: str | None = None, interval: float = 0.01) -> None:
    """Poll ``predicate`` until true; after ``timeout`` s fail with ``message``.

    For conditions nothing signals: the server's ``snapshot()``, another process, the OS.
    Wait for client events with :class:`mini_server.client.EventLog` instead.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(interval)


class RawClient:
    """A websocket speaking V2 frames, ChannelTest style; every frame read is kept in ``seen``."""

    serializer = V2JSONSerializer()

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ref = 0
        self.inbox = Inbox(pull=self._recv)

    @property
    def seen(self) -> list[Item]:
        """Every frame read so far, decoded, in arrival order."""
        return self.inbox.seen

    @classmethod
    async def connect(cls, url: str, params: dict[str, str] | None = None) -> RawClient:
        """Open ``url`` + /websocket with ``params`` and vsn 2.0.0."""
        query = urlencode({**(params or {}), "vsn": DEFAULT_VSN})
        return cls(await ws_connect(f"{url}/websocket?{query}", close_timeout=0.5))

    async def close(self) -> None:
        """Close the websocket."""
        await self.ws.close()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def make_ref(self) -> str:
        """The next ref, as a string."""
        self.ref += 1
        return str(self.ref)

    async def _recv(self) -> Item:
        try:
            raw = await self.ws.recv()
        except ConnectionClosed:
            return Closed(self.ws.close_code)
        return self.serializer.decode_client(raw)

    async def send(self, join_ref: str | None, ref: str | None, topic: str, event: str,
                   payload: Any = None) -> None:
        """Send one frame."""
        message = Message(topic, event, {} if payload is None else payload, ref, join_ref)
        await self.ws.send(self.serializer.encode_client(message))

    async def push(self, topic: str, event: str, payload: Any = None,
                   join_ref: str | None = None) -> str:
        """Send ``event`` with a fresh ref; returns the ref (for assert_reply)."""
        ref = self.make_ref()
        await self.send(join_ref, ref, topic, event, payload)
        return ref

    async def join(self, topic: str, payload: Any = None,
                   timeout: float = 3.0) -> dict:  # noqa: ASYNC109
        """Join ``topic`` (join_ref = ref) and return the ok response; fails on an error."""
        ref = self.make_ref()
        await self.send(ref, ref, topic, PHX_JOIN, payload)
        return await self.assert_reply(ref, "ok", timeout=timeout)

    async def expect(self, predicate: Callable[[Message], bool], what: str,
                     timeout: float = 3.0) -> Message:  # noqa: ASYNC109
        """The first frame (unread ones first) matching ``predicate``, within ``timeout``."""
        found = await self.inbox.take(lambda m: isinstance(m, Message) and predicate(m),
                                      timeout)
        if found is None:
            raise AssertionError(f"expected {what} within {timeout:g} s; arrived instead: "
                                 f"{self.inbox.unread_text()}")
        return found  # type: ignore[return-value]

    async def assert_reply(self, ref: str, status: str,
                           timeout: float = 3.0) -> Any:  # noqa: ASYNC109
        """Wait for the reply to ``ref`` with ``status``; returns its response."""
        message = await self.expect(lambda m: m.event == PHX_REPLY and m.ref == ref,
                                    f"a reply to ref {ref}", timeout)
        got = message.payload.get("status")
        assert got == status, (f"reply to ref {ref} has status {got!r}, expected {status!r}: "
                               f"{json.dumps(message.payload.get('response'))}")
        return message.payload.get("response")

    async def assert_broadcast(self, event: str,
                               timeout: float = 3.0) -> Any:  # noqa: ASYNC109
        """Wait for a fastlane broadcast named ``event`` (join_ref and ref null); its payload."""
        message = await self.expect(
            lambda m: m.event == event and m.join_ref is None and m.ref is None,
            f"a broadcast {event!r} (join_ref and ref null)", timeout)
        return message.payload

    async def assert_push(self, event: str,
                          timeout: float = 3.0) -> Any:  # noqa: ASYNC109
        """Wait for a push or broadcast named ``event``; returns its payload."""
        message = await self.expect(lambda m: m.event == event, f"a push {event!r}", timeout)
        return message.payload


# What test cells import from here; guard() fails a check if any of them is swapped out.
grading_guard.protect(sys.modules[__name__], "run_async", "guard", "using", "wait_until",
                      "RawClient", "reference_encode_frame", "reference_join_frame",
                      "run_with_fake_clock", "failure_of")
