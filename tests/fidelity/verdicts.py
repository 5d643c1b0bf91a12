"""Compare a replayed transcript with the golden one: the four verdicts of the README.

Theory of operation
-------------------
Two transcripts are compared event by event (same length, same ``step``, ``conn`` and
``type``).  Every field difference has a *level*, and a scenario's verdict is the worst
level found:

* ``same``: nothing differs, raw text of frames included;
* ``cosmetic``: only the raw text of JSON frames differs (``text`` of a frame whose
  ``canon`` is JSON, ``sha256`` and ``length`` of a long one): key order or spacing;
* ``texts``: also words meant for people: HTTP ``body``, ``content_type``,
  ``reason_phrase``, close ``reason`` and ``detail``;
* ``DIFF``: anything else (a frame, its order or receive window, a close code, whether a
  close frame came, a status, a handshake outcome, a ``too_early``).

``decoded`` (binary frames) and ``after_ms`` are for people and never compared.  A
scenario *matches* unless its verdict is ``DIFF``.  This module also finds the golden
files: ``$FIDELITY_DIR``, else ``../shared/fidelity`` next to the repository, else the copy
vendored in ``golden/`` (CI runs on a clean clone where ``../shared`` may be absent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SAME, COSMETIC, TEXTS, DIFF = "same", "cosmetic", "texts", "DIFF"
LEVELS = (SAME, COSMETIC, TEXTS, DIFF)
IGNORED = frozenset({"decoded", "after_ms"})
TEXT_FIELDS = frozenset({"body", "content_type", "reason_phrase", "reason", "detail"})

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENDORED = HERE / "golden"
ENV_VAR = "FIDELITY_DIR"


def shared_dir() -> Path | None:
    """Where the shared golden files are (env var first, then ../shared/fidelity), if any."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    for parent in (ROOT, ROOT.parent):  # the worktree itself, or a checkout beside shared/
        candidate = parent.parent / "shared" / "fidelity"
        if candidate.is_dir():
            return candidate
    return None


def golden_files() -> list[Path]:
    """The golden transcripts to replay: the shared ones when present, else the vendored."""
    shared = shared_dir()
    folder = shared if shared is not None and any(shared.glob("*.json")) else VENDORED
    return sorted(folder.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """One golden file, checked to be the format this replayer implements."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if (data.get("format"), data.get("format_version")) != ("phoenix-channels-golden", 1):
        raise ValueError(f"{path}: not a phoenix-channels-golden v1 file")
    if data["scenario_count"] != len(data["scenarios"]):
        raise ValueError(f"{path}: scenario_count does not match the scenarios")
    return data


def _field_level(event: dict[str, Any], key: str) -> str:
    if key in TEXT_FIELDS:
        return TEXTS
    if event.get("type") == "text" and (
            (key == "text" and event.get("canon") is not None) or key in ("sha256", "length")):
        return COSMETIC
    return DIFF


def event_level(got: dict[str, Any], want: dict[str, Any]) -> str:
    """The worst difference between two events (``same`` when equal)."""
    level = SAME
    for key in (set(got) | set(want)) - IGNORED:
        if got.get(key, KeyError) != want.get(key, KeyError):
            found = DIFF if key in ("step", "conn", "type") else _field_level(want, key)
            level = max(level, found, key=LEVELS.index)
    return level


def verdict(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """The scenario's verdict: same, cosmetic, texts or DIFF."""
    if len(got) != len(want):
        return DIFF
    level = SAME
    for g, w in zip(got, want, strict=True):
        level = max(level, event_level(g, w), key=LEVELS.index)
    return level


def first_difference(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """A short description of where two transcripts part, for a failure message."""
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        if g is None or w is None or event_level(g, w) != SAME:
            return f"event {i}: got {_show(g)}, Phoenix {_show(w)}"
    return "no difference"


def _show(event: dict[str, Any] | None) -> str:
    if event is None:
        return "nothing"
    shown = {k: v for k, v in event.items() if k not in IGNORED and k != "text"}
    return json.dumps(shown, ensure_ascii=False)[:300]
