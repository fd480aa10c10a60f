"""The README's shell examples run, verbatim, on a fresh database.

Every ```bash block of README.md runs in order in one empty temporary directory, as a reader
would type it in a checkout: the commands of a block run one by one (lines joined at a trailing
backslash, here-documents kept whole) with ``bash``, each must exit 0, and a failure names the
README line. ``promptver`` is this checkout's CLI (``python -m promptver`` with the current
interpreter), ``PROMPTVER_DB`` points into the temporary directory, and the files the tour reads
from the repository (``data/example_events.csv``) are copied there.

Not run: blocks that install packages or start servers or the test suite (``pip install``,
``streamlit run``, ``promptver serve``, ``pytest``) — the set-up commands of Quick start and
Development; CI runs those itself (.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: a block with one of these is set-up, not an example to replay
NOT_RUN = re.compile(r"\b(pip install|streamlit run|promptver serve|pytest)\b")
#: files of the checkout that the examples read
CHECKOUT_FILES = ("data/example_events.csv",)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line of README.md where the command starts
    text: str


def bash_blocks(markdown: str) -> list[list[Command]]:
    """The commands of each ```bash block, in order."""
    blocks: list[list[Command]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        i += 1
        commands: list[Command] = []
        while i < len(lines) and lines[i].strip() != "```":
            start, text = i + 1, lines[i]
            i += 1
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            while text.endswith("\\") and i < len(lines):  # continued on the next line
                text += "\n" + lines[i]
                i += 1
            heredoc = _HEREDOC.search(text)
            if heredoc:  # the body, up to the terminator line
                while i < len(lines) and lines[i] != heredoc.group(2):
                    text += "\n" + lines[i]
                    i += 1
                text += "\n" + heredoc.group(2)
                i += 1
            commands.append(Command(start, text))
        blocks.append(commands)
        i += 1
    return blocks


def runnable(blocks: list[list[Command]]) -> list[list[Command]]:
    return [b for b in blocks if not any(NOT_RUN.search(c.text) for c in b)]


def test_the_extractor_reads_continuations_heredocs_and_skips_set_up() -> None:
    text = (
        "intro\n```bash\npip install -e . && streamlit run app.py\n```\n"
        "```bash\n# a comment\npromptver a \\\n    --b c   # note\n\n"
        "cat > f.yaml <<'EOF'\nx: 1\n# not a comment here\nEOF\npromptver d\n```\n"
        "```python\nprint()\n```\n"
    )
    blocks = bash_blocks(text)
    assert len(blocks) == 2
    assert runnable(blocks) == [
        [
            Command(7, "promptver a \\\n    --b c   # note"),
            Command(10, "cat > f.yaml <<'EOF'\nx: 1\n# not a comment here\nEOF"),
            Command(14, "promptver d"),
        ]
    ]


def test_the_readme_examples_run_verbatim_on_a_fresh_database(tmp_path: Path) -> None:
    blocks = runnable(bash_blocks(README.read_text(encoding="utf-8")))
    commands = [c for b in blocks for c in b]
    # the CLI tour is among them (an empty list would pass vacuously)
    assert any(c.text.startswith("promptver init") for c in commands)
    assert any("metrics import data/example_events.csv" in c.text for c in commands)
    assert len(commands) > 30
    for rel in CHECKOUT_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTVER_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PROMPTVER_DB=str(tmp_path / "data" / "promptver.duckdb"),
        PROMPTVER_AUTHOR="readme",
        PV_PYTHON=sys.executable,
    )
    # `promptver` is this checkout's CLI, whatever console script is installed
    prelude = 'set -o pipefail\npromptver() { "$PV_PYTHON" -m promptver "$@"; }\n'
    for c in commands:
        proc = subprocess.run(
            ["bash", "-c", prelude + c.text],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0 or "Traceback" in proc.stderr:
            pytest.fail(
                f"README.md line {c.line} failed (exit {proc.returncode}):\n  {c.text}\n"
                f"stdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-1500:]}",
                pytrace=False,
            )


def test_the_readme_links_only_to_files_of_the_repository() -> None:
    """Users have the repository, not our working notes: every relative link resolves inside it."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    assert "docs/architecture.md" in local
    for link in local:
        target = (ROOT / link).resolve()
        assert target.is_relative_to(ROOT) and target.exists(), link
    assert "shared/" not in text
