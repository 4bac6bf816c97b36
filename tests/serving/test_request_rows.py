from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.report import export_tables
from greenai.serving import ServingMeter
from greenai.serving.rows import RequestRows
from greenai.store import SCHEMA_VERSION, RunStore
from greenai.store.ddl import migrations
from greenai.store.requests import REQUEST_COLUMNS
from greenai.testing import FakeClock, FakeGPU


def serve(
    make_store: Callable[..., RunStore], n: int, keep: int, settle_every: int
) -> tuple[str, list[object], RequestRows, list[int]]:
    """``n`` requests on a FakeGPU job stored in ``make_store()``; rows written as they settle."""
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(2.0, 100.0), (6.0, 400.0), (9.0, 100.0)], seed=3)
    seen: list[object] = []
    stored_after_pass: list[int] = []
    with make_store() as job_store, make_store() as rows_store:
        with greenai.track("serve", devices=[gpu], clock=clock, store=job_store) as job:
            assert job.run_id is not None
            rows = RequestRows(rows_store, job.run_id, keep=keep)
            meter = ServingMeter(job, on_request=seen.append, on_settled=rows)
            clock.advance(0.5)
            for k in range(n):
                with meter.request(model="tiny") as req:
                    clock.advance(0.2)
                    req.first_token()
                    clock.advance(0.1 * (k + 1))
                    req.tokens(prompt=16, completion=10 * (k + 1))
                clock.advance(0.3)
                if k % settle_every == settle_every - 1:
                    meter.settle()
                    stored_after_pass.append(len(rows_store.requests(job.run_id)))
        meter.settle(final=True)
        run_id = job.run_id
    return run_id, seen, rows, stored_after_pass


def test_each_settled_request_is_a_row_of_the_run(make_store: Callable[..., RunStore]) -> None:
    run_id, seen, rows, after_pass = serve(make_store, n=6, keep=100, settle_every=2)
    assert rows.written == 6 and rows.failures == 0
    # rows are written at each pass, not only at the end
    assert after_pass[0] > 0 and after_pass == sorted(after_pass)
    with make_store(read_only=True) as store:
        frame = store.requests(run_id)
        run = store.get(run_id)
    assert list(frame.columns) == REQUEST_COLUMNS
    assert list(frame["seq"]) == [1, 2, 3, 4, 5, 6]
    assert run.requests.equals(frame)
    for row, r in zip(frame.itertuples(), seen, strict=True):
        assert row.request_id == r.request_id  # type: ignore[attr-defined]
        assert row.model == "tiny" and row.status == "ok"
        assert row.completion_tokens == r.completion_tokens  # type: ignore[attr-defined]
        assert row.energy_j == pytest.approx(r.energy_j)  # type: ignore[attr-defined]
        assert row.uncertainty_j == pytest.approx(r.uncertainty_j)  # type: ignore[attr-defined]
        assert row.prefill_energy_j + row.decode_energy_j == pytest.approx(row.energy_j)
        assert row.start_s < row.end_s
    # longer requests were charged more: the rows carry the attribution, not a constant
    assert frame["energy_j"].is_monotonic_increasing
    assert math.isfinite(frame["energy_j"].sum()) and frame["energy_j"].sum() > 0


def test_rows_are_bounded_to_the_newest_keep(make_store: Callable[..., RunStore]) -> None:
    run_id, seen, rows, _ = serve(make_store, n=7, keep=3, settle_every=1)
    assert rows.written == 7
    with make_store(read_only=True) as store:
        frame = store.requests(run_id)
    assert list(frame["seq"]) == [5, 6, 7]
    assert list(frame["request_id"]) == [r.request_id for r in seen[-3:]]  # type: ignore[attr-defined]


def test_a_failed_write_keeps_its_rows_for_the_next_pass(tmp_path: Path) -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=100.0, seed=1)
    path = tmp_path / "runs.db"
    with RunStore(path) as rows_store:
        with greenai.track("serve", devices=[gpu], clock=clock, store=path) as job:
            assert job.run_id is not None
            rows = RequestRows(rows_store, "no-such-run", keep=10)
            meter = ServingMeter(job, on_settled=rows)
            for _ in range(2):
                with meter.request() as req:
                    clock.advance(0.5)
                    req.tokens(prompt=4, completion=4)
                clock.advance(0.5)
            meter.settle()
            assert rows.failures == 1 and rows.written == 0 and rows.last_error
            rows.run_id = job.run_id  # the store is back: the kept rows go out
            rows.flush()
        assert rows.written == 2 and rows.last_error is None
        assert len(rows_store.requests(job.run_id)) == 2


