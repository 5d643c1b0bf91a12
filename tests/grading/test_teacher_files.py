"""TeacherFiles: the grading files kept in memory are put back, whatever a submission did."""

from __future__ import annotations

from pathlib import Path

from mini_server.grading.teacher_files import TeacherFiles


def course(root: Path) -> TeacherFiles:
    """A course with a gradebook and two learners' submitted notebooks, kept."""
    (root / "gradebook.db").write_bytes(b"grades")
    for student in ("alice", "zoe"):
        (root / "submitted" / student / "ex").mkdir(parents=True)
        (root / "submitted" / student / "ex" / "ex.ipynb").write_text(student)
    return TeacherFiles(root, root / "gradebook.db", ["submitted/*/ex", "autograded/*/ex"])


def test_nothing_changed_means_nothing_to_put_back(tmp_path):
    """An honest run leaves the kept files as they were."""
    assert course(tmp_path).restore() == []


def test_changed_removed_and_added_files_are_put_back_and_named(tmp_path):
    """Overwritten, deleted and planted files are restored, named relative to the course."""
    kept = course(tmp_path)
    (tmp_path / "gradebook.db").unlink()
    (tmp_path / "submitted" / "zoe" / "ex" / "ex.ipynb").write_text("{}")
    (tmp_path / "gradebook.db-journal").write_bytes(b"a hot journal SQLite would replay")
    (tmp_path / "autograded" / "alice" / "ex").mkdir(parents=True)
    (tmp_path / "autograded" / "alice" / "ex" / "ex.ipynb").write_text("fake feedback")
    assert kept.restore() == ["autograded/alice/ex/ex.ipynb", "gradebook.db",
                              "gradebook.db-journal", "submitted/zoe/ex/ex.ipynb"]
    assert (tmp_path / "gradebook.db").read_bytes() == b"grades"
    assert (tmp_path / "submitted" / "zoe" / "ex" / "ex.ipynb").read_text() == "zoe"
    assert not (tmp_path / "gradebook.db-journal").exists()
    assert not (tmp_path / "autograded" / "alice" / "ex" / "ex.ipynb").exists()
    assert kept.restore() == []


def test_a_planted_symlink_is_removed_not_followed(tmp_path):
    """A submitted folder replaced by a link elsewhere: the link goes, the folder comes back."""
    (tmp_path / "course").mkdir()
    kept = course(tmp_path / "course")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ex.ipynb").write_text("elsewhere")
    folder = tmp_path / "course" / "submitted" / "zoe" / "ex"
    (folder / "ex.ipynb").unlink()
    folder.rmdir()
    folder.symlink_to(outside)
    assert "submitted/zoe/ex" in kept.restore()
    assert not folder.is_symlink() and (folder / "ex.ipynb").read_text() == "zoe"
    assert (outside / "ex.ipynb").read_text() == "elsewhere"


def test_keep_takes_the_graders_own_writes_as_the_new_state(tmp_path):
    """After the grader records a score, that gradebook is the one to keep."""
    kept = course(tmp_path)
    (tmp_path / "gradebook.db").write_bytes(b"grades + alice")
    kept.keep()
    assert kept.restore() == []
    assert (tmp_path / "gradebook.db").read_bytes() == b"grades + alice"
