"""Every ```python example in docs/ must run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = "`" * 3
EXAMPLES = [
    pytest.param(code, id=f"{md.name}-{i}")
    for md in sorted(DOCS.glob("*.md"))
    for i, code in enumerate(re.findall(FENCE + r"python\n(.*?)" + FENCE, md.read_text(), re.S))
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_docs_example_runs(code: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 10
