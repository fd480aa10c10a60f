"""Alert rules and the alerts they fire.

A rule watches one metric (mean latency, p95 latency, error rate, success rate, quality score,
cost per request, tokens, or a custom metric) of one template or of every template (``*``, each
evaluated on its own), in one environment or any, over fixed windows of time, and fires when the
metric's value over a window compares with the threshold (``>``, ``>=``, ``<``, ``<=``) and the
window has at least the rule's minimum of events with that metric.

Windows are aligned, not sliding: a rule with window ``L`` looks at consecutive intervals
``[ANCHOR + k·L, ANCHOR + (k + 1)·L)`` counted from Monday 2000-01-03 00:00 UTC, so ``1h`` windows
start on the hour, ``24h`` windows at midnight UTC and ``7d`` windows on Mondays. A window is
identified by its start, and an alert is stored once per rule, template and window: evaluating
the same window again (another import, another check) never stores a second one.

Rules are evaluated after every committed import and tracking flush (the workspace subscribes
:meth:`AlertService.on_metrics_written` to ``ws.metrics``) on the windows the new events fall
in, and by :meth:`AlertService.check` (``promptver alerts check``) on the current and the
previous window (or every window since a given time). ``docs/alerts.md`` states every rule.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import DatabaseBusy, NotFound, Problem, ValidationError
from promptver.limits import check_author
from promptver.metric_defs import (
    canonical_metric,
    duration_text,
    metric_def,
    parse_duration,
    unit_text,
)
from promptver.models.metrics import MetricsWritten
from promptver.models.trends import Alert, AlertCheck, AlertGroup, AlertRule, DeploymentMarker
from promptver.outbox import emit_alerts
from promptver.store import alerts as sql
from promptver.store import templates as template_sql
from promptver.store import trends as trend_sql
from promptver.store.db import Database

log = logging.getLogger("promptver.alerts")

COMPARATORS = (">", ">=", "<", "<=")
COMPARATOR_ALIASES = {"gt": ">", "ge": ">=", "gte": ">=", "lt": "<", "le": "<=", "lte": "<="}
ANY = ("*", "any", "all")
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=365)
DEFAULT_MIN_EVENTS = 10


def compare(value: float, comparator: str, threshold: float) -> bool:
    """Whether ``value comparator threshold`` holds (exactly at the threshold: ``>=``/``<=``
    fire, ``>``/``<`` do not)."""
    if comparator == ">":
        return value > threshold
    if comparator == ">=":
        return value >= threshold
    if comparator == "<":
        return value < threshold
    if comparator == "<=":
        return value <= threshold
    raise ValueError(comparator)


def _digits(metric: str) -> tuple[str, int]:
    """How a metric's values are written: a unit kind and its starting precision."""
    try:
        unit = metric_def(metric).unit
    except KeyError:
        unit = "value"
    return unit, {"ms": 0, "rate": 2, "tokens": 0, "usd": 4, "score": 3, "value": 3}[unit]


def condition_texts(metric: str, value: float, threshold: float) -> tuple[str, str]:
    """A value and a threshold written with the same precision, enough digits for the two to
    differ when they do: ``9.01 %`` and ``9.00 %``, not ``9.0 %`` twice."""
    unit, d = _digits(metric)
    for extra in range(7):
        a, b = unit_text(unit, value, d + extra), unit_text(unit, threshold, d + extra)
        if a != b or value == threshold:
            return a, b
    return a, b


def condition_text(metric: str, value: float, comparator: str, threshold: float) -> str:
    """``9.01 % > 9.00 %``: the value, the comparison that fired, the threshold."""
    a, b = condition_texts(metric, value, threshold)
    return f"{a} {comparator} {b}"


