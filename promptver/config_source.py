"""Where the settings come from: the file, the environment, and the defaults a workspace opens
with before any setting is validated.

Kept apart from :mod:`promptver.config` (the pydantic models that validate the settings) so that
finding out there is nothing to validate costs a ``stat`` and a look at the environment: with no
settings file and no ``PROMPTVER_*`` override but the database's path (a fresh ``promptver
init`` has none), a workspace opens, and ``template list`` answers, without importing pydantic
(see ``Workspace.settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptver.errors import ConfigError

DEFAULT_DB_PATH = "data/promptver.duckdb"
#: seconds a caller waits for a file another process holds (``storage.busy_timeout``)
DEFAULT_BUSY_TIMEOUT = 10.0

#: environment variables that override one setting each
ENV_KEYS = {
    "PROMPTVER_DB": "storage.path",
    "PROMPTVER_BUSY_TIMEOUT": "storage.busy_timeout",
    "PROMPTVER_CACHE_TTL": "cache.ttl_seconds",
}


def find_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The settings file: ``path``, else ``$PROMPTVER_CONFIG``, else ``./promptver.yaml`` if
    it exists (``None``: no file). A file named explicitly must exist."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"settings file not found: {p}")
        return p
    if env.get("PROMPTVER_CONFIG"):
        p = Path(env["PROMPTVER_CONFIG"])
        if not p.is_file():
            raise ConfigError(f"settings file not found: {p} (from PROMPTVER_CONFIG)")
        return p
    p = Path("promptver.yaml")
    return p if p.is_file() else None


def unvalidated(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """What ``Settings.load()`` would read, when none of it needs validating: no settings file
    and no override but ``PROMPTVER_DB`` (any path is a valid ``storage.path``). ``None`` when
    there is something to validate. ``{}`` means the documented defaults."""
    env = os.environ if environ is None else environ
    if find_file(None, env) is not None:
        return None
    data: dict[str, Any] = {}
    apply_env(data, env)
    if set(data) - {"storage"} or set(data.get("storage", {})) - {"path"}:
        return None
    return data


def read_yaml(file: Path) -> dict[str, Any]:
    """The settings file as a mapping (unwrapping a top-level ``prompt_versioning:``)."""
    import yaml

    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {file}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"settings file {file} is not valid YAML{where}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"settings file {file} must hold a mapping of sections")
    if set(raw) == {"prompt_versioning"}:
        raw = raw["prompt_versioning"] or {}
    return raw


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Write the environment's overrides into ``data`` (the parsed file)."""
    for var, dotted in ENV_KEYS.items():
        if env.get(var):
            set_dotted(data, dotted, env[var])


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``"a.b"``, creating the mappings on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
