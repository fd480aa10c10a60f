"""Environments, deployments behind gates, rollback, and what ``get_prompt`` serves.

The deployment log is append-only: a deploy and a rollback each add one entry naming the commit
that went live and the entry it replaced; nothing is ever updated or deleted. What is live in an
environment is that environment's newest entry for the template. Two writers that both saw the
same newest entry cannot both append (a unique sequence number per template and environment),
so the loser gets :class:`~promptver.errors.Conflict` instead of a log with a fork in it.

Gates run before anything is written (:mod:`promptver.deployment_gates`): the validation
checks, ``require_previous``, ``require_experiment_win`` and the evaluation gate. Rollbacks restore a
version and are exempt from the rules (the undo path must never wait for an experiment), but not
from the validation checks.

What ``get_prompt`` serves lives in :mod:`promptver.serving`, which an application loads without
this module; a deploy or rollback made through this service clears its cache at once.
"""

from __future__ import annotations

import difflib
from typing import Any

from promptver.config import Settings
from promptver.deployment_gates import MAX_NOTE, DeploymentGates, _clean, _label
from promptver.errors import (
    NotFound,
    Problem,
    ValidationError,
)
from promptver.limits import check_author
from promptver.models.core import Commit
from promptver.models.deployments import (
    Deployment,
    EnvironmentInfo,
    GateReport,
    LiveCell,
)
from promptver.serving import LivePrompt as LivePrompt  # re-exported: it moved
from promptver.serving import Serving, check_environment
from promptver.store import deployments as sql
from promptver.store.db import Database
from promptver.templates import TemplateService
from promptver.versioning import VersionControl, utcnow


