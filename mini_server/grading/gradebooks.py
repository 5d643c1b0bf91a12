"""The teacher's gradebook and the throwaway ones, through nbgrader's own API.

Theory of operation
-------------------
Isolated grading never lets a learner's kernel near the teacher's gradebook.  Each
submission is autograded against a throwaway gradebook that holds one assignment and
nothing else: :func:`copy_assignment` copies the assignment's structure (notebooks, grade,
solution, task and source cells with their checksums, exactly what ``generate_assignment``
recorded) from the teacher's gradebook, so nbgrader restores the test cells, visible and
hidden, without a ``solutions/`` folder in sight.

After the run, :func:`read_scores` takes the auto scores from two places the kernel could
only reach while it ran: the throwaway gradebook (written by nbgrader's ``SaveAutoGrades``
after the kernel and everything it started were gone) and the autograded notebook's outputs
(scored again with nbgrader's ``determine_grade``).  A score counts only where both agree
(the lower wins) and never above the teacher's maximum for that cell.  :func:`record`
writes them into the teacher's gradebook: auto scores only.  Manual scores, which override
auto scores in nbgrader, are never copied: only the teacher gives one, in the formgrader.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

__all__ = ["Scores", "copy_assignment", "exists", "max_scores", "read_scores", "record"]

_log = logging.getLogger(__name__)
# the only automatic comment nbgrader writes (an answer cell left as released)
_AUTO_COMMENTS = (None, "No response.")


@dataclass
class Scores:
    """Auto scores of one submission, keyed by (notebook, cell); None means manual grading."""

    auto: dict[tuple[str, str], float | None] = field(default_factory=dict)
    comments: dict[tuple[str, str], str | None] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    damaged: bool = False  # the throwaway gradebook or notebook was unreadable

    def total(self) -> float:
        """The submission's auto score."""
        return sum(v for v in self.auto.values() if v is not None)


def copy_assignment(teacher_url: str, course_id: str, target_url: str, assignment: str) -> None:
    """Copy ``assignment``'s structure from the teacher's gradebook into a new one."""
    with Gradebook(teacher_url, course_id) as source:
        found = source.find_assignment(assignment)
        notebooks = [
            (
                nb.name,
                nb.kernelspec,
                [(c.name, c.max_score, c.cell_type) for c in nb.grade_cells],
                [c.name for c in nb.solution_cells],
                [(c.name, c.max_score, c.cell_type) for c in nb.task_cells],
                [(c.name, c.cell_type, c.locked, c.source, c.checksum) for c in nb.source_cells],
            )
            for nb in found.notebooks
        ]
        duedate = found.duedate
    with Gradebook(target_url, course_id) as target:
        target.add_assignment(assignment, duedate=duedate, course_id=course_id)
        for name, kernelspec, grades, solutions, tasks, sources in notebooks:
            target.add_notebook(name, assignment, kernelspec=kernelspec)
            for cell, points, kind in grades:
                target.add_grade_cell(cell, name, assignment, max_score=points, cell_type=kind)
            for cell in solutions:
                target.add_solution_cell(cell, name, assignment)
            for cell, points, kind in tasks:
                target.add_task_cell(cell, name, assignment, max_score=points, cell_type=kind)
            for cell, kind, locked, text, checksum in sources:
                target.add_source_cell(
                    cell, name, assignment, cell_type=kind, locked=locked, source=text,
                    checksum=checksum,
                )


def max_scores(
    teacher_url: str, course_id: str, assignment: str
) -> dict[tuple[str, str], tuple[float, bool]]:
    """(notebook, cell) -> (max score, graded automatically) from the teacher's gradebook."""
    with Gradebook(teacher_url, course_id) as gb:
        found = gb.find_assignment(assignment)
        result = {}
        for nb in found.notebooks:
            answers = {c.name for c in nb.solution_cells}  # a graded answer is graded by hand
            for c in nb.grade_cells:
                automatic = c.cell_type == "code" and c.name not in answers
                result[(nb.name, c.name)] = (c.max_score, automatic)
            for c in nb.task_cells:
                result[(nb.name, c.name)] = (c.max_score, False)
        return result


