from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from greenai.errors import ConfigError
from greenai.safe_output import check_output, csv_safe, cut, terminal_text, write_output


def test_terminal_text_drops_escape_sequences_and_controls_but_keeps_lines() -> None:
    name = "train\x1b]0;owned\x07\x1b[2J\r\x9b31m\x00ok\tdone\n"
    cleaned = terminal_text(name)
    assert cleaned == "train]0;owned[2J31mok\tdone\n"
    assert not any(ord(c) < 32 and c not in "\t\n" for c in cleaned)


def test_cut_marks_what_it_cut() -> None:
    assert cut("short", 10) == "short"
    assert cut("a" * 50, 10) == "a" * 9 + "…" and len(cut("a" * 50, 10)) == 10


def test_csv_safe_neutralises_formula_cells_and_leaves_numbers() -> None:
    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(A1)", "\tx", "plain"],
            "energy_j": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    safe = csv_safe(frame)
    assert list(safe["name"]) == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-cmd",
        "'@SUM(A1)",
        "'\tx",
        "plain",
    ]
    assert list(safe["energy_j"]) == [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert frame["name"].iloc[0].startswith("=")  # the input is left as it was


def test_check_output_refuses_a_folder_and_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        check_output(tmp_path, "--output")
    with pytest.raises(ConfigError, match="does not exist"):
        check_output(tmp_path / "no" / "such" / "r.html", "--output")
    assert check_output(tmp_path / "r.html", "--output") == tmp_path / "r.html"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full is Linux's full disk")
def test_a_full_disk_is_a_config_error_not_an_oserror() -> None:
    with pytest.raises(ConfigError, match="No space left"):
        write_output("/dev/full", "x" * 10_000, "--output")