class DeploymentService(DeploymentGates):
    """Deploy, promote, roll back and read the deployment log; one transaction per call."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        versions: VersionControl,
        templates: TemplateService,
        serving: Serving,
    ) -> None:
        self.db = db
        self.settings = settings
        self.versions = versions
        self.templates = templates
        #: what get_prompt serves: shared with the workspace, cleared by every deploy here
        self.serving = serving

    # -- environments -----------------------------------------------------------------------
    @property
    def environments(self) -> list[str]:
        """The configured environments in promotion order."""
        return list(self.settings.deployment.environments)

    def environment(self, name: str) -> str:
        """``name`` if it is a configured environment.

        Raises:
            NotFound: naming the valid environments (and the closest one).
        """
        return check_environment(self.settings, name)

    def previous_environment(self, env: str) -> str | None:
        envs = self.settings.deployment.environments
        i = envs.index(self.environment(env))
        return envs[i - 1] if i > 0 else None

    def next_environment(self, env: str) -> str | None:
        envs = self.settings.deployment.environments
        i = envs.index(self.environment(env))
        return envs[i + 1] if i + 1 < len(envs) else None

    def environment_info(self) -> list[EnvironmentInfo]:
        """Every environment with its neighbours on the promotion path and its rules."""
        dep = self.settings.deployment
        envs = dep.environments
        out = []
        for i, env in enumerate(envs):
            rule = dep.rule(env)
            out.append(
                EnvironmentInfo(
                    name=env,
                    position=i + 1,
                    previous=envs[i - 1] if i else None,
                    next=envs[i + 1] if i + 1 < len(envs) else None,
                    required_checks=dep.checks_for(env),
                    require_previous=rule.require_previous,
                    require_experiment_win=rule.require_experiment_win,
                )
            )
        return out

    # -- reading the log -------------------------------------------------------------------
    def get(self, deployment_id: int) -> Deployment:
        with self.db.read() as con:
            d = sql.get(con, int(deployment_id))
        if d is None:
            raise NotFound(f"deployment #{deployment_id} does not exist")
        return d

    def live(self, template: str, environment: str) -> Deployment | None:
        """The entry live for ``template`` in ``environment`` (None: never deployed there)."""
        env = self.environment(environment)
        with self.db.read() as con:
            row = self.templates.row(template)
            cur = sql.live(con, row["id"], env)
        return cur[0] if cur else None

    def history(
        self, template: str, environment: str | None = None, *, limit: int | None = None
    ) -> list[Deployment]:
        """The deployment log of a template (one environment, or all), newest first.

        Raises:
            NotFound: unknown template or environment.
        """
        env = self.environment(environment) if environment is not None else None
        if limit is not None and limit < 1:
            raise ValidationError("invalid input:", [Problem("must be at least 1", field="limit")])
        with self.db.read() as con:
            row = self.templates.row(template)
            return sql.history(con, row["id"], env, limit)

    def matrix(self, *, include_archived: bool = False) -> list[LiveCell]:
        """What is live for every template in every environment, with running experiments.

        Cells come template by template (by name), in promotion order within a template.
        """
        envs = self.settings.deployment.environments
        with self.db.read() as con:
            templates = self.templates.list(include_archived=include_archived)
            live = {(d.template_id, d.environment): d for d in sql.live_all(con)}
            running: dict[tuple[str, str], tuple[str, str]] = {}
            for tid, env, eid, name in sql.running_experiments(con):
                running.setdefault((tid, env), (eid, name))
        cells = []
        for t in templates:
            for env in envs:
                exp = running.get((t.id, env))
                cells.append(
                    LiveCell(
                        template_id=t.id,
                        template=t.name,
                        environment=env,
                        deployment=live.get((t.id, env)),
                        experiment_id=exp[0] if exp else None,
                        experiment_name=exp[1] if exp else None,
                    )
                )
        return cells

    def versions_of(self, template: str) -> list[Commit]:
        """The template's versions (the labelled commits of ``main``), newest first."""
        with self.db.read():
            row = self.templates.row(template)
            head = self.versions.branch_head(row["id"])
            return [c for c in self.versions.log(row["id"], head, first_parent=True) if c.version]

    def diff(self, deployment: Deployment | int) -> str:
        """Unified diff from the replaced version to the deployed one ('' for a first deploy
        or when only metadata changed)."""
        d = deployment if isinstance(deployment, Deployment) else self.get(deployment)
        if d.replaced_commit is None:
            return ""
        with self.db.read():
            old = self.versions.get_commit(d.replaced_commit)
            new = self.versions.get_commit(d.commit)
        return _unified(d.template, old, new, "replaced", f"#{d.id} {d.action}")

    def rollback_diff(self, current: Deployment, target: Commit) -> str:
        """Unified diff from what is live to what a rollback would restore."""
        live = self.versions.get_commit(current.commit)
        return _unified(current.template, live, target, "live", "restored")

    # -- writing -----------------------------------------------------------------------------
    def deploy(
        self,
        template: str,
        ref: str,
        environment: str,
        *,
        note: str = "",
        author: str = "unknown",
        force: bool = False,
        reason: str | None = None,
    ) -> Deployment:
        """Put the commit ``ref`` names (a version, commit prefix or branch) live in
        ``environment``, after the gates.

        Args:
            force: override the promotion-order rule (needs ``reason``).
            reason: why; required with ``force``, and lets a version that did not win an
                experiment replace the live one where the evidence gate is on. Recorded.

        Raises:
            NotFound: unknown template, ref or environment.
            ValidationError: already live, archived template, ``force`` without a reason.
            DeploymentRefused: a gate refused; ``problems`` give the reasons.
            Conflict: another deployment to the same place happened at the same moment.
        """
        note = _clean(note, "note", MAX_NOTE)
        reason = self._reason(force, reason)
        with self.db.transaction() as con:
            row, env, commit, current = self._deploy_inputs(con, template, ref, environment)
            report = self._gates(con, row, env, commit, "deploy", current, force, reason)
            self._refuse(report)
            d = self._append(con, report, commit, current, note=note, author=author)
        self.invalidate()
        return d

    def promote(
        self,
        template: str,
        environment: str,
        *,
        note: str = "",
        author: str = "unknown",
        force: bool = False,
        reason: str | None = None,
    ) -> Deployment:
        """Deploy what is live in ``environment`` to the next environment of the path.

        Raises:
            ValidationError: ``environment`` is the last one, or nothing is live there.
            (and everything :meth:`deploy` raises)
        """
        target, commit = self.promotion(template, environment)
        return self.deploy(
            template, commit, target, note=note, author=author, force=force, reason=reason
        )

    def promotion(self, template: str, environment: str) -> tuple[str, str]:
        """(next environment, commit live in ``environment``) for a promotion.

        Raises:
            ValidationError: ``environment`` is the last one, or nothing is live there.
        """
        nxt = self.next_environment(environment)
        if nxt is None:
            raise ValidationError(
                f"{environment} is the last environment; there is nothing to promote to"
            )
        live = self.live(template, environment)
        if live is None:
            raise ValidationError(
                f"nothing is live for '{template}' in {environment}; deploy a version there first"
            )
        return nxt, live.commit

    def rollback_plan(
        self, template: str, environment: str, to: str | None = None
    ) -> tuple[Deployment, Commit]:
        """(the live entry, the commit a rollback would restore), without writing.

        Raises:
            NotFound: unknown template, environment or ``to``; nothing deployed there.
            ValidationError: no earlier version (first deployment) or ``to`` is already live.
        """
        with self.db.read() as con:
            _, env, current, target, _, _ = self._rollback_inputs(con, template, environment, to)
        return current[0], target

    def _rollback_inputs(
        self, con: Any, template: str, environment: str, to: str | None
    ) -> tuple[dict[str, Any], str, tuple[Deployment, int], Commit, str, int | None]:
        env = self.environment(environment)
        row = self._active_row(template)
        current = sql.live(con, row["id"], env)
        if current is None:
            raise NotFound(
                f"nothing is deployed for '{row['name']}' in {env}, so there is "
                "nothing to roll back"
            )
        live = current[0]
        if to is None:
            if live.replaced_commit is None:
                raise ValidationError(
                    f"{row['name']} {_label(live)} is the first deployment in {env}; there is no "
                    "earlier version to roll back to (name one with --to VERSION)"
                )
            target = self.versions.get_commit(live.replaced_commit)
            return row, env, current, target, "previous", live.replaced_deployment_id
        target = self.versions.resolve(row["id"], str(to), template_name=row["name"])
        if target.id == live.commit:
            raise ValidationError(
                f"{row['name']} {_label(target)} is already live in {env}; nothing to roll back"
            )
        restored = sql.last_entry_with_commit(con, row["id"], env, target.id)
        return row, env, current, target, "named", restored

    def rollback(
        self,
        template: str,
        environment: str,
        *,
        to: str | None = None,
        note: str = "",
        author: str = "unknown",
        require_note: bool = False,
    ) -> Deployment:
        """Put back the version that was live before the current one (or ``to``).

        ``require_note`` refuses a rollback without a note (the dashboard asks for the reason,
        so that whoever reads the history later knows why); the CLI and the API keep the note
        optional, as the contract's ``rollback REF --env ENV [--to VERSION]`` has it.

        "Before the current one" follows the log, not version numbers: after deploying 1.3.0
        over 1.1.0, a rollback restores 1.1.0. A rollback is itself an entry, so rolling back
        twice returns to where you started. Validation checks still apply; the promotion and
        evidence rules do not.

        Raises:
            NotFound: unknown template, environment or ``to``; nothing deployed there.
            ValidationError: nothing earlier to return to, ``to`` is already live, or no
                note while ``require_note``.
            DeploymentRefused: the restored text fails a validation check required there.
        """
        note = _clean(note, "note", MAX_NOTE)
        if require_note and not note:
            raise ValidationError(
                "invalid input:",
                [Problem("a rollback needs a reason: say what went wrong", field="note")],
            )
        with self.db.transaction() as con:
            row, env, current, target, mode, restored = self._rollback_inputs(
                con, template, environment, to
            )
            report = self._gates(con, row, env, target, "rollback", current, False, None)
            self._refuse(report)
            d = self._append(
                con,
                report,
                target,
                current,
                note=note,
                author=author,
                rollback_mode=mode,
                restored=restored,
            )
        self.invalidate()
        return d

    def _append(
        self,
        con: Any,
        report: GateReport,
        commit: Commit,
        current: tuple[Deployment, int] | None,
        *,
        note: str,
        author: str,
        rollback_mode: str | None = None,
        restored: int | None = None,
    ) -> Deployment:
        author = check_author(author)
        live, seq = current if current else (None, 0)
        promotion = report.gate("require_previous")
        evidence = report.gate("require_experiment_win")
        evals = report.gate("eval")
        forced = any(g is not None and g.status == "overridden" for g in (promotion, evals))
        new_id = sql.insert(
            con,
            {
                "template_id": report.template_id,
                "environment": report.environment,
                "env_seq": seq + 1,
                "action": report.action,
                "commit_id": commit.id,
                "version": commit.version,
                "replaced_deployment_id": live.id if live else None,
                "replaced_commit_id": live.commit if live else None,
                "replaced_version": live.version if live else None,
                "rollback_mode": rollback_mode,
                "restored_deployment_id": restored,
                "note": note,
                "author": author or "unknown",
                "created_at": utcnow(),
                "forced": forced,
                "force_reason": report.reason if forced else None,
                "evidence_experiment_id": evidence.experiment_id if evidence else None,
                "evidence_override_reason": report.reason
                if evidence is not None and evidence.status == "overridden"
                else None,
                "gate_report": report.model_dump(mode="json"),
            },
        )
        d = sql.get(con, new_id)
        assert d is not None
        _emit_deployment(con, d)
        return d

    # -- serving -----------------------------------------------------------------------------
    def resolve(self, template: str, environment: str) -> LivePrompt:
        """The live prompt of ``template`` in ``environment`` (:meth:`Serving.resolve`)."""
        return self.serving.resolve(template, environment)

    def invalidate(self) -> None:
        """Forget every cached answer of serving (after a deploy, rollback, archive, sync)."""
        self.serving.invalidate()


def _emit_deployment(con: Any, d: Deployment) -> None:
    """The ``deployment.created`` webhook event (deploy, promote, rollback), in the
    deployment's transaction."""
    from promptver.outbox import DEPLOYMENT_CREATED, emit

    emit(
        con,
        DEPLOYMENT_CREATED,
        lambda: d.model_dump(mode="json", exclude={"gate_report"}),
        at=d.created_at,
    )


def _unified(name: str, old: Commit, new: Commit, old_tag: str, new_tag: str) -> str:
    from promptver.chat import readable

    def text(c: Commit) -> str:
        return readable(c.kind, c.content, c.messages or [], c.config)

    lines = difflib.unified_diff(
        text(old).splitlines(keepends=True),
        text(new).splitlines(keepends=True),
        fromfile=f"{name} {_label(old)} ({old_tag})",
        tofile=f"{name} {_label(new)} ({new_tag})",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
