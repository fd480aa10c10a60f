"""The gates a deployment passes before anything is written (a part of
:class:`~promptver.deployments.DeploymentService`).

In order, all recorded in the entry's ``gate_report``: the validation checks the environment
requires (never overridable), ``require_previous`` (the promotion path), ``require_experiment_win``
(evidence from a completed experiment) and, where configured, the evaluation gate
(:mod:`promptver.evals.gate`). ``force`` with a reason overrides the second and the last; a
reason lets a version without a win through the third. Rollbacks are exempt from the rules but
not from the checks.
"""

from __future__ import annotations

from typing import Any, Literal

from promptver.errors import DeploymentRefused, Problem, ValidationError
from promptver.models.core import Commit
from promptver.models.deployments import Deployment, GateReport, GateResult
from promptver.store import deployments as sql
from promptver.templating import ValidationReport

MAX_NOTE = 1000
MAX_REASON = 500

Action = Literal["deploy", "rollback"]


def _label(c: Commit | Deployment | None) -> str:
    if c is None:
        return "-"
    commit = c.id if isinstance(c, Commit) else c.commit
    return c.version or f"commit {commit[:10]}"


def _clean(value: str | None, field: str, limit: int) -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise ValidationError(
            "invalid input:",
            [Problem(f"must be at most {limit} characters (got {len(text)})", field=field)],
        )
    return text


# Which validation check reported a problem, from the prefix of its code.
_CHECK_OF_CODE = {
    "syntax": "syntax_validation",
    "security": "security_validation",
    "variables": "variable_validation",
    "performance": "performance_validation",
}


