"""The docs site builds with --strict, and the CLI reference covers every command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from greenai.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_site_builds_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cli" / "index.html").is_file()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_cli_reference_documents_every_command_and_option() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = []
    for name, parser in subcommands().items():
        if f"## `greenai {name}" not in text:
            missing.append(f"greenai {name}")
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in text:
                    missing.append(f"greenai {name} {option}")
    assert not missing, f"docs/cli.md does not document: {missing}"
