"""The exercise notebooks' shape, read as JSON (no kernel): what nbgrader and learners need."""

from __future__ import annotations

import json
import re

import pytest
from nbgrading import ASSIGNMENTS, ROOT, grade_cells, notebook

CHAPTER_SLUGS = ["01_sockets_and_channels", "02_unreliable_connections",
                 "03_channel_subscriptions", "04_reconnecting_well", "05_keeping_data_alive",
                 "06_channels_in_a_cluster", "07_customizing_channels",
                 "08_testing_channels", "09_bug_hunt"]


def cells(step: str, assignment: str) -> list[dict]:
    """The cells of solutions/ or exercises/ NAME/NAME.ipynb."""
    return json.loads(notebook(step, assignment).read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    """A cell's source as one string."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def nbgrader_meta(cell: dict) -> dict:
    """The cell's nbgrader metadata ({} if none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def test_one_assignment_per_chapter():
    """solutions/ holds exactly the assignments of the chapters that have one, named like them."""
    assert ASSIGNMENTS == CHAPTER_SLUGS


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_every_solution_has_an_exercise(assignment):
    """Each solution notebook has its generated exercise committed next to it."""
    assert notebook("exercises", assignment).is_file(), (
        f"exercises/{assignment} is missing: run nbgrader generate_assignment {assignment} --force")


@pytest.mark.parametrize("step", ["solutions", "exercises"])
@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_notebooks_are_committed_without_outputs(step, assignment):
    """No outputs and no execution counts in git (nbgrader metadata is kept)."""
    for cell in cells(step, assignment):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{step}/{assignment}: outputs in {source(cell)[:60]!r}"
            assert cell["execution_count"] is None, f"{step}/{assignment}: execution count"


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_three_to_five_graded_questions_each(assignment):
    """Every assignment has 3-5 graded test cells, each worth points."""
    graded = grade_cells(notebook("solutions", assignment))
    assert 3 <= len(graded) <= 5
    assert all(nbgrader_meta(c)["points"] > 0 for c in graded)


def test_at_least_fourteen_questions_in_total():
    """The assignments hold at least 14 graded questions."""
    assert sum(len(grade_cells(notebook("solutions", a))) for a in CHAPTER_SLUGS) >= 14


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_each_question_is_task_answer_tests(assignment):
    """Each test cell follows an answer cell, which follows the task's markdown."""
    nb = cells("solutions", assignment)
    for i, cell in enumerate(nb):
        if nbgrader_meta(cell).get("grade"):
            answer, task = nb[i - 1], nb[i - 2]
            assert nbgrader_meta(answer).get("solution"), f"no answer cell before {i}"
            assert "### BEGIN SOLUTION" in source(answer)
            assert "### END SOLUTION" in source(answer)
            assert task["cell_type"] == "markdown" and source(task).startswith("## Question")


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_test_cells_have_visible_asserts_and_hidden_tests(assignment):
    """Every test cell asserts in the open and keeps a hidden block for grading."""
    for cell in grade_cells(notebook("solutions", assignment)):
        text = source(cell)
        visible = text.split("### BEGIN HIDDEN TESTS")[0]
        assert "assert" in visible or "run_async(check" in visible
        assert "### BEGIN HIDDEN TESTS" in text and "### END HIDDEN TESTS" in text


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_test_cells_call_learner_code_through_run_async(assignment):
    """Learner code runs with a time limit, so an endless loop costs one question."""
    for cell in grade_cells(notebook("solutions", assignment)):
        assert re.search(r"\b(run_async|run_with_fake_clock|failure_of)\(", source(cell)), (
            source(cell)[:80])


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_exercises_hide_answers_and_hidden_tests(assignment):
    """The released notebook has stubs instead of answers and no hidden tests."""
    text = notebook("exercises", assignment).read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert 'raise NotImplementedError(\\"write your answer here\\")' in text


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_exercise_links_to_its_chapter(assignment):
    """The introduction links to ../../chapters/NN_slug.ipynb (opened from exercises/NN_slug)."""
    intro = source(cells("exercises", assignment)[0])
    assert f"](../../chapters/{assignment}.ipynb)" in intro


@pytest.mark.parametrize("assignment", CHAPTER_SLUGS)
def test_points_in_headings_match_the_grade_cells(assignment):
    """'Question N (P points)' in the task says what the grade cell is worth."""
    nb = cells("solutions", assignment)
    for i, cell in enumerate(nb):
        if nbgrader_meta(cell).get("grade"):
            heading = re.match(r"## Question \d+ \((\d+) points?\)", source(nb[i - 2]))
            assert heading, source(nb[i - 2])[:60]
            assert int(heading[1]) == nbgrader_meta(cell)["points"]


def test_grading_outputs_are_ignored_by_git():
    """gradebook.db and the grading folders never get committed."""
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for name in ("gradebook.db", "submitted/", "autograded/", "feedback/", "grades.csv"):
        assert name in ignored
