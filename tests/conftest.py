"""Shared pytest setup: make the course package importable from a plain checkout."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # Without `pip install -e .` the repository root is not on sys.path under pytest.
    sys.path.insert(0, str(ROOT))
