"""A/B experiments: the experiment file, validation, lifecycle and routing of live traffic.

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

Validation collects every problem at once and names the field of each (``variants[1].weight``,
``metrics[0]`` …), so a file can be fixed in one pass. The file format and the rules are
documented in ``docs/experiments.md``.
"""

from __future__ import annotations

import difflib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import yaml

from promptver.bandit_routing import BanditRouting
from promptver.config import Settings
from promptver.errors import Conflict, NotFound, Problem, ValidationError
from promptver.experiment_defs import STATUSES
from promptver.limits import check_author, json_problem, load_json, load_yaml, read_text_file
from promptver.models import (
    BUILTIN_METRICS,
    Assignment,
    Experiment,
    ExperimentLogEntry,
    MetricSpec,
    VariantSpec,
)
from promptver.outbox import emit_experiment
from promptver.routing import Router, router_for, user_key
from promptver.store import experiments as sql
from promptver.store import templates as tsql
from promptver.store.db import Database
from promptver.versioning import VersionControl, utcnow

#: The keys of an experiment file, in the order ``to_spec`` writes them.
FILE_FIELDS = (
    "name",
    "description",
    "hypothesis",
    "template",
    "environment",
    "variants",
    "metrics",
    "guardrails",
    "minimum_sample_size",
    "alpha",
    "salt",
    "coverage",
    "start",
    "end",
    "allow_same_commit",
    "cuped",
    "engine",
    "allocation",
)
VARIANT_FIELDS = ("name", "ref", "weight")
METRIC_FIELDS = ("name", "direction", "guardrail", "margin")
GUARDRAIL_FIELDS = ("name", "direction", "margin")
ENGINES = ("frequentist", "bayesian")
ALLOCATIONS = ("fixed", "bandit")
CUPED_FIELDS = ("lookback_days",)
#: CUPED's lookback, in days (a year at most: older behaviour says little about the test)
LOOKBACK_MIN, LOOKBACK_MAX = 1, 365
#: a non-inferiority margin is a fraction of the control mean, above 0 and at most 1 (100 %)
MARGIN_MAX = 1.0
#: Fields that may still change once an experiment has started.
TEXT_FIELDS = frozenset({"description", "hypothesis"})

MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_REASON = 500
MAX_SALT = 200
MAX_VARIANTS = 20
MAX_METRICS = 20
ALPHA_MAX = 0.5
SAMPLE_MIN, SAMPLE_MAX = 2, 1_000_000_000

ResultsProvider = Callable[[Experiment], Any]

# Bumped on every experiment change made in this process, per database file, so that cached
# routing answers of every Workspace on that file are dropped at once (other processes see the
# change within the cache TTL).
_GENERATION: dict[str, int] = {}
_GEN_LOCK = threading.Lock()


def _bump(key: str) -> None:
    with _GEN_LOCK:
        _GENERATION[key] = _GENERATION.get(key, 0) + 1


# ---- reading experiment files ----------------------------------------------------------------


