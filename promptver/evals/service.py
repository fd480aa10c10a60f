"""EvalService: import evaluation results, list datasets, runs and items, compare two versions.

``Workspace.evals`` (built on first use). The import is the one place where evaluation data
enters the store: :meth:`EvalService.add_import_hook` lets another capability (webhooks'
``eval.imported``) act inside the import's own transaction, so what it records commits or rolls
back with the rows.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from promptver.config import Settings
from promptver.errors import NotFound, Problem, ValidationError
from promptver.evals import csv_import
from promptver.evals.models import (
    EvalComparison,
    EvalDataset,
    EvalImportResult,
    EvalItem,
    EvalRun,
    PairedItem,
    PairedPower,
)
from promptver.limits import check_author, check_text
from promptver.store import evals as sql
from promptver.store.db import Database
from promptver.versioning import VersionControl, utcnow

if TYPE_CHECKING:
    from promptver.templates import TemplateService

ImportHook = Callable[[duckdb.DuckDBPyConnection, EvalImportResult], None]
"""Called inside the import's transaction after its rows are written (not for dry runs); an
exception refuses the import (nothing is written)."""

#: scores where lower is better (besides names ending in ``_error`` or ``_ms``)
LOWER_IS_BETTER = ("latency_ms", "cost_usd", "error")
MAX_REGRESSIONS = 50


def lower_is_better(metric: str) -> bool:
    """The contract's rule: lower is better for latency_ms, cost_usd, error, ``*_error``,
    ``*_ms``; higher for every other score."""
    return metric in LOWER_IS_BETTER or metric.endswith(("_error", "_ms"))


class EvalService:
    """Offline evaluations of one workspace; one transaction per call."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        versions: VersionControl,
        templates: TemplateService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.versions = versions
        self.templates = templates
        self._hooks: list[ImportHook] = []
        # two threads importing at once would each check the file hash without the other's row
        self._import_lock = threading.Lock()

    @property
    def alpha(self) -> float:
        return float(self.settings.ab_testing.statistical_analysis.significance_level)

    # -- import --------------------------------------------------------------------------
    def add_import_hook(self, fn: ImportHook) -> Callable[[], None]:
        """Run ``fn(con, result)`` inside every import's transaction, after the write.

        Returns:
            A function that removes the hook.
        """
        self._hooks.append(fn)

        def remove() -> None:
            if fn in self._hooks:
                self._hooks.remove(fn)

        return remove

    def import_csv(
        self,
        path: str | Path,
        *,
        author: str = "unknown",
        file_name: str | None = None,
        dry_run: bool = False,
        progress: csv_import.Progress | None = None,
    ) -> EvalImportResult:
        """Import an evaluation CSV whole, or refuse it whole (contract: "Offline evaluations").

        Each (dataset, template, version) of the file becomes a run of the commit the version
        names now. Import hooks run inside the same transaction.

        Raises:
            ImportError_: the file breaks a rule (up to 20 problems, each with line, column and
                reason), or the same file was imported before.
            DatabaseBusy: another process held the file past the configured wait.
        """
        started = time.monotonic()
        author = check_author(author) or "unknown"
        path = Path(path)
        name = check_text(file_name, "file_name", 255, single_line=True) if file_name else path.name
        now = utcnow()
        with self._import_lock, self.db.transaction() as con:
            raw = csv_import.check_and_write(
                self.db,
                path,
                file_name=name or path.name,
                author=author,
                resolve=self._resolver(),
                now=now,
                dry_run=dry_run,
                progress=progress,
            )
            result = EvalImportResult(**raw, seconds=round(time.monotonic() - started, 3))
            if not dry_run:
                for hook in list(self._hooks):
                    hook(con, result)
        if progress:
            progress(1.0, "done")
        return result

    def _resolver(self) -> csv_import.Resolver:
        cache: dict[str, tuple[str, str] | None] = {}
        names: list[str] = []

        def resolve(template: str, ref: str) -> tuple[str, str, str, str | None]:
            if template not in cache:
                try:
                    row = self.templates.row(template)
                    cache[template] = (row["id"], row["name"])
                except NotFound:
                    cache[template] = None
            found = cache[template]
            if found is None:
                if not names:
                    names.extend(t.name for t in self.templates.list(include_archived=True))
                close = difflib.get_close_matches(template, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise NotFound(f"unknown template '{template[:100]}'{hint}")
            tid, tname = found
            commit = self.versions.resolve(tid, ref, template_name=tname)
            return tid, tname, commit.id, commit.version

        return resolve

    # -- reading -------------------------------------------------------------------------
    def datasets(self) -> list[EvalDataset]:
        """Every dataset with its runs, commits, items and scores, by name."""
        with self.db.read() as con:
            return [EvalDataset(**d) for d in sql.datasets(con)]

    def runs(
        self,
        dataset: str | None = None,
        *,
        template: str | None = None,
        ref: str | None = None,
    ) -> list[EvalRun]:
        """Runs, newest first: of a dataset, of a template, of the commit a ref names."""
        tid = commit = None
        with self.db.read() as con:
            if template is not None:
                row = self.templates.row(template)
                tid = row["id"]
                if ref is not None:
                    commit = self.versions.resolve(tid, ref, template_name=row["name"]).id
            elif ref is not None:
                raise ValidationError("a ref needs its template (--template REF)")
            return [EvalRun(**r) for r in sql.runs(con, dataset, tid, commit)]

    def run(self, run_id: str) -> EvalRun:
        with self.db.read() as con:
            found = sql.runs(con, run_id=run_id)
        if not found:
            raise NotFound(f"unknown eval run '{run_id}'")
        return EvalRun(**found[0])

    def items(
        self,
        dataset: str,
        ref: str,
        *,
        template: str | None = None,
        run_id: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[EvalItem]:
        """Items of a version on a dataset (all its runs, samples averaged), or of one run."""
        with self.db.read() as con:
            if run_id is not None:
                runs = [self.run(run_id)]
            else:
                tid, _ = self._template(con, dataset, template)
                commit = self._commit(tid, ref)
                runs = [EvalRun(**r) for r in sql.runs(con, dataset, tid, commit)]
                if not runs:
                    raise NotFound(f"no evaluation of {ref} on dataset '{dataset}'")
            metrics = _union([r.metrics for r in runs])
            rows = sql.items(con, [r.id for r in runs], metrics, limit, offset)
        out = []
        for r in rows:
            vals = r[3:]
            out.append(
                EvalItem(
                    item_id=r[0],
                    samples=int(r[1]),
                    output=r[2],
                    scores={m: vals[2 * i] for i, m in enumerate(metrics)},
                    human={m: vals[2 * i + 1] for i, m in enumerate(metrics)},
                )
            )
        return out

    def _template(self, con: Any, dataset: str, template: str | None) -> tuple[str, str]:
        """(id, name) of the template compared on ``dataset``: the one given, or the only one."""
        if template is not None:
            row = self.templates.row(template)
            return row["id"], row["name"]
        runs = sql.runs(con, dataset)
        if not runs:
            known = [d["dataset"] for d in sql.datasets(con)]
            close = difflib.get_close_matches(dataset, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise NotFound(f"no evaluation on dataset '{dataset[:100]}'{hint}")
        found = sorted({(r["template_id"], r["template"]) for r in runs}, key=lambda t: t[1])
        if len(found) > 1:
            raise ValidationError(
                f"dataset '{dataset[:100]}' has evaluations of several templates "
                f"({', '.join(t[1] for t in found)}): name one with --template"
            )
        return found[0]

    def _commit(self, template_id: str, ref: str) -> str:
        return self.versions.resolve(template_id, ref).id

    # -- comparison ----------------------------------------------------------------------
    def compare(
        self,
        dataset: str,
        baseline: str,
        candidate: str,
        *,
        template: str | None = None,
        metric: str | None = None,
        alpha: float | None = None,
    ) -> EvalComparison:
        """The paired comparison of two versions on a dataset (contract shape).

        Raises:
            NotFound: unknown dataset, template, ref or metric; a version never evaluated there.
            ValidationError: both refs name the same commit.
        """
        from promptver.evals.compare import compare

        alpha = self.alpha if alpha is None else alpha
        with self.db.read() as con:
            tid, tname = self._template(con, dataset, template)
            b = self.versions.resolve(tid, baseline, template_name=tname)
            c = self.versions.resolve(tid, candidate, template_name=tname)
            if b.id == c.id:
                raise ValidationError(
                    f"baseline {baseline} and candidate {candidate} are the same commit "
                    f"({b.id[:10]}): compare two different versions"
                )
            runs: dict[str, list[EvalRun]] = {}
            for side, commit, ref in (("baseline", b, baseline), ("candidate", c, candidate)):
                found = [EvalRun(**r) for r in sql.runs(con, dataset, tid, commit.id)]
                if not found:
                    raise NotFound(
                        f"{tname} {commit.version or ref} ({side}) has no evaluation on dataset "
                        f"'{dataset[:100]}'; import one with promptver eval import FILE.csv"
                    )
                runs[side] = found
            metrics = _union([r.metrics for r in runs["baseline"] + runs["candidate"]])
            if metric is not None:
                if metric not in metrics:
                    raise NotFound(
                        f"metric '{metric[:100]}' is not scored for both versions on "
                        f"'{dataset[:100]}' (scores: {', '.join(metrics) or 'none'})"
                    )
                metrics = [metric]
            return compare(
                con,
                dataset=dataset,
                template_id=tid,
                template=tname,
                baseline=b,
                candidate=c,
                baseline_label=b.version or baseline,
                candidate_label=c.version or candidate,
                metrics=metrics,
                alpha=alpha,
                lower_is_better=lower_is_better,
                max_regressions=MAX_REGRESSIONS,
            )

    def paired(
        self,
        dataset: str,
        baseline: str,
        candidate: str,
        *,
        metric: str,
        template: str | None = None,
        outputs: bool = True,
    ) -> list[PairedItem]:
        """Each item scored for both versions in ``metric`` (the points of a paired scatter),
        with both outputs for a side-by-side view; by item id."""
        from promptver.evals.compare import paired_values

        with self.db.read() as con:
            tid, tname = self._template(con, dataset, template)
            b = self.versions.resolve(tid, baseline, template_name=tname)
            c = self.versions.resolve(tid, candidate, template_name=tname)
            return paired_values(con, dataset, tid, b.id, c.id, metric, outputs)

    def power(
        self,
        dataset: str,
        baseline: str,
        candidate: str,
        *,
        metric: str,
        difference: float,
        power: float = 0.8,
        template: str | None = None,
    ) -> PairedPower:
        """Items a paired comparison needs to detect ``difference`` in ``metric``, from the
        standard deviation of the differences observed between these two versions."""
        from promptver.evals.stats import paired_items_needed, paired_power_now

        if not 0 < power < 1:
            raise ValidationError(
                "invalid input:", [Problem("must be between 0 and 1", field="power")]
            )
        if not difference or difference != difference or abs(difference) == float("inf"):
            raise ValidationError(
                "invalid input:",
                [Problem("must be a finite difference other than 0", field="difference")],
            )
        cmp = self.compare(dataset, baseline, candidate, template=template, metric=metric)
        m = cmp.metrics[0]
        needed = paired_items_needed(m.sd_diff, difference, cmp.alpha, power)
        message = None
        if needed is None:
            message = m.message or "the differences do not vary: no power calculation"
        return PairedPower(
            metric=metric,
            difference=difference,
            sd_diff=m.sd_diff,
            alpha=cmp.alpha,
            power=power,
            items_needed=needed,
            items_now=m.items,
            power_now=paired_power_now(m.sd_diff, difference, m.items, cmp.alpha),
            message=message,
        )


def _union(lists: list[list[str]]) -> list[str]:
    out: list[str] = []
    for names in lists:
        for n in names:
            if n not in out:
                out.append(n)
    return out
