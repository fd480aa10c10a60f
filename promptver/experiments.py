"""A/B experiments: the lifecycle (create, edit, start, stop) and the routing of live traffic.

An experiment compares variants of one template (each a ref: version, branch or commit prefix)
in one environment. Its life is ``draft → running → completed``, or ``stopped`` early with a
reason:

- **draft**: everything can be edited; refs are resolved again when it starts.
- **running**: ``get_prompt`` routes users (:meth:`ExperimentService.assign`). The variants, their
  commits, the split, the salt, the coverage and the metrics are frozen: moving users between
  variants mid-way biases the results, so a change means a new experiment. Only the description
  and hypothesis may still be edited. At most one experiment runs per template and environment.
- **completed** / **stopped**: routing has ended; the final results are frozen (see
  :meth:`ExperimentService.freeze_results`).

Reading and writing experiment files is :mod:`promptver.experiment_files`; checking one (every
problem at once, each naming its field) is :mod:`promptver.experiment_checks`. The file format
and the rules are documented in ``docs/experiments.md``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from promptver.bandit_routing import BanditRouting
from promptver.config import Settings
from promptver.errors import Conflict, NotFound, Problem, ValidationError
from promptver.experiment_checks import Checker, Unresolved, build, validate
from promptver.experiment_checks import parse_time as parse_time
from promptver.experiment_defs import STATUSES as STATUSES  # re-exported: api.routes
from promptver.experiment_files import FILE_FIELDS as FILE_FIELDS
from promptver.experiment_files import dump_spec as dump_spec
from promptver.experiment_files import load_spec as load_spec
from promptver.experiment_files import read_spec_file as read_spec_file
from promptver.experiment_files import to_spec as to_spec
from promptver.limits import check_author
from promptver.models.experiments import BUILTIN_METRICS, Assignment, Experiment, ExperimentLogEntry
from promptver.outbox import emit_experiment
from promptver.routing import Router, router_for, user_key
from promptver.store import experiments as sql
from promptver.store import templates as tsql
from promptver.store.db import Database
from promptver.versioning import VersionControl, utcnow

# The file format (experiment_files: FILE_FIELDS, load_spec, read_spec_file, dump_spec, to_spec)
# and its validation (experiment_checks: parse_time) live in their own modules; the names are
# re-exported here for the CLI, the pages and the tests.

#: Fields that may still change once an experiment has started.
TEXT_FIELDS = frozenset({"description", "hypothesis"})
MAX_REASON = 500


ResultsProvider = Callable[[Experiment], Any]

# Bumped on every experiment change made in this process, per database file, so that cached
# routing answers of every Workspace on that file are dropped at once (other processes see the
# change within the cache TTL).
_GENERATION: dict[str, int] = {}
_GEN_LOCK = threading.Lock()


def _bump(key: str) -> None:
    with _GEN_LOCK:
        _GENERATION[key] = _GENERATION.get(key, 0) + 1


# ---- the service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Live:
    """What ``assign`` needs about the experiment running on one template and environment."""

    experiment: Experiment
    router: Router
    commits: dict[str, str]
    refs: dict[str, str]
    #: bandits: the period of the current split (the seq of its bandit_weights row)
    period: int = 0


class ExperimentService:
    """Create, validate, start, stop and route experiments; one transaction per call.

    ``results_provider`` computes an experiment's final results when it stops (the statistics
    engine sets it; see :meth:`freeze_results`). Without one, the results stay empty (NULL).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        versions: VersionControl,
        results_provider: ResultsProvider | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.versions = versions
        self.results_provider = results_provider
        self._gen_key = str(db.path)
        self._cache: dict[tuple[str, str], tuple[float, int, _Live | None]] = {}
        self._bandit = BanditRouting(db)

    # -- reading --------------------------------------------------------------------------
    def _find(self, con: Any, ref: str) -> Experiment:
        if not isinstance(ref, str) or not ref.strip():
            raise NotFound("name an experiment by its id or name")
        ref = ref.strip()
        exp = sql.get(con, ref)
        if exp is not None:
            return exp
        ids = sql.ids_named(con, ref)
        if len(ids) > 1:  # only possible in files written without the unique index
            raise ValidationError(
                f"experiment name '{ref}' is ambiguous: ids {', '.join(ids)}; use the id"
            )
        if not ids:
            raise NotFound(
                f"unknown experiment '{ref}' (not an id or a name; see 'promptver experiment list')"
            )
        found = sql.get(con, ids[0])
        assert found is not None
        return found

    def get(self, ref: str) -> Experiment:
        """The experiment with id or name ``ref`` (an id wins over a name).

        Raises:
            NotFound: no such experiment.
        """
        with self.db.read() as con:
            return self._find(con, ref)

    def list(self, *, status: str | None = None, template: str | None = None) -> list[Experiment]:
        """Experiments (running first, then newest first), optionally filtered.

        Raises:
            ValidationError: an unknown status.
            NotFound: an unknown template.
        """
        if status is not None and status not in STATUSES:
            raise ValidationError(
                "invalid filter:",
                [Problem(f"must be one of {', '.join(STATUSES)}, not {status!r}", field="status")],
            )
        with self.db.read() as con:
            tid = None
            if template:
                row = tsql.template_row(con, template)
                if row is None:
                    raise NotFound(f"unknown template '{template}'")
                tid = row["id"]
            return sql.list_experiments(con, status=status, template_id=tid)

    def history(self, ref: str) -> list[ExperimentLogEntry]:
        """The experiment's lifecycle events, oldest first."""
        with self.db.read() as con:
            return sql.history(con, self._find(con, ref).id)

    def stored_results(self, ref: str) -> Any:
        """The final results frozen when the experiment stopped (``None`` if none were)."""
        with self.db.read() as con:
            return sql.stored_results(con, self._find(con, ref).id)

    def known_metrics(self) -> dict[str, str | None]:
        """Metric names an experiment may use: built-ins (with their direction) and custom
        metrics present in stored events (direction ``None``: higher unless configured)."""
        with self.db.read() as con:
            custom = sql.custom_metric_names(con)
        out: dict[str, str | None] = dict(BUILTIN_METRICS)
        for name in custom:
            out.setdefault(name, None)
        return out

    # -- validation ------------------------------------------------------------------------
    def _resolve_refs(self, template: Any, refs: list[Any]) -> dict[tuple[str, str], Any]:
        """``(template_id, ref) → commit id`` or the error message, for the refs of a spec.

        Runs before the write transaction, each lookup in its own read: a failed lookup inside
        the write transaction would abort it (see ``Database.transaction``), and commits are
        immutable, so resolving a moment earlier changes nothing.
        """
        if not isinstance(template, str) or not template.strip():
            return {}
        with self.db.read() as con:
            row = tsql.template_row(con, template.strip())
        if row is None:
            return {}
        out: dict[tuple[str, str], Any] = {}
        for ref in refs:
            if not isinstance(ref, str) or not ref.strip():
                continue
            key = (row["id"], ref.strip())
            if key in out:
                continue
            try:
                out[key] = self.versions.resolve(
                    row["id"], ref.strip(), template_name=row["name"]
                ).id
            except (NotFound, ValidationError) as exc:
                out[key] = Unresolved(exc.message)
        return out

    def _spec_refs(self, spec: Any) -> dict[tuple[str, str], Any]:
        if not isinstance(spec, Mapping):
            return {}
        variants = spec.get("variants")
        refs = (
            [v.get("ref") for v in variants if isinstance(v, Mapping)]
            if isinstance(variants, list)
            else []
        )
        return self._resolve_refs(spec.get("template"), refs)

    def check(self, spec: Mapping[str, Any], *, existing: str | None = None) -> list[Problem]:
        """Every problem of ``spec`` (empty when it is valid); nothing is written.

        ``existing`` is the id or name of the experiment being edited (its own name is not a
        clash).
        """
        resolved = self._spec_refs(spec)
        with self.db.read() as con:
            current = self._find(con, existing) if existing else None
            _, problems = validate(con, spec, current, resolved, self.settings)
        return problems

    # -- writing --------------------------------------------------------------------------
    def create(self, spec: Mapping[str, Any], *, author: str = "unknown") -> Experiment:
        """Create a draft experiment from ``spec`` (the fields of an experiment file).

        Raises:
            ValidationError: every problem, each naming its field; nothing is written.
        """
        author = check_author(author)
        eid = uuid.uuid4().hex[:12]
        resolved = self._spec_refs(spec)
        with self.db.transaction() as con:
            plan, problems = validate(con, spec, None, resolved, self.settings)
            if problems or plan is None:
                raise ValidationError("invalid experiment:", problems)
            exp = build(plan, eid=eid, current=None, author=author)
            sql.insert(con, exp)
            sql.log(con, eid, exp.created_at, "created", author)
        self._changed()
        return self.get(eid)

    def create_from_file(self, path: str | Path, *, author: str = "unknown") -> Experiment:
        """:meth:`create` from a YAML or JSON file."""
        return self.create(read_spec_file(path), author=author)

    def update(self, ref: str, spec: Mapping[str, Any], *, author: str = "unknown") -> Experiment:
        """Replace a draft's configuration with ``spec``.

        Once an experiment has started only ``description`` and ``hypothesis`` may change.

        Raises:
            ValidationError: invalid spec (nothing is written).
            Conflict: the experiment has started and ``spec`` changes a frozen field.
        """
        author = check_author(author)
        resolved = self._spec_refs(spec)
        with self.db.transaction() as con:
            current = self._find(con, ref)
            draft = current.status == "draft"
            plan, problems = validate(
                con, spec, current, resolved if draft else None, self.settings
            )
            if problems or plan is None:
                raise ValidationError(f"invalid experiment '{current.name}':", problems)
            new = build(plan, eid=current.id, current=current, author=author)
            before, after = to_spec(current), to_spec(new)
            changed = [k for k in FILE_FIELDS if before.get(k) != after.get(k)]
            if not draft:
                frozen = [k for k in changed if k not in TEXT_FIELDS]
                if frozen:
                    raise Conflict(
                        f"experiment '{current.name}' is {current.status}: {', '.join(frozen)} "
                        "cannot change once it has started (changing variants or the split "
                        "moves users between variants and biases the results); create a new "
                        "experiment instead, e.g. from a copy of this one's configuration"
                    )
                sql.set_text(con, current.id, new.description, new.hypothesis)
            else:
                sql.replace_config(con, new)
            if changed:
                sql.log(con, current.id, utcnow(), "edited", author, ", ".join(changed))
        self._changed()
        return self.get(current.id)

    def delete(self, ref: str, *, author: str = "unknown") -> None:
        """Delete a draft (experiments that ran are history and are kept).

        Raises:
            Conflict: the experiment has started, or events already refer to it.
        """
        author = check_author(author)
        with self.db.transaction() as con:
            exp = self._find(con, ref)
            if exp.status != "draft":
                raise Conflict(
                    f"experiment '{exp.name}' is {exp.status}: only drafts can be "
                    "deleted (experiments that ran stay as history)"
                )
            events = sql.event_count(con, exp.id)
            if events:
                raise Conflict(
                    f"experiment '{exp.name}' has {events} metric events attributed "
                    "to it; it cannot be deleted"
                )
            sql.delete(con, exp.id)
        self._changed()

    def start(
        self, ref: str, *, author: str = "unknown", now: datetime | None = None
    ) -> Experiment:
        """Start a draft: resolve and freeze its refs, begin routing in its environment.

        ``now`` is the start time to record (default: the current time).

        Raises:
            Conflict: the experiment is not a draft.
            ValidationError: its template is gone or archived, its environment is not
                configured, a ref no longer resolves, its planned end has passed, or another
                experiment already runs on the same template and environment (field
                ``environment``).
        """
        author = check_author(author)
        now = now or utcnow()
        before = self.get(ref)
        resolved = self._resolve_refs(before.template_id, [v.ref for v in before.variants])
        with self.db.transaction() as con:
            exp = self._find(con, before.id)
            if exp.status != "draft":
                what = (
                    "is already running"
                    if exp.status == "running"
                    else f"has ended ({exp.status}); an experiment runs once — create a new one "
                    "from a copy of its configuration"
                )
                raise Conflict(f"experiment '{exp.name}' {what}")
            c = Checker()
            row = tsql.template_row(con, exp.template_id)
            if row is None:
                c.add("template", f"template {exp.template_id} no longer exists")
            elif not row["is_active"]:
                c.add("template", f"template '{row['name']}' is archived; restore it first")
            if exp.environment not in self.settings.deployment.environments:
                c.add("environment", f"environment '{exp.environment}' is no longer configured")
            if exp.end_at is not None and exp.end_at <= now:
                c.add(
                    "end",
                    f"the planned end {exp.end_at.isoformat()} has passed; edit end "
                    "before starting",
                )
            commits: list[str] = []
            for i, v in enumerate(exp.variants):
                found = resolved.get((exp.template_id, v.ref), Unresolved(f"unknown ref '{v.ref}'"))
                if isinstance(found, Unresolved):
                    c.add(f"variants[{i}].ref", found.message)
                else:
                    commits.append(found)
            other = sql.running_id(con, exp.template_id, exp.environment)
            if other is not None:
                running = sql.get(con, other)
                label = f"'{running.name}' ({other})" if running else other
                c.add(
                    "environment",
                    f"experiment {label} is already running on template "
                    f"'{exp.template}' in {exp.environment}; stop it first "
                    "(two experiments cannot share the same traffic)",
                    "running",
                )
            if c.problems:
                raise ValidationError(f"cannot start experiment '{exp.name}':", c.problems)
            moved = [
                f"{v.name}: {v.ref} now {new[:10]} (was {(v.commit or '')[:10]})"
                for v, new in zip(exp.variants, commits)
                if v.commit != new
            ]
            sql.freeze_commits(con, exp.id, commits)
            sql.take_slot(con, exp.template_id, exp.environment, exp.id, now)
            if not sql.set_status(con, exp.id, "draft", "running", started_at=now):
                raise Conflict(f"experiment '{exp.name}' changed while starting; try again")
            sql.log(
                con,
                exp.id,
                now,
                "started",
                author,
                "refs resolved: " + "; ".join(moved) if moved else "",
            )
            emit_experiment(con, "started", exp, now, author)
        self._changed()
        return self.get(exp.id)

    def stop(
        self,
        ref: str,
        *,
        reason: str | None = None,
        author: str = "unknown",
        now: datetime | None = None,
    ) -> Experiment:
        """Stop a running experiment and freeze its final results.

        Without a reason the experiment is **completed**; with one it is **stopped** early.
        Stopping before the planned ``end`` needs a reason. Two steps: :meth:`_end_routing`
        (one transaction: status, time, routing ends), then :meth:`freeze_results`.

        Raises:
            Conflict: the experiment is not running.
            ValidationError: a reason is needed (field ``reason``) or is too long.
        """
        exp = self._end_routing(ref, reason=reason, author=author, now=now)
        self.freeze_results(exp.id, author=author)
        return self.get(exp.id)

    def _end_routing(
        self, ref: str, *, reason: str | None, author: str, now: datetime | None
    ) -> Experiment:
        author = check_author(author)
        now = now or utcnow()
        c = Checker()
        text = c.text({"reason": reason}, "reason", "reason", limit=MAX_REASON) or None
        with self.db.transaction() as con:
            exp = self._find(con, ref)
            if exp.status != "running":
                raise Conflict(
                    f"experiment '{exp.name}' is {exp.status}, not running; only a "
                    "running experiment can be stopped"
                )
            if text is None and exp.end_at is not None and now < exp.end_at:
                c.add(
                    "reason",
                    f"the experiment is planned to run until "
                    f"{exp.end_at.isoformat()}; give a reason to stop it early",
                    "required",
                )
            if c.problems:
                raise ValidationError(f"cannot stop experiment '{exp.name}':", c.problems)
            status = "stopped" if text else "completed"
            if not sql.set_status(con, exp.id, "running", status, stopped_at=now, stop_reason=text):
                raise Conflict(f"experiment '{exp.name}' changed while stopping; try again")
            sql.free_slot(con, exp.id)
            sql.log(con, exp.id, now, status, author, text or "")
            emit_experiment(con, status, exp, now, author, text)
        self._changed()
        return exp

    def freeze_results(self, ref: str, *, author: str = "unknown") -> Any:
        """Compute and store the final results of an ended experiment.

        Calls ``results_provider(experiment)`` (the statistics engine) and stores what it
        returns as JSON in the experiment's ``results``. Without a provider nothing is computed
        and the results stay NULL; returns what was stored. If the provider fails, the
        experiment stays ended (routing must not resume because an analysis failed) and this
        can be called again.

        Raises:
            Conflict: the experiment has not ended.
        """
        author = check_author(author)
        exp = self.get(ref)
        if exp.status not in ("completed", "stopped"):
            raise Conflict(
                f"experiment '{exp.name}' is {exp.status}: results are frozen only when it ends"
            )
        if self.results_provider is None:
            return None
        results = self.results_provider(exp)
        with self.db.transaction() as con:
            sql.store_results(con, exp.id, results)
            sql.log(con, exp.id, utcnow(), "results frozen", author)
        return results

    # -- routing --------------------------------------------------------------------------
    def router(self, ref: str) -> Router:
        """The routing rule of an experiment (any status)."""
        return router_for(self.get(ref))

    def update_bandit(self, ref: str, *, now: datetime | None = None) -> list[float] | None:
        """Recompute a running bandit's split now (the hourly update, on demand); returns the
        new weights in variant order, or None when another process recorded them first.

        Raises:
            Conflict: the experiment is not a running bandit.
        """
        exp = self.get(ref)
        if exp.allocation != "bandit" or exp.status != "running":
            raise Conflict(f"experiment '{exp.name}' is not a running bandit")
        done = self._bandit.update(exp, now)
        self._changed()
        return done[2] if done else None

    def route(self, ref: str, user_id: str) -> tuple[str | None, float]:
        """``(variant, bucket)`` the experiment gives ``user_id`` (variant ``None`` outside its
        coverage). Works in every status, so a draft's routing can be previewed. A running
        bandit answers with the user's recorded variant, else the current split's."""
        exp = self.get(ref)
        if exp.allocation == "bandit" and exp.status == "running":
            return self._bandit.preview(exp, user_key(user_id))
        return router_for(exp).route(user_key(user_id))

    def assign(
        self, template: str, environment: str, user_id: str, *, now: datetime | None = None
    ) -> Assignment | None:
        """The variant of the experiment running on ``template`` (id or name) in
        ``environment`` for ``user_id``.

        ``None`` when no experiment runs there, the current time is outside its ``start`` /
        ``end``, or the user is outside its coverage (the caller then serves the deployed
        version). Answers are cached for ``cache.ttl_seconds``; a change made in this process
        takes effect at once.

        Raises:
            ValidationError: ``user_id`` is empty or not text.
        """
        live = self._live(template, environment)
        if live is None:
            return None
        exp = live.experiment
        if exp.start_at is not None or exp.end_at is not None:
            t = now or utcnow()
            if (exp.start_at is not None and t < exp.start_at) or (
                exp.end_at is not None and t >= exp.end_at
            ):
                return None
        if exp.allocation == "bandit":  # sticky: a user keeps their first variant
            variant, b = self._bandit.variant(exp, live.router, live.period, user_key(user_id))
        else:
            variant, b = live.router.route(user_id)
        if variant is None:
            return None
        return Assignment(
            experiment_id=exp.id,
            experiment=exp.name,
            variant=variant,
            commit=live.commits[variant],
            ref=live.refs[variant],
            bucket=b,
        )

    def running(self, template: str, environment: str) -> Experiment | None:
        """The experiment running on ``template`` in ``environment``, if any (not cached)."""
        with self.db.read() as con:
            row = tsql.template_row(con, template)
            return sql.running_experiment(con, row["id"], environment) if row else None

    def _live(self, template: str, environment: str) -> _Live | None:
        key = (template, environment)
        ttl = self.settings.cache.ttl_seconds
        gen = _GENERATION.get(self._gen_key, 0)
        hit = self._cache.get(key)
        t = time.monotonic()
        if hit is not None and hit[0] > t and hit[1] == gen:
            return hit[2]
        exp = self.running(template, environment)
        live = None
        if exp is not None:
            router, period = Router.from_experiment(exp), 0
            if exp.allocation == "bandit":  # the current split (updated when an hour old)
                router, period = self._bandit.router(exp)
            live = _Live(
                exp,
                router,
                {v.name: v.commit or "" for v in exp.variants},
                {v.name: v.ref for v in exp.variants},
                period,
            )
        if ttl > 0:
            self._cache[key] = (t + ttl, gen, live)
        return live

    def _changed(self) -> None:
        self._cache.clear()
        _bump(self._gen_key)