class DeploymentGates:
    """Gate checks shared by deploy, promote and rollback."""

    # -- gates -------------------------------------------------------------------------------
    def check(
        self,
        template: str,
        ref: str,
        environment: str,
        *,
        force: bool = False,
        reason: str | None = None,
    ) -> GateReport:
        """What the gates would decide about deploying ``ref`` now (nothing is written).

        Raises:
            NotFound: unknown template, ref or environment.
            ValidationError: the commit is already live there, the template is archived, or
                ``force`` without a reason.
        """
        reason = self._reason(force, reason)
        with self.db.read() as con:
            row, env, commit, current = self._deploy_inputs(con, template, ref, environment)
            return self._gates(con, row, env, commit, "deploy", current, force, reason)

    def _reason(self, force: bool, reason: str | None) -> str | None:
        text = _clean(reason, "reason", MAX_REASON) or None
        if force and text is None:
            raise ValidationError(
                "invalid input:",
                [
                    Problem(
                        "--force needs a reason (--reason TEXT); it is recorded in the deployment "
                        "history",
                        field="reason",
                    )
                ],
            )
        return text

    def _active_row(self, template: str) -> dict[str, Any]:
        row = self.templates.row(template)
        if not row["is_active"]:
            raise ValidationError(
                f"template '{row['name']}' is archived; restore it first "
                f"(promptver template restore {row['name']})"
            )
        return row

    def _deploy_inputs(
        self, con: Any, template: str, ref: str, environment: str
    ) -> tuple[dict[str, Any], str, Commit, tuple[Deployment, int] | None]:
        env = self.environment(environment)
        row = self._active_row(template)
        commit = self.versions.resolve(row["id"], str(ref), template_name=row["name"])
        current = sql.live(con, row["id"], env)
        if current is not None and current[0].commit == commit.id:
            raise ValidationError(
                f"{row['name']} {_label(commit)} is already live in {env} "
                f"(deployment #{current[0].id}); nothing to deploy"
            )
        return row, env, commit, current

    def _gates(
        self,
        con: Any,
        row: dict[str, Any],
        env: str,
        commit: Commit,
        action: Action,
        current: tuple[Deployment, int] | None,
        force: bool,
        reason: str | None,
    ) -> GateReport:
        checks = self.settings.deployment.checks_for(env)
        report = self.templates.validate(
            commit.content,
            commit.metadata,
            checks=checks,
            kind=commit.kind,
            messages=commit.messages,
            config=commit.config,
        )
        gates = _check_gates(report, checks)
        live = current[0] if current else None
        rule = self.settings.deployment.rule(env)
        name, label = row["name"], _label(commit)

        # promotion order
        if action == "rollback":
            gates.append(
                GateResult(
                    gate="require_previous",
                    status="skipped",
                    message="rollbacks are exempt from the promotion order",
                )
            )
        elif not rule.require_previous:
            gates.append(
                GateResult(
                    gate="require_previous", status="skipped", message=f"not required in {env}"
                )
            )
        else:
            prev = self.previous_environment(env)
            if prev is None:
                gates.append(
                    GateResult(
                        gate="require_previous",
                        status="passed",
                        message=f"{env} is the first environment",
                    )
                )
            elif sql.ever_deployed(con, row["id"], prev, commit.id):
                gates.append(
                    GateResult(
                        gate="require_previous",
                        status="passed",
                        message=f"{label} was deployed to {prev} first",
                    )
                )
            elif force:
                gates.append(
                    GateResult(
                        gate="require_previous",
                        status="overridden",
                        message=f"{label} was never deployed to {prev}; forced: {reason}",
                    )
                )
            else:
                gates.append(
                    GateResult(
                        gate="require_previous",
                        status="failed",
                        message=f"{env} requires a version to be deployed to {prev} first, and "
                        f"{name} {label} never was; deploy it to {prev} first, or force "
                        "with a reason (--force --reason TEXT)",
                    )
                )

        # evidence from a completed experiment
        if action == "rollback":
            gates.append(
                GateResult(
                    gate="require_experiment_win",
                    status="skipped",
                    message="rollbacks are exempt from the evidence gate",
                )
            )
        elif not rule.require_experiment_win:
            gates.append(
                GateResult(
                    gate="require_experiment_win",
                    status="skipped",
                    message=f"not required in {env}",
                )
            )
        elif live is None:
            gates.append(
                GateResult(
                    gate="require_experiment_win",
                    status="passed",
                    message=f"nothing is live in {env} yet, so there is nothing to beat",
                )
            )
        else:
            win = sql.winning_experiment(con, row["id"], env, commit.id, live.commit)
            if win is not None:
                gates.append(
                    GateResult(
                        gate="require_experiment_win",
                        status="passed",
                        experiment_id=win[0],
                        message=f"{label} won the completed experiment '{win[1]}' ({win[0]}) "
                        f"against the live {_label(live)}",
                    )
                )
            elif reason is not None:
                gates.append(
                    GateResult(
                        gate="require_experiment_win",
                        status="overridden",
                        message=f"{label} has not won a completed experiment against the live "
                        f"{_label(live)}; deployed anyway: {reason}",
                    )
                )
            else:
                gates.append(
                    GateResult(
                        gate="require_experiment_win",
                        status="failed",
                        message=f"{env} requires {label} to win a completed experiment in {env} "
                        f"against the live {_label(live)}, and no such experiment exists; "
                        "run one, or give a reason to deploy anyway (--reason TEXT)",
                    )
                )

        eval_gate = self.settings.deployment.eval_gate(env)
        if eval_gate is not None:
            gates.append(self._eval_gate(eval_gate, row, env, commit, action, live, force, reason))

        return GateReport(
            template_id=row["id"],
            template=name,
            environment=env,
            action=action,
            commit=commit.id,
            version=commit.version,
            live_commit=live.commit if live else None,
            live_version=live.version if live else None,
            checks=checks,
            gates=gates,
            forced=force,
            reason=reason,
        )

    def _eval_gate(
        self,
        gate: Any,
        row: dict[str, Any],
        env: str,
        commit: Commit,
        action: Action,
        live: Deployment | None,
        force: bool,
        reason: str | None,
    ) -> GateResult:
        """Offline evidence (``deployment.gates.<env>.eval``; see :mod:`promptver.evals.gate`)."""
        if action == "rollback":
            return GateResult(
                gate="eval", status="skipped", message="rollbacks are exempt from the eval gate"
            )
        from promptver.evals import EvalService
        from promptver.evals.gate import eval_gate

        evals = EvalService(self.db, self.settings, self.versions, self.templates)
        return eval_gate(
            evals,
            gate,
            template_id=row["id"],
            template=row["name"],
            environment=env,
            commit=commit,
            live=live,
            force=force,
            reason=reason,
        )

    @staticmethod
    def _refuse(report: GateReport) -> None:
        if report.ok:
            return
        problems: list[Problem] = []
        for g in report.gates:
            if g.status != "failed":
                continue
            errors = [p for p in g.problems if p.get("severity") == "error"]
            if not errors:
                problems.append(Problem(g.message, field=g.gate, code=g.gate))
            for p in errors:
                problems.append(
                    Problem(
                        f"{p['message']} ({g.gate})",
                        field=p.get("field"),
                        line=p.get("line"),
                        column=p.get("column"),
                        offset=p.get("offset"),
                        code=p.get("code"),
                    )
                )
        label = report.version or f"commit {report.commit[:10]}"
        what = "deployment" if report.action == "deploy" else "rollback"
        raise DeploymentRefused(
            f"{what} of {report.template} {label} to {report.environment} refused:",
            problems,
        )


def _check_gates(report: ValidationReport, checks: list[str]) -> list[GateResult]:
    """One gate per required check, holding the problems that check reported."""
    found: dict[str, list[Problem]] = {c: [] for c in checks}
    other: list[Problem] = []
    for p in [*report.errors, *report.warnings]:
        check = _CHECK_OF_CODE.get((p.code or "").split(".")[0])
        if check in found:
            found[check].append(p)
        else:
            other.append(p)
    gates = []
    for check, problems in found.items():
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        if errors:
            message = f"{errors} error{'s' * (errors > 1)}"
        else:
            message = (
                "no problems"
                if not warnings
                else (f"passed with {warnings} warning{'s' * (warnings > 1)}")
            )
        gates.append(
            GateResult(
                gate=check,
                status="failed" if errors else "passed",
                message=message,
                problems=[p.as_dict() for p in problems],
            )
        )
    other_errors = [p for p in other if p.severity == "error"]
    if other_errors:  # e.g. an empty text, which every deployment refuses
        gates.append(
            GateResult(
                gate="content",
                status="failed",
                message="; ".join(p.message for p in other_errors),
                problems=[p.as_dict() for p in other_errors],
            )
        )
    return gates