def load_spec(text: str, source: str = "experiment file") -> dict[str, Any]:
    """Parse an experiment file (YAML or JSON) into a mapping; nothing is validated yet.

    Raises:
        ValidationError: not YAML/JSON (the line and column are given), or not a mapping.
    """
    stripped = text.lstrip("\ufeff").lstrip()
    # bounded loaders: no YAML aliases (a few hundred bytes could expand to gigabytes), nesting
    # and size limited, a clear error for JSON too deep to parse
    if source.lower().endswith(".json") or stripped.startswith("{"):
        data = load_json(stripped, source)
    else:
        data = load_yaml(stripped, source)
    if not isinstance(data, dict):
        raise ValidationError(
            f"{source} must hold a mapping of fields ({', '.join(FILE_FIELDS)}),"
            f" not {type(data).__name__}"
        )
    return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read and parse an experiment file (``-`` is not handled here).

    Raises:
        PromptverError: the file cannot be read.
        ValidationError: it is not a YAML/JSON mapping.
    """
    p = Path(path)
    return load_spec(read_text_file(p, what="experiment file"), str(p))


def dump_spec(spec: Mapping[str, Any]) -> str:
    """An experiment spec as YAML text (what ``experiment create --file`` reads)."""

    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return yaml.safe_dump(plain(dict(spec)), sort_keys=False, allow_unicode=True, width=100)


# ---- validation ------------------------------------------------------------------------------


@dataclass
class _Plan:
    """A validated configuration, ready to store."""

    name: str
    description: str
    hypothesis: str
    template_id: str
    template: str
    environment: str
    variants: list[VariantSpec]
    metrics: list[MetricSpec]
    alpha: float
    minimum_sample_size: int
    salt: str | None
    coverage: float
    start_at: datetime | None
    end_at: datetime | None
    cuped_lookback_days: int | None = None
    engine: str = "frequentist"
    allocation: str = "fixed"


class _Checker:
    """Collects problems while reading a spec; every problem names its field."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, field: str, message: str, code: str = "invalid") -> None:
        self.problems.append(Problem(message, field=field, code=code))

    def unknown_keys(self, data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in data:
            if key in known:
                continue
            guess = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"known fields: {', '.join(known)}"
            self.add(f"{where}{key}", f"unknown field ({hint})", "unknown_field")

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        field: str,
        *,
        limit: int,
        required: bool = False,
        single_line: bool = False,
        default: str = "",
    ) -> str:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(field, "is required", "required")
            return default
        if not isinstance(value, str):
            self.add(field, f"must be text, not {_kind(value)}")
            return default
        value = value.strip()
        if len(value) > limit:
            self.add(field, f"must be at most {limit} characters (it has {len(value)})")
        bad = [ch for ch in value if not (ch.isprintable() or (not single_line and ch in "\n\t"))]
        if bad:
            what = "a line break or control character" if single_line else "a control character"
            self.add(field, f"holds {what} ({bad[0]!r}); use printable text")
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        field: str,
        default: float,
        ok: Callable[[float], bool],
        rule: str,
        *,
        integer: bool = False,
    ) -> float:
        value = data.get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            self.add(field, f"must be {rule}, not {value!r}")
            return default
        if integer and not (isinstance(value, int) or float(value).is_integer()):
            self.add(field, f"must be {rule}, not {value!r}")
            return default
        if not ok(value):
            self.add(field, f"must be {rule}, not {value!r}", "out_of_range")
            return default
        return int(value) if integer else float(value)


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def parse_time(value: Any) -> datetime:
    """An ISO 8601 date or time (or a YAML date/datetime) as an aware UTC datetime.

    A time without an offset is UTC; a date alone is midnight UTC.

    Raises:
        ValueError: not a date or time.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, dtime(0, 0))
    elif isinstance(value, str) and value.strip():
        dt = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"expected an ISO 8601 date or time, not {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


# ---- the service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unresolved:
    """A ref that did not resolve, and why."""

    message: str


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
                out[key] = _Unresolved(exc.message)
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
            _, problems = self._validate(con, spec, current, resolved)
        return problems

    def _validate(
        self,
        con: Any,
        spec: Mapping[str, Any],
        current: Experiment | None,
        resolved: Mapping[tuple[str, str], Any] | None,
    ) -> tuple[_Plan | None, list[Problem]]:
        """Check ``spec``; ``resolved`` holds the refs looked up beforehand (``None``: do not
        resolve refs, for experiments whose commits are frozen)."""
        c = _Checker()
        if not isinstance(spec, Mapping):
            c.add("experiment", "must be a mapping of fields")
            return None, c.problems
        # one bound for every writer (file, API, dashboard): a spec is a few hundred bytes, and
        # a deep or huge one would only make the checks below slow or their messages huge
        too_big = json_problem(spec, "experiment", types=False)
        if too_big is not None:
            return None, [too_big]
        c.unknown_keys(spec, FILE_FIELDS, "")

        name = c.text(spec, "name", "name", limit=MAX_NAME, required=True, single_line=True)
        if name:
            clash = [i for i in sql.ids_named(con, name) if not current or i != current.id]
            if clash:
                c.add(
                    "name",
                    f"an experiment named '{name}' already exists (names are unique, "
                    "ignoring case); choose another name",
                    "duplicate",
                )
            elif sql.id_exists(con, name) and (not current or current.id != name):
                c.add(
                    "name",
                    f"'{name}' is the id of another experiment; choose another name",
                    "duplicate",
                )
        description = c.text(spec, "description", "description", limit=MAX_DESCRIPTION)
        hypothesis = c.text(spec, "hypothesis", "hypothesis", limit=MAX_DESCRIPTION)

        # template and environment
        template_id, template_name = "", ""
        tref = spec.get("template")
        if tref is None or (isinstance(tref, str) and not tref.strip()):
            c.add("template", "is required (a template name or id)", "required")
        elif not isinstance(tref, str):
            c.add("template", f"must be a template name or id, not {_kind(tref)}")
        else:
            row = tsql.template_row(con, tref.strip())
            if row is None:
                c.add("template", f"unknown template '{tref.strip()}'", "unknown")
            elif not row["is_active"]:
                c.add(
                    "template",
                    f"template '{row['name']}' is archived; restore it first",
                    "archived",
                )
            else:
                template_id, template_name = row["id"], row["name"]
        environments = self.settings.deployment.environments
        environment = c.text(
            spec, "environment", "environment", limit=100, single_line=True, default="production"
        )
        if environment and environment not in environments:
            c.add(
                "environment",
                f"unknown environment '{environment}'; configured: {', '.join(environments)}",
                "unknown",
            )

        variants = self._variants(c, spec.get("variants"), template_id, resolved)
        allow_same = spec.get("allow_same_commit", False)
        if not isinstance(allow_same, bool):
            c.add("allow_same_commit", f"must be true or false, not {allow_same!r}")
        elif not allow_same:
            _same_commits(c, variants)
        metrics = self._metrics(c, con, spec.get("metrics"), spec.get("guardrails"))

        stats = self.settings.ab_testing.statistical_analysis
        alpha = c.number(
            spec,
            "alpha",
            "alpha",
            stats.significance_level,
            lambda a: 0 < a <= ALPHA_MAX,
            f"a significance level greater than 0 and at most {ALPHA_MAX}",
        )
        sample = int(
            c.number(
                spec,
                "minimum_sample_size",
                "minimum_sample_size",
                stats.minimum_sample_size,
                lambda n: SAMPLE_MIN <= n <= SAMPLE_MAX,
                f"a whole number of users per variant from {SAMPLE_MIN} to {SAMPLE_MAX:,}",
                integer=True,
            )
        )
        salt = c.text(spec, "salt", "salt", limit=MAX_SALT, single_line=True) or None
        coverage = c.number(
            spec,
            "coverage",
            "coverage",
            1.0,
            lambda x: 0 < x <= 1,
            "a fraction of users greater than 0 and at most 1 (0.25 = 25 %)",
        )

        start_at = end_at = None
        for key in ("start", "end"):
            if spec.get(key) is None or spec.get(key) == "":
                continue
            try:
                value = parse_time(spec[key])
            except (ValueError, TypeError):
                c.add(
                    key,
                    f"must be an ISO 8601 date or time such as 2026-11-01T00:00:00Z, not "
                    f"{spec[key]!r}",
                )
                continue
            if key == "start":
                start_at = value
            else:
                end_at = value
        if start_at and end_at and end_at <= start_at:
            c.add(
                "end",
                f"must be after start ({start_at.isoformat()}), not {end_at.isoformat()}",
                "order",
            )

        cuped_days = _cuped(c, spec.get("cuped"))
        engine = spec.get("engine")
        if engine is None or engine == "":
            engine = "frequentist"
        elif engine not in ENGINES:
            c.add("engine", f"must be one of {', '.join(ENGINES)}, not {engine!r}")
        allocation = spec.get("allocation")
        if allocation is None or allocation == "":
            allocation = "fixed"
        elif allocation not in ALLOCATIONS:
            c.add("allocation", f"must be one of {', '.join(ALLOCATIONS)}, not {allocation!r}")

        if c.problems:
            return None, c.problems
        return _Plan(
            name=name,
            description=description,
            hypothesis=hypothesis,
            template_id=template_id,
            template=template_name,
            environment=environment,
            variants=variants,
            metrics=metrics,
            alpha=alpha,
            minimum_sample_size=sample,
            salt=salt,
            coverage=coverage,
            start_at=start_at,
            end_at=end_at,
            cuped_lookback_days=cuped_days,
            engine=engine,
            allocation=allocation,
        ), []

    def _variants(
        self,
        c: _Checker,
        raw: Any,
        template_id: str,
        resolved: Mapping[tuple[str, str], Any] | None,
    ) -> list[VariantSpec]:
        if raw is None:
            c.add(
                "variants",
                "is required: list at least two variants (the first is the "
                "control), e.g. {name: control, ref: 1.0.0, weight: 50}",
                "required",
            )
            return []
        if not isinstance(raw, list):
            c.add("variants", f"must be a list of variants, not {_kind(raw)}")
            return []
        if len(raw) < 2:
            c.add(
                "variants",
                f"an experiment needs at least two variants (the first is the "
                f"control); found {len(raw)}",
                "too_few",
            )
        if len(raw) > MAX_VARIANTS:
            c.add("variants", f"at most {MAX_VARIANTS} variants, found {len(raw)}", "too_many")
        out: list[VariantSpec] = []
        seen: dict[str, int] = {}
        weighted = [isinstance(v, Mapping) and v.get("weight") is not None for v in raw]
        mixed = any(weighted) and not all(weighted)
        for i, item in enumerate(raw):
            where = f"variants[{i}]"
            if not isinstance(item, Mapping):
                c.add(where, f"must be a mapping with name, ref and weight, not {_kind(item)}")
                continue
            c.unknown_keys(item, VARIANT_FIELDS, f"{where}.")
            vname = c.text(
                item, "name", f"{where}.name", limit=MAX_NAME, required=True, single_line=True
            )
            if vname:
                key = vname.casefold()
                if key in seen:
                    c.add(
                        f"{where}.name",
                        f"duplicate variant name '{vname}' (same as "
                        f"variants[{seen[key]}], ignoring case)",
                        "duplicate",
                    )
                else:
                    seen[key] = i
            ref = item.get("ref")
            commit: str | None = None
            if ref is None or (isinstance(ref, str) and not ref.strip()):
                c.add(
                    f"{where}.ref",
                    "is required: a version, a branch or a commit prefix",
                    "required",
                )
            elif not isinstance(ref, str):
                c.add(
                    f"{where}.ref",
                    f'must be text, not {_kind(ref)}; quote it in YAML, e.g. ref: "{ref}"',
                )
            else:
                ref = ref.strip()
                if template_id and resolved is not None:
                    found = resolved.get((template_id, ref), _Unresolved(f"unknown ref '{ref}'"))
                    if isinstance(found, _Unresolved):
                        c.add(f"{where}.ref", found.message, "unknown")
                    else:
                        commit = found
            weight: float = 1.0
            if mixed and not weighted[i]:
                c.add(
                    f"{where}.weight",
                    "is missing: give every variant a weight, or none for an equal split",
                    "required",
                )
            elif weighted[i]:
                weight = c.number(
                    item,
                    "weight",
                    f"{where}.weight",
                    0.0,
                    lambda w: w > 0,
                    "a positive number (weights are normalised)",
                )
            if vname and isinstance(ref, str) and weight > 0:
                out.append(VariantSpec(name=vname, ref=ref, weight=weight, commit=commit))
        return out

    def _metrics(self, c: _Checker, con: Any, raw: Any, guard_raw: Any) -> list[MetricSpec]:
        known = {**{k: None for k in sql.custom_metric_names(con)}, **BUILTIN_METRICS}
        out: list[MetricSpec] = []
        seen: dict[str, str] = {}

        def one(item: Any, where: str, allowed: tuple[str, ...], role: str) -> None:
            guardrail = role == "guardrail"
            margin = None
            if isinstance(item, str):
                name, direction = item.strip(), None
            elif isinstance(item, Mapping):
                c.unknown_keys(item, allowed, f"{where}.")
                name = item.get("name")
                if not isinstance(name, str) or not name.strip():
                    c.add(f"{where}.name", "is required: a metric name", "required")
                    return
                name = name.strip()
                direction = item.get("direction")
                if direction is not None and direction not in ("higher", "lower"):
                    c.add(f"{where}.direction", f"must be 'higher' or 'lower', not {direction!r}")
                    return
                flag = item.get("guardrail")
                if flag is not None and not isinstance(flag, bool):
                    c.add(f"{where}.guardrail", f"must be true or false, not {flag!r}")
                    return
                margin = item.get("margin")
                if margin is not None:
                    if (
                        isinstance(margin, bool)
                        or not isinstance(margin, int | float)
                        or not 0 < margin <= MARGIN_MAX
                    ):
                        c.add(
                            f"{where}.margin",
                            "must be a relative margin greater than 0 and at most "
                            f"{MARGIN_MAX:g} (0.05 = at most 5 % worse), not {margin!r}",
                        )
                        return
                    if not (guardrail or flag):
                        c.add(
                            f"{where}.margin",
                            "a margin belongs to a guardrail (list the metric under "
                            "guardrails, or set guardrail: true)",
                            "role",
                        )
                        return
                if flag:
                    if role == "primary":
                        c.add(
                            f"{where}.guardrail",
                            "the first metric is the primary metric and "
                            "cannot be a guardrail; list a primary "
                            "metric first",
                            "role",
                        )
                        return
                    guardrail = True
            else:
                c.add(
                    where,
                    f"must be a metric name or a mapping with name and direction, not "
                    f"{_kind(item)}",
                )
                return
            if not name:
                c.add(where, "is required: a metric name", "required")
                return
            if name not in known:
                custom = sorted(k for k in known if k not in BUILTIN_METRICS)
                hint = difflib.get_close_matches(name, list(known), n=1)
                c.add(
                    where,
                    f"unknown metric '{name}'"
                    + (f" (did you mean '{hint[0]}'?)" if hint else "")
                    + f"; known: built-in {', '.join(BUILTIN_METRICS)}"
                    + (
                        f"; custom {', '.join(custom)}"
                        if custom
                        else "; custom metrics become known once imported events carry them"
                    ),
                    "unknown",
                )
                return
            builtin = BUILTIN_METRICS.get(name)
            if builtin and direction and direction != builtin:
                c.add(
                    f"{where}.direction",
                    f"{name} is a built-in metric where {builtin} is better; leave out direction",
                    "direction",
                )
                return
            if name in seen:
                c.add(
                    where,
                    f"duplicate metric '{name}' (already listed as {seen[name]})",
                    "duplicate",
                )
                return
            seen[name] = where
            final_role = "guardrail" if guardrail else role
            out.append(
                MetricSpec(
                    name=name,
                    direction=direction or builtin or "higher",
                    role=final_role,  # type: ignore[arg-type]
                    margin=float(margin) if margin is not None else None,
                )
            )

        if raw is None or raw == []:
            c.add(
                "metrics",
                "is required: list at least one metric (the first is the primary "
                "one), e.g. [quality_score, latency_ms]",
                "required",
            )
        elif not isinstance(raw, list):
            if isinstance(raw, str | Mapping):
                raw = [raw]
            else:
                c.add("metrics", f"must be a list of metrics, not {_kind(raw)}")
                raw = []
        for i, item in enumerate(raw or []):
            one(item, f"metrics[{i}]", METRIC_FIELDS, "primary" if i == 0 else "secondary")
        if guard_raw is not None:
            if isinstance(guard_raw, str | Mapping):
                guard_raw = [guard_raw]
            if not isinstance(guard_raw, list):
                c.add("guardrails", f"must be a list of metrics, not {_kind(guard_raw)}")
            else:
                for i, item in enumerate(guard_raw):
                    one(item, f"guardrails[{i}]", GUARDRAIL_FIELDS, "guardrail")
        if len(out) > MAX_METRICS:
            c.add("metrics", f"at most {MAX_METRICS} metrics in all, found {len(out)}", "too_many")
        return out

    def _build(
        self, plan: _Plan, *, eid: str, current: Experiment | None, author: str
    ) -> Experiment:
        return Experiment(
            id=eid,
            name=plan.name,
            description=plan.description,
            hypothesis=plan.hypothesis,
            template_id=plan.template_id,
            template=plan.template,
            environment=plan.environment,
            status=current.status if current else "draft",
            variants=plan.variants,
            metrics=plan.metrics,
            alpha=plan.alpha,
            minimum_sample_size=plan.minimum_sample_size,
            salt=plan.salt or eid,
            coverage=plan.coverage,
            start_at=plan.start_at,
            end_at=plan.end_at,
            created_at=current.created_at if current else utcnow(),
            created_by=current.created_by if current else author,
            started_at=current.started_at if current else None,
            stopped_at=current.stopped_at if current else None,
            stop_reason=current.stop_reason if current else None,
            cuped_lookback_days=plan.cuped_lookback_days,
            engine=plan.engine,  # type: ignore[arg-type]
            allocation=plan.allocation,  # type: ignore[arg-type]
        )

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
            plan, problems = self._validate(con, spec, None, resolved)
            if problems or plan is None:
                raise ValidationError("invalid experiment:", problems)
            exp = self._build(plan, eid=eid, current=None, author=author)
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
            plan, problems = self._validate(con, spec, current, resolved if draft else None)
            if problems or plan is None:
                raise ValidationError(f"invalid experiment '{current.name}':", problems)
            new = self._build(plan, eid=current.id, current=current, author=author)
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
            c = _Checker()
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
                found = resolved.get(
                    (exp.template_id, v.ref), _Unresolved(f"unknown ref '{v.ref}'")
                )
                if isinstance(found, _Unresolved):
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
        c = _Checker()
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


def _same_commits(c: _Checker, variants: list[VariantSpec]) -> None:
    """A variant whose ref resolves to the commit of an earlier one compares a prompt with
    itself (an A/A test inside the experiment): a problem unless the file confirms it."""
    first: dict[str, int] = {}
    for i, v in enumerate(variants):
        if v.commit is None:
            continue
        if v.commit in first:
            j = first[v.commit]
            c.add(
                f"variants[{i}].ref",
                f"variant '{v.name}' ({v.ref}) is the same commit {v.commit[:10]} as variant "
                f"'{variants[j].name}' ({variants[j].ref}): the experiment would compare a "
                "prompt with itself; choose another ref, or confirm a deliberate A/A test "
                "with allow_same_commit: true",
                "same_commit",
            )
        else:
            first[v.commit] = i


def to_spec(exp: Experiment) -> dict[str, Any]:
    """The experiment as the fields of an experiment file (round-trips through ``create``).

    The salt is written only when it is not the default (the experiment's id).
    """
    metrics: list[Any] = []
    guardrails: list[Any] = []
    for m in exp.metrics:
        builtin = BUILTIN_METRICS.get(m.name)
        item: Any = (
            m.name
            if builtin == m.direction or (not builtin and m.direction == "higher")
            else {"name": m.name, "direction": m.direction}
        )
        if m.margin is not None:
            item = {"name": m.name, "margin": m.margin} if isinstance(item, str) else item
            item["margin"] = m.margin
        (guardrails if m.role == "guardrail" else metrics).append(item)
    spec: dict[str, Any] = {
        "name": exp.name,
        "description": exp.description,
        "hypothesis": exp.hypothesis,
        "template": exp.template or exp.template_id,
        "environment": exp.environment,
        "variants": [{"name": v.name, "ref": v.ref, "weight": v.weight} for v in exp.variants],
        "metrics": metrics,
        "guardrails": guardrails,
        "minimum_sample_size": exp.minimum_sample_size,
        "alpha": exp.alpha,
        "salt": exp.salt if exp.salt != exp.id else None,
        "coverage": exp.coverage,
        "start": exp.start_at,
        "end": exp.end_at,
        # variants sharing a commit were confirmed when the experiment was saved: the file
        # says so, so that it can be created again
        "allow_same_commit": _shares_a_commit(exp) or None,
        "cuped": (
            {"lookback_days": exp.cuped_lookback_days}
            if exp.cuped_lookback_days is not None
            else None
        ),
        "engine": exp.engine if exp.engine != "frequentist" else None,
        "allocation": exp.allocation if exp.allocation != "fixed" else None,
    }
    return {k: v for k, v in spec.items() if v not in (None, "", [])}


def _cuped(c: _Checker, raw: Any) -> int | None:
    """CUPED's lookback from ``cuped: {lookback_days: N}`` (None: off)."""
    if raw is None or raw is False:
        return None
    if not isinstance(raw, Mapping):
        c.add("cuped", f"must be a mapping such as {{lookback_days: 14}}, not {_kind(raw)}")
        return None
    c.unknown_keys(raw, CUPED_FIELDS, "cuped.")
    days = raw.get("lookback_days")
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not (LOOKBACK_MIN <= days <= LOOKBACK_MAX)
    ):
        c.add(
            "cuped.lookback_days",
            f"must be a whole number of days from {LOOKBACK_MIN} to {LOOKBACK_MAX}, not {days!r}",
            "required" if days is None else "invalid",
        )
        return None
    return days


def _shares_a_commit(exp: Experiment) -> bool:
    commits = [v.commit for v in exp.variants if v.commit]
    return len(commits) != len(set(commits))
