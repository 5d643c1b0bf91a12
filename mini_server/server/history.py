"""Stored history: messages in a real SQLite database, so they outlive channels and processes.

Theory of operation
-------------------
Channels deliver at most once: a broadcast reaches the subscribers that exist at that moment
and is then gone (``pubsub.py``).  A client that was offline can only catch up if the server
*kept* the messages somewhere that outlives channel processes and server processes.  This
module is that somewhere: one SQLite file (stdlib ``sqlite3``) in WAL mode.

* ``messages``: ``id INTEGER PRIMARY KEY AUTOINCREMENT``, so ids only ever increase and are
  never reused, even after deletes; a client that saw id N asks for ``id > N`` (:meth:`since`)
  and gets exactly what it missed, in order.
* ``client_id TEXT UNIQUE``: the id a client generated for a message it pushes.  A retry of
  the same message hits the constraint, ``INSERT ... ON CONFLICT DO NOTHING`` inserts nothing,
  and :meth:`append` returns the row already stored with ``inserted=False``: the idempotent
  handler of at-least-once delivery.  Rows without a client id (server messages) are NULL,
  which UNIQUE allows any number of times.
* ``counters``: named integers changed in one ``UPDATE``, the "critical state" kept in the
  database instead of in channel assigns.

WAL (write-ahead log) lets readers read while one writer writes, and with
``synchronous=NORMAL`` a committed row survives the *process* being killed (``kill -9``);
only a power loss can undo the last commits.  Each call is one short transaction on the
caller's thread: the event loop blocks for well under a millisecond per write, fine for a
course.  :meth:`close` closes the connection; the last connection to close checkpoints the
WAL and removes the ``-wal``/``-shm`` files.  :meth:`History.temporary` makes a database in a
fresh temporary folder that :meth:`close` deletes, so a chapter leaves no file behind.

The seam to Postgres: nothing outside this class knows SQL.  A production Phoenix app keeps
the same table in Postgres through Ecto: ``bigserial`` (or identity) ids, a unique index on
``client_id`` and ``Repo.insert(on_conflict: :nothing, conflict_target: :client_id)``,
reached through a connection pool, shared by every node of a cluster.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    client_id TEXT UNIQUE,
    inserted_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored message; ``inserted`` is False when a retry found it already there."""

    id: int
    topic: str
    body: Any
    client_id: str | None = None
    inserted: bool = True

    def payload(self) -> dict[str, Any]:
        """What goes on the wire: ``{"id": ..., "body": ...}``."""
        return {"id": self.id, "body": self.body}


class History:
    """Messages with increasing ids and named counters in one SQLite file (WAL mode)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._owned_folder: Path | None = None
        # isolation_level=None: autocommit, each statement its own transaction unless we
        # BEGIN; check_same_thread=False: a test or grader may call from a helper thread.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @classmethod
    def temporary(cls, name: str = "history.sqlite3") -> History:
        """A database in a new temporary folder, deleted (files and folder) by ``close()``."""
        folder = Path(tempfile.mkdtemp(prefix="mini_server_history_"))
        history = cls(folder / name)
        history._owned_folder = folder
        return history

    def __repr__(self) -> str:
        status = "closed" if self._db is None else "open"
        return f"<History {self.path} {status}>"

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._db is None

    @property
    def journal_mode(self) -> str:
        """What SQLite says the journal mode is ("wal")."""
        return self._conn().execute("PRAGMA journal_mode").fetchone()[0]

    # --- messages -------------------------------------------------------------------

    def append(self, topic: str, body: Any, client_id: str | None = None) -> Stored:
        """Store a message; with a ``client_id`` already stored, return that row instead."""
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError(f"a client message id is a non-empty string, got {client_id!r}")
        encoded = json.dumps(body)  # fails here, before anything is stored, if not JSON
        db = self._conn()
        cursor = db.execute(
            "INSERT INTO messages (topic, body, client_id, inserted_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (client_id) DO NOTHING",
            (topic, encoded, client_id, time.time()),
        )
        if cursor.rowcount == 1:
            return Stored(cursor.lastrowid, topic, body, client_id, inserted=True)
        row = db.execute(
            "SELECT id, topic, body FROM messages WHERE client_id = ?", (client_id,)
        ).fetchone()
        return Stored(row[0], row[1], json.loads(row[2]), client_id, inserted=False)

    def since(self, topic: str, last_id: int = 0) -> list[Stored]:
        """Messages of ``topic`` with an id greater than ``last_id``, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, body, client_id FROM messages WHERE topic = ? AND id > ? ORDER BY id",
                (topic, int(last_id)),
            )
            .fetchall()
        )
        return [Stored(i, topic, json.loads(body), cid) for i, body, cid in rows]

    def last_id(self, topic: str) -> int:
        """The newest id stored for ``topic`` (0 when there is none)."""
        row = (
            self._conn()
            .execute("SELECT MAX(id) FROM messages WHERE topic = ?", (topic,))
            .fetchone()
        )
        return row[0] or 0

    def count(self, topic: str | None = None) -> int:
        """How many messages are stored (for one topic, or all)."""
        if topic is None:
            return self._conn().execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        return (
            self._conn()
            .execute("SELECT COUNT(*) FROM messages WHERE topic = ?", (topic,))
            .fetchone()[0]
        )

    # --- counters -------------------------------------------------------------------

    def increment(self, name: str, by: int = 1) -> int:
        """Add ``by`` to counter ``name`` in one statement; returns the new value."""
        return (
            self._conn()
            .execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
                (name, by),
            )
            .fetchone()[0]
        )

    def counter(self, name: str) -> int:
        """The value of counter ``name`` (0 when it was never incremented)."""
        row = self._conn().execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else row[0]

    # --- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); a temporary database is deleted with its folder."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._owned_folder is not None:
            shutil.rmtree(self._owned_folder, ignore_errors=True)
            self._owned_folder = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"the history database {self.path} is closed")
        return self._db
