"""The shapes of offline evaluations (pydantic, ``extra="forbid"``).

``EvalComparison.contract()`` is the JSON of ``eval compare --json`` (contract: "Offline
evaluations"); the extra keys (``message`` per metric, ``agreement`` and the per-version label
counts inside ``calibrated``) add to that shape without changing it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from promptver.models.core import Model


class EvalRun(Model):
    """The rows of one import for one (dataset, template, commit)."""

    id: str
    import_id: str
    dataset: str
    template_id: str
    template: str
    commit: str
    #: the ref as written in the file (a version, branch or commit prefix)
    ref: str
    #: the version of the commit when it was imported (None off main)
    version: str | None = None
    #: the commit's version now (a commit on a branch may have been merged since)
    version_now: str | None = None
    metrics: list[str]
    rows: int
    items: int
    created_at: datetime
    file_name: str
    created_by: str

    @property
    def label(self) -> str:
        v = self.version_now or self.version
        return v or f"{self.ref} ({self.commit[:10]})"


class EvalDataset(Model):
    dataset: str
    runs: int
    commits: int
    items: int
    templates: list[str]
    metrics: list[str]
    last_import: datetime | None = None


class EvalImportResult(Model):
    """What ``eval import`` reports; ``contract()`` is the ``--json`` shape."""

    import_id: str
    file_name: str
    sha256: str
    rows_imported: int
    scores: list[str]
    human: list[str] = Field(default_factory=list)
    runs: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float = 0.0

    def contract(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows_imported": self.rows_imported,
            "runs": [
                {
                    "id": r["id"],
                    "dataset": r["dataset"],
                    "template": r["template"],
                    "version": r["version"],
                    "commit": r["commit_id"],
                    "rows": r.get("rows"),
                    "items": r.get("items"),
                }
                for r in self.runs
            ],
        }


class EvalItem(Model):
    """One item of a run (or of several runs of one commit): its mean scores over samples."""

    item_id: str
    samples: int
    output: str | None = None
    scores: dict[str, float | None]
    human: dict[str, float | None] = Field(default_factory=dict)


class Agreement(Model):
    """How a judge's scores relate to human labels on the labelled items (both versions)."""

    pairs: int
    #: mean of judge − human (positive: the judge scores higher than people do)
    mean_bias: float | None
    #: Pearson correlation of judge and human item scores (None below 3 pairs or no variance)
    correlation: float | None


class Calibrated(Model):
    """Prediction-powered means of the human-scale score (Angelopoulos et al. 2023)."""

    baseline_mean: float | None
    baseline_ci_low: float | None
    baseline_ci_high: float | None
    candidate_mean: float | None
    candidate_ci_low: float | None
    candidate_ci_high: float | None
    #: the smaller of the two versions' labelled item counts
    labelled_items: int
    baseline_labelled_items: int
    candidate_labelled_items: int
    agreement: Agreement


class MetricComparison(Model):
    name: str
    items: int
    baseline_mean: float | None
    candidate_mean: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None
    wilcoxon_p_value: float | None
    wins: int
    ties: int
    losses: int
    significant: bool
    calibrated: Calibrated | None = None
    #: "higher" or "lower": which way is better
    direction: str = "higher"
    #: standard deviation of the item differences (ddof 1), for power
    sd_diff: float | None = None
    #: why a figure is missing (fewer than 2 items, no variation …)
    message: str | None = None


class Regression(Model):
    item_id: str
    metric: str
    baseline: float
    candidate: float
    diff: float
    baseline_output: str | None = None
    candidate_output: str | None = None


class PairedItem(Model):
    """One item scored for both versions: its mean score under each (samples averaged)."""

    item_id: str
    baseline: float
    candidate: float
    diff: float
    baseline_output: str | None = None
    candidate_output: str | None = None


class EvalComparison(Model):
    dataset: str
    template: str
    baseline: str
    candidate: str
    alpha: float
    metrics: list[MetricComparison]
    regressions: list[Regression]
    baseline_commit: str = ""
    candidate_commit: str = ""

    def contract(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude={"baseline_commit", "candidate_commit"})
        for m in out["metrics"]:
            m.pop("direction", None)
            m.pop("sd_diff", None)
        for r in out["regressions"]:
            r.pop("baseline_output", None)
            r.pop("candidate_output", None)
        return out

    def metric(self, name: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.name == name), None)


class PairedPower(Model):
    """Items needed for a paired comparison to detect ``difference``."""

    metric: str
    difference: float
    sd_diff: float | None
    alpha: float
    power: float
    items_needed: int | None
    items_now: int
    #: the power the current number of items has for ``difference``
    power_now: float | None
    message: str | None = None
