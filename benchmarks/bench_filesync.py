"""Export and sync of 1,000 templates, beside writing the same files with plain ``yaml.safe_dump``.

Run: ``python benchmarks/bench_filesync.py [--templates N]``

Target (issue #21): a sync of 1,000 templates ≤ 5 s. The baseline writes the same documents
(read from the database the same way) with ``yaml.safe_dump`` and no comparison at all; the
ratio shows what the byte-stable dump, the record and the three-way bookkeeping cost. Timed:
``export`` (all files written), a ``sync`` with nothing to do, and a ``sync`` after 10 files
were edited (10 new versions).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed promptver

import yaml  # noqa: E402

from promptver import Workspace  # noqa: E402
from promptver.filesync import FileSync, file_for  # noqa: E402

CONTENT = (
    "You are a helpful support assistant for {product}.\n"
    "Answer the question using only the context below.\n\nContext:\n{context}\n\n"
    "Question: {question}\nAnswer:"
)


def baseline(ws: Workspace, out: Path) -> None:
    for t in ws.templates.list():
        doc = {
            "kind": t.kind,
            "name": t.name,
            "version": t.version,
            "description": t.description,
            "tags": t.tags,
            "content": t.content,
            "metadata": t.metadata,
        }
        path = file_for(out, t.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", type=int, default=1000)
    n = ap.parse_args().templates
    tmp = Path(tempfile.mkdtemp(prefix="pv-bench-sync-"))
    try:
        ws = Workspace.open(tmp / "b.duckdb")
        with ws.session():
            for i in range(n):
                ws.templates.create(
                    f"team{i % 10}/prompt-{i:04d}",
                    CONTENT + f" ({i})",
                    description=f"prompt number {i}",
                    tags=["bench", f"t{i % 7}"],
                    metadata={"variables": {"product": {"type": "str", "default": "Acme"}}},
                )
        fs = FileSync(ws)
        t0 = time.perf_counter()
        baseline(ws, tmp / "base")
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        fs.export(tmp / "files")
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = fs.sync(tmp / "files")
        t_noop = time.perf_counter() - t0
        assert not r.changed, r.as_dict()
        for i in range(10):
            p = file_for(tmp / "files", f"team{i % 10}/prompt-{i:04d}")
            p.write_text(p.read_text().replace("Answer:", "Answer briefly:"), encoding="utf-8")
        t0 = time.perf_counter()
        r = fs.sync(tmp / "files")
        t_edit = time.perf_counter() - t0
        assert len(r.committed) == 10, r.as_dict()
        ws.close()
        print(f"{n} templates")
        print(f"baseline yaml.safe_dump of every file : {t_base:7.2f} s")
        print(
            f"promptver export                      : {t_export:7.2f} s  ({t_export / t_base:.2f}x)"
        )
        print(f"promptver sync, nothing to do         : {t_noop:7.2f} s  ({t_noop / t_base:.2f}x)")
        print(f"promptver sync, 10 files edited       : {t_edit:7.2f} s  ({t_edit / t_base:.2f}x)")
        print(f"target: sync ≤ 5 s -> {'ok' if max(t_noop, t_edit) <= 5 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