def _from_gradebook(url: str, course_id: str, assignment: str, student: str) -> Scores:
    found = Scores()
    with Gradebook(url, course_id) as gb:
        submission = gb.find_submission(assignment, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                found.auto[(nb.name, grade.name)] = grade.auto_score
            for comment in nb.comments:
                found.comments[(nb.name, comment.name)] = comment.auto_comment
            found.penalties[nb.name] = nb.late_submission_penalty or 0.0
    return found


# what mini_server.grading_guard makes a tampered test cell say
_TAMPERED = "this check cannot be trusted"


def _said(cell: dict) -> str:
    return "".join(
        "".join(o.get("text", "")) + o.get("evalue", "") for o in cell.get("outputs", [])
    )


def _from_notebooks(
    folder: Path, notebooks: set[str], tampered: list[str]
) -> dict[tuple[str, str], float | None]:
    found: dict[tuple[str, str], float | None] = {}
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        if not path.is_file() or path.is_symlink():
            continue
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade"):
                score, _ = utils.determine_grade(nbformat.from_dict(cell), _log)
                found[(name, meta.get("grade_id"))] = score
                if _TAMPERED in _said(cell):
                    tampered.append(str(meta.get("grade_id")))
    return found


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def read_scores(
    url: str,
    course_id: str,
    autograded: Path,
    assignment: str,
    student: str,
    maxima: dict[tuple[str, str], tuple[float, bool]],
) -> Scores:
    """The submission's auto scores where the throwaway gradebook and notebooks agree."""
    try:
        stored = _from_gradebook(url, course_id, assignment, student)
    except Exception as exc:  # deleted, emptied, corrupted: the kernel damaged it
        stored = Scores(problems=[f"its gradebook was damaged during grading ({_first_line(exc)})"],
                        damaged=True)
    tampered: list[str] = []
    try:
        shown = _from_notebooks(autograded, {nb for nb, _ in maxima}, tampered)
        if tampered:
            stored.problems.append(
                f"its notebook tampered with the tests ({', '.join(tampered)} scored 0)"
            )
    except Exception as exc:
        shown = {}
        stored.problems.append(f"its autograded notebook could not be read ({_first_line(exc)})")
        stored.damaged = True
    result = Scores(comments=stored.comments, problems=stored.problems, damaged=stored.damaged)
    for key, (points, automatic) in maxima.items():
        if not automatic:
            result.auto[key] = None
            continue
        a, b = stored.auto.get(key), shown.get(key)
        if a is None or b is None:
            if not stored.problems:
                stored.problems.append(f"no auto score for {key[1]} (scored 0)")
            result.auto[key] = 0.0
        else:
            result.auto[key] = max(0.0, min(a, b, points))
    for nb, penalty in stored.penalties.items():
        result.penalties[nb] = max(0.0, penalty)  # a kernel can only make its penalty worse
    return result


def record(
    teacher_url: str,
    course_id: str,
    assignment: str,
    student: str,
    scores: Scores,
    *,
    timestamp: object = None,
    flag: bool = False,
) -> None:
    """Write ``scores`` into the teacher's gradebook as nbgrader's SaveAutoGrades would."""
    with warnings.catch_warnings(), Gradebook(teacher_url, course_id) as gb:
        # nbgrader's add_submission trips SQLAlchemy's autoflush warnings; they mean nothing
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(student)
        extra = {} if timestamp is None else {"timestamp": timestamp}
        submission = gb.update_or_create_submission(assignment, student, **extra)
        for nb in submission.notebooks:
            for grade in nb.grades:
                auto = scores.auto.get((nb.name, grade.name))
                grade.auto_score = auto
                grade.needs_manual_grade = grade.manual_score is not None or auto is None
            for comment in nb.comments:
                text = scores.comments.get((nb.name, comment.name))
                comment.auto_comment = text if text in _AUTO_COMMENTS else None
            nb.late_submission_penalty = scores.penalties.get(nb.name, 0.0)
            nb.flagged = bool(flag)
        gb.db.commit()


def exists(teacher_url: str, course_id: str, assignment: str) -> bool:
    """True if the teacher's gradebook knows ``assignment`` (generate_assignment ran)."""
    with Gradebook(teacher_url, course_id) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return False
        return True
