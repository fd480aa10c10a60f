"""SQL of the demo workspace: one vectorised insert of generated events.

The generator (:mod:`promptver.metrics.demo`) hands over a :class:`Batch` of numpy columns in
which templates, environments, served commits, experiments and variants are small integer codes.
DuckDB scans the registered frame directly and turns each code back into its text with a list
lookup (a bound list parameter indexed per row), so a million events go in with one statement
and no Python object per row. User ids are built in SQL from their number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import numpy as np

Con = duckdb.DuckDBPyConnection

_VIEW = "pv_demo_batch"


@dataclass
class Batch:
    """Generated events, column-wise (numpy arrays), with the tables their codes point into."""

    columns: dict[str, np.ndarray]
    template_ids: list[str]
    envs: list[str]
    serving: list[tuple[str | None, str]]
    experiment_ids: list[str]
    variants: list[str]
    user_width: int

    def __len__(self) -> int:
        return len(self.columns["ts_us"])


def insert_batch(con: Con, batch: Batch) -> int:
    """Append the events of ``batch`` to ``metric_events`` (in the batch's order); returns how
    many were written."""
    import pandas as pd

    n = len(batch)
    if n == 0:
        return 0
    frame = pd.DataFrame(batch.columns, copy=False)
    params = {
        "templates": batch.template_ids,
        "envs": batch.envs,
        "versions": [v for v, _ in batch.serving],
        "commits": [c for _, c in batch.serving],
        # lists must not be empty to have a type: a dummy entry no code points to
        "experiments": batch.experiment_ids or [""],
        "variants": batch.variants or [""],
        "width": batch.user_width,
    }
    con.register(_VIEW, frame)
    try:
        row = con.execute(
            f"""
            INSERT INTO metric_events (
                event_id, import_id, ts, template_id, user_id, experiment_id, variant, version,
                commit_id, environment, latency_ms, success, error, quality_score, cost_usd,
                tokens_in, tokens_out, custom)
            SELECT NULL, NULL, make_timestamptz(b.ts_us),
                   ($templates)[b.t + 1],
                   'user-' || lpad(CAST(b."user" AS VARCHAR), $width, '0'),
                   CASE WHEN b.x >= 0 THEN ($experiments)[b.x + 1] END,
                   CASE WHEN b.v >= 0 THEN ($variants)[b.v + 1] END,
                   ($versions)[b.s + 1],
                   ($commits)[b.s + 1],
                   ($envs)[b.env + 1],
                   b.latency, b.ok, NOT b.ok,
                   CASE WHEN b.ok THEN b.quality END,
                   b.cost, b.tokens_in, b.tokens_out,
                   CASE WHEN b.thumbs >= 0 THEN MAP {{'thumbs_up': b.thumbs}} END
            FROM {_VIEW} b
            """,
            params,
        ).fetchone()
    finally:
        con.unregister(_VIEW)
    return int(row[0]) if row else n