def test_bad_keep_and_missing_columns_are_config_errors(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.start_run("serve")
        with pytest.raises(ConfigError, match="keep"):
            RequestRows(store, run_id, keep=0)
        with pytest.raises(ConfigError, match="lacks columns"):
            store.add_requests(run_id, {"seq": [1]})
        with pytest.raises(ConfigError, match="keep"):
            store.add_requests(run_id, {c: [] for c in REQUEST_COLUMNS}, keep=-1)


def test_a_version_4_store_gains_the_requests_table(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with closing(sqlite3.connect(path)) as conn:
        for script in migrations("sqlite")[:4]:
            for statement in script:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 4")
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host)"
            " VALUES ('r1', 'old', 'completed', '2025-01-01', '2025-01-01', 'h')"
        )
        conn.commit()
    # read-only, the old store is not migrated: its runs have no request rows
    with RunStore(path, read_only=True) as store:
        assert store.get("r1").requests.empty
    with RunStore(path) as store:
        assert store.requests("r1").empty
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 0


def test_export_writes_the_request_rows(tmp_path: Path) -> None:
    run_id, seen, _, _ = serve(lambda **kw: RunStore(tmp_path / "runs.db", **kw), 3, 10, 3)
    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        run = store.get(run_id)
    assert run.measurement is not None
    paths = export_tables(
        run.measurement, tmp_path / "out", "csv", phase_spans=run.phase_spans,
        requests=run.requests,
    )  # fmt: skip
    assert tmp_path / "out" / "requests.csv" in paths
    text = (tmp_path / "out" / "requests.csv").read_text()
    assert text.splitlines()[0].split(",") == REQUEST_COLUMNS
    assert len(text.splitlines()) == 4 and seen[0].request_id in text  # type: ignore[attr-defined]


def test_the_hosted_proxy_stores_a_row_per_request(tmp_path: Path) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from fake_upstream import make_app, start

    from greenai.serving.cli import hosted_proxy
    from greenai.serving.proxy import ProxyOptions

    path = tmp_path / "runs.db"

    async def main() -> str:
        up_runner, upstream = await start(make_app())
        opts = ProxyOptions(upstream=upstream, port=0, settle_s=0.1)
        try:
            async with hosted_proxy(opts, store=str(path), period_s=0.02) as host:
                async with aiohttp.ClientSession() as client:
                    for _ in range(3):
                        async with client.post(
                            f"{host.url}/v1/completions",
                            json={"model": "tiny", "prompt": "hi", "max_tokens": 5},
                        ) as resp:
                            assert resp.status == 200
                            await resp.read()
                run_id: str = host.job.run_id
        finally:
            await up_runner.cleanup()
        return run_id

    run_id = asyncio.run(main())
    with RunStore(path, read_only=True) as store:
        frame = store.requests(run_id)
    assert list(frame["seq"]) == [1, 2, 3]
    assert (frame["completion_tokens"] > 0).all() and (frame["energy_j"] >= 0).all()


def test_a_row_says_what_its_token_counts_are(tmp_path: Path) -> None:
    from greenai.report.requests_html import request_summary_rows

    clock = FakeClock()
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock, store=path) as job:
            assert job.run_id is not None
            meter = ServingMeter(job, on_settled=RequestRows(store, job.run_id))
            for k, tokens in enumerate(("counted", "estimated", "unknown", "prompt_estimated")):
                rid = meter.begin(model="tiny")
                clock.advance(0.5)
                meter.end(rid, prompt_tokens=10, completion_tokens=10 * k, tokens=tokens)
                clock.advance(0.1)
            with pytest.raises(ConfigError, match="tokens must be one of"):
                meter.end(meter.begin(), tokens="guessed")
        meter.settle(final=True)
        frame = store.requests(job.run_id)
        # a writer from before the column: its rows are stored with the column empty
        old = frame.drop(columns=["tokens"]).assign(seq=frame["seq"] + 10)
        store.add_requests(job.run_id, old)
        both = store.requests(job.run_id)
    assert list(frame["tokens"]) == [
        "counted",
        "estimated",
        "unknown",
        "prompt_estimated",
        "counted",
    ]
    assert both["tokens"].isna().sum() == len(frame)
    summary = dict(request_summary_rows(frame))
    # J/token over counts only (the refused end left its request open: unfinished, counted)
    counted = frame[frame["tokens"] == "counted"]
    decoded = frame[frame["tokens"].isin(["counted", "prompt_estimated"])]
    assert (
        f"over {int(counted['prompt_tokens'].sum())} tokens" in summary["J/token, prefill (prompt)"]
    )
    assert (
        f"over {int(decoded['completion_tokens'].sum())} tokens"
        in summary["J/token, decode (generated)"]
    )
    assert summary["token counts"].startswith("3 request(s) estimated or unknown")


