"""What the grading tests share: the course's nbgrader config, assignments, a Validator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbgrader.validator import Validator
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                     if (p / f"{p.name}.ipynb").is_file())


# Answers that grading tests of several kinds submit (plain autograde, isolated grading,
# the in-kernel checks): one copy each, so a change to what "hostile" means reaches them all.
ENCODE = '''
def encode_frame(join_ref, ref, topic, event, payload):
    return json.dumps([join_ref, ref, topic, event, payload])
'''

# An IPython AST transformer that wraps every later cell, test cells included, in
# try/except BaseException: pass.
SWALLOW_EVERYTHING = '''
import ast


class Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None,
                                    body=[ast.Pass()])
        wrapped = ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[],
                          finalbody=[])
        return ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[]))


get_ipython().ast_transformers.append(Swallow())
'''

# Rebinds the notebook's global run_async so the check coroutines never run.
REBIND_RUN_ASYNC = '''
def run_async(*args, **kwargs):  # the checks never run
    return None
'''


def course_config() -> Config:
    """The repository's nbgrader_config.py, loaded as nbgrader loads it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def kernel_env() -> dict[str, str]:
    """Environment for grading kernels: the course importable (as `pip install -e .` does)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "COURSE_FAST": "1"}


def notebook(step: str, assignment: str) -> Path:
    """solutions/NAME/NAME.ipynb or exercises/NAME/NAME.ipynb."""
    return ROOT / step / assignment / f"{assignment}.ipynb"


def grade_cells(path: Path) -> list[dict[str, Any]]:
    """The graded test cells of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def validate(path: Path, *, invert: bool = False) -> dict[str, Any]:
    """nbgrader's Validator result for ``path`` ({} when nothing to report)."""
    return Validator(config=course_config(), invert=invert).validate(str(path))
