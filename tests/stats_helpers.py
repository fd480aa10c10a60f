"""Fixtures for the statistics tests: experiments built in memory and synthetic events.

Events are written straight into ``metric_events`` (the table of migration m004) so that these
tests do not depend on the experiments service or the CSV importer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from promptver.models import BUILTIN_METRICS, Experiment, MetricSpec, VariantSpec
from promptver.store.metrics import EVENT_COLUMNS as _EVENT_COLUMNS

T0 = datetime(2026, 3, 1, tzinfo=UTC)

EVENT_COLUMNS = list(_EVENT_COLUMNS)


def make_experiment(
    exp_id: str = "exp-1",
    variants: list[tuple[str, float]] | None = None,
    metrics: list[Any] | None = None,
    **kw: Any,
) -> Experiment:
    """An Experiment model; metrics are names (built-in direction) or MetricSpec/dicts."""
    variants = variants or [("control", 50), ("treatment", 50)]
    specs = []
    for i, m in enumerate(metrics or ["quality_score"]):
        if isinstance(m, str):
            m = {"name": m, "direction": BUILTIN_METRICS.get(m, "higher")}
        if isinstance(m, dict):
            m = {"role": "primary" if i == 0 else "secondary", **m}
            m = MetricSpec(**m)
        specs.append(m)
    data = {
        "id": exp_id,
        "name": kw.pop("name", f"test {exp_id}"),
        "template_id": "tpl-1",
        "template": "qa-basic",
        "status": kw.pop("status", "running"),
        "variants": [
            VariantSpec(name=n, ref="1.0.0", weight=w, commit="c" * 64) for n, w in variants
        ],
        "metrics": specs,
        "salt": exp_id,
        "created_at": T0 - timedelta(days=1),
        "started_at": kw.pop("started_at", T0),
        "minimum_sample_size": kw.pop("minimum_sample_size", 100),
    }
    data.update(kw)
    return Experiment(**data)


def insert_events(ws, frame: pd.DataFrame, experiment_id: str = "exp-1") -> None:
    """Append events (columns: user_id, variant, metrics…, optional ts/custom) to metric_events."""
    df = frame.copy()
    n = len(df)
    if "ts" not in df:
        df["ts"] = T0 + pd.to_timedelta(np.arange(n) % 86_400, unit="s")
    if "experiment_id" not in df:
        df["experiment_id"] = experiment_id
    df["template_id"] = df.get("template_id", "tpl-1")
    df["user_id"] = df["user_id"].astype(str)
    for col in EVENT_COLUMNS:
        if col not in df:
            df[col] = None
    df = df[EVENT_COLUMNS]
    with ws.db.transaction() as con:
        con.register("incoming_events", df)
        try:
            con.execute(
                f"INSERT INTO metric_events ({', '.join(EVENT_COLUMNS)}) SELECT event_id::VARCHAR, import_id::VARCHAR,"
                " ts::TIMESTAMPTZ, template_id::VARCHAR, user_id::VARCHAR, experiment_id::VARCHAR,"
                " variant::VARCHAR, version::VARCHAR, commit_id::VARCHAR, environment::VARCHAR,"
                " latency_ms::DOUBLE, success::BOOLEAN, error::BOOLEAN, quality_score::DOUBLE,"
                " cost_usd::DOUBLE, tokens_in::BIGINT, tokens_out::BIGINT,"
                " custom::MAP(VARCHAR, DOUBLE) FROM incoming_events"
            )
        finally:
            con.unregister("incoming_events")


def one_event_per_user(
    rng: np.random.Generator,
    n_c: int,
    n_t: int,
    metric: str = "quality_score",
    loc: tuple[float, float] = (0.6, 0.63),
    scale: tuple[float, float] = (0.1, 0.15),
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Normal values, one event per user; returns the frame and each arm's values."""
    a = rng.normal(loc[0], scale[0], n_c)
    b = rng.normal(loc[1], scale[1], n_t)
    frame = pd.DataFrame(
        {
            "user_id": [f"c{i}" for i in range(n_c)] + [f"t{i}" for i in range(n_t)],
            "variant": ["control"] * n_c + ["treatment"] * n_t,
            metric: np.concatenate([a, b]),
        }
    )
    return frame, a, b


def clustered_users(
    rng: np.random.Generator,
    runs: int,
    users: int,
    *,
    mean: float = 1.0,
    user_sd: float = 1.0,
    event_sd: float = 0.5,
    events_mean: float = 3.0,
    effect: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user sums of clustered events for ``runs`` simulated arms of ``users`` users.

    Each user has ``1 + Poisson(events_mean − 1)`` events with values ``mean + effect + uᵢ + εᵢⱼ``
    (user effect ``uᵢ ~ N(0, user_sd²)``, ``εᵢⱼ ~ N(0, event_sd²)``). The events themselves are never
    materialised: the sum of ``y`` normal errors is ``N(0, y·σ²)`` and the within-user sum of
    squares is ``σ²·χ²(y − 1)``, so the per-user Σv and Σv² are drawn exactly.

    Returns:
        x (Σ values), y (events), q (Σ values²), each of shape ``(runs, users)``.
    """
    y = 1 + rng.poisson(events_mean - 1, size=(runs, users)).astype(float)
    level = mean + effect + rng.normal(0, user_sd, size=(runs, users))
    err_sum = rng.normal(0, 1, size=(runs, users)) * event_sd * np.sqrt(y)
    within = event_sd**2 * rng.chisquare(np.maximum(y - 1, 1e-12))
    within = np.where(y > 1, within, 0.0)
    x = y * level + err_sum
    # Σ (level + εⱼ)² = y·level² + 2·level·Σε + Σε², and Σε² = (Σε)²/y + within-user SS
    q = y * level**2 + 2 * level * err_sum + err_sum**2 / y + within
    return x, y, q
