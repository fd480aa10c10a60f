"""One typed settings object, read from ``promptver.yaml`` and the environment.

The file follows the original design's structure (``storage``, ``ab_testing``,
``performance_tracking``, ``deployment`` …), optionally wrapped in a top-level
``prompt_versioning:`` key as in that design. Unknown keys are errors with a "did you mean" hint,
so a typo never silently falls back to a default. Pages and services never read ``os.environ``
themselves: everything configurable is here.

Lookup order for the file: an explicit path, ``$PROMPTVER_CONFIG``, ``./promptver.yaml``.
Environment overrides: ``PROMPTVER_DB`` (storage.path), ``PROMPTVER_BUSY_TIMEOUT``
(storage.busy_timeout, seconds), ``PROMPTVER_CACHE_TTL`` (cache.ttl_seconds). Finding the file
and reading it and the environment live in :mod:`promptver.config_source`, which imports no
pydantic: a workspace with nothing to validate builds these models only when a setting is read.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from promptver.config_source import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_DB_PATH,
    apply_env,
    find_file,
    read_yaml,
    set_dotted,
)
from promptver.errors import ConfigError, Problem

CheckName = Literal[
    "syntax_validation", "variable_validation", "performance_validation", "security_validation"
]
ALL_CHECKS: list[str] = [
    "syntax_validation",
    "variable_validation",
    "performance_validation",
    "security_validation",
]


_S = TypeVar("_S", bound="_Section")


def _default(section: type[_S]) -> Any:
    """A section's documented defaults, built without validation (they are valid by
    construction, see ``tests/test_config.py``): with no settings file nothing is validated, so
    no pydantic schema is built and a CLI command or ``get_prompt`` starts sooner."""
    return Field(default_factory=section.model_construct)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class StorageSettings(_Section):
    path: str = DEFAULT_DB_PATH
    #: seconds a caller waits for a file another process holds before ``DatabaseBusy``
    busy_timeout: float = Field(DEFAULT_BUSY_TIMEOUT, ge=0)


class TrafficRouting(_Section):
    strategy: Literal["consistent_hashing"] = "consistent_hashing"
    hash_function: Literal["md5"] = "md5"


class StatisticalAnalysis(_Section):
    significance_level: float = Field(0.05, gt=0, lt=1)
    minimum_sample_size: int = Field(100, ge=1)
    confidence_interval: float = Field(0.95, gt=0, lt=1)
    bootstrap_resamples: int = Field(2000, ge=100)
    bootstrap_seed: int = 20261124
    #: latency and cost are capped at this percentile over all arms (the uncapped result is kept)
    winsorize_percentile: float = Field(99.9, gt=50, le=100)
    #: winsorise latency_ms and cost_usd by default (the dashboard and the CLI can toggle it)
    winsorize: bool = False
    #: always-valid confidence sequences for teams that look at results every day
    sequential: bool = False
    #: tuning of the mixture confidence sequence: the sample size (users per arm) it is tightest at
    sequential_tuning_n: int = Field(1000, ge=10)


class ABTesting(_Section):
    traffic_routing: TrafficRouting = _default(TrafficRouting)
    statistical_analysis: StatisticalAnalysis = _default(StatisticalAnalysis)


class PerformanceTracking(_Section):
    metrics_retention_days: int = Field(90, ge=1)
    batch_size: int = Field(100, ge=1)
    #: seconds between background flushes of tracked events
    flush_interval: float = Field(60.0, gt=0)
    #: clock skew allowed for imported timestamps: later than now + this is "in the future"
    future_tolerance_seconds: float = Field(60.0, ge=0)
    #: after an import or a flush, alert rules are evaluated on the windows the new events fall
    #: in, back to this many days (older events never fire alerts unless `alerts check --since`)
    alert_lookback_days: int = Field(7, ge=1)


class DeploymentValidation(_Section):
    required_checks: list[CheckName] = Field(default_factory=lambda: list(ALL_CHECKS))


class EnvironmentRule(_Section):
    """Extra rules for one environment (all off by default)."""

    #: checks for this environment; ``None`` means ``deployment.validation.required_checks``
    required_checks: list[CheckName] | None = None
    #: the version must have been deployed to the previous environment first
    require_previous: bool = False
    #: a version may replace the live one only if it won a completed experiment against it
    require_experiment_win: bool = False


class EvalGate(_Section):
    """A deploy there needs the candidate to be non-inferior to the live version on an eval."""

    #: the dataset both versions must have been evaluated on
    dataset: str = Field(min_length=1, max_length=100)
    #: the score compared (its good direction follows the eval rules: lower for *_ms …)
    metric: str = Field(min_length=1, max_length=64)
    #: how much worse the candidate may be, in the metric's unit: the bound of the paired
    #: difference's confidence interval on the good side must stay above -margin
    margin: float = Field(0.0, ge=0)


class EnvironmentGates(_Section):
    """Evidence a deploy to one environment needs (docs/evaluations.md)."""

    eval: EvalGate | None = None


class DeploymentSettings(_Section):
    environments: list[str] = Field(
        default_factory=lambda: ["development", "staging", "production"], min_length=1
    )
    validation: DeploymentValidation = _default(DeploymentValidation)
    rules: dict[str, EnvironmentRule] = Field(default_factory=dict)
    gates: dict[str, EnvironmentGates] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_environments(self) -> DeploymentSettings:
        if len(set(self.environments)) != len(self.environments):
            raise ValueError("environments must be unique")
        for env in self.environments:
            # names appear on the command line, in URLs and in events: the template-name rule
            # (fullmatch, so "production\n" is no environment)
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", env):
                raise ValueError(
                    f"environment {env!r} is invalid: use 1–100 letters, digits, '-', '_' or '.'"
                )
        for section, envs in (("rules", self.rules), ("gates", self.gates)):
            for env in envs:
                if env not in self.environments:
                    raise ValueError(
                        f"{section} names environment {env!r}, which is not in environments "
                        f"{self.environments}"
                    )
        return self

    def eval_gate(self, environment: str) -> EvalGate | None:
        gates = self.gates.get(environment)
        return gates.eval if gates is not None else None

    def rule(self, environment: str) -> EnvironmentRule:
        return self.rules.get(environment, EnvironmentRule())

    def checks_for(self, environment: str) -> list[str]:
        rule = self.rule(environment)
        if rule.required_checks is not None:
            return list(rule.required_checks)
        return list(self.validation.required_checks)


class TemplateLimits(_Section):
    #: a template longer than this is refused (characters; at most 100,000 whatever the file says)
    max_chars: int = Field(20_000, ge=1, le=100_000)
    #: above this many characters a warning is shown
    warn_chars: int = Field(8_000, ge=1, le=100_000)
    #: estimated tokens above which the template is refused
    max_tokens: int = Field(4_000, ge=1)
    #: estimated tokens above which a warning is shown
    warn_tokens: int = Field(2_000, ge=1)
    #: rendered output larger than this is refused (characters)
    max_render_chars: int = Field(1_000_000, ge=1)


class CacheSettings(_Section):
    #: how long ``get_prompt`` answers are reused in-process (seconds; 0 disables the cache)
    ttl_seconds: float = Field(10.0, ge=0)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=1, le=65535)
    #: SHA-256 hex digests of accepted bearer tokens; empty means no authentication
    token_hashes: list[str] = Field(default_factory=list)
    #: Host header names the API answers besides 127.0.0.1, localhost, ::1 and the bound
    #: address (DNS rebinding: a web page must not reach the API under its own name);
    #: ``*.example.com`` allows subdomains, ``*`` any name
    allowed_hosts: list[str] = Field(default_factory=list)
    #: largest request body of the API's write, render and experiment endpoints (kilobytes)
    max_body_kb: int = Field(1024, ge=1, le=1024 * 1024)
    #: largest body of ``POST /events`` (megabytes): a batch of metric events
    max_events_mb: int = Field(8, ge=1, le=1024)
    #: seconds a client has to send a request's headers (slow clients are cut off)
    header_timeout: float = Field(10.0, gt=0, le=3600)

    @field_validator("token_hashes")
    @classmethod
    def _sha256_hex(cls, value: list[str]) -> list[str]:
        # a token pasted here by mistake (instead of its hash) must not silently lock everyone out
        out = []
        for i, digest in enumerate(value):
            digest = digest.strip().lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(
                    f"entry {i + 1} is not a SHA-256 hex digest (64 hex digits): store the "
                    "hash of a token, printed by 'promptver serve --hash-token', not the token"
                )
            out.append(digest)
        return out

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        out = []
        for i, host in enumerate(value):
            name = host.strip().lower()
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]  # an IPv6 address as written in a URL
            # a name or address, no port or scheme: compared with the Host header's name part
            if name != "*" and not re.fullmatch(r"(\*\.)?[a-z0-9_.:-]+", name):
                raise ValueError(
                    f"entry {i + 1} ({host!r}) is not a host name or address: give names like "
                    "'api.internal', '10.0.0.5' or '*.example.com', without scheme or port"
                )
            out.append(name)
        return out


class UploadSettings(_Section):
    #: largest CSV the dashboard accepts (megabytes; the API's limits are under ``server``)
    max_upload_mb: int = Field(200, ge=1)


#: the contract's event columns (the metric-events CSV names) a source may rename
EVENT_SOURCE_COLUMNS = (
    "timestamp",
    "template",
    "user_id",
    "event_id",
    "experiment",
    "variant",
    "version",
    "environment",
    "latency_ms",
    "success",
    "error",
    "quality_score",
    "cost_usd",
    "tokens_in",
    "tokens_out",
)


class EventsSettings(_Section):
    """Where the analysis reads metric events (docs/sources.md). ``duckdb``: the promptver file."""

    source: Literal["duckdb", "parquet", "postgres", "spark"] = "duckdb"
    #: parquet (and spark without ``table``): a file, directory or glob; hive partitions allowed
    path: str | None = None
    #: postgres: a libpq connection string or URL
    dsn: str | None = None
    #: postgres or spark: the table (``schema.table``)
    table: str | None = None
    #: spark: a Spark Connect URL (``sc://host:15002``); none = local mode
    remote: str | None = None
    #: contract name → the source's column name
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> EventsSettings:
        unknown = [k for k in self.columns if k not in EVENT_SOURCE_COLUMNS]
        if unknown:
            raise ValueError(
                f"columns renames unknown event column(s) {', '.join(map(repr, unknown))}: "
                f"use {', '.join(EVENT_SOURCE_COLUMNS)}"
            )
        for key, name in self.columns.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"columns.{key} must name a column of the source")
        need = {
            "parquet": [("path", self.path)],
            "postgres": [("dsn", self.dsn), ("table", self.table)],
        }.get(self.source, [])
        if self.source == "spark" and not (self.table or self.path):
            raise ValueError("a spark source needs table (or path for Parquet files)")
        missing = [name for name, value in need if not value]
        if missing:
            raise ValueError(f"a {self.source} source needs {' and '.join(missing)}")
        return self


class WebhookSettings(_Section):
    #: where Slack messages link to (the dashboard's address as its readers reach it)
    dashboard_url: str = "http://localhost:8501"
    #: the key webhook secrets derive from (default: ``<database>.webhook-key`` beside the file)
    key_file: str | None = None
    #: seconds between background delivery passes (dashboard, ``promptver serve``)
    poll_seconds: float = Field(5.0, gt=0, le=3600)
    #: seconds to wait for a receiver's answer
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class Settings(_Section):
    """All settings. Construct with :meth:`load`; the defaults are the documented ones."""

    storage: StorageSettings = _default(StorageSettings)
    ab_testing: ABTesting = _default(ABTesting)
    performance_tracking: PerformanceTracking = _default(PerformanceTracking)
    deployment: DeploymentSettings = _default(DeploymentSettings)
    templates: TemplateLimits = _default(TemplateLimits)
    cache: CacheSettings = _default(CacheSettings)
    server: ServerSettings = _default(ServerSettings)
    uploads: UploadSettings = _default(UploadSettings)
    events: EventsSettings = _default(EventsSettings)
    webhooks: WebhookSettings = _default(WebhookSettings)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Read the settings file (if any) and apply environment overrides.

        Raises:
            ConfigError: the file is unreadable, or holds unknown keys or invalid values.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        file = find_file(path, env)
        if file is not None:
            data = read_yaml(file)
        apply_env(data, env)
        for dotted, value in (overrides or {}).items():
            set_dotted(data, dotted, value)
        return cls.from_dict(data, source=str(file) if file else "settings")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "settings") -> Settings:
        """Validate a plain mapping (the parsed YAML) into Settings."""
        if "prompt_versioning" in data and len(data) == 1:
            data = data["prompt_versioning"] or {}
        if not data:  # the defaults: valid by construction, no schema to build
            return cls.model_construct()
        try:
            return cls.model_validate(dict(data))
        except PydanticValidationError as exc:
            problems = [_problem_from(err) for err in exc.errors()]
            raise ConfigError(f"invalid settings in {source}:", problems) from None

    def with_overrides(self, **dotted: Any) -> Settings:
        """A copy with ``section__key=value`` overrides (used by tests and the CLI)."""
        data = self.model_dump()
        for key, value in dotted.items():
            set_dotted(data, key.replace("__", "."), value)
        return Settings.from_dict(data)


def _fields_of(loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields valid at the mapping that contains ``loc[-1]``."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        elif model is dict or getattr(model, "__origin__", None) is dict:
            model = model.__args__[1]
        else:
            return []
        origin = getattr(model, "__origin__", None)
        if origin is dict:
            continue
    if getattr(model, "__origin__", None) is dict:
        model = model.__args__[1]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _problem_from(err: Mapping[str, Any]) -> Problem:
    loc = tuple(err.get("loc", ()))
    dotted = ".".join(str(p) for p in loc) or "settings"
    if err.get("type") == "extra_forbidden":
        known = _fields_of(loc)
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        if known and not guess:
            hint = f" (known keys: {', '.join(known)})"
        return Problem(f"unknown key{hint}", field=dotted, code="unknown_key")
    return Problem(str(err.get("msg", "invalid value")), field=dotted, code=str(err.get("type")))


def default_author() -> str:
    """Who is working: ``$PROMPTVER_AUTHOR``, else the login name, else ``unknown``."""
    name = os.environ.get("PROMPTVER_AUTHOR")
    if name:
        return name
    try:
        import getpass

        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):  # no login name in some containers
        return "unknown"
