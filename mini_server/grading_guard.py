"""What makes an exercise's test cell trustworthy: tamper evidence and noise-proof checks.

nbgrader scores a test cell by its outputs alone: an error or anything on stderr is zero,
everything else full marks.  Two things follow.

* Learner code runs in the same kernel before the tests, so it can change how the tests run:
  an IPython AST transformer that wraps every later cell in ``try/except BaseException``, a
  ``showtraceback`` that prints nothing, a notebook global ``run_async`` that never runs the
  checks.  :func:`guard`, the first call of every test cell, compares what the tests rely on
  with what this module recorded when the setup cell imported it (before any learner code).
  If something was added or replaced it writes the finding to the *kernel's* stderr (through
  a reference taken at import, so a rebound ``sys.stderr`` or a swallowed exception changes
  nothing: stderr alone scores the cell zero) and raises :class:`Tampered`.  This is tamper
  *evidence* for one kernel, not a sandbox: code that also rewrites this module can win, which
  is why grading runs in its own process as well.
* A correct answer must not score zero because it printed to stderr, warned, or logged.
  :func:`captured` (used by ``run_async`` around every learner call) collects stderr,
  warnings and stderr log records while the code runs and prints them on stdout afterwards,
  labelled; an un-awaited coroutine becomes a hint, not a failure.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

__all__ = ["Tampered", "captured", "guard", "guard_objects", "protect", "tampering", "using"]

# The kernel's stderr, as it was when the setup cell imported the course (before learner code).
_ERR = sys.stderr
_ERR_WRITE = _ERR.write
_ERR_FLUSH = _ERR.flush

# Shell methods whose replacement changes what a cell's outputs say.
_SHELL_METHODS = (
    "run_cell",
    "run_cell_async",
    "run_ast_nodes",
    "run_code",
    "transform_cell",
    "transform_ast",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
)
# Callbacks a library may legitimately register after the setup cell (inline plots,
# %autoreload); none of them can hide a cell's outputs.
_TRUSTED_CALLBACK_MODULES = ("matplotlib_inline.", "ipykernel.", "IPython.extensions.")


class Tampered(AssertionError):
    """The notebook changed something the test cells rely on: this question scores zero."""


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python (pytest): no transformers to check
        return None
    return get_ipython()


def _session_send(shell: Any) -> tuple[Any, Any]:
    session = getattr(getattr(shell, "kernel", None), "session", None)
    if session is None:
        return (None, None)
    return (vars(session).get("send"), getattr(type(session), "send", None))


def _snapshot(shell: Any) -> dict[str, Any]:
    """Identities of everything in the shell a cell's code and outputs go through."""
    manager = shell.input_transformer_manager
    return {
        "ast_transformers": list(shell.ast_transformers),
        "input_transformers_post": list(shell.input_transformers_post),
        "input_transformers_cleanup": list(manager.cleanup_transforms),
        "line_transforms": list(manager.line_transforms),
        "token_transformers": list(manager.token_transformers),
        # ipykernel sets some of these on the instance itself: record both levels
        "methods": {
            name: (vars(shell).get(name), getattr(type(shell), name, None))
            for name in _SHELL_METHODS
        },
        "callbacks": {event: list(cbs) for event, cbs in shell.events.callbacks.items()},
        # every output (errors, stderr) leaves the kernel through the session's send()
        "session_send": _session_send(shell),
    }


_PROTECTED: dict[tuple[str, str], tuple[Any, Any]] = {}


def protect(module: ModuleType, *names: str) -> None:
    """Record ``module.name`` (and its code) as genuine; the first record of a name wins."""
    for name in names:
        obj = getattr(module, name)
        _PROTECTED.setdefault((module.__name__, name), (obj, getattr(obj, "__code__", None)))


def _added(now: list[Any], before: list[Any]) -> list[Any]:
    return [x for x in now if not any(x is y for y in before)]


def _shell_findings(shell: Any) -> list[str]:
    if _BASELINE is None or shell is not _SHELL:
        return [] if shell is None else ["the IPython shell was replaced"]
    now = _snapshot(shell)
    found = []
    for key in (
        "ast_transformers",
        "input_transformers_post",
        "input_transformers_cleanup",
        "line_transforms",
        "token_transformers",
    ):
        extra = _added(now[key], _BASELINE[key])
        missing = _added(_BASELINE[key], now[key])
        if extra or missing:
            found.append(f"the shell's {key} were changed ({extra or missing!r})")
    for name, original in _BASELINE["methods"].items():
        if any(a is not b for a, b in zip(now["methods"][name], original, strict=True)):
            found.append(f"the shell's {name}() was replaced")
    if any(a is not b for a, b in zip(now["session_send"], _BASELINE["session_send"], strict=True)):
        found.append("the kernel session's send() was replaced")
    for event, callbacks in now["callbacks"].items():
        for callback in _added(_BASELINE["callbacks"].get(event, []), callbacks):
            found.append(f"a {event!r} callback was removed ({callback!r})")
        for callback in _added(callbacks, _BASELINE["callbacks"].get(event, [])):
            module = getattr(callback, "__module__", "") or ""
            if not module.startswith(_TRUSTED_CALLBACK_MODULES):
                found.append(f"a {event!r} callback was registered ({callback!r})")
    return found


