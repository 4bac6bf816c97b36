from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from greenai.store import SCHEMA_VERSION, RunStore, StoreError, default_path


def test_a_new_store_is_wal_at_the_current_schema_with_every_table(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.db"
    with RunStore(path):
        pass
    with RunStore(path):  # reopening migrates nothing and loses nothing
        pass
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "devices", "phases", "timeline", "phase_spans"} <= tables


def test_a_store_from_a_newer_greenai_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 41}")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"newer greenai \(schema {SCHEMA_VERSION + 41} > "):
        RunStore(path).open()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


@pytest.mark.parametrize(
    "content", [b"this is not sqlite " * 300, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="move it aside") as info:
        RunStore(path).open()
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_an_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="folder"):
        RunStore(blocker / "runs.db").open()


def test_greenai_home_sets_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENAI_HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / "runs.db"
    store = RunStore()
    assert store.path == tmp_path / "home" / "runs.db"
    with store:
        store.start_run("x")
    assert (tmp_path / "home" / "runs.db").is_file()


def test_without_greenai_home_the_store_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREENAI_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_path() == Path(".greenai") / "runs.db"
    with RunStore() as store:
        store.start_run("x")
    assert (tmp_path / ".greenai" / "runs.db").is_file()
