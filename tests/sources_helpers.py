"""Helpers for the event-source tests: one set of events in the file and in each engine.

:func:`build_world` makes a promptver file with a template, four experiments (one large enough
for the bucket bootstrap, one small whose events name it by name, one with a custom metric and
a window that leaves events out, one with CUPED whose users have pre-period events) and imports
generated events, with a segment dimension ``dim_country``, through the CSV import. The same
CSV rows are what :func:`write_parquet`, :func:`load_postgres` and the Spark tests load, so the
engines hold exactly the events the file holds. :func:`postgres_cluster` starts a throwaway
PostgreSQL from Debian's package (``initdb`` as the ``postgres`` user when run as root) on a free
port of 127.0.0.1 and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from promptver import Settings, Workspace
from promptver.cli import main
from tests.experiments_helpers import seed_lab

T0 = datetime(2026, 6, 1, tzinfo=UTC)
COLUMNS = [
    "event_id",
    "timestamp",
    "template",
    "user_id",
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
    "thumbs_up",
    "dim_country",
]


@dataclass
class World:
    db: Path
    csv: Path
    experiments: dict[str, str] = field(default_factory=dict)  # name → id
    rows: list[dict[str, Any]] = field(default_factory=list)


def _add_experiment(
    ws: Workspace,
    name: str,
    metrics: list[dict[str, str]],
    variants: list[tuple[str, str]],
    environment: str,
    start: datetime,
    end: datetime,
) -> str:
    row = ws.templates.row("qa-basic")
    exp_id = "exp-" + uuid.uuid4().hex[:10]
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, template_id, environment, status, metrics, alpha,"
            " minimum_sample_size, salt, created_at, created_by, started_at, start_at, end_at)"
            " VALUES (?, ?, ?, ?, 'running', ?, 0.05, 50, ?, ?, 'tester', ?, ?, ?)",
            [exp_id, name, row["id"], environment, json.dumps(metrics), exp_id, start, start]
            + [start, end],
        )
        for i, (vname, ref) in enumerate(variants):
            commit = ws.versions.resolve(row["id"], ref).id
            con.execute(
                "INSERT INTO experiment_variants VALUES (?, ?, ?, ?, ?, 50)",
                [exp_id, i, vname, ref, commit],
            )
    return exp_id


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def build_world(folder: Path, seed: int = 11, big_users: int = 4400) -> World:
    """The file, its experiments and the CSV of every event (see the module's docstring)."""
    db = folder / "pv.duckdb"
    ws = Workspace.open(db, settings=Settings())
    seed_lab(ws)
    lat = {"name": "latency_ms", "direction": "lower", "role": "guardrail"}
    q = {"name": "quality_score", "direction": "higher", "role": "primary"}
    world = World(db=db, csv=folder / "events.csv")
    world.experiments["big"] = _add_experiment(
        ws,
        "big",
        [q, lat, {"name": "success", "direction": "higher", "role": "secondary"}],
        [("control", "1.0.0"), ("concise", "concise-tone")],
        "production",
        T0,
        T0 + timedelta(days=10),
    )
    world.experiments["small"] = _add_experiment(
        ws,
        "small",
        [q, lat],
        [("control", "1.0.0"), ("treatment", "1.1.0")],
        "staging",
        T0,
        T0 + timedelta(days=10),
    )
    world.experiments["custom"] = _add_experiment(
        ws,
        "custom",
        [{"name": "thumbs_up", "direction": "higher", "role": "primary"}, q],
        [("control", "1.0.0"), ("treatment", "1.1.0")],
        "development",
        T0 + timedelta(days=3),  # events of days 0–2 lie outside its window
        T0 + timedelta(days=7),
    )
    # CUPED: its users are the big experiment's, whose events of the five days before its start
    # (same template) are their pre-period
    world.experiments["cuped"] = _add_experiment(
        ws,
        "cuped",
        [q, lat],
        [("control", "1.0.0"), ("treatment", "1.1.0")],
        "production",
        T0 + timedelta(days=5),
        T0 + timedelta(days=10),
    )
    with ws.db.transaction() as con:
        con.execute(
            "UPDATE experiments SET options = ? WHERE id = ?",
            [json.dumps({"cuped": {"lookback_days": 5}}), world.experiments["cuped"]],
        )
    ws.close()
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []

    def add(
        exp: str,
        env: str,
        variants: list[tuple[str, str, float]],
        users: int,
        *,
        prefix: str | None = None,
        from_day: float = 0.0,
    ) -> None:
        for u in range(users):
            name, version, shift = variants[u % len(variants)]
            k = int(rng.integers(1, 6))  # clustered users: 1–5 events each
            user_q = rng.normal(0, 0.05)
            # segments: a country per user, and some users' events without one
            country = ["DE", "FR", "US", ""][int(rng.integers(0, 4)) if u % 7 else 3]
            for _ in range(k):
                ts = T0 + timedelta(seconds=float(rng.uniform(from_day * 86400, 9.5 * 86400)))
                has_q = rng.random() < 0.9
                rows.append(
                    {
                        "event_id": f"e{len(rows):07d}",
                        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "template": "qa-basic",
                        "user_id": f"{prefix or exp}-u{u}",
                        # the small experiment's events name it by its name, the others by id
                        "experiment": exp if exp == "small" else world.experiments[exp],
                        "variant": name,
                        "version": version,
                        "environment": env,
                        "latency_ms": round(float(rng.lognormal(6.5 + shift, 0.6)), 3),
                        "success": bool(rng.random() < 0.9 + shift / 4),
                        "error": bool(rng.random() < 0.05),
                        "quality_score": (
                            round(
                                float(np.clip(0.7 + shift + user_q + rng.normal(0, 0.1), 0, 1)), 4
                            )
                            if has_q
                            else None
                        ),
                        "cost_usd": round(float(rng.gamma(2.0, 0.001)), 6),
                        "tokens_in": int(rng.integers(100, 900)),
                        "tokens_out": int(rng.integers(20, 300)),
                        "thumbs_up": (
                            float(rng.random() < 0.6 + shift) if rng.random() < 0.7 else None
                        ),
                        "dim_country": country or None,
                    }
                )

    add("big", "production", [("control", "1.0.0", 0.0), ("concise", "1.1.0", 0.02)], big_users)
    add("small", "staging", [("control", "1.0.0", 0.0), ("treatment", "1.1.0", 0.05)], 90)
    add("custom", "development", [("control", "1.0.0", 0.0), ("treatment", "1.1.0", 0.1)], 300)
    cuped = [("control", "1.0.0", 0.0), ("treatment", "1.1.0", 0.03)]
    add("cuped", "production", cuped, 1200, prefix="big", from_day=5.0)
    # events outside any experiment (figures and summaries count them)
    for i in range(200):
        rows.append(
            {
                "event_id": f"x{i:05d}",
                "timestamp": (T0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "template": "qa-basic",
                "user_id": f"free-{i % 37}",
                "version": "1.1.0",
                "environment": "production",
                "latency_ms": float(300 + i),
                "success": True,
            }
        )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in COLUMNS])
    world.csv.write_text(buf.getvalue(), encoding="utf-8")
    world.rows = rows
    code = main(["--db", str(db), "metrics", "import", str(world.csv)])
    assert code == 0
    return world