def tampering(namespace: dict[str, Any] | None = None, *, shell: bool = True) -> list[str]:
    """What was changed that the test cells rely on (empty: all intact)."""
    found = []
    for (module_name, name), (obj, code) in _PROTECTED.items():
        module = sys.modules.get(module_name)
        current = getattr(module, name, None)
        if current is not obj or getattr(current, "__code__", None) is not code:
            found.append(f"{module_name}.{name} was replaced")
        if namespace is not None and name in namespace and namespace[name] is not obj:
            found.append(f"the notebook's {name} is not {module_name}.{name}")
    return found + (_shell_findings(_shell()) if shell else [])


def guard() -> None:
    """Fail this test cell, visibly and in a way no except clause hides, if tests were tampered.

    Call it first in every test cell, after importing from mini_server.testing in that cell.
    """
    _fail_if(tampering(sys._getframe(1).f_globals))


def guard_objects() -> None:
    """The cheap half of :func:`guard` (the package's functions only): run_async calls it."""
    _fail_if(tampering(shell=False))


def _message(found: list[str]) -> str:
    return (
        "this check cannot be trusted, so it scores zero: your notebook changed what "
        "the tests rely on (" + "; ".join(found) + "). Restart the kernel, remove "
        "that code, and run the notebook again."
    )


_reported: dict[str, Any] = {}


def _to_kernel_stderr(text: str) -> None:
    """Write to the stderr the kernel had at import: nbgrader scores that cell zero."""
    with contextlib.suppress(Exception):
        # ipykernel tags only the *current* sys.stderr with the running cell's message; tag
        # the kept stream too, or a rebound sys.stderr would file this under an earlier cell.
        parent = getattr(_shell(), "parent_header", None)
        cell = (parent or {}).get("msg_id")
        if cell is not None and cell == _reported.get("cell"):
            return  # once per cell is enough (guard() and the after-cell check both report)
        _reported["cell"] = cell
        if parent and hasattr(_ERR, "set_parent"):
            _ERR.set_parent(parent)
        _ERR_WRITE(text)
        _ERR_FLUSH()


def _fail_if(found: list[str]) -> None:
    if found:
        _to_kernel_stderr("Tampered: " + _message(found) + "\n")
        raise Tampered(_message(found))


def _after_cell(result: object = None) -> None:
    """After every cell: a second line of defence for cells whose guard() never ran.

    A transformer can swallow the NameError a test cell hits before it calls any course code
    (a missing answer), and a rebound guard() checks nothing; this callback still sees the
    change and marks the cell.  Unregistering it is itself caught by guard().
    """
    found = tampering()
    if found:
        _to_kernel_stderr("Tampered: " + _message(found) + "\n")


@contextlib.contextmanager
def using(**names: Any) -> Iterator[None]:
    """Bind notebook globals to ``names`` for the block, then restore them.

    Lets a question's test use the reference version of an earlier answer, so one mistake
    costs one question.
    """
    namespace = sys._getframe(2).f_globals  # the test cell (frame 1 is contextmanager's)
    missing = object()
    saved = {name: namespace.get(name, missing) for name in names}
    namespace.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


_capturing = threading.Lock()


def _stderr_handlers(stream: Any) -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        log for log in logging.Logger.manager.loggerDict.values() if isinstance(log, logging.Logger)
    ]
    return [
        h
        for log in loggers
        for h in log.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is stream
    ]


def _report(text: str, records: list[warnings.WarningMessage]) -> None:
    """Print what the learner's code wrote to stderr or warned, on stdout."""
    lines = []
    if text.strip():
        lines.append(
            "note: your code wrote to stderr during this check (shown here; it costs no points):"
        )
        lines += ["    " + line for line in text.rstrip("\n").splitlines()]
    for record in records:
        message = str(record.message)
        if issubclass(record.category, RuntimeWarning) and "was never awaited" in message:
            lines.append(
                f"hint: {message}: did you forget an await? (it costs no points "
                "here, but the code after it may not have run)"
            )
        else:
            lines.append(
                f"note: your code warned {record.category.__name__}: {message} (it costs no points)"
            )
    if lines:
        print("\n".join(lines), file=sys.stdout, flush=True)


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Collect stderr, warnings and stderr logging while learner code runs; show them on stdout.

    Re-entrant calls (a check that calls run_async again) pass straight through.
    """
    if not _capturing.acquire(blocking=False):
        yield
        return
    original = sys.stderr
    buffer = io.StringIO()
    redirected = _stderr_handlers(original)
    try:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            for handler in redirected:
                handler.stream = buffer
            sys.stderr = buffer
            try:
                yield
            finally:
                sys.stderr = original
                for handler in _stderr_handlers(buffer):
                    # handlers made during the call (logging.basicConfig) keep printing, on stdout
                    handler.stream = original if handler in redirected else sys.stdout
                _report(buffer.getvalue(), list(records))
    finally:
        _capturing.release()


# The shell as the setup cell left it, before any learner code ran.
_SHELL = _shell()
if _SHELL is not None:  # registered before the snapshot: it is part of the baseline
    _SHELL.events.register("post_run_cell", _after_cell)
_BASELINE = _snapshot(_SHELL) if _SHELL is not None else None

protect(sys.modules[__name__], "guard", "guard_objects", "tampering", "captured", "using")