def group_alerts(
    alerts: Sequence[Alert],
    deployments: Sequence[DeploymentMarker] = (),
    environments: Sequence[str] = (),
) -> list[AlertGroup]:
    """Alerts grouped per rule and template, the group with the newest window first.

    Args:
        alerts: newest window first (as :meth:`AlertService.alerts` returns them).
        deployments: deployments and rollbacks, oldest first, to say what was live in the
            rule's environment when the group's latest window began and what is live now.
        environments: the promotion path; a rule on any environment looks at the last one.
    """
    groups: dict[tuple[int, str], list[Alert]] = {}
    for a in alerts:
        groups.setdefault((a.rule_id, a.template_id), []).append(a)
    last_env = environments[-1] if environments else None
    out = []
    for (rule_id, template_id), items in groups.items():
        latest = max(items, key=lambda a: (a.window_start, a.id))
        env = latest.environment or last_env
        mine = [d for d in deployments if d.template_id == template_id and d.environment == env]
        # what served the window: live when it began (or, for a window that began before any
        # deployment there, the first one inside it)
        deployed = None
        for d in mine:
            if d.at <= latest.window_start or (deployed is None and d.at < latest.window_end):
                deployed = d
        ordered = sorted(items, key=lambda a: (a.window_start, a.id), reverse=True)
        out.append(
            AlertGroup(
                rule_id=rule_id,
                rule_exists=latest.rule_exists,
                template_id=template_id,
                template=latest.template,
                alert_ids=[a.id for a in ordered],
                open_ids=[a.id for a in ordered if a.status == "open"],
                backfill=sum(a.backfill for a in items),
                first_window=min(a.window_start for a in items),
                latest=latest,
                environment=env,
                deployed=deployed,
                live_now=mine[-1] if mine else None,
            )
        )
    out.sort(key=lambda g: (g.latest.window_start, g.latest.id), reverse=True)
    return out


def window_number(t: datetime, length: timedelta) -> int:
    """The number ``k`` of the aligned window holding ``t`` (see the module docstring)."""
    return ((t - sql.ANCHOR) // timedelta(microseconds=1)) // _us(length)


def window_bounds(k: int, length: timedelta) -> tuple[datetime, datetime]:
    """``[start, end)`` of window ``k``."""
    start = sql.ANCHOR + k * length
    return start, start + length


def _us(length: timedelta) -> int:
    return round(length / timedelta(microseconds=1))


def trend_params(alert: Alert, now: datetime | None = None) -> dict[str, str]:
    """Query parameters of the Trends screen that show the window an alert fired for: its
    template and metric (and environment), by version, over a period ending now that reaches
    back before the window, in hourly buckets for windows shorter than a day (while the
    period stays within 14 days) and daily ones otherwise."""
    now = now or utcnow()
    length = alert.window_end - alert.window_start
    back = (now - alert.window_start) + max(3 * length, timedelta(days=1))
    days = max(1, math.ceil(back / timedelta(days=1)))
    if length < timedelta(days=1) and days <= 14:
        bucket = "hour"
    elif days <= 90:
        bucket, days = "day", max(days, 7)
    else:
        bucket = "auto"
    return {
        "template": alert.template,
        "metric": alert.metric,
        "period": f"{days}d",
        "by": "version",
        "env": alert.environment or "any",
        "bucket": bucket,
    }


#: the events a check covers: first and last timestamp, template ids
_Span = tuple[datetime, datetime, set[str]]


def _union(a: _Span, b: _Span | None) -> _Span:
    """The span covering both (``b`` may be nothing)."""
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), a[2] | b[2]


