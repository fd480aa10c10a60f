"""What ``get_prompt`` serves: the live prompt of a template in an environment, cached.

``Serving.resolve`` is the cached half of ``Workspace.get_prompt``: (template, environment) → the
live commit with its text and the template's facts, read in one statement. Answers, including
"nothing deployed" and "archived", are kept for ``Settings.cache.ttl_seconds`` (0 disables the
cache); a deploy or rollback made through this workspace clears the cache at once
(:meth:`Serving.invalidate`), so this process never serves an outdated answer, and other
processes see the change within the TTL.

This module is the whole serving path: an application that only calls ``get_prompt`` loads it,
the settings, the models of a prompt and the storage, but not the deployment log, its gates, the
templates' service or version control (``tests/test_import_footprint.py`` checks which modules load).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from time import monotonic as _clock

from promptver.config import Settings
from promptver.errors import NotFound, Problem, PromptverError, ValidationError
from promptver.models.core import Prompt
from promptver.store import serving as sql
from promptver.store.db import Database

#: the cache forgets everything when it holds this many answers (bounds memory when an
#: application asks for many different, possibly unknown, names)
MAX_CACHE_ENTRIES = 4096


def check_environment(settings: Settings, name: str) -> str:
    """``name`` if it is a configured environment.

    Raises:
        NotFound: naming the valid environments (and the closest one).
    """
    envs = settings.deployment.environments
    if isinstance(name, str) and name in envs:
        return name
    import difflib  # only for the error

    guess = difflib.get_close_matches(str(name), envs, n=1, cutoff=0.5)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    raise NotFound(
        f"unknown environment '{name}': {hint}environments are "
        f"{', '.join(envs)} (set deployment.environments in promptver.yaml)"
    )


@dataclass(frozen=True, slots=True)
class LivePrompt:
    """What is live for one template in one environment: the cached part of ``get_prompt``.

    ``prompt`` is a prepared :class:`Prompt` without a user; :meth:`prompt_for` hands out copies.
    """

    template_id: str
    name: str
    environment: str
    deployment_id: int
    commit: str
    version: str | None
    prompt: Prompt

    def prompt_for(self, user_id: str | None) -> Prompt:
        """A copy of the live prompt for ``user_id`` (its own lists and dicts, so a caller that
        modifies one cannot change what other callers get)."""
        # copy.copy() of a pydantic model, then set fields as model_copy(update=...) does, minus
        # its generic bookkeeping: this runs on every get_prompt and is half of its cost
        p = self.prompt.__copy__()
        fields = p.__dict__
        fields["user_id"] = user_id
        fields["variables"] = list(fields["variables"])
        fields["metadata"] = dict(fields["metadata"])
        p.__pydantic_fields_set__.add("user_id")
        return p


@dataclass(frozen=True, slots=True)
class _Failure:
    """A cached refusal (unknown template, archived, nothing deployed): raised anew per call."""

    message: str

    def error(self) -> NotFound:
        return NotFound(self.message)


class Serving:
    """The live prompts of one database, cached for ``cache.ttl_seconds``; safe across threads."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._ttl = float(settings.cache.ttl_seconds)
        # (template ref, environment) -> (expires at, LivePrompt | _Failure)
        self._cache: dict[tuple[str, str], tuple[float, LivePrompt | _Failure]] = {}
        # bumped by every invalidation: a lookup that began before it must not store its answer
        self._generation = 0
        self._lock = threading.Lock()

    def resolve(self, template: str, environment: str) -> LivePrompt:
        """The live prompt of ``template`` in ``environment``, from the cache when fresh.

        Raises:
            NotFound: unknown environment (listing the valid ones), unknown or archived
                template, or nothing deployed there.
            DatabaseBusy: the answer was not cached and another process held the file past
                ``storage.busy_timeout``.
        """
        key = (template, environment)
        try:
            hit = self._cache.get(key)
        except TypeError:  # an unhashable argument: refused with a clear error below
            hit = None
        if hit is not None and hit[0] > _clock():
            value = hit[1]
            if type(value) is LivePrompt:
                return value
            raise value.error()  # type: ignore[union-attr]
        return self._resolve_uncached(key)

    def _resolve_uncached(self, key: tuple[str, str]) -> LivePrompt:
        template, environment = key
        if not isinstance(template, str):
            raise ValidationError(
                "invalid input:",
                [
                    Problem(
                        f"template must be a name or id (text), not {type(template).__name__}",
                        field="name",
                    )
                ],
            )
        env = check_environment(self.settings, environment)
        generation = self._generation
        # one statement, so no transaction is needed: entries and commits never change, and a
        # commit deployed before it had a version (from a branch) may have gained one since
        with self.db.connect() as con:
            data = sql.resolve(con, template, env)
            if data is not None and data["commit"] is not None and data["version"] is None:
                data["version"] = sql.version_label(con, data["commit"])
        outcome: LivePrompt | _Failure
        if data is None:
            outcome = _Failure(f"unknown template '{template}'")
        elif not data["is_active"]:
            outcome = _Failure(
                f"template '{data['name']}' is archived, so it is not served; restore it "
                f"(promptver template restore {data['name']}) to serve it again"
            )
        elif data["commit"] is None:
            outcome = _Failure(
                f"nothing is deployed for template '{data['name']}' in {env}; deploy a version "
                f"first (promptver deploy {data['name']} VERSION --env {env})"
            )
        else:
            # the stored row was validated when it was committed, and its types are exact
            # (store.serving.resolve): no validation, so serving builds no pydantic schema
            prompt = Prompt.model_construct(
                template_id=data["template_id"],
                name=data["name"],
                version=data["version"],
                commit=data["commit"],
                content=data["content"],
                variables=data["variables"],
                metadata=data["metadata"],
                kind=data["kind"],
                chat_messages=data["messages"],
                config=data["config"],
                environment=env,
                max_render_chars=self.settings.templates.max_render_chars,
            )
            try:
                prompt.prepare()
            except PromptverError:
                pass  # a text the checks let through unparsed: text() reports it when called
            outcome = LivePrompt(
                template_id=data["template_id"],
                name=data["name"],
                environment=env,
                deployment_id=int(data["deployment_id"]),
                commit=data["commit"],
                version=data["version"],
                prompt=prompt,
            )
        if self._ttl > 0:
            with self._lock:
                if generation == self._generation:  # no deploy happened while we read
                    if len(self._cache) >= MAX_CACHE_ENTRIES:
                        self._cache.clear()
                    self._cache[key] = (_clock() + self._ttl, outcome)
        if isinstance(outcome, _Failure):
            raise outcome.error()
        return outcome

    def invalidate(self) -> None:
        """Forget every cached answer (called after each deploy and rollback in this process;
        other services that change what ``get_prompt`` serves call it too)."""
        with self._lock:
            self._generation += 1
            self._cache.clear()
