"""Settings: defaults, the YAML file, environment overrides, unknown keys."""

from __future__ import annotations

import pytest

from promptver.config import Settings
from promptver.errors import ConfigError


def _sections(model):
    """Every section model reachable from ``model`` (Settings, ab_testing, its parts …)."""
    from pydantic import BaseModel

    yield model
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _sections(value)


def test_unvalidated_defaults_equal_the_validated_ones_section_by_section():
    """With no file the defaults are built without validation (no schema to build at start):
    they must be exactly what validating an empty mapping gives, down to every section."""
    fast, checked = Settings.load(environ={}), Settings.model_validate({})
    pairs = list(zip(_sections(fast), _sections(checked), strict=True))
    assert len(pairs) >= 12
    for a, b in pairs:
        assert type(a) is type(b)
        assert a.__dict__ == b.__dict__
        assert a.model_fields_set == b.model_fields_set == set()
    assert fast == checked
    # a partial file still fills the missing sections with the same defaults
    partial = Settings.from_dict({"cache": {"ttl_seconds": 3}})
    assert partial.cache.ttl_seconds == 3 and partial.deployment == checked.deployment


def test_loading_the_defaults_builds_no_pydantic_schema(tmp_path):
    import subprocess
    import sys

    code = (
        "import promptver.workspace  # the modules a start loads (no default built at import)\n"
        "from promptver.config import Settings, _Section\n"
        "s = Settings.load()\n"
        "built = [c.__name__ for c in [Settings, *_Section.__subclasses__()]"
        " if c.__pydantic_complete__]\n"
        "print(built)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_defaults_match_the_design():
    s = Settings.load()
    assert s.storage.path == "data/promptver.duckdb"
    a = s.ab_testing
    assert a.statistical_analysis.significance_level == 0.05
    assert a.statistical_analysis.minimum_sample_size == 100
    assert a.statistical_analysis.confidence_interval == 0.95
    assert a.traffic_routing.hash_function == "md5"
    p = s.performance_tracking
    assert (p.batch_size, p.flush_interval, p.metrics_retention_days) == (100, 60, 90)
    assert s.deployment.environments == ["development", "staging", "production"]
    assert s.deployment.checks_for("production") == [
        "syntax_validation",
        "variable_validation",
        "performance_validation",
        "security_validation",
    ]
    assert s.storage.busy_timeout == 10
    assert s.cache.ttl_seconds == 10
    assert s.server.host == "127.0.0.1"


def test_file_in_the_seed_structure_is_read(tmp_path):
    f = tmp_path / "promptver.yaml"
    f.write_text("""
prompt_versioning:
  ab_testing:
    statistical_analysis:
      significance_level: 0.01
  performance_tracking:
    batch_size: 500
  deployment:
    environments: [dev, prod]
    rules:
      prod: {require_previous: true, required_checks: [syntax_validation]}
""")
    s = Settings.load(f)
    assert s.ab_testing.statistical_analysis.significance_level == 0.01
    assert s.performance_tracking.batch_size == 500
    assert s.deployment.environments == ["dev", "prod"]
    assert s.deployment.rule("prod").require_previous
    assert s.deployment.checks_for("prod") == ["syntax_validation"]
    assert not s.deployment.rule("dev").require_previous


def test_promptver_yaml_in_the_working_directory_is_found(tmp_path):
    (tmp_path / "promptver.yaml").write_text("cache: {ttl_seconds: 3}\n")
    assert Settings.load().cache.ttl_seconds == 3


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "ab_testing:\n  statistical_analyis: {}\n",
            "ab_testing.statistical_analyis: unknown key (did you mean 'statistical_analysis'?)",
        ),
        (
            "perfomance_tracking: {}\n",
            "perfomance_tracking: unknown key (did you mean 'performance_tracking'?)",
        ),
        (
            "deployment:\n  rules:\n    production: {require_previus: true}\n",
            "deployment.rules.production.require_previus: unknown key (did you mean 'require_previous'?)",
        ),
        ("performance_tracking: {batch_size: 0}\n", "performance_tracking.batch_size"),
        ("deployment:\n  rules:\n    moon: {}\n", "not in environments"),
        (
            "deployment:\n  validation: {required_checks: [spelling]}\n",
            "deployment.validation.required_checks.0",
        ),
    ],
)
def test_mistakes_are_errors_that_name_the_key(tmp_path, yaml_text, message):
    f = tmp_path / "s.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        Settings.load(f)
    assert message in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("cache:\n  ttl_seconds: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        Settings.load(f)


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTVER_DB", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("PROMPTVER_BUSY_TIMEOUT", "2.5")
    monkeypatch.setenv("PROMPTVER_CACHE_TTL", "0")
    s = Settings.load()
    assert s.storage.path == str(tmp_path / "x.duckdb")
    assert s.storage.busy_timeout == 2.5
    assert s.cache.ttl_seconds == 0
    monkeypatch.setenv("PROMPTVER_BUSY_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="storage.busy_timeout"):
        Settings.load()


def test_missing_settings_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="settings file not found"):
        Settings.load(tmp_path / "nope.yaml")


def test_with_overrides_returns_a_validated_copy():
    s = Settings.load().with_overrides(cache__ttl_seconds=0)
    assert s.cache.ttl_seconds == 0
    with pytest.raises(ConfigError):
        Settings.load().with_overrides(cache__ttl_seconds=-1)


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """A working directory without promptver.yaml and no PROMPTVER_* variable."""
    import os

    for var in list(os.environ):
        if var.startswith("PROMPTVER_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("env", "yaml_text", "expected"),
    [
        ({}, None, {}),
        ({"PROMPTVER_DB": "x.duckdb"}, None, {"storage": {"path": "x.duckdb"}}),
        ({"PROMPTVER_DB": ""}, None, {}),  # empty: no override, as Settings.load reads it
        ({"PROMPTVER_CACHE_TTL": "3"}, None, None),
        ({"PROMPTVER_BUSY_TIMEOUT": "2"}, None, None),
        ({}, "cache: {ttl_seconds: 3}\n", None),
        ({}, "", None),  # an empty file is still a file to read
    ],
)
def test_unvalidated_says_when_there_is_nothing_to_validate(bare_env, env, yaml_text, expected):
    from promptver.config_source import unvalidated

    if yaml_text is not None:
        (bare_env / "promptver.yaml").write_text(yaml_text)
    assert unvalidated(env) == expected
    if expected is not None:  # what it returns is what validation would have given
        assert Settings.from_dict(expected) == Settings.load(environ=env)


def test_a_workspace_with_nothing_to_validate_builds_its_settings_on_first_use(
    bare_env, monkeypatch
):
    from pathlib import Path

    from promptver import Workspace

    monkeypatch.setenv("PROMPTVER_DB", str(bare_env / "x.duckdb"))
    ws = Workspace.open()
    try:
        assert ws.path == Path(bare_env / "x.duckdb") and ws.path.exists()
        assert ws._settings is None  # nothing built yet
        s = ws.settings
        assert s is ws.settings  # built once
        assert s == Settings.load()  # what an eager load gives, the path included
        assert s.storage.path == str(bare_env / "x.duckdb")
        # a settings file written after the open does not change this workspace's settings
        (bare_env / "promptver.yaml").write_text("cache: {ttl_seconds: 3}\n")
        assert ws.settings.cache.ttl_seconds == 10.0
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("env", "yaml_text", "field"),
    [
        ({}, "cache: {ttl_secs: 3}\n", "cache.ttl_secs"),
        ({"PROMPTVER_BUSY_TIMEOUT": "soon"}, None, "storage.busy_timeout"),
        ({"PROMPTVER_CACHE_TTL": "-1"}, None, "cache.ttl_seconds"),
    ],
)
def test_settings_to_validate_are_still_checked_when_the_workspace_opens(
    bare_env, monkeypatch, env, yaml_text, field
):
    from promptver import Workspace

    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if yaml_text is not None:
        (bare_env / "promptver.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        Workspace.open(bare_env / "pv.duckdb")
    assert field in str(info.value)
    assert not (bare_env / "pv.duckdb").exists()  # refused before anything was created


def test_template_list_still_refuses_a_bad_settings_file(bare_env):
    """The light listing path skips pydantic only when there is nothing to validate."""
    from promptver.cli import main

    db = str(bare_env / "pv.duckdb")
    assert main(["--db", db, "init"]) == 0
    assert main(["--db", db, "template", "list"]) == 0
    (bare_env / "promptver.yaml").write_text("templates: {max_char: 10}\n")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["--db", db, "template", "list"]) == 1
    assert "templates.max_char" in err.getvalue() and "max_chars" in err.getvalue()
