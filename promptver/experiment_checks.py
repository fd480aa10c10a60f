"""Validation of an experiment file: every problem at once, each naming its field.

:func:`validate` reads the fields of an experiment file (a mapping, as :mod:`experiment_files`
parses it) against the database and the settings and returns a :class:`Plan` ready to store, or
every problem found (``variants[1].weight``, ``metrics[0]`` …), so that a file can be fixed in one
pass; :func:`build` turns a plan into an :class:`~promptver.models.Experiment`. The lifecycle
that calls them is :class:`promptver.experiments.ExperimentService`; the rules are documented in
``docs/experiments.md``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import Problem
from promptver.experiment_files import FILE_FIELDS
from promptver.limits import json_problem
from promptver.models.experiments import BUILTIN_METRICS, Experiment, MetricSpec, VariantSpec
from promptver.store import experiments as sql
from promptver.store import templates as tsql

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
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_SALT = 200
MAX_VARIANTS = 20
MAX_METRICS = 20
ALPHA_MAX = 0.5
SAMPLE_MIN, SAMPLE_MAX = 2, 1_000_000_000


@dataclass
class Plan:
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


class Checker:
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


@dataclass(frozen=True)
class Unresolved:
    """A ref that did not resolve, and why."""

    message: str


def validate(
    con: Any,
    spec: Mapping[str, Any],
    current: Experiment | None,
    resolved: Mapping[tuple[str, str], Any] | None,
    settings: Settings,
) -> tuple[Plan | None, list[Problem]]:
    """Check ``spec``; ``resolved`` holds the refs looked up beforehand (``None``: do not
    resolve refs, for experiments whose commits are frozen); ``settings`` gives the configured
    environments and the default significance level and sample size."""
    c = Checker()
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
    environments = settings.deployment.environments
    environment = c.text(
        spec, "environment", "environment", limit=100, single_line=True, default="production"
    )
    if environment and environment not in environments:
        c.add(
            "environment",
            f"unknown environment '{environment}'; configured: {', '.join(environments)}",
            "unknown",
        )

    variants = _variants(c, spec.get("variants"), template_id, resolved)
    allow_same = spec.get("allow_same_commit", False)
    if not isinstance(allow_same, bool):
        c.add("allow_same_commit", f"must be true or false, not {allow_same!r}")
    elif not allow_same:
        _same_commits(c, variants)
    metrics = _metrics(c, con, spec.get("metrics"), spec.get("guardrails"))

    stats = settings.ab_testing.statistical_analysis
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
                f"must be an ISO 8601 date or time such as 2026-11-01T00:00:00Z, not {spec[key]!r}",
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
    return Plan(
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
    c: Checker,
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
                found = resolved.get((template_id, ref), Unresolved(f"unknown ref '{ref}'"))
                if isinstance(found, Unresolved):
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


def _metrics(c: Checker, con: Any, raw: Any, guard_raw: Any) -> list[MetricSpec]:
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
                f"must be a metric name or a mapping with name and direction, not {_kind(item)}",
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


def build(plan: Plan, *, eid: str, current: Experiment | None, author: str) -> Experiment:
    """The experiment ``plan`` describes: a new draft, or ``current`` with a new configuration."""
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


def _same_commits(c: Checker, variants: list[VariantSpec]) -> None:
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


def _cuped(c: Checker, raw: Any) -> int | None:
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