def test_a_row_keeps_its_requests_notes(tmp_path: Path) -> None:
    from greenai.report.requests_html import request_summary_rows

    clock = FakeClock()
    path = tmp_path / "runs.db"
    seen: list[object] = []
    with RunStore(path) as store:
        with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock, store=path) as job:
            assert job.run_id is not None
            meter = ServingMeter(
                job, on_request=seen.append, on_settled=RequestRows(store, job.run_id)
            )
            for merged in (1, 5, 1):  # the middle one's first read held 5 tokens: a note
                rid = meter.begin(model="tiny")
                clock.advance(0.4)
                meter.first_token(rid)
                clock.advance(0.6)
                meter.end(rid, prompt_tokens=8, completion_tokens=20, first_tokens=merged)
                clock.advance(0.1)
        meter.settle(final=True)
        frame = store.requests(job.run_id)
        # a writer from before the column: its rows are stored with it empty (not known)
        store.add_requests(job.run_id, frame.drop(columns=["notes"]).assign(seq=frame["seq"] + 10))
        both = store.requests(job.run_id)
    noted = [r.notes for r in seen]  # type: ignore[attr-defined]
    assert [len(n) for n in noted] == [0, 1, 0]
    assert list(frame["notes"]) == ["", noted[1][0], ""]
    assert noted[1][0].startswith("first token not seen alone")
    assert both["notes"].isna().sum() == 3 and list(both["notes"][:3]) == list(frame["notes"])
    summary = dict(request_summary_rows(both))
    assert summary["request notes"].startswith(
        "1 request(s) with notes; first token not seen alone: 1; 3 stored before notes"
    )
    assert "request notes" not in dict(request_summary_rows(frame[frame["notes"] == ""]))


def test_a_prompt_counted_from_token_ids_enters_prefill_j_per_token_only(tmp_path: Path) -> None:
    from greenai.report.requests_html import request_summary_rows

    clock = FakeClock()
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock, store=path) as job:
            assert job.run_id is not None
            meter = ServingMeter(job, on_settled=RequestRows(store, job.run_id))
            for tokens in ("counted", "completion_estimated", "completion_unknown"):
                rid = meter.begin(model="tiny")
                clock.advance(0.5)
                meter.end(rid, prompt_tokens=10, completion_tokens=20, tokens=tokens)
                clock.advance(0.1)
        meter.settle(final=True)
        frame = store.requests(job.run_id)
    summary = dict(request_summary_rows(frame))
    assert "over 30 tokens" in summary["J/token, prefill (prompt)"]  # all three prompts
    assert "over 20 tokens" in summary["J/token, decode (generated)"]  # the counted one
    assert summary["token counts"].startswith("2 request(s) estimated or unknown")
    t = meter.totals()
    assert t.prefill_j_per_token == pytest.approx(frame["prefill_energy_j"].sum() / 30)
    assert t.tokens_not_counted == 2


def test_a_note_holding_a_newline_reads_back_as_one_note(tmp_path: Path) -> None:
    """Notes are stored a line each: one with a newline (an exception's text) stays one."""
    clock = FakeClock()
    path = tmp_path / "runs.db"
    seen: list[object] = []
    with RunStore(path) as store:
        with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock, store=path) as job:
            assert job.run_id is not None
            meter = ServingMeter(
                job, on_request=seen.append, on_settled=RequestRows(store, job.run_id)
            )
            rid = meter.begin(model="tiny")
            clock.advance(0.5)
            notes = ("upstream broke off: Server disconnected\n  while reading\tthe body", " \n")
            meter.end(rid, prompt_tokens=8, completion_tokens=4, notes=notes)
            clock.advance(0.1)
        meter.settle(final=True)
        frame = store.requests(job.run_id)
    want = "upstream broke off: Server disconnected while reading the body"
    assert seen[0].notes == (want,)  # type: ignore[attr-defined]
    assert frame["notes"].tolist() == [want]
    assert frame["notes"][0].split("\n") == [want]


def test_request_notes_are_counted_by_their_fixed_kinds() -> None:
    """A note's kind is its prefix before ": " (a URL's colons are none); free text, or
    a prefix past "; " (a cut note of an older proxy), is "other", never the whole note."""
    import pandas as pd

    from greenai.report.requests_html import note_kind, request_summary_rows

    notes = [
        "upstream broke off: upstream http://127.0.0.1:8000: Server disconnected;"
        " the stream ended with an error event",
        "cut at timeout: --request-timeout (1 s); before any byte was sent: answered 504",
        "cut at timeout: --request-timeout (2 s); the stream ended with an error event\n"
        "first token not seen alone: the first text came 0.1 s after arrival",
        "cut at --request-timeout (600 s); the stream ended with an error event",
        "",
    ]
    frame = pd.DataFrame(
        {
            "energy_j": 1.0,
            "uncertainty_j": 0.1,
            "prefill_energy_j": 0.5,
            "decode_energy_j": 0.5,
            "prompt_tokens": 4,
            "completion_tokens": 4,
            "status": "ok",
            "rule": "spans",
            "method": "model",
            "tokens": "counted",
            "notes": notes,
        }
    )
    assert note_kind(notes[0]) == "upstream broke off"
    assert note_kind("upstream http://127.0.0.1:8000 broke off") == "other"
    row = dict(request_summary_rows(frame))["request notes"]
    assert row.startswith(
        "4 request(s) with notes; cut at timeout: 2; upstream broke off: 1;"
        " first token not seen alone: 1; other: 1 (each"
    ), row
    assert "600 s" not in row and "http" not in row