def write_parquet(world: World, folder: Path, renames: dict[str, str] | None = None) -> Path:
    """The CSV's events as hive-partitioned Parquet (``day=YYYY-MM-DD``), with typed columns."""
    import duckdb

    renames = renames or {}
    cols = ", ".join(f'"{c}" AS "{renames.get(c, c)}"' for c in COLUMNS if c != "timestamp")
    ts = renames.get("timestamp", "timestamp")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f'COPY (SELECT CAST(timestamp AS TIMESTAMPTZ) AS "{ts}", {cols},'
        f" strftime(CAST(timestamp AS TIMESTAMPTZ), '%Y-%m-%d') AS day"
        f" FROM read_csv(?, header = true, all_varchar = false,"
        f" types = {{'experiment': 'VARCHAR', 'timestamp': 'VARCHAR'}}))"
        f" TO '{folder}' (FORMAT parquet, PARTITION_BY (day))",
        [str(world.csv)],
    )
    con.close()
    return folder


def source_config(folder: Path, events: dict[str, Any]) -> Path:
    """A settings file with an ``events:`` section."""
    import yaml

    path = folder / f"promptver-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"events": events}), encoding="utf-8")
    return path


def cli_json(capsys, *args: str) -> Any:
    """Run the CLI in-process with ``--json`` and parse what it printed."""
    capsys.readouterr()
    code = main(["--json", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


#: fields that depend on the wall clock (rates, days to target), not on the events
CLOCK_FIELDS = ("computed_at", "days_to_target")


def assert_same(a: Any, b: Any, path: str = "", *, rel: float = 1e-9, skip=()) -> None:
    """Two JSON values equal to ``rel`` (relative, absolute below 1) field by field."""
    if any(s in path for s in (*CLOCK_FIELDS, *skip)):
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}", rel=rel, skip=skip)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]", rel=rel, skip=skip)
    elif isinstance(a, float) and isinstance(b, float | int):
        assert abs(a - b) <= rel * max(1.0, abs(a)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def bootstrap_intervals(results: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Every bootstrap interval of a results object (path → (low, high))."""
    out: dict[str, tuple[float, float]] = {}

    def walk(x: Any, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k.startswith("bootstrap") and k.endswith("_low"):
                    high = x.get(k[: -len("_low")] + "_high")
                    if v is not None and high is not None:
                        out[f"{path}.{k}"] = (v, high)
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(results, "")
    return out


def assert_results_agree(file: dict[str, Any], other: dict[str, Any], *, exact_bootstrap: bool):
    """The analytic fields equal to 1e-9; the bootstrap intervals equal too when the units are
    the same resampled in the same order (``exact_bootstrap``), else within their sampling error:
    each end within 15 % of the interval's width (the Monte-Carlo error of a 2.5 % percentile
    of 2,000 resamples is about 1.5 % of the width)."""
    if exact_bootstrap:
        assert_same(file, other)
        return
    assert_same(file, other, skip=("bootstrap",))
    a, b = bootstrap_intervals(file), bootstrap_intervals(other)
    assert set(a) == set(b) and a
    for path, (lo, hi) in a.items():
        width = max(hi - lo, 1e-12)
        assert abs(b[path][0] - lo) <= 0.15 * width, (path, a[path], b[path])
        assert abs(b[path][1] - hi) <= 0.15 * width, (path, a[path], b[path])


def _cli(capsys, world: World, config: Path | None, *args: str) -> Any:
    head = ["--db", str(world.db)] + (["--config", str(config)] if config else [])
    # --seed forces a fresh analysis (the stored results of a stopped experiment are frozen)
    return cli_json(capsys, *head, "experiment", "results", *args, "--seed", "7")


def assert_cuped_agrees(capsys, world: World, config: Path) -> None:
    """CUPED (``cuped: {lookback_days: 5}``) on the source: the file's adjusted comparisons."""
    exp_id = world.experiments["cuped"]
    file = _cli(capsys, world, None, exp_id)
    other = _cli(capsys, world, config, exp_id)
    cuped = [c["cuped"] for m in file["metrics"] for c in m["comparisons"]]
    assert cuped and all(c is not None and c["theta"] is not None for c in cuped)
    assert all(0 < c["variance_reduction"] < 1 for c in cuped)
    assert_results_agree(file, other, exact_bootstrap=file["bootstrap"]["unit"] == "user")


def assert_segments_agree(capsys, world: World, config: Path, name: str) -> None:
    """``--by dim_country`` on the source: the file's segments, each to 1e-9."""
    args = [world.experiments[name], "--by", "dim_country"]
    file = _cli(capsys, world, None, *args)
    other = _cli(capsys, world, config, *args)
    assert [s["value"] for s in file["segments"]] == ["DE", "FR", "US", None]
    exact = all(s["bootstrap"]["unit"] == "user" for s in file["segments"])
    assert_results_agree(file, other, exact_bootstrap=exact)
    # the picker of the results view: the dimensions the experiment's events carry
    from promptver.segments import dimensions

    ws = Workspace.open(world.db, settings=Settings.load(config))
    try:
        exp = ws.experiments.get(world.experiments[name])
        assert dimensions(ws, exp) == ["dim_country"]
    finally:
        ws.close()


# ---- PostgreSQL ------------------------------------------------------------------------------


def find_pg_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (``initdb``, ``pg_ctl``)."""
    for cand in [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))]:
        if cand and Path(cand).exists():
            return Path(os.path.realpath(cand)).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (a DSN); stopped and removed afterwards."""
    bindir = find_pg_bin()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="pv-pg-", dir="/tmp"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
        root.chmod(0o700)
    data, log = root / "data", root / "log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=32MB"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


def load_postgres(dsn: str, world: World, table: str = "llm_events") -> None:
    """The CSV's events into a typed PostgreSQL table."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} (event_id text, timestamp timestamptz, template text,"
            " user_id text, experiment text, variant text, version text, environment text,"
            " latency_ms double precision, success boolean, error boolean,"
            " quality_score double precision, cost_usd double precision, tokens_in bigint,"
            " tokens_out bigint, thumbs_up double precision, dim_country text)"
        )
        with conn.cursor().copy(
            f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        ) as cp:
            cp.write(world.csv.read_bytes())
