from __future__ import annotations

from pathlib import Path

import pytest

from greenai.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve-proxy", "--upstream", "ftp://x"], "must be an http(s) URL"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--port", "70000"], "port"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--period", "0"], "--period"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--concurrency", "0"], "levels"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--rate", "x"], "levels"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--max-body-mb", "-1"], "of MB: '-1'"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--request-timeout", "0"], "seconds"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--startup-timeout", "-1"], "seconds"),
        (
            ["bench", "serve", "--upstream", "http://127.0.0.1:9", "--startup-timeout", "nan"],
            "seconds",
        ),
        (
            ["serve-proxy", "--upstream", "http://127.0.0.1:9", "--", "/nonexistent/server"],
            "cannot start",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bench_serve_refuses_a_missing_prompt_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "serve", "--upstream", "http://127.0.0.1:9"]
    assert main([*argv, "--prompt-file", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read prompts" in capsys.readouterr().err


def test_bench_serve_refuses_an_unwritable_output_before_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "serve", "--upstream", "http://127.0.0.1:9"]
    for flag in ("--json", "--html"):
        assert main([*argv, flag, str(tmp_path / "no" / "out")]) == 2
        err = capsys.readouterr().err
        assert f"{flag} " in err and "does not exist" in err and err.count("\n") == 1
