"""Fleet KPIs summed in the database, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from greenai.errors import ConfigError
from greenai.report import kpi
from greenai.report.kpi import (
    avoided_by_compression,
    fleet_kpis,
    kpi_notes,
    parse_target,
    progress,
)
from greenai.store import RunStore

COLUMNS = (
    "id, name, status, started_at, updated_at, host, energy_j, uncertainty_j, flops, pue,"
    " co2e_kg, co2e_market_kg, renewable_share, water_l, measured_energy_j"
)

# id, started, status, energy_j, u_j, flops, pue, co2e, market, share, water, measured
RUNS: list[tuple[Any, ...]] = [
    ("a", "2026-01-10T00:00", "completed", 3.6e6, 3.6e4, 2e12, 1.2, 0.5, 0.3, 0.4, 2.0, 3.6e6),
    ("b", "2026-02-10T00:00", "failed", 7.2e6, 7.2e4, 4e12, 1.5, 1.0, 0.6, 0.5, 4.0, 3.6e6),
    ("c", "2026-03-31T23:59", "completed", 1.8e6, 1.8e4, None, 1.1, None, None, None, None, 0.0),
    ("d", "2026-04-01T00:00", "completed", 3.6e6, 3.6e4, 1e12, None, 0.2, None, None, None, 3.6e6),
    ("e", "2026-05-01T00:00", "interrupted", 1.8e6, 1.8e4, 3e12, 1.3, 0.3, 0.1, 0.9, 1.0, 1.8e6),
    ("f", "2026-05-02T00:00", "running", 9e9, 1.0, 1e15, 2.0, 9.0, 9.0, 0.0, 9.0, 9e9),
]  # fmt: skip
TAGS = {
    "a": {"team": "nlp", "site": "par"},
    "b": {"team": "nlp"},
    "c": {"team": "vision"},
    "d": {"team": "vision"},
    "f": {"team": "nlp"},
}


def fill(store: RunStore, runs: list[tuple[Any, ...]] = RUNS) -> None:
    with store.transaction() as conn:
        for rid, started, status, e, u, flops, pue, co2e, market, share, water, meas in runs:
            conn.execute(
                f"INSERT INTO runs ({COLUMNS}) VALUES (?, 'job', ?, ?, ?, 'h', ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?)",
                (rid, status, started, started, e, u, flops, pue, co2e, market, share, water, meas),
            )
            for k, v in TAGS.get(rid, {}).items():
                conn.execute("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)", (rid, k, v))


def expected(runs: list[tuple[Any, ...]]) -> dict[str, float]:
    """The KPIs of ``runs`` worked out one run at a time, apart from the SQL."""
    done = [r for r in runs if r[2] != "running"]
    it = sum(r[3] for r in done) / 3.6e6
    with_pue = [r for r in done if r[6] is not None]
    with_both = [r for r in with_pue if r[5]]
    shared = [r for r in with_pue if r[9] is not None]
    return {
        "jobs": len(done),
        "it_kwh": it,
        "it_kwh_u": math.sqrt(sum(r[4] ** 2 for r in done)) / 3.6e6,
        "facility_kwh": sum(r[3] * r[6] for r in with_pue) / 3.6e6,
        "kwh_per_job": it / len(done),
        "kwh_per_tflop_pue": (sum(r[3] * r[6] for r in with_both) / 3.6e6)
        / (sum(r[5] for r in with_both) / 1e12),
        "co2e_location_kg": sum(r[7] for r in done if r[7] is not None),
        "renewable_share": sum(r[3] * r[6] * r[9] for r in shared)
        / sum(r[3] * r[6] for r in shared),
        "measured_share": sum(r[11] for r in done) / sum(r[3] for r in done),
        "jobs_without_pue": len(done) - len(with_pue),
        "jobs_without_flops": sum(1 for r in done if not r[5]),
    }


def test_a_yearly_roll_up_matches_the_runs_summed_one_by_one(store: RunStore) -> None:
    fill(store)
    frame = fleet_kpis(store, period="year")
    assert list(frame["period"]) == ["2026"]
    row = frame.iloc[0]
    for name, value in expected(RUNS).items():
        assert row[name] == pytest.approx(value), name


def test_quarters_and_teams_split_the_runs_and_running_ones_are_left_out(
    store: RunStore,
) -> None:
    fill(store)
    frame = fleet_kpis(store, period="quarter", by=["team"])
    assert list(zip(frame["period"], frame["team"], frame["jobs"], strict=True)) == [
        ("2026-Q1", "nlp", 2),
        ("2026-Q1", "vision", 1),
        ("2026-Q2", "(untagged)", 1),
        ("2026-Q2", "vision", 1),
    ]
    q1_nlp = frame.iloc[0]
    assert q1_nlp["it_kwh"] == pytest.approx(expected(RUNS[:2])["it_kwh"])
    assert q1_nlp["kwh_per_tflop_pue"] == pytest.approx(expected(RUNS[:2])["kwh_per_tflop_pue"])
    months = fleet_kpis(store, period="month", tags={"team": "nlp"})
    assert list(months["period"]) == ["2026-01", "2026-02"]  # f is running: left out


@pytest.mark.parametrize("tag", ["period", "month", "jobs", "jobs_with_pue", "it_kwh", "tflops_u"])
def test_a_tag_named_like_a_kpi_column_is_refused_not_a_traceback(
    store: RunStore, tag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenai.cli import main

    fill(store)
    with pytest.raises(ConfigError, match=f"cannot group by the tag '{tag}'"):
        fleet_kpis(store, by=["team", tag])
    assert set(fleet_kpis(store, by=["status"])["status"]) == {"(untagged)"}  # not taken
    db = tmp_path / "one.db"
    with RunStore(db) as one:
        fill(one)
    assert main(["kpi", "--store", str(db), "--by", tag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KPI table has a column of that name" in err


def _joined(store: RunStore, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> pd.DataFrame:
    """The roll-up by joining the tags to the runs (what a store before schema 6 gets)."""
    with monkeypatch.context() as m:
        m.setattr(kpi, "_tags_carry_figures", lambda store: False)
        return fleet_kpis(store, **kw)


def test_tag_rows_follow_their_runs_figures_through_every_change(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store)
    with store.transaction() as conn:  # figures, status and start change after the tags
        conn.execute("UPDATE runs SET status = 'completed', energy_j = 5e6 WHERE id = 'f'")
        conn.execute("UPDATE runs SET pue = 1.4, flops = 5e12, water_l = 7.0 WHERE id = 'd'")
        conn.execute("UPDATE runs SET started_at = '2026-07-01T00:00' WHERE id = 'c'")
        conn.execute("UPDATE tags SET value = 'speech' WHERE run_id = 'b' AND key = 'team'")
        conn.execute("INSERT INTO tags (run_id, key, value) VALUES ('e', 'team', 'vision')")
        conn.execute("INSERT INTO tags (run_id, key, value) VALUES ('e', 'site', 'ber')")
    for kw in (
        {"by": ["team"]},
        {"by": ["site"]},  # most runs lack it: the untagged ones are read apart
        {"by": ["team"], "period": "month", "since": "2026-02-01", "until": "2026-06-30"},
        {"by": ["team"], "tags": {"site": "par"}},
    ):
        fast = fleet_kpis(store, **kw)  # type: ignore[arg-type]
        assert fast["jobs"].sum() > 0
        pd.testing.assert_frame_equal(fast, _joined(store, monkeypatch, **kw), check_dtype=False)
    frame = fleet_kpis(store, by=["team"])
    assert list(zip(frame["period"], frame["team"], frame["jobs"], strict=True)) == [
        ("2026-Q1", "nlp", 1),
        ("2026-Q1", "speech", 1),
        ("2026-Q2", "nlp", 1),
        ("2026-Q2", "vision", 2),
        ("2026-Q3", "vision", 1),
    ]


def test_runs_without_flops_or_pue_are_counted_apart_never_as_zero(store: RunStore) -> None:
    fill(store)
    frame = fleet_kpis(store, period="quarter", by=["team"])
    vision_q1 = frame[(frame["period"] == "2026-Q1") & (frame["team"] == "vision")].iloc[0]
    assert math.isnan(vision_q1["kwh_per_tflop_pue"])  # c has no FLOPs: no figure, not 0
    assert vision_q1["jobs_without_flops"] == 1
    vision_q2 = frame[(frame["period"] == "2026-Q2") & (frame["team"] == "vision")].iloc[0]
    assert math.isnan(vision_q2["facility_kwh"]) and vision_q2["jobs_without_pue"] == 1
    notes = " | ".join(kpi_notes(frame))
    assert "1 of 5 job(s) with energy have no PUE" in notes
    assert "1 of 5 job(s) with energy have no FLOPs" in notes
    assert "never counted as 0" in notes


def test_targets_parse_and_bad_ones_say_how_to_write_them() -> None:
    t = parse_target("kwh_per_tflop_pue:-50%@2027")
    assert (t.metric, t.relative, t.value, t.year) == ("kwh_per_tflop_pue", -0.5, None, 2027)
    t = parse_target("renewable_share:60%@2030")
    assert (t.relative, t.value) == (None, 0.6)
    assert parse_target("kwh_per_job:27000@2027").level(42000.0) == 27000.0
    for bad in ("kwh_per_tflop_pue-50%@2027", "kwh:-50%@2027", "it_kwh:-50@2027", "x", ""):
        with pytest.raises(ConfigError):
            parse_target(bad)


def test_progress_follows_a_straight_path_from_baseline_to_target() -> None:
    frame = pd.DataFrame(
        {
            "period": ["2026", "2027"],
            "kwh_per_job": [100.0, 40.0],
            "kwh_per_job_u": [1.0, 1.0],
        }
    )
    track = progress(frame, parse_target("kwh_per_job:-50%@2027"))
    assert track["baseline"].tolist() == [100.0, 100.0]
    # the path: 100 at mid-2026, 50 at the end of 2027 -> at mid-2027, 100 - 50 * 2/3
    assert track["path"].iloc[1] == pytest.approx(100.0 - 50.0 * (1.0 / 1.5))
    assert track["status"].tolist() == ["baseline", "on track"]
    behind = progress(
        frame.assign(kwh_per_job=[100.0, 80.0]), parse_target("kwh_per_job:-50%@2027")
    )
    assert behind["status"].tolist() == ["baseline", "off track"]
    close = progress(frame.assign(kwh_per_job_u=[1.0, 30.0]), parse_target("kwh_per_job:-50%@2027"))
    assert close["status"].tolist() == ["baseline", "undecided"]  # the path is within ±
    assert track["change_vs_baseline"].iloc[1] == pytest.approx(-0.6)
    with pytest.raises(ConfigError, match="baseline '2020'"):
        progress(frame, parse_target("kwh_per_job:-50%@2027"), baseline="2020")


def test_a_figure_without_its_uncertainty_shows_it_unknown_not_zero() -> None:
    frame = pd.DataFrame({"period": ["2026", "2027"], "renewable_share": [0.2, 0.5]})
    track = progress(frame, parse_target("renewable_share:60%@2030"))
    assert track["value_u"].isna().all()  # an input figure: no ±, not an exact one
    unknown = pd.DataFrame(
        {"period": ["2026", "2027"], "kwh_per_job": [100.0, 40.0], "kwh_per_job_u": [1.0, None]}
    )
    track = progress(unknown, parse_target("kwh_per_job:-50%@2027"))
    assert track["value_u"].iloc[0] == 1.0 and math.isnan(track["value_u"].iloc[1])
    assert track["status"].tolist() == ["baseline", "on track"]  # the value alone decides


def sweep_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": ["baseline", "int8"],
            "energy_saved_per_inference_j": [math.nan, 0.5],
            "energy_saved_ci_j": [math.nan, 0.1],
            "compress_energy_j": [math.nan, 3.6e6],
            "compress_energy_uncertainty_j": [math.nan, 3.6e4],
            "finetune_energy_j": [math.nan, math.nan],
            "finetune_energy_uncertainty_j": [math.nan, math.nan],
            "break_even_inferences": [math.nan, 7.2e6],
        }
    )


def test_energy_avoided_by_compression_is_net_of_its_one_off_cost() -> None:
    got = avoided_by_compression(
        sweep_frame(), "int8", 1e9, carbon_intensity_g_per_kwh=400.0, pue=1.2
    )
    net_kwh = (0.5 * 1e9 - 3.6e6) * 1.2 / 3.6e6
    assert got["mwh_avoided"] == pytest.approx(net_kwh / 1e3)
    assert got["mwh_avoided_u"] == pytest.approx((0.1 * 1e9 + 3.6e4) * 1.2 / 3.6e9)
    assert got["co2e_avoided_kg"] == pytest.approx(net_kwh * 0.4)
    below = avoided_by_compression(sweep_frame(), "int8", 1e6)
    assert below["mwh_avoided"] < 0  # below break-even the compression cost more than it saved
    with pytest.raises(ConfigError, match="no sweep row labelled 'int4'"):
        avoided_by_compression(sweep_frame(), "int4", 1e6)
    with pytest.raises(ConfigError, match="no energy saving"):
        avoided_by_compression(sweep_frame(), "baseline", 1e6)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenai", "kpi", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_kpi_command_writes_json_csv_and_an_html_page(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        fill(store)
    sweep = tmp_path / "sweep.csv"
    sweep_frame().to_csv(sweep, index=False)
    proc = _cli(
        "--store", str(path), "--period", "year", "--target", "kwh_per_job:-50%@2027",
        "--format", "json", "--sweep", str(sweep), "--sweep-row", "int8", "--deployment", "1e9",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["kpis"][0]["jobs"] == 5
    assert data["kpis"][0]["kwh_per_job"] == pytest.approx(expected(RUNS)["kwh_per_job"])
    assert data["progress"][0][0]["status"] == "baseline"
    assert data["avoided_by_compression"][0]["mwh_avoided"] > 0
    assert any("no FLOPs" in n for n in data["notes"])
    early = _cli("--store", str(path), "--period", "year", "--target", "kwh_per_job:-50%@2027",
                 "--baseline", "1999")  # fmt: skip
    assert early.returncode == 2 and early.stderr.count("\n") == 1
    assert "baseline '1999' has no kwh_per_job figure; periods with one: 2026" in early.stderr

    never = sweep_frame()
    never.loc[1, "break_even_inferences"] = math.inf  # a row that never breaks even
    never.to_csv(sweep, index=False)
    strict = _cli("--store", str(path), "--format", "json", "--sweep", str(sweep),
                  "--sweep-row", "int8", "--deployment", "1e9")  # fmt: skip
    assert strict.returncode == 0, strict.stderr

    def refuse(constant: str) -> None:
        raise ValueError(f"not standard JSON: {constant}")

    data = json.loads(strict.stdout, parse_constant=refuse)  # as jq reads it
    assert data["avoided_by_compression"][0]["break_even_inferences"] is None

    csv = _cli("--store", str(path), "--by", "team", "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    table = pd.read_csv(__import__("io").StringIO(csv.stdout))
    assert set(table["team"]) == {"nlp", "vision", "(untagged)"}
    assert "no PUE" in csv.stderr

    html = _cli("--store", str(path), "--by", "team", "--target", "renewable_share:60%@2030",
                "--format", "html", "--output", str(tmp_path / "kpi.html"))  # fmt: skip
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "kpi.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "renewable share" in page


def test_kpis_of_a_store_not_made_yet_by_a_tag_are_empty_and_make_no_file(
    tmp_path: Path,
) -> None:
    for args in (["--by", "team"], ["--by", "team,site", "--format", "json"]):
        proc = _cli("--store", str(tmp_path / "none.db"), *args)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["kpis"] == []
    assert not (tmp_path / "none.db").exists()


def test_a_file_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("name,value\nx,1\n")
    (tmp_path / "ragged.csv").write_text("a,b\nx,1\ny,1,2,3\n")  # pandas' message ends in \n
    for name, message in [
        ("notes.csv", "the sweep has no 'label' column"),
        ("ragged.csv", "cannot read the sweep"),
    ]:
        proc = _cli("--store", str(tmp_path / "none.db"), "--sweep", str(tmp_path / name),
                    "--sweep-row", "int8", "--deployment", "1")  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "kwh_per_tflop_pue:-50@2027"], "needs a percent sign"),
        (["--target", "joules:-50%@2027"], "unknown target metric"),
        (["--target", "garbage"], "a target is METRIC"),
        (["--by", "9team"], "tag name"),
        (["--by", "team,,site"], "holds an empty tag name"),
        (["--by", "team,"], "holds an empty tag name"),
        (["--sweep", "x.csv"], "go together"),
        (["--pue", "-1"], "--pue must be a number >= 1"),
        (["--pue", "nan"], "--pue must be a number >= 1"),
        (["--carbon-intensity", "-5"], "--carbon-intensity must be >= 0"),
        (["--since", "2027-01-01", "--until", "2020-01-01"], "swap them"),
        (["--baseline", "2025"], "add a --target"),
        (["--target", "kwh_per_job:-10%@2027", "--baseline", "2025"], "a quarter such as"),
        (["--target", "kwh_per_job:-10%@2027", "--baseline", "2025-Q5"], "a quarter such as"),
        (
            ["--period", "month", "--target", "kwh_per_job:-1%@2027", "--baseline", "2025-13"],
            "month",
        ),
    ],
)
def test_bad_kpi_options_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = _cli("--store", str(tmp_path / "none.db"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
