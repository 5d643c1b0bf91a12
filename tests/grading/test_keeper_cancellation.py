"""Exercise 03's given TopicKeeper plumbing lets a cancellation through (issue 16 item 5).

A join's reply and a stop() can arrive in the same loop turn. On Python 3.11 a
``wait_for`` around the reply then returns the reply and drops the cancellation
(CPython gh-86296): the keeper carries on running and a stop() that gathers it never returns.
These tests run the solution notebook's own code (the setup cell, the given TopicKeeper and the
q2 test helpers) and cancel each time as the join reply comes in, the worst moment.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nbgrading import notebook

ITERATIONS = 200
PER_KEEPER = 50  # joins on one connection: the server allows 100 channels per socket
BOUND = 5.0  # seconds a cancelled keeper may take to end; it needs milliseconds


def _cell(cells: list[dict[str, Any]], grade_id: str) -> str:
    for cell in cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise LookupError(f"no cell {grade_id!r} in exercise 03")


def _plumbing() -> dict[str, Any]:
    """The notebook's setup, TopicKeeper and q2 helpers, without running its checks."""
    path = notebook("solutions", "03_channel_subscriptions")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tests = _cell(cells, "q2_tests")
    helpers = tests[: tests.index("\nrun_async(")]  # the definitions before the first check
    namespace: dict[str, Any] = {}
    for source in (_cell(cells, "setup"), _cell(cells, "q2_topic_keeper"), helpers):
        exec(compile(source, str(path), "exec"), namespace)
    return namespace


class CancelOnReply(dict):
    """A ``keeper.pending`` that cancels ``target`` the moment a reply resolves a waiter.

    The callback is added when send_join stores its waiter, so it runs before send_join
    resumes: the cancellation lands exactly as the inner await completes.
    """

    def __init__(self, target: asyncio.Task[Any]) -> None:
        super().__init__()
        self.target = target
        self.replies = 0  # waiters resolved by an ok reply (not by a refusal or a drop)

    def __setitem__(self, ref: str, waiter: asyncio.Future[Any]) -> None:
        super().__setitem__(ref, waiter)
        waiter.add_done_callback(self._cancel)

    def _cancel(self, waiter: asyncio.Future[Any]) -> None:
        self.replies += (
            not waiter.cancelled()
            and waiter.exception() is None
            and waiter.result()["status"] == "ok"
        )
        self.target.cancel()


async def _ended_cancelled(task: asyncio.Task[Any], what: str, i: int) -> None:
    try:
        async with asyncio.timeout(BOUND):
            await asyncio.gather(task, return_exceptions=True)
    except TimeoutError:
        raise AssertionError(
            f"iteration {i}: {what} was cancelled as its join reply came in "
            f"and still runs {BOUND:g} s later: the cancellation was lost"
        ) from None
    assert task.cancelled(), (
        f"iteration {i}: {what} finished with {task.result()!r} "
        "instead of being cancelled: the cancellation was lost"
    )


async def test_a_join_cancelled_as_its_reply_arrives_is_cancelled():
    """keeper.join() cancelled in the same turn as its reply ends cancelled, every time."""
    nb = _plumbing()
    async with nb["counting_endpoint"]() as server:
        for batch in range(0, ITERATIONS, PER_KEEPER):
            keeper, run = await nb["keeper_running"](server)
            try:
                for i in range(batch, batch + PER_KEEPER):
                    join = asyncio.create_task(keeper.join(f"room:{i}"))
                    keeper.pending = pending = CancelOnReply(join)
                    await _ended_cancelled(join, "keeper.join()", i)
                    assert pending.replies == 1, f"iteration {i}: the join got no ok reply"
            finally:
                await nb["stop"](run)
            assert run.cancelled()
    assert len(nb["CountedRoom"].joins) == ITERATIONS  # each join reached the server


async def test_a_keeper_stopped_as_a_rejoin_reply_arrives_stops():
    """run() cancelled while on_connected() gets its join reply ends, so stop() returns."""
    nb = _plumbing()

    class Rejoining(nb["TopicKeeper"]):
        async def on_connected(self) -> None:  # the given send_join only, no learner code
            await self.send_join("room:1", None)

    async with nb["counting_endpoint"]() as server:
        for i in range(ITERATIONS):
            keeper = Rejoining(server.url)
            run = asyncio.create_task(keeper.run())
            keeper.pending = pending = CancelOnReply(run)
            try:
                await _ended_cancelled(run, "keeper.run()", i)
                assert pending.replies == 1, f"iteration {i}: the rejoin got no ok reply"
            finally:
                await nb["stop"](run)
        await nb["wait_until"](
            lambda: nb["counts"](server) == (0, 0), 5, "a stopped keeper left its connection open"
        )
    assert len(nb["CountedRoom"].joins) == ITERATIONS  # one connection and join each
