"""The deliberate deviations of PROTOCOL.md section 11, by golden scenario name.

A scenario named here may replay as DIFF: the bundled server knowingly answers otherwise,
for the reason given (README "The truth we teach" states it too).  Any other DIFF is a
fidelity bug.  Keep this table and PROTOCOL.md section 11 in step.
"""

from __future__ import annotations

from typing import Any

DELIBERATE: dict[str, str] = {
    "v2_oversize": (
        "maximum incoming frame size: Phoenix 1.8.12 (Bandit) has none by default and echoes "
        "the 1.5 MiB ping; mini_server closes with 1009 above max_frame_size (default 1 MiB, "
        "--max-frame-size), so one frame cannot exhaust a learner's kernel"),
}


def unexpected(results: list[Any]) -> list[Any]:
    """The results that are DIFF without a deliberate deviation to explain them."""
    return [r for r in results if r.verdict == "DIFF" and r.name not in DELIBERATE]
