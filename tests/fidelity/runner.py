"""Run a whole golden file against one server and print per-scenario verdicts.

Theory of operation
-------------------
Scenarios run in file order, one at a time, against one server, except the one marked
``"background": true`` (the 60 s idle timeout), which starts first and is collected last,
as the README asks: the whole file then takes about two minutes instead of three.
:func:`run_file` returns one :class:`Result` per scenario, in file order.
``python -m tests.fidelity --url ws://127.0.0.1:4000`` (see ``__main__.py``) prints them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from replay import Replay
from verdicts import DIFF, LEVELS, first_difference, verdict

SCENARIO_LIMIT = 120.0  # seconds; the longest scenario (idle timeout) needs about 60


@dataclass
class Result:
    """One scenario's replay next to what Phoenix answered."""

    name: str
    group: str
    verdict: str
    got: list[dict[str, Any]]
    want: list[dict[str, Any]]

    def explain(self) -> str:
        """One line: the verdict and, when not same, where the transcripts part."""
        line = f"{self.verdict:8} {self.name}"
        if self.verdict != "same":
            line += f"  ({first_difference(self.got, self.want)})"
        return line


def host_port(url: str) -> tuple[str, int]:
    """Host and port of ``ws://host:port[/socket]`` (the path is the scenario's)."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"expected ws://host:port, got {url!r}")
    return parts.hostname, parts.port


async def replay_one(scenario: dict[str, Any], host: str, port: int) -> Result:
    """Replay one scenario and judge it."""
    async with asyncio.timeout(SCENARIO_LIMIT):
        got = await Replay(scenario, host, port).run()
    return Result(scenario["name"], scenario["group"], verdict(got, scenario["transcript"]),
                  got, scenario["transcript"])


async def run_file(golden: dict[str, Any], host: str, port: int,
                   only: Callable[[dict[str, Any]], bool] = lambda s: True,
                   report: Callable[[Result], None] | None = None) -> list[Result]:
    """Replay every scenario of a golden file (background ones concurrently)."""
    scenarios = [s for s in golden["scenarios"] if only(s)]
    background = {s["name"]: asyncio.create_task(replay_one(s, host, port))
                  for s in scenarios if s.get("background")}
    results: dict[str, Result] = {}
    try:
        for scenario in scenarios:
            if scenario["name"] not in background:
                results[scenario["name"]] = await replay_one(scenario, host, port)
                if report is not None:
                    report(results[scenario["name"]])
        for name, task in background.items():
            results[name] = await task
            if report is not None:
                report(results[name])
    finally:
        for task in background.values():
            task.cancel()
        await asyncio.gather(*background.values(), return_exceptions=True)
    return [results[s["name"]] for s in scenarios]


def summary(results: list[Result]) -> str:
    """``N/M match`` and the count of each verdict."""
    counts = Counter(r.verdict for r in results)
    matched = sum(1 for r in results if r.verdict != DIFF)
    parts = ", ".join(f"{counts.get(level, 0)} {level}" for level in LEVELS)
    return f"{matched}/{len(results)} match ({parts})"
