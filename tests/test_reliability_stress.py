"""Concurrency stress: the dashboard, the CLI and an application on one file at once.

For ``SECONDS`` seconds, on one database file:

- a dashboard process runs three browser sessions (Streamlit AppTest, one thread each, sharing the
  server's cached Workspace): one edits templates on the Templates screen, one deploys on the
  Deployments screen, one uploads and imports CSVs on the Metrics screen;
- an application process (``tests/reliability_helpers.py api``) runs four threads: serving
  (``get_prompt`` + ``track``, flushed in the background every half second), template edits,
  deployments and CSV imports;
- two CLI loops start ``promptver`` subprocesses one after the other: template updates, and
  deployments alternating with CSV imports.

Every operation's outcome is recorded. Afterwards every write reported as done is in the file,
nothing that was not reported is (commit, deployment and import counts match exactly), every
refusal is a clear busy or conflict error (never a traceback, one ``error: …`` line in the CLI),
every tracked event is stored, and ``fsck`` is clean. ``storage.busy_timeout`` is 3 s here so a
starved writer gives up in bounded time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from promptver import Workspace
from tests.reliability_helpers import EXPECTED_REFUSALS, GRACE, STRESS_TEMPLATES, events_csv

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 25.0
BUSY_TIMEOUT = "3"
pytestmark = pytest.mark.slow

#: what a refusal may say (API type names, dashboard error boxes, CLI ``error:`` lines)
REFUSAL_TEXT = (
    "database busy",
    "another writer changed the same data",
    "changed since",
    "moved",
    "aborted part-way",
)


def seed(db: Path) -> None:
    with Workspace.open(db) as ws:
        for name in STRESS_TEMPLATES:
            ws.templates.create(name, f"Answer {{q}} ({name} 1.0.0)", author="seed")
            ws.templates.update(name, f"Answer {{q}} ({name} 1.1.0)", author="seed")
        ws.deployments.deploy("shared", "1.1.0", "production", author="seed")
        ws.mark("seeded", "stress")  # the dashboard must not add its demo content


class CliLoop(threading.Thread):
    """Runs ``promptver`` subprocesses back to back and records each outcome."""

    def __init__(self, name: str, db: Path, out: Path, deadline: float, env: dict) -> None:
        super().__init__(name=name)
        self.db, self.out, self.deadline, self.env = db, out, deadline, env
        self.records: list[dict] = []
        self.rng = random.Random(name)

    def cli(self, op: str, *args: str, **fields) -> dict:
        cmd = [sys.executable, "-m", "promptver", "--db", str(self.db), "--json", *args]
        fields["started"] = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=120)
        rec = {"actor": self.name, "op": op, "code": p.returncode, "stderr": p.stderr, **fields}
        rec["at"] = time.time()
        if p.returncode == 0:
            rec.update(ok=True, result=json.loads(p.stdout))
        else:
            rec.update(ok=False, message=p.stderr.strip())
        self.records.append(rec)
        return rec

    def run(self) -> None:
        i = 0
        deployed = {"cli-t": None}
        while time.monotonic() < self.deadline or (
            not any(r["ok"] for r in self.records) and time.monotonic() < self.deadline + GRACE
        ):
            if self.name == "cli-edit":
                name = "shared" if i % 2 else "cli-t"
                content = f"CLI edit {i} of {name}: answer {{q}}"
                self.cli(
                    "template_update",
                    "template",
                    "update",
                    name,
                    "--content",
                    content,
                    "--author",
                    "cli",
                    template=name,
                    content=content,
                )
            elif i % 2 == 0:
                version = "1.0.0" if deployed["cli-t"] == "1.1.0" else "1.1.0"
                r = self.cli(
                    "deploy",
                    "deploy",
                    "cli-t",
                    version,
                    "--env",
                    "staging",
                    template="cli-t",
                    environment="staging",
                )
                if r["ok"]:
                    deployed["cli-t"] = version
            else:
                path = self.out / f"cli-{i}.csv"
                path.write_text(events_csv("cli-t", f"cli-imp{i}", 300))
                self.cli("import", "metrics", "import", str(path), file=path.name)
            i += 1
            time.sleep(self.rng.uniform(0.0, 0.2))


def read_records(out: Path) -> list[dict]:
    records = []
    for f in sorted(out.glob("*.jsonl")):
        records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return records


def test_dashboard_cli_and_application_share_the_file_without_losing_anything(tmp_path):
    db = tmp_path / "stress.duckdb"
    out = tmp_path / "outcomes"
    out.mkdir()
    seed(db)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMPTVER_BUSY_TIMEOUT": BUSY_TIMEOUT,
        "PROMPTVER_AUTHOR": "stress",
    }
    env.pop("PROMPTVER_DEBUG", None)
    workers = {
        role: subprocess.Popen(
            [sys.executable, "-m", "tests.reliability_helpers", role, str(db), str(out)]
            + [str(SECONDS)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("dashboard", "api")
    }
    deadline = time.monotonic() + SECONDS
    loops = [CliLoop(n, db, out, deadline, env) for n in ("cli-edit", "cli-deploy-import")]
    for t in loops:
        t.start()
    for t in loops:
        t.join(timeout=SECONDS + GRACE + 180)
    logs = {}
    for role, p in workers.items():
        stdout, stderr = p.communicate(timeout=SECONDS + GRACE + 180)
        logs[role] = stderr
        assert p.returncode == 0, f"{role} worker failed:\n{stderr[-3000:]}"
        assert "Traceback" not in stderr, stderr[-3000:]

    records = read_records(out) + [r for t in loops for r in t.records]
    ops = [r for r in records if r["op"] not in ("tracked", "finished")]

    # ---- every refusal is a clear busy/conflict error, never a bug -------------------------
    for r in ops:
        if r["ok"]:
            continue
        assert "traceback" not in r, r["traceback"]
        if r["actor"].startswith("cli"):
            assert r["code"] == 1, r
            lines = r["stderr"].strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), r["stderr"]
            assert "internal error" not in r["stderr"] and "Traceback" not in r["stderr"]
        elif r["actor"] == "api":
            assert r["error_type"] in EXPECTED_REFUSALS, r
        assert any(t in r["message"] for t in REFUSAL_TEXT), r

    # ---- every successful write is there, and nothing else ---------------------------------
    ws = Workspace.open(db)
    try:
        ws.metrics.flush()  # events an exiting process had to save next to the file
        report = ws.versions.fsck()
        assert report.ok, [p.message for p in report.problems]
        done = [r for r in ops if r["ok"]]
        _check_template_updates(ws, done)
        _check_deployments(ws, done)
        _check_imports(ws, done)
        _check_tracking(ws, records)
    finally:
        ws.close()

    summary = Counter((r["actor"], r["op"], "ok" if r["ok"] else "refused") for r in ops)
    print("\nstress outcomes:", json.dumps({" ".join(k): v for k, v in sorted(summary.items())}))
    for actor in sorted({r["actor"] for r in ops}):
        took = sorted(r["at"] - r.get("started", r["at"]) for r in ops if r["actor"] == actor)
        print(
            f"{actor}: {len(took)} operations, median {took[len(took) // 2]:.2f} s, "
            f"max {took[-1]:.2f} s"
        )
    print("refusals:", Counter(r.get("message", "")[:60] for r in ops if not r["ok"]))
    # the run really was concurrent: every actor got writes through
    for actor in ("dashboard", "api", "cli-edit", "cli-deploy-import"):
        assert any(r["actor"] == actor and r["ok"] for r in ops), f"{actor} wrote nothing"


def _check_template_updates(ws: Workspace, done: list[dict]) -> None:
    updates = [r for r in done if r["op"] == "template_update"]
    by_template = Counter(r["template"] for r in updates)
    for name in STRESS_TEMPLATES:
        t = ws.templates.get(name)
        tid = t.id
        history = ws.versions.log(tid, t.commit)
        on_main = {c.id: c for c in history}
        # no lost update and no phantom: main holds the 2 seed commits plus each reported save
        assert len(history) == 2 + by_template[name], name
        assert [c.version for c in history] == [f"1.{i}.0" for i in range(len(history))][::-1]
        for r in (r for r in updates if r["template"] == name):
            commit = r.get("commit") or (r.get("result") or {}).get("commit")
            if commit is None:  # the dashboard shows a 10-character prefix
                matches = [c for c in on_main if c.startswith(r["commit_prefix"])]
                assert len(matches) == 1, r
                commit = matches[0]
            assert on_main[commit].content == r["content"], r


def _check_deployments(ws: Workspace, done: list[dict]) -> None:
    deploys = [r for r in done if r["op"] == "deploy"]
    for name in STRESS_TEMPLATES:
        history = ws.deployments.history(name)
        ids = {d.id: d for d in history}
        mine = [r for r in deploys if r["template"] == name]
        seeded = 1 if name == "shared" else 0
        assert len(history) == seeded + len(mine), name
        for r in mine:
            dep_id = r.get("deployment_id") or r["result"]["id"]
            version = r.get("version") or r["result"]["version"]
            assert ids[dep_id].version == version, r
    with ws.db.read() as con:
        seqs = con.execute(
            "SELECT template_id, environment, list(env_seq ORDER BY env_seq) FROM deployments"
            " GROUP BY 1, 2"
        ).fetchall()
    for _tid, _env, seq in seqs:  # per template and environment: 1, 2, 3 … without a gap
        assert list(seq) == list(range(1, len(seq) + 1))


def _check_imports(ws: Workspace, done: list[dict]) -> None:
    imports = [r for r in done if r["op"] == "import"]
    stored = {i.id: i for i in ws.metrics.imports(10_000)}
    assert len(stored) == len(imports)
    with ws.db.read() as con:
        per_import = dict(
            con.execute(
                "SELECT import_id, count(*) FROM metric_events WHERE import_id IS NOT NULL"
                " GROUP BY 1"
            ).fetchall()
        )
    for r in imports:
        import_id = r.get("import_id") or r["result"]["import_id"]
        rows = r.get("rows") or r["result"]["rows_imported"]
        assert stored[import_id].rows_imported == rows == per_import[import_id], r


def _check_tracking(ws: Workspace, records: list[dict]) -> None:
    tracked = next(r for r in records if r["op"] == "tracked")["event_ids"]
    with ws.db.read() as con:
        stored = {
            r[0]
            for r in con.execute(
                "SELECT event_id FROM metric_events WHERE event_id LIKE 'api-ev-%'"
            ).fetchall()
        }
    assert len(tracked) > 0 and stored == set(tracked)
