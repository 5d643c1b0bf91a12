"""The teacher's files a submission could damage, kept in memory and put back if it did.

Theory of operation
-------------------
A learner's kernel runs as the grading user, so a throwaway course directory keeps the
teacher's files out of *reach by relative path* (``../../../gradebook.db``), not out of reach.
A kernel that knows where the teacher's course is can still write there.  So, between two
submissions, :class:`TeacherFiles` holds the bytes of everything grading must not lose: the
gradebook (with any ``-journal``/``-wal``/``-shm`` file beside it, which SQLite would replay)
and every file under ``submitted/*/ASSIGNMENT`` and ``autograded/*/ASSIGNMENT``.
:meth:`TeacherFiles.restore` compares the disk with them after each run, writes back what
was changed or removed, deletes what was added, and names each path, so the run can name
the submission that did it.  Symbolic links planted in these places are removed, never
followed.  Everything else on the machine is protected only by running the learner's code
as another user (the README's workshop guide shows how).
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["TeacherFiles"]

_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


class TeacherFiles:
    """A byte-exact copy, in memory, of the files grading must keep intact."""

    def __init__(self, root: Path, gradebook: Path | None, trees: list[str]) -> None:
        """``trees``: glob patterns of folders under ``root`` (``submitted/*/ASSIGNMENT``)."""
        self.root = root.resolve()
        self.gradebook = gradebook
        self.trees = trees
        self.kept: dict[Path, bytes] = {}
        self.keep()

    def _gradebook_files(self) -> list[Path]:
        if self.gradebook is None:
            return []
        name = self.gradebook.name
        return [self.gradebook.with_name(name + s) for s in ("", *_SQLITE_SIDE_FILES)]

    def _present(self) -> set[Path]:
        found = {p for p in self._gradebook_files() if p.is_file() or p.is_symlink()}
        for pattern in self.trees:
            for folder in self.root.glob(pattern):
                if folder.is_symlink():
                    found.add(folder)
                    continue
                found.update(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        return found

    def keep(self) -> None:
        """Take the current files as the ones to keep (after the grader's own writes)."""
        self.kept = {p: p.read_bytes() for p in self._present() if not p.is_symlink()}

    def changed(self) -> list[str]:
        """Paths (relative to the course) that differ from the kept copy."""
        now = self._present()
        names = [p for p in now - set(self.kept) ]
        for path, data in self.kept.items():
            if path not in now or path.is_symlink() or path.read_bytes() != data:
                names.append(path)
        return sorted(self._name(p) for p in names)

    def restore(self) -> list[str]:
        """Put the kept files back; returns what had been changed, removed or added."""
        changed = self.changed()
        if not changed:
            return []
        for path in self._present() - set(self.kept):
            path.unlink()
        for path, data in self.kept.items():
            self._clear_way(path)
            if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
                if path.is_symlink():
                    path.unlink()
                path.write_bytes(data)
        return changed

    def _clear_way(self, path: Path) -> None:
        """Make every folder from the course root down to ``path`` a real folder."""
        current = self.root if self.root in path.parents else path.parent
        for part in path.relative_to(current).parts[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                current.unlink()
            elif current.is_dir():
                continue
            current.mkdir()
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)

    def _name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
