from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from greenai.store import RunStore, StoreError, default_path
from greenai.store.schema import APPLICATION_ID
from greenai.testing import FakeGPU
from greenai.tracker import Tracker


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_run(path: Path, name: str = "train") -> str:
    with Tracker(name, devices=[FakeGPU()], store=path) as job:
        job.step()
    assert job.run_id is not None
    return job.run_id


def foreign_database(path: Path, journal: str = "delete") -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("read_only", [False, True])
def test_another_applications_database_is_refused_and_left_byte_for_byte(
    tmp_path: Path, journal: str, read_only: bool
) -> None:
    path = tmp_path / "app.db"
    foreign_database(path, journal)
    before, listing = digest(path), files(tmp_path)
    with pytest.raises(StoreError, match=r"another application.*notes.*left as it is"):
        RunStore(path, read_only=read_only).open()
    assert digest(path) == before and files(tmp_path) == listing
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == ["notes"] and mode == journal


def test_a_new_store_carries_greenai_application_id(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    RunStore(path).open().close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_store_made_before_the_application_id_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    run_id = stored_run(path)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA application_id = 0")
        conn.commit()
    for read_only in (True, False):
        with RunStore(path, read_only=read_only) as store:
            assert store.get("latest").id == run_id


def test_read_only_creates_no_folder_or_file_and_reads_no_store_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "runs.db"
    with RunStore(path, read_only=True) as store:
        assert store.runs().empty
        with pytest.raises(StoreError, match="no runs"):
            store.get("latest")
    assert files(tmp_path) == []


def test_read_only_reads_a_store_without_touching_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    run_id = stored_run(path)
    before, listing = digest(path), files(tmp_path)
    with RunStore(path, read_only=True) as store:
        assert list(store.runs()["id"]) == [run_id]
        assert store.get(run_id).measurement is not None
        with pytest.raises(StoreError, match="read-only"):
            store.start_run("x")
    assert digest(path) == before and files(tmp_path) == listing


def test_read_only_sees_a_live_writers_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as writer:  # holds the write-ahead log open
        run_id = writer.start_run("live")
        with RunStore(path, read_only=True) as reader:
            assert list(reader.runs()["id"]) == [run_id]


def test_read_only_shows_a_dead_run_interrupted_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    code = (
        "import os\nfrom greenai.store import RunStore\n"
        f"s = RunStore({str(path)!r}).open()\nprint(s.start_run('doomed'))\ns.close()\n"
    )
    run_id = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    before = digest(path)
    with RunStore(path, read_only=True) as store:
        assert store.runs()["status"].tolist() == ["interrupted"]
        assert store.get(run_id).status == "interrupted"
    assert digest(path) == before
    with RunStore(path) as store:  # a read-write open marks it for good
        assert store.get(run_id).status == "interrupted"


def test_record_outcome_keeps_the_command_and_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    run_id = stored_run(path)
    with RunStore(path) as store:
        store.record_outcome(run_id, command="python train.py --lr 3", exit_code=3)
        run = store.get(run_id)
        with pytest.raises(StoreError, match="no run"):
            store.record_outcome("nosuch", command="x", exit_code=0)
    assert run.command == "python train.py --lr 3" and run.exit_code == 3


def test_tilde_in_greenai_home_and_store_paths_is_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GREENAI_HOME", "~/energy")
    assert default_path() == tmp_path / "energy" / "runs.db"
    assert RunStore("~/x/runs.db").path == tmp_path / "x" / "runs.db"
    RunStore().open().close()
    assert (tmp_path / "energy" / "runs.db").exists() and not Path("~").exists()


def test_a_read_only_file_system_or_another_users_store_can_be_listed(tmp_path: Path) -> None:
    """Read through a read-only bind mount (Linux, root) or a folder without write access."""
    folder = tmp_path / "store"
    folder.mkdir()
    run_id = stored_run(folder / "runs.db", "shared")
    lister = (
        "import sys\nfrom greenai.store import RunStore\n"
        "with RunStore(sys.argv[1], read_only=True) as s:\n"
        "    print(','.join(s.runs()['id']), s.get('latest').name)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if os.geteuid() != 0:
        folder.chmod(0o555)
        (folder / "runs.db").chmod(0o444)
        argv = [sys.executable, "-c", lister, str(folder / "runs.db")]
    elif subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        script = (
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
            'touch "$1/probe" 2>/dev/null && exit 99; shift; exec "$@"'
        )
        argv = ["unshare", "-m", "sh", "-c", script, "sh", str(folder)]
        argv += [sys.executable, "-c", lister, str(folder / "runs.db")]
    else:
        pytest.skip("root without mount namespaces: no way to make a folder read-only here")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    finally:
        folder.chmod(0o755)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [run_id, "shared"]
    assert files(folder) == ["runs.db"]
