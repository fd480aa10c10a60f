"""SQL for experiments, their variants, the running-slot table and the lifecycle log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from promptver.models.experiments import Experiment, ExperimentLogEntry, MetricSpec, VariantSpec

Con = duckdb.DuckDBPyConnection

_COLS = (
    "e.id, e.name, e.description, e.hypothesis, e.template_id, t.name AS template, "
    "e.environment, e.status, e.metrics, e.alpha, e.minimum_sample_size, e.salt, e.coverage, "
    "e.start_at, e.end_at, e.created_at, e.created_by, e.started_at, e.stopped_at, e.stop_reason, "
    "e.options"
)
_FROM = "FROM experiments e LEFT JOIN templates t ON t.id = e.template_id"


def _experiments(con: Con, where: str, params: list[Any], order: str = "") -> list[Experiment]:
    cur = con.execute(f"SELECT {_COLS} {_FROM} WHERE {where} {order}", params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if not rows:
        return []
    variants: dict[str, list[VariantSpec]] = {r["id"]: [] for r in rows}
    for eid, name, ref, commit, weight in con.execute(
        "SELECT experiment_id, name, ref, commit_id, weight FROM experiment_variants"
        " WHERE list_contains(?, experiment_id) ORDER BY experiment_id, position",
        [list(variants)],
    ).fetchall():
        variants[eid].append(VariantSpec(name=name, ref=ref, commit=commit, weight=weight))
    out = []
    for r in rows:
        r["template"] = r["template"] or ""
        r["metrics"] = [MetricSpec(**m) for m in json.loads(r["metrics"])]
        r.update(_options_fields(r.pop("options")))
        out.append(Experiment(variants=variants[r["id"]], **r))
    return out


def get(con: Con, experiment_id: str) -> Experiment | None:
    found = _experiments(con, "e.id = ?", [experiment_id])
    return found[0] if found else None


def ids_named(con: Con, name: str) -> list[str]:
    """Ids of experiments named ``name`` exactly, else case-insensitively."""
    exact = con.execute("SELECT id FROM experiments WHERE name = ?", [name]).fetchall()
    if exact:
        return [r[0] for r in exact]
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM experiments WHERE lower(name) = lower(?) ORDER BY id", [name]
        ).fetchall()
    ]


def id_exists(con: Con, experiment_id: str) -> bool:
    return (
        con.execute("SELECT count(*) FROM experiments WHERE id = ?", [experiment_id]).fetchone()[0]
        > 0
    )


def list_experiments(
    con: Con, *, status: str | None = None, template_id: str | None = None
) -> list[Experiment]:
    """Experiments, running first, then newest first."""
    where, params = ["TRUE"], []
    if status:
        where.append("e.status = ?")
        params.append(status)
    if template_id:
        where.append("e.template_id = ?")
        params.append(template_id)
    return _experiments(
        con,
        " AND ".join(where),
        params,
        "ORDER BY (e.status = 'running') DESC, e.created_at DESC, e.id",
    )


def _metrics_json(exp: Experiment) -> str:
    return json.dumps([m.model_dump() for m in exp.metrics])


def _options_json(exp: Experiment) -> str:
    """The "More statistics" options as stored (only those that differ from the default)."""
    options: dict[str, Any] = {}
    if exp.cuped_lookback_days is not None:
        options["cuped"] = {"lookback_days": exp.cuped_lookback_days}
    if exp.engine != "frequentist":
        options["engine"] = exp.engine
    if exp.allocation != "fixed":
        options["allocation"] = exp.allocation
    return json.dumps(options)


def _options_fields(raw: str | None) -> dict[str, Any]:
    """Model fields from the stored options (NULL: an experiment from before they existed)."""
    options = json.loads(raw) if raw else {}
    out: dict[str, Any] = {}
    if isinstance(options.get("cuped"), dict):
        out["cuped_lookback_days"] = options["cuped"].get("lookback_days")
    if options.get("engine"):
        out["engine"] = options["engine"]
    if options.get("allocation"):
        out["allocation"] = options["allocation"]
    return out


def insert(con: Con, exp: Experiment) -> None:
    con.execute(
        "INSERT INTO experiments (id, name, description, hypothesis, template_id, environment,"
        " status, metrics, alpha, minimum_sample_size, salt, coverage, start_at, end_at,"
        " created_at, created_by, options)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            exp.id,
            exp.name,
            exp.description,
            exp.hypothesis,
            exp.template_id,
            exp.environment,
            exp.status,
            _metrics_json(exp),
            exp.alpha,
            exp.minimum_sample_size,
            exp.salt,
            exp.coverage,
            exp.start_at,
            exp.end_at,
            exp.created_at,
            exp.created_by,
            _options_json(exp),
        ],
    )
    _insert_variants(con, exp)


def _insert_variants(con: Con, exp: Experiment) -> None:
    con.executemany(
        "INSERT INTO experiment_variants VALUES (?, ?, ?, ?, ?, ?)",
        [[exp.id, i, v.name, v.ref, v.commit, v.weight] for i, v in enumerate(exp.variants)],
    )


def replace_config(con: Con, exp: Experiment) -> None:
    """Overwrite a draft's configuration (its variants are rewritten)."""
    con.execute(
        "UPDATE experiments SET name = ?, description = ?, hypothesis = ?, template_id = ?,"
        " environment = ?, metrics = ?, alpha = ?, minimum_sample_size = ?, salt = ?,"
        " coverage = ?, start_at = ?, end_at = ?, options = ? WHERE id = ?",
        [
            exp.name,
            exp.description,
            exp.hypothesis,
            exp.template_id,
            exp.environment,
            _metrics_json(exp),
            exp.alpha,
            exp.minimum_sample_size,
            exp.salt,
            exp.coverage,
            exp.start_at,
            exp.end_at,
            _options_json(exp),
            exp.id,
        ],
    )
    con.execute("DELETE FROM experiment_variants WHERE experiment_id = ?", [exp.id])
    _insert_variants(con, exp)