class AlertService:
    """Alert rules and fired alerts of one workspace (``Workspace.alerts``)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        #: what a check after a write could not evaluate because the file was busy (first, last,
        #: template ids): the next write's check covers it too
        self._missed: _Span | None = None
        self._missed_lock = threading.Lock()

    # -- rules --------------------------------------------------------------------------------
    def _clean(self, con: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate rule fields (any subset); returns their stored form.

        Raises:
            ValidationError: every bad field, each named.
        """
        out: dict[str, Any] = {}
        problems: list[Problem] = []
        if "metric" in fields:
            try:
                custom = trend_sql.custom_metric_names(con)
                out["metric"] = canonical_metric(str(fields["metric"]), custom)
            except ValidationError as exc:
                problems += exc.problems
        if "comparator" in fields:
            c = str(fields["comparator"]).strip().lower()
            c = COMPARATOR_ALIASES.get(c, c)
            if c in COMPARATORS:
                out["comparator"] = c
            else:
                problems.append(
                    Problem(
                        f"'{fields['comparator']}' is not a comparator: use >, >=, < or <= "
                        "(or gt, ge, lt, le)",
                        field="comparator",
                    )
                )
        if "threshold" in fields:
            t = fields["threshold"]
            try:
                if isinstance(t, bool):
                    raise ValueError
                value = float(t)
                if not math.isfinite(value):
                    raise ValueError
                out["threshold"] = value
            except (TypeError, ValueError):
                problems.append(Problem(f"'{t}' is not a finite number", field="threshold"))
        if "window" in fields:
            try:
                length = parse_duration(fields["window"], "window")
                if not MIN_WINDOW <= length <= MAX_WINDOW:
                    problems.append(
                        Problem("must be between 1 minute (1m) and 365 days (365d)", field="window")
                    )
                else:
                    out["window"] = duration_text(fields["window"])
                    out["window_seconds"] = int(length.total_seconds())
            except ValidationError as exc:
                problems += exc.problems
        if "min_events" in fields:
            n = fields["min_events"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                problems.append(Problem(f"'{n}' is not a whole number ≥ 1", field="min_events"))
            else:
                out["min_events"] = n
        if "template" in fields:
            ref = fields["template"]
            if ref is None or str(ref).strip().lower() in ANY:
                out["template_id"] = None
            else:
                row = template_sql.template_row(con, str(ref).strip())
                if row is None:
                    problems.append(
                        Problem(f"unknown template '{ref}' (use * for every one)", field="template")
                    )
                else:
                    out["template_id"] = row["id"]
        if "environment" in fields:
            env = fields["environment"]
            envs = self.settings.deployment.environments
            if env is None or str(env).strip().lower() in ANY:
                out["environment"] = None
            elif env in envs:
                out["environment"] = env
            else:
                problems.append(
                    Problem(
                        f"unknown environment '{env}': use {', '.join(envs)} or * for any",
                        field="environment",
                    )
                )
        if "name" in fields:
            name = str(fields["name"] or "").strip()
            if len(name) > 100 or not name.isprintable():
                problems.append(
                    Problem("must be printable text of at most 100 characters", field="name")
                )
            else:
                out["name"] = name
        if "enabled" in fields:
            if not isinstance(fields["enabled"], bool):
                problems.append(Problem("must be true or false", field="enabled"))
            else:
                out["enabled"] = fields["enabled"]
        if problems:
            raise ValidationError("invalid alert rule:", problems)
        return out

    def add(
        self,
        metric: str,
        comparator: str,
        threshold: float,
        window: str | timedelta,
        *,
        min_events: int = DEFAULT_MIN_EVENTS,
        template: str | None = "*",
        environment: str | None = None,
        name: str = "",
        enabled: bool = True,
        author: str = "unknown",
    ) -> AlertRule:
        """Create a rule.

        Args:
            metric: ``latency_avg``, ``latency_p95``, ``error_rate``, ``success_rate``,
                ``quality_score``, ``cost_per_request``, ``tokens_in``, ``tokens_out`` (or an
                alias such as ``latency_ms``), ``custom:NAME``, or the name of a custom metric
                present in the events.
            comparator: ``>``, ``>=``, ``<`` or ``<=``.
            threshold: compared with the metric's value over a window (rates are fractions:
                5 % is 0.05).
            window: the window length: ``15m``, ``1h``, ``24h``, ``7d`` …
            min_events: a window with fewer events carrying the metric never fires.
            template: a name or id, or ``*`` for every template (each on its own).
            environment: one environment, or None / ``*`` for events of any.

        Raises:
            ValidationError: every bad field, named.
        """
        author = check_author(author)
        with self.db.transaction() as con:
            row = self._clean(
                con,
                {
                    "metric": metric,
                    "comparator": comparator,
                    "threshold": threshold,
                    "window": window,
                    "min_events": min_events,
                    "template": template,
                    "environment": environment,
                    "name": name,
                    "enabled": enabled,
                },
            )
            rule_id = sql.insert_rule(con, {**row, "at": utcnow(), "author": author})
            rule = sql.get_rule(con, rule_id)
        assert rule is not None
        return rule

    def get(self, rule_id: int) -> AlertRule:
        """Raises: NotFound."""
        with self.db.read() as con:
            rule = sql.get_rule(con, _id(rule_id, "rule"))
        if rule is None:
            raise NotFound(f"alert rule #{rule_id} does not exist (promptver alerts list)")
        return rule

    def rules(self, *, enabled_only: bool = False) -> list[AlertRule]:
        """Every rule, oldest first."""
        with self.db.read() as con:
            return sql.list_rules(con, enabled_only)

    def update(self, rule_id: int, *, author: str = "unknown", **changes: Any) -> AlertRule:
        """Change fields of a rule (``metric``, ``comparator``, ``threshold``, ``window``,
        ``min_events``, ``template``, ``environment``, ``name``, ``enabled``).

        Alerts it fired keep the condition they fired under.

        Raises:
            NotFound: no such rule.
            ValidationError: an unknown field or a bad value.
        """
        author = check_author(author)
        allowed = {
            "metric",
            "comparator",
            "threshold",
            "window",
            "min_events",
            "template",
            "environment",
            "name",
            "enabled",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValidationError(
                "invalid alert rule:",
                [
                    Problem(f"not a field of a rule; use {', '.join(sorted(allowed))}", field=u)
                    for u in unknown
                ],
            )
        rid = _id(rule_id, "rule")
        with self.db.transaction() as con:
            if sql.get_rule(con, rid) is None:
                raise NotFound(f"alert rule #{rule_id} does not exist (promptver alerts list)")
            row = self._clean(con, changes)
            if row:
                sql.update_rule(con, rid, row, utcnow(), author)
            rule = sql.get_rule(con, rid)
        assert rule is not None
        return rule

    def enable(self, rule_id: int, *, author: str = "unknown") -> AlertRule:
        return self.update(rule_id, enabled=True, author=author)

    def disable(self, rule_id: int, *, author: str = "unknown") -> AlertRule:
        return self.update(rule_id, enabled=False, author=author)

    def delete(self, rule_id: int) -> AlertRule:
        """Delete a rule; the alerts it fired stay (with the condition they fired under).

        Raises:
            NotFound: no such rule.
        """
        rid = _id(rule_id, "rule")
        with self.db.transaction() as con:
            rule = sql.get_rule(con, rid)
            if rule is None:
                raise NotFound(f"alert rule #{rule_id} does not exist (promptver alerts list)")
            sql.delete_rule(con, rid)
        return rule

    # -- evaluation ---------------------------------------------------------------------------
    def check(
        self,
        now: datetime | None = None,
        *,
        since: datetime | None = None,
        rules: Iterable[int] | None = None,
    ) -> AlertCheck:
        """Evaluate the enabled rules on the current window and the one before it, or on every
        window from the one holding ``since`` up to the current one.

        A window that had ended before the rule was created was never watched by it: its
        alert reads ``backfill`` (:attr:`Alert.backfill`), and the screens mark it as such.

        Returns:
            What was evaluated and the alerts stored now (windows that had fired before are
            counted in ``already_fired``, not stored again).
        """
        now = now or utcnow()
        if since is not None and since > now:
            raise ValidationError("invalid input:", [Problem("is in the future", field="since")])
        wanted = None if rules is None else {_id(r, "rule") for r in rules}

        def span(rule: AlertRule) -> tuple[int, int]:
            length = timedelta(seconds=rule.window_seconds)
            last = window_number(now, length)
            first = last - 1 if since is None else window_number(since, length)
            return first, last

        return self._evaluate("check", now, span, wanted=wanted)

    def on_metrics_written(self, written: MetricsWritten) -> AlertCheck | None:
        """Evaluate the rules concerned after an import or a flush: the windows the new events
        fall in (no further back than ``performance_tracking.alert_lookback_days``), for the
        rules on those templates and the ``*`` rules."""
        if written.rows <= 0 or written.first is None or written.last is None:
            return None
        now = utcnow()
        back = now - timedelta(days=self.settings.performance_tracking.alert_lookback_days)
        first = max(written.first, back)
        last = min(written.last, now)
        if first > last:
            return None
        with self._missed_lock:
            missed, self._missed = self._missed, None
        first, last, templates = _union((first, last, set(written.template_ids)), missed)
        first = max(first, back)

        def span(rule: AlertRule) -> tuple[int, int]:
            length = timedelta(seconds=rule.window_seconds)
            return window_number(first, length), window_number(last, length)

        try:
            return self._evaluate(written.source, now, span, templates=templates)
        except DatabaseBusy:
            # the events are saved; their windows are checked with the next write's (or by
            # `promptver alerts check`), so no crossing goes unnoticed
            with self._missed_lock:  # another thread may have missed some meanwhile
                self._missed = _union((first, last, templates), self._missed)
            log.warning(
                "promptver: alert rules not checked after this %s (database busy); the next "
                "write or 'promptver alerts check' checks these windows",
                written.source,
            )
            return None

    def _evaluate(
        self,
        source: str,
        now: datetime,
        span: Any,
        *,
        wanted: set[int] | None = None,
        templates: set[str] | None = None,
    ) -> AlertCheck:
        # Read first, and write only when a window crosses a threshold for the first time: a
        # check that finds nothing new (the usual case after a flush) changes nothing in the
        # file, so the dashboard's caches and other writers are left alone.
        candidates: list[dict[str, Any]] = []
        again = 0
        windows = 0
        rules = 0
        with self.db.read() as con:
            for rule in sql.list_rules(con, enabled_only=True):
                if wanted is not None and rule.id not in wanted:
                    continue
                if templates is not None and rule.template_id not in (None, *templates):
                    continue
                rules += 1
                first, last = span(rule)
                windows += last - first + 1
                length = timedelta(seconds=rule.window_seconds)
                values = sql.window_values(
                    con,
                    measure=metric_def(rule.metric).measure,
                    window_us=_us(length),
                    first=first,
                    last=last,
                    template_id=rule.template_id,
                    environment=rule.environment,
                )
                for template_id, k, events, value in values:
                    if templates is not None and template_id not in templates:
                        continue
                    if events < rule.min_events or not compare(
                        value, rule.comparator, rule.threshold
                    ):
                        continue
                    start, end = window_bounds(k, length)
                    if sql.alert_exists(con, rule.id, template_id, start):
                        again += 1
                        continue
                    candidates.append(
                        {
                            "rule_id": rule.id,
                            "template_id": template_id,
                            "window_start": start,
                            "window_end": end,
                            "value": value,
                            "events": events,
                            "fired_at": now,
                            "source": source,
                            "rule_name": rule.name,
                            "metric": rule.metric,
                            "comparator": rule.comparator,
                            "threshold": rule.threshold,
                            "window": rule.window,
                            "min_events": rule.min_events,
                            "environment": rule.environment,
                        }
                    )
        alerts = []
        if candidates:
            with self.db.transaction() as con:
                fired = []
                for row in candidates:
                    new_id = sql.insert_alert(con, row)  # None: another writer stored it first
                    if new_id is None:
                        again += 1
                    else:
                        fired.append(new_id)
                alerts = sql.get_alerts(con, fired) if fired else []
                emit_alerts(con, alerts)
        return AlertCheck(
            source=source,  # type: ignore[arg-type]
            evaluated_at=now,
            rules=rules,
            windows=windows,
            fired=alerts,
            already_fired=again,
        )

    # -- fired alerts -------------------------------------------------------------------------
    def alerts(
        self,
        *,
        status: str | None = None,
        rule_id: int | None = None,
        template: str | None = None,
        limit: int = 200,
    ) -> list[Alert]:
        """Fired alerts, newest window first.

        Args:
            status: ``open`` (not acknowledged), ``acknowledged``, or None for both.
        """
        if status not in (None, "open", "acknowledged"):
            raise ValidationError(
                "invalid input:",
                [Problem(f"'{status}' is not open or acknowledged", field="status")],
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("invalid input:", [Problem("must be at least 1", field="limit")])
        with self.db.read() as con:
            tid = None
            if template is not None:
                row = template_sql.template_row(con, template)
                if row is None:
                    raise NotFound(f"unknown template '{template}'")
                tid = row["id"]
            return sql.list_alerts(
                con,
                status=status,
                rule_id=None if rule_id is None else _id(rule_id, "rule"),
                template_id=tid,
                limit=limit,
            )

    def groups(
        self, *, status: str | None = "open", template: str | None = None, limit: int = 10_000
    ) -> list[AlertGroup]:
        """Fired alerts grouped per rule and template (see :func:`group_alerts`): a count,
        the latest window, and what was live in the rule's environment then and now.

        Args:
            status: ``open`` (groups with open alerts, counting those), ``acknowledged``, or
                None for every alert.
            limit: the most alerts read (newest windows first).
        """
        alerts = self.alerts(status=status, template=template, limit=limit)
        if not alerts:
            return []
        with self.db.read() as con:
            ids = sorted({a.template_id for a in alerts})
            history = trend_sql.deployments(con, ids, utcnow(), None)
        return group_alerts(alerts, history, self.settings.deployment.environments)

    def get_alert(self, alert_id: int) -> Alert:
        """Raises: NotFound."""
        with self.db.read() as con:
            got = sql.get_alerts(con, [_id(alert_id, "alert")])
        if not got:
            raise NotFound(f"alert #{alert_id} does not exist (promptver alerts fired)")
        return got[0]

    def open_count(self) -> int:
        """Alerts nobody has acknowledged yet."""
        with self.db.read() as con:
            return sql.count_open(con)

    def acknowledge(
        self, alert_ids: int | Sequence[int], *, author: str = "unknown"
    ) -> list[Alert]:
        """Acknowledge alerts (who and when are recorded; acknowledging twice keeps the first).

        Raises:
            NotFound: an id that does not exist (nothing is acknowledged then).
        """
        author = check_author(author)
        ids = [alert_ids] if isinstance(alert_ids, int) else list(alert_ids)
        if not ids:
            raise ValidationError("invalid input:", [Problem("name an alert", field="alert")])
        ids = [_id(i, "alert") for i in ids]
        with self.db.transaction() as con:
            found = {a.id for a in sql.get_alerts(con, ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(
                    f"alert {', '.join(f'#{i}' for i in missing)} does not exist "
                    "(promptver alerts fired); nothing was acknowledged"
                )
            sql.acknowledge(con, ids, utcnow(), author or "unknown")
            return sql.get_alerts(con, ids)


def _id(value: Any, what: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str):
            value = value.strip().lstrip("#")
        out = int(value)
        if isinstance(value, float) and value != out:
            raise ValueError
        return out
    except (TypeError, ValueError):
        raise ValidationError(
            "invalid input:", [Problem(f"'{value}' is not an id", field=what)]
        ) from None
