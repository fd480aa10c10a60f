"""Layering rules made into tests (docs/architecture.md): the core never imports the UI, pages
hold no SQL or statistics, SQL lives only in promptver/store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_promptver_does_not_import_streamlit():
    code = (
        "import sys, promptver, promptver.cli.main; "
        "import pkgutil, importlib; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(promptver.__path__, "
        "'promptver.') if not m.name.endswith('__main__')]; "
        "sys.exit(1 if 'streamlit' in sys.modules else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, f"promptver imported streamlit: {r.stderr[-2000:]}"


SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE TABLE|ALTER TABLE)\b[^\n]{0,80}\b"
    r"(FROM|INTO|SET|WHERE|TABLE)\b"
)


def _py(paths):
    for p in paths:
        yield from (p.rglob("*.py") if p.is_dir() else [p])


def test_pages_have_no_sql_database_access_or_statistics():
    for f in _py([ROOT / "pages", ROOT / "ui", ROOT / "app.py"]):
        text = f.read_text(encoding="utf-8")
        assert not SQL.search(text), f"SQL in {f.relative_to(ROOT)}"
        for forbidden in (
            "import duckdb",
            "from duckdb",
            ".execute(",
            "import scipy",
            "from scipy",
            "statsmodels",
            "os.environ",
        ):
            assert forbidden not in text, f"{forbidden!r} in {f.relative_to(ROOT)}"


def test_sql_lives_only_in_the_store():
    for f in _py([ROOT / "promptver"]):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith("promptver/store/"):
            continue
        text = f.read_text(encoding="utf-8")
        assert ".execute(" not in text, f"database call outside the store: {rel}"
        assert not SQL.search(text), f"SQL outside the store: {rel}"
