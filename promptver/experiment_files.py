"""Experiment files: parse one (YAML or JSON), write one, and an experiment as its fields.

``experiment create --file``, the API and the dashboard read experiment files with
:func:`load_spec` / :func:`read_spec_file`; :func:`to_spec` and :func:`dump_spec` write an
experiment back as a file that ``create`` accepts again. Nothing here is validated: that is
:mod:`promptver.experiment_checks`. The format is documented in ``docs/experiments.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from promptver.errors import ValidationError
from promptver.limits import load_json, load_yaml, read_text_file
from promptver.models.experiments import BUILTIN_METRICS, Experiment

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


def _shares_a_commit(exp: Experiment) -> bool:
    commits = [v.commit for v in exp.variants if v.commit]
    return len(commits) != len(set(commits))