def set_text(con: Con, experiment_id: str, description: str, hypothesis: str) -> None:
    con.execute(
        "UPDATE experiments SET description = ?, hypothesis = ? WHERE id = ?",
        [description, hypothesis, experiment_id],
    )


def freeze_commits(con: Con, experiment_id: str, commits: list[str]) -> None:
    for position, commit in enumerate(commits):
        con.execute(
            "UPDATE experiment_variants SET commit_id = ? WHERE experiment_id = ? AND position = ?",
            [commit, experiment_id, position],
        )


def set_status(con: Con, experiment_id: str, expected: str, status: str, **times: Any) -> bool:
    """Move ``expected`` → ``status`` (compare-and-swap); ``times`` sets started_at,
    stopped_at or stop_reason. ``False`` when the experiment was no longer ``expected``."""
    sets = ["status = ?"]
    params: list[Any] = [status]
    for column in ("started_at", "stopped_at", "stop_reason"):
        if column in times:
            sets.append(f"{column} = ?")
            params.append(times[column])
    row = con.execute(
        f"UPDATE experiments SET {', '.join(sets)} WHERE id = ? AND status = ?",
        [*params, experiment_id, expected],
    ).fetchone()
    return bool(row and row[0] == 1)


def delete(con: Con, experiment_id: str) -> None:
    con.execute("DELETE FROM experiment_variants WHERE experiment_id = ?", [experiment_id])
    con.execute("DELETE FROM experiment_log WHERE experiment_id = ?", [experiment_id])
    con.execute("DELETE FROM experiments WHERE id = ? AND status = 'draft'", [experiment_id])


# ---- the running slot -----------------------------------------------------------------------


def running_id(con: Con, template_id: str, environment: str) -> str | None:
    row = con.execute(
        "SELECT experiment_id FROM experiment_running WHERE template_id = ? AND environment = ?",
        [template_id, environment],
    ).fetchone()
    return row[0] if row else None


def take_slot(
    con: Con, template_id: str, environment: str, experiment_id: str, at: datetime
) -> None:
    """Claim (template, environment); a concurrent claim fails on the primary key."""
    con.execute(
        "INSERT INTO experiment_running VALUES (?, ?, ?, ?)",
        [template_id, environment, experiment_id, at],
    )


def free_slot(con: Con, experiment_id: str) -> None:
    con.execute("DELETE FROM experiment_running WHERE experiment_id = ?", [experiment_id])


def running_experiment(con: Con, template_id: str, environment: str) -> Experiment | None:
    eid = running_id(con, template_id, environment)
    return get(con, eid) if eid else None


# ---- results and metrics --------------------------------------------------------------------


def store_results(con: Con, experiment_id: str, results: Any) -> None:
    con.execute(
        "UPDATE experiments SET results = ? WHERE id = ?",
        [None if results is None else json.dumps(results), experiment_id],
    )


def stored_results(con: Con, experiment_id: str) -> Any:
    row = con.execute("SELECT results FROM experiments WHERE id = ?", [experiment_id]).fetchone()
    return json.loads(row[0]) if row and row[0] is not None else None


def custom_metric_names(con: Con) -> list[str]:
    """Names of the custom metrics present in stored events."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT k FROM (SELECT unnest(map_keys(custom)) AS k FROM metric_events"
            " WHERE custom IS NOT NULL) WHERE k IS NOT NULL ORDER BY k"
        ).fetchall()
    ]


# ---- lifecycle log --------------------------------------------------------------------------


def log(
    con: Con, experiment_id: str, at: datetime, action: str, author: str, detail: str = ""
) -> None:
    con.execute(
        "INSERT INTO experiment_log (experiment_id, logged_at, action, author, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        [experiment_id, at, action, author, detail],
    )


def history(con: Con, experiment_id: str) -> list[ExperimentLogEntry]:
    rows = con.execute(
        "SELECT experiment_id, logged_at, action, author, detail FROM experiment_log"
        " WHERE experiment_id = ? ORDER BY seq",
        [experiment_id],
    ).fetchall()
    return [
        ExperimentLogEntry(experiment_id=r[0], at=r[1], action=r[2], author=r[3], detail=r[4])
        for r in rows
    ]


def event_count(con: Con, experiment_id: str) -> int:
    """Stored metric events attributed to the experiment."""
    return int(
        con.execute(
            "SELECT count(*) FROM metric_events WHERE experiment_id = ?", [experiment_id]
        ).fetchone()[0]
    )
