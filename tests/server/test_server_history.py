"""Stored history (SQLite, WAL): increasing ids, catch-up since an id, idempotent inserts."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from mini_server.server.history import History


@pytest.fixture
def history(tmp_path):
    """A real SQLite file in tmp_path, closed afterwards."""
    store = History(tmp_path / "history.sqlite3")
    yield store
    store.close()


def test_database_is_in_wal_mode(history):
    """The file is a write-ahead-log database, as another connection sees it too."""
    assert history.journal_mode == "wal"
    other = sqlite3.connect(history.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_ids_increase_across_topics_and_are_never_reused(tmp_path):
    """Every append gets a larger id; ids of deleted rows are not handed out again."""
    path = tmp_path / "ids.sqlite3"
    with History(path) as store:
        ids = [store.append(topic, n).id for n, topic in enumerate(["a", "b", "a", "b"])]
        assert ids == sorted(ids) and len(set(ids)) == 4
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM messages WHERE id = ?", (ids[-1],))
    raw.commit()
    raw.close()
    with History(path) as store:
        assert store.append("a", "after delete").id > ids[-1]


def test_since_returns_only_newer_messages_of_the_topic_in_order(history):
    """since(topic, N) is exactly the messages of that topic with id > N, oldest first."""
    stored = [history.append("room", {"n": n}) for n in range(5)]
    history.append("other", "not mine")
    assert [m.body for m in history.since("room", 0)] == [{"n": n} for n in range(5)]
    newer = history.since("room", stored[2].id)
    assert [m.id for m in newer] == [stored[3].id, stored[4].id]
    assert history.since("room", stored[4].id) == []
    assert history.last_id("room") == stored[4].id
    assert history.last_id("nobody") == 0


def test_append_with_a_known_client_id_returns_the_stored_row(history):
    """A retry with the same client id is not stored again: same id, inserted False."""
    first = history.append("room", "hello", client_id="c-1")
    retry = history.append("room", "hello (retry)", client_id="c-1")
    assert first.inserted and not retry.inserted
    assert retry.id == first.id and retry.body == "hello"
    assert history.count("room") == 1


def test_messages_without_client_id_are_all_stored(history):
    """NULL client ids never conflict: server messages are each stored."""
    for _ in range(3):
        assert history.append("room", "same body").inserted
    assert history.count("room") == 3


def test_unique_constraint_holds_for_concurrent_writers(tmp_path):
    """Two connections racing to store the same client id store it once."""
    path = tmp_path / "race.sqlite3"
    History(path).close()  # create the schema first
    results = []

    def writer() -> None:
        with History(path) as store:
            for n in range(20):
                results.append(store.append("room", n, client_id=f"msg-{n}").inserted)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    with History(path) as store:
        assert store.count("room") == 20
    assert results.count(True) == 20 and results.count(False) == 20


def test_a_body_that_is_not_json_is_refused_before_anything_is_stored(history):
    """append raises on a non-JSON body and stores nothing."""
    with pytest.raises(TypeError):
        history.append("room", {1, 2})
    assert history.count() == 0


def test_counters_increment_atomically_and_persist(tmp_path):
    """increment returns the new value; a reopened database still has it."""
    path = tmp_path / "counters.sqlite3"
    with History(path) as store:
        assert store.counter("visits") == 0
        assert [store.increment("visits") for _ in range(3)] == [1, 2, 3]
    with History(path) as store:
        assert store.counter("visits") == 3


def test_close_releases_the_file(tmp_path):
    """After close the -wal and -shm files are gone and the calls fail clearly."""
    path = tmp_path / "closing.sqlite3"
    store = History(path)
    store.append("room", "x")
    store.close()
    store.close()  # idempotent
    assert store.closed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["closing.sqlite3"]
    with pytest.raises(RuntimeError, match="closed"):
        store.since("room")


def test_temporary_history_deletes_its_folder_on_close():
    """History.temporary() leaves nothing on disk once closed."""
    store = History.temporary()
    store.append("room", "x")
    folder = store.path.parent
    assert store.path.is_file()
    store.close()
    assert not folder.exists()
