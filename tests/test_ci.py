"""The README's commands and snippet, and the CI script that runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = "`" * 3


def _test_command() -> str:
    (command,) = [
        line
        for block in re.findall(FENCE + r"bash\n(.*?)" + FENCE, README, re.S)
        for line in block.splitlines()
        if line.endswith("-m pytest")
    ]
    return command


def test_ci_installs_chromium_then_runs_exactly_the_readme_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = _test_command()
    assert command in lines
    at = lines.index(command)
    install = [i for i, line in enumerate(lines) if "apt-get install -y" in line]
    assert install and "chromium" in lines[install[0]] and install[0] < at
    assert any(re.match(r"export CI=", line) for line in lines[:at])


# Stands in for a Hugging Face model and loader: dict batches, a .loss on the output.
PRELUDE = """
import types, torch
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 8)
    def forward(self, input_ids, labels):
        logits = self.emb(input_ids).mean(1)
        return types.SimpleNamespace(loss=torch.nn.functional.cross_entropy(logits, labels))
model = Model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = [
    {"input_ids": torch.randint(0, 100, (16, 12)), "labels": torch.randint(0, 8, (16,))}
    for _ in range(3)
]
"""


def test_readme_wrap_a_loop_counts_the_samples_of_dict_batches(tmp_path: Path) -> None:
    section = README.split("## Wrap a loop", 1)[1]
    snippet = re.findall(FENCE + r"python\n(.*?)" + FENCE, section, re.S)[0]
    check = "\nassert job.result.steps.samples == 48, job.result.steps.samples\n"
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + snippet + check],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
