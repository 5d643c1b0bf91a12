"""Teacher-side grading tools: the learner release and isolated autograding.

``python -m mini_server.grading release OUT_DIR`` writes the course as learners get it for
a graded workshop (:mod:`mini_server.grading.release`: no worked solutions, no hidden tests);
``python -m mini_server.grading grade ASSIGNMENT`` autogrades each submission in a
throwaway course directory and records the auto scores into the teacher's gradebook from
outside the learner's kernel (:mod:`mini_server.grading.isolate`).

What runs *inside* a learner's kernel (tamper evidence, noise-proof checks) is
:mod:`mini_server.grading_guard`, imported by every exercise's setup cell; it stays a
module of its own so a kernel never imports nbgrader through this package.  Nothing here is
imported eagerly: ``import mini_server.grading`` costs nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_release", "grade"]


def __getattr__(name: str) -> Any:
    # lazy, so importing the package (or mini_server.grading.release) never loads nbgrader
    if name == "build_release":
        from mini_server.grading.release import build_release

        return build_release
    if name == "grade":
        from mini_server.grading.isolate import grade

        return grade
    raise AttributeError(name)
