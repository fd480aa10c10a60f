"""The demo's offline evaluation: a golden set of 200 questions scored for qa-basic's versions.

Each version on ``main`` (three in the demo) was scored by an LLM judge (``quality`` in [0, 1],
``correct`` true/false, ``latency_ms``) on the same 200 items, two samples each, a day after
it was committed; people labelled 40 of the items (``quality_human``). The judge is generous:
about 0.08 above the people on average, so the calibrated means sit below the judge's. The
second version is better than the first; the third is about as good but slower, the release
the demo rolls back.
"""

from __future__ import annotations

import csv
import random
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptver.workspace import Workspace

DATASET = "qa-golden-200"
TEMPLATE = "qa-basic"
ITEMS = 200
LABELLED = 40
SAMPLES = 2
#: per version in order: (quality shift, latency shift in ms)
EFFECTS = ((0.0, 0.0), (0.06, 40.0), (0.05, 380.0))
TOPICS = ("billing", "refunds", "shipping", "accounts", "privacy", "returns", "warranty", "api")


def _write(path: Path, version: str, index: int, rng: random.Random) -> None:
    q_shift, lat_shift = EFFECTS[min(index, len(EFFECTS) - 1)]
    item_rng = random.Random(20261202)  # the items themselves are the same for every version
    difficulty = [item_rng.uniform(-0.25, 0.25) for _ in range(ITEMS)]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "dataset",
                "item_id",
                "template",
                "version",
                "output",
                "quality",
                "quality_human",
                "correct",
                "latency_ms",
            ]
        )
        for i in range(ITEMS):
            topic = TOPICS[i % len(TOPICS)]
            human_true = min(1.0, max(0.0, 0.55 + q_shift + difficulty[i]))
            for s in range(SAMPLES):
                judge = min(1.0, max(0.0, human_true + 0.08 + rng.gauss(0, 0.07)))
                label = ""
                if i < LABELLED and s == 0:
                    label = f"{min(1.0, max(0.0, human_true + rng.gauss(0, 0.05))):.3f}"
                answer = (
                    f"({version}) About {topic}: "
                    + ("see the policy page; " if judge < 0.5 else "")
                    + f"the answer to question {i + 1} is in section {1 + i % 9}."
                )
                w.writerow(
                    [
                        DATASET,
                        f"q{i + 1:03d}",
                        TEMPLATE,
                        version,
                        answer,
                        f"{judge:.3f}",
                        label,
                        "true" if judge >= 0.5 else "false",
                        f"{max(50.0, 620 + lat_shift + rng.gauss(0, 90)):.0f}",
                    ]
                )


def add_demo_evals(
    ws: Workspace, seed: int, at: Callable[[datetime], None], now: datetime, authors: list[str]
) -> None:
    """Import one eval file per version of qa-basic on ``main``, each a day after its commit
    (on the demo clock ``at``), so the Evaluations screen has a dataset with runs to compare."""
    rng = random.Random(seed * 7919 + 19)
    t = ws.templates.get(TEMPLATE)
    log = list(reversed(ws.versions.log(t.id, t.commit, first_parent=True)))
    versions = [c for c in log if c.version]
    with tempfile.TemporaryDirectory(prefix="promptver-demo-evals-") as folder:
        for k, c in enumerate(versions[:3]):
            when = min(c.created_at + timedelta(days=1), now - timedelta(hours=1))
            at(when)
            path = Path(folder) / f"{DATASET}-{c.version}.csv"
            _write(path, str(c.version), k, rng)
            ws.evals.import_csv(path, author=authors[k % len(authors)])
