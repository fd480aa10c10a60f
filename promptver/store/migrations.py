"""Schema migrations: an ordered list of named functions (the habit of simonw/llm).

Each migration runs once, in list order, inside its own transaction, and its name is recorded in
``schema_migrations``. Opening an older file applies whatever it lacks; opening a file written by a
newer promptver (it records migrations this code does not know) is refused rather than guessed at.
Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

from promptver.errors import DatabaseError
from promptver.store.db import Database

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def applied(con: duckdb.DuckDBPyConnection) -> list[str]:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY seq").fetchall()]


def migrate(db: Database, migrations: list[tuple[str, Migration]] | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied now.

    Raises:
        DatabaseError: the file was written by a newer promptver.
    """
    todo = MIGRATIONS if migrations is None else migrations
    known = {name for name, _ in MIGRATIONS} | {name for name, _ in todo}
    done_now: list[str] = []
    with db.connect() as con:
        with db.transaction():
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " seq INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE,"
                " applied_at TIMESTAMPTZ NOT NULL)"
            )
        have = applied(con)
        unknown = [n for n in have if n not in known]
        if unknown:
            raise DatabaseError(
                f"{db.path} was written by a newer promptver (unknown migrations: "
                f"{', '.join(unknown)}); upgrade promptver to open it"
            )
        for name, fn in todo:
            if name in have:
                continue
            with db.transaction():
                fn(con)
                con.execute(
                    "INSERT INTO schema_migrations VALUES ("
                    " (SELECT coalesce(max(seq), 0) + 1 FROM schema_migrations), ?, ?)",
                    [name, datetime.now(UTC)],
                )
            done_now.append(name)
    return done_now


# --------------------------------------------------------------------------------------------
# The migrations. Append only.
# --------------------------------------------------------------------------------------------


@migration
def m001_templates_and_commits(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE templates (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            description VARCHAR NOT NULL DEFAULT '',
            category VARCHAR NOT NULL DEFAULT '',
            tags VARCHAR[] NOT NULL DEFAULT [],
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            is_active BOOLEAN NOT NULL DEFAULT TRUE
        )
        """
    )
    # Commits are immutable and content-addressed; see promptver.versioning.commit_id.
    con.execute(
        """
        CREATE TABLE commits (
            id VARCHAR PRIMARY KEY,
            template_id VARCHAR NOT NULL,
            parents VARCHAR[] NOT NULL,
            content VARCHAR NOT NULL,
            variables VARCHAR[] NOT NULL,
            metadata JSON NOT NULL,
            message VARCHAR NOT NULL,
            author VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX commits_template ON commits (template_id)")
    # Semantic versions on main: append-only labels of commits.
    con.execute(
        """
        CREATE TABLE versions (
            template_id VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            major INTEGER NOT NULL,
            minor INTEGER NOT NULL,
            patch INTEGER NOT NULL,
            commit_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (template_id, version)
        )
        """
    )
    # Branch heads are the only rows that move, by compare-and-swap.
    con.execute(
        """
        CREATE TABLE branches (
            template_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            head VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            PRIMARY KEY (template_id, name)
        )
        """
    )


@migration
def m002_template_metadata_and_settings(con: duckdb.DuckDBPyConnection) -> None:
    # Who archived a template and when (archive never deletes history).
    con.execute("ALTER TABLE templates ADD COLUMN archived_at TIMESTAMPTZ")
    con.execute("ALTER TABLE templates ADD COLUMN archived_by VARCHAR")
    # Small key/value facts about the workspace itself (e.g. when the demo was created).
    con.execute(
        "CREATE TABLE workspace_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL,"
        " updated_at TIMESTAMPTZ NOT NULL)"
    )


@migration
def m003_experiments(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE experiments (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            hypothesis VARCHAR NOT NULL DEFAULT '',
            template_id VARCHAR NOT NULL,
            environment VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- draft | running | completed | stopped
            metrics JSON NOT NULL,            -- [{"name","direction","role"}], first = primary
            alpha DOUBLE NOT NULL,
            minimum_sample_size INTEGER NOT NULL,
            salt VARCHAR NOT NULL,
            coverage DOUBLE NOT NULL DEFAULT 1.0,
            start_at TIMESTAMPTZ,
            end_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            started_at TIMESTAMPTZ,
            stopped_at TIMESTAMPTZ,
            stop_reason VARCHAR,
            results JSON                      -- frozen final results, written by stop
        )
        """
    )
    con.execute(
        """
        CREATE TABLE experiment_variants (
            experiment_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,        -- 0 = control
            name VARCHAR NOT NULL,
            ref VARCHAR NOT NULL,             -- as written by the user
            commit_id VARCHAR NOT NULL,       -- what the ref resolved to at creation
            weight DOUBLE NOT NULL,
            PRIMARY KEY (experiment_id, position)
        )
        """
    )


@migration
def m004_metric_events(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE imports (
            id VARCHAR PRIMARY KEY,
            file_name VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            rows_imported BIGINT NOT NULL,
            rows_skipped_duplicate BIGINT NOT NULL,
            has_event_ids BOOLEAN NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL
        )
        """
    )
    # One row per LLM call. import_id is NULL for events that arrived through track().
    con.execute(
        """
        CREATE TABLE metric_events (
            event_id VARCHAR,
            import_id VARCHAR,
            ts TIMESTAMPTZ NOT NULL,
            template_id VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            experiment_id VARCHAR,
            variant VARCHAR,
            version VARCHAR,
            commit_id VARCHAR,
            environment VARCHAR,
            latency_ms DOUBLE,
            success BOOLEAN,
            error BOOLEAN,
            quality_score DOUBLE,
            cost_usd DOUBLE,
            tokens_in BIGINT,
            tokens_out BIGINT,
            custom MAP(VARCHAR, DOUBLE)
        )
        """
    )


@migration
def m020_deployments(con: duckdb.DuckDBPyConnection) -> None:
    # The append-only deployment log: one row per deploy or rollback, never updated or deleted.
    # What is live in an environment is the row with the highest env_seq for that template and
    # environment; UNIQUE (template_id, environment, env_seq) makes two writers that both saw the
    # same live row conflict instead of both appending (compare-and-swap on the log's tip).
    con.execute("CREATE SEQUENCE deployments_id_seq START 1")
    con.execute(
        """
        CREATE TABLE deployments (
            id BIGINT PRIMARY KEY DEFAULT nextval('deployments_id_seq'),
            template_id VARCHAR NOT NULL,
            environment VARCHAR NOT NULL,
            env_seq INTEGER NOT NULL,         -- 1, 2, … per template and environment
            action VARCHAR NOT NULL,          -- deploy | rollback
            commit_id VARCHAR NOT NULL,
            version VARCHAR,                  -- the commit's version when deployed (NULL off main)
            replaced_deployment_id BIGINT,    -- the row that was live before this one
            replaced_commit_id VARCHAR,
            replaced_version VARCHAR,
            rollback_mode VARCHAR,            -- rollbacks: previous | named
            restored_deployment_id BIGINT,    -- rollbacks: the earlier row whose commit returns
            note VARCHAR NOT NULL,
            author VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            forced BOOLEAN NOT NULL,          -- the promotion rule was overridden with --force
            force_reason VARCHAR,
            evidence_experiment_id VARCHAR,   -- the completed experiment the new version won
            evidence_override_reason VARCHAR, -- why it replaced the live one without such a win
            gate_report JSON NOT NULL,        -- every gate, its outcome and its problems
            UNIQUE (template_id, environment, env_seq)
        )
        """
    )


@migration
def m030_experiment_lifecycle(con: duckdb.DuckDBPyConnection) -> None:
    # Names are unique per workspace (experiments are referred to by id or name); the service
    # checks case-insensitively with a clear message, the index stops a race between two writers.
    con.execute("CREATE UNIQUE INDEX experiments_name ON experiments (name)")
    # One row per (template, environment) that has a running experiment. Starting inserts it,
    # stopping deletes it, so two concurrent starts on the same pair collide on the key instead
    # of both succeeding.
    con.execute(
        """
        CREATE TABLE experiment_running (
            template_id VARCHAR NOT NULL,
            environment VARCHAR NOT NULL,
            experiment_id VARCHAR NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (template_id, environment)
        )
        """
    )
    # Append-only lifecycle history: who created, edited, started, stopped an experiment, when.
    con.execute("CREATE SEQUENCE experiment_log_seq START 1")
    con.execute(
        """
        CREATE TABLE experiment_log (
            seq BIGINT NOT NULL DEFAULT nextval('experiment_log_seq'),
            experiment_id VARCHAR NOT NULL,
            logged_at TIMESTAMPTZ NOT NULL,
            action VARCHAR NOT NULL,          -- created | edited | started | stopped | completed …
            author VARCHAR NOT NULL,
            detail VARCHAR NOT NULL DEFAULT ''
        )
        """
    )
    con.execute("CREATE INDEX experiment_log_experiment ON experiment_log (experiment_id)")


@migration
def m060_alerts(con: duckdb.DuckDBPyConnection) -> None:
    # Alert rules: what to watch (a metric over a window, compared with a threshold) and where
    # (one template or every one, one environment or any). Rules can be edited, disabled and
    # deleted; the alerts they fired keep a copy of the condition that fired them.
    con.execute("CREATE SEQUENCE alert_rules_id_seq START 1")
    con.execute(
        """
        CREATE TABLE alert_rules (
            id BIGINT PRIMARY KEY DEFAULT nextval('alert_rules_id_seq'),
            name VARCHAR NOT NULL DEFAULT '',
            metric VARCHAR NOT NULL,          -- latency_avg … or custom:NAME
            comparator VARCHAR NOT NULL,      -- > >= < <=
            threshold DOUBLE NOT NULL,
            window_text VARCHAR NOT NULL,     -- as shown: 1h, 24h, 7d …
            window_seconds BIGINT NOT NULL,
            min_events BIGINT NOT NULL,
            template_id VARCHAR,              -- NULL: every template ('*'), each on its own
            environment VARCHAR,              -- NULL: any environment
            enabled BOOLEAN NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            updated_by VARCHAR NOT NULL
        )
        """
    )
    # Fired alerts: at most one per rule, template and window (the key below), so evaluating
    # the same window again never adds a second one.
    con.execute("CREATE SEQUENCE alerts_id_seq START 1")
    con.execute(
        """
        CREATE TABLE alerts (
            id BIGINT PRIMARY KEY DEFAULT nextval('alerts_id_seq'),
            rule_id BIGINT NOT NULL,
            template_id VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            value DOUBLE NOT NULL,            -- the metric over the window when it fired
            events BIGINT NOT NULL,           -- events with the metric in the window then
            fired_at TIMESTAMPTZ NOT NULL,
            source VARCHAR NOT NULL,          -- check | import | track
            rule_name VARCHAR NOT NULL,       -- the rule as it was when it fired
            metric VARCHAR NOT NULL,
            comparator VARCHAR NOT NULL,
            threshold DOUBLE NOT NULL,
            window_text VARCHAR NOT NULL,
            min_events BIGINT NOT NULL,
            environment VARCHAR,
            acknowledged_at TIMESTAMPTZ,
            acknowledged_by VARCHAR,
            UNIQUE (rule_id, template_id, window_start)
        )
        """
    )


@migration
def m070_import_attempts(con: duckdb.DuckDBPyConnection) -> None:
    # Refused CSV imports, for the import history: a log of attempts beside ``imports`` (which
    # holds only what landed). A refusal rolls the import back whole first; its record is then
    # written in a transaction of its own, so metric_events and imports never see the file.
    con.execute("CREATE SEQUENCE import_attempts_id_seq START 1")
    con.execute(
        """
        CREATE TABLE import_attempts (
            id BIGINT PRIMARY KEY DEFAULT nextval('import_attempts_id_seq'),
            file_name VARCHAR NOT NULL,
            sha256 VARCHAR,                   -- NULL when the file could not be read
            size_bytes BIGINT,
            attempted_at TIMESTAMPTZ NOT NULL,
            attempted_by VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,          -- the refusal as the importer saw it
            total_problems INTEGER NOT NULL,  -- all problems found (at most 20 are kept)
            problems JSON NOT NULL            -- [{"line","column","message","code"}]
        )
        """
    )


@migration
def m080_chat_prompts(con: duckdb.DuckDBPyConnection) -> None:
    # A commit holds either a text (``content``) or a chat prompt (``messages``, a JSON list),
    # and either may carry a model configuration. Existing commits are text without a
    # configuration: their ids do not change (promptver.versioning.commit_id hashes these
    # fields only when they differ from that default).
    con.execute("ALTER TABLE commits ADD COLUMN kind VARCHAR DEFAULT 'text'")
    con.execute("ALTER TABLE commits ADD COLUMN messages JSON")
    con.execute("ALTER TABLE commits ADD COLUMN config JSON DEFAULT '{}'")
    con.execute("UPDATE commits SET kind = 'text', config = '{}' WHERE kind IS NULL")


@migration
def m100_evals(con: duckdb.DuckDBPyConnection) -> None:
    # Offline evaluations (docs/evaluations.md). One row per imported file; a re-import of the
    # same bytes (sha256) is refused as a duplicate by the service, the index stops a race.
    con.execute(
        """
        CREATE TABLE eval_imports (
            id VARCHAR PRIMARY KEY,
            file_name VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            rows_imported BIGINT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL
        )
        """
    )
    con.execute("CREATE UNIQUE INDEX eval_imports_sha256 ON eval_imports (sha256)")
    # A run: the rows of one import for one (dataset, template, commit). The ref as written is
    # kept for display; commit_id is what it named at import, so the run stays valid when a
    # branch moves. ``metrics`` names the scores in the order of ``eval_rows.scores``.
    con.execute(
        """
        CREATE TABLE eval_runs (
            id VARCHAR PRIMARY KEY,
            import_id VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            template_id VARCHAR NOT NULL,
            commit_id VARCHAR NOT NULL,
            ref VARCHAR NOT NULL,
            version VARCHAR,
            metrics VARCHAR[] NOT NULL,
            rows BIGINT NOT NULL,
            items BIGINT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute("CREATE INDEX eval_runs_dataset ON eval_runs (dataset, template_id, commit_id)")
    # One row per CSV row (a sample of an item). ``scores[i]`` and ``human[i]`` belong to the
    # run's ``metrics[i]`` (NULL where the cell was empty); ``line`` is the CSV record index.
    con.execute(
        """
        CREATE TABLE eval_rows (
            run_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            output VARCHAR,
            scores DOUBLE[] NOT NULL,
            human DOUBLE[] NOT NULL
        )
        """
    )


@migration
def m110_statistics_depth(con: duckdb.DuckDBPyConnection) -> None:
    # Experiment options of "More statistics" (CUPED's lookback, the decision engine), one JSON
    # object so that later options need no schema change; NULL reads as no options.
    con.execute("ALTER TABLE experiments ADD COLUMN options JSON")
    # Segment dimensions of an event (``dim_country`` → ``{"country": "DE"}``): text values,
    # like ``custom`` holds the custom metrics.
    con.execute("ALTER TABLE metric_events ADD COLUMN dims MAP(VARCHAR, VARCHAR)")


@migration
def m110_bandits(con: duckdb.DuckDBPyConnection) -> None:
    # allocation: bandit. Every change of the split, with its time (append-only): the weights in
    # variant order. Before the first row an experiment routes with its configured weights.
    con.execute(
        """
        CREATE TABLE bandit_weights (
            experiment_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,             -- 1, 2, … per experiment; the period it starts
            changed_at TIMESTAMPTZ NOT NULL,
            weights JSON NOT NULL,            -- [w_control, w_1, …], summing to 1
            PRIMARY KEY (experiment_id, seq)
        )
        """
    )
    # Sticky assignment: the variant a user got first (and the period then), kept while the
    # split moves. The key makes two processes that route the same new user agree.
    con.execute(
        """
        CREATE TABLE bandit_assignments (
            experiment_id VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            variant VARCHAR NOT NULL,
            period INTEGER NOT NULL,          -- the seq of the weights in force (0: configured)
            assigned_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (experiment_id, user_id)
        )
        """
    )


@migration
def m120_webhooks(con: duckdb.DuckDBPyConnection) -> None:
    # Webhook subscriptions, the outbox and the delivery log (promptver.webhooks). An outbox row
    # (a message: one event for one subscription) is inserted in the same transaction as the
    # change it reports, so nothing is lost when the receiver is down or the process dies; its
    # id is the stable ``webhook-id`` of every attempt. The outbox is the one table whose rows
    # change in place (status, attempts, next attempt, lease); each attempt is appended to
    # ``webhook_attempts``. No secret is stored here: see promptver.webhooks (key file).
    con.execute(
        """
        CREATE TABLE webhooks (
            id VARCHAR PRIMARY KEY,            -- wh_ + hex
            url VARCHAR NOT NULL,              -- http(s) only
            events VARCHAR[] NOT NULL,         -- event types, or ['*']
            format VARCHAR NOT NULL,           -- json | slack
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            removed_at TIMESTAMPTZ             -- removed subscriptions keep their log
        )
        """
    )
    con.execute(
        """
        CREATE TABLE webhook_outbox (
            id VARCHAR PRIMARY KEY,            -- msg_ + hex: the webhook-id header
            webhook_id VARCHAR NOT NULL,
            event_type VARCHAR NOT NULL,
            event_time TIMESTAMPTZ NOT NULL,
            data JSON NOT NULL,                -- the event's data object
            status VARCHAR NOT NULL,           -- pending | delivered | failed | cancelled
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMPTZ,
            lease_until TIMESTAMPTZ,           -- a deliverer is sending it until then
            manual BOOLEAN NOT NULL DEFAULT false,  -- queued again by hand (redelivery)
            last_attempt_at TIMESTAMPTZ,
            delivered_at TIMESTAMPTZ
        )
        """
    )
    con.execute("CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at)")
    con.execute("CREATE SEQUENCE webhook_attempts_id_seq START 1")
    con.execute(
        """
        CREATE TABLE webhook_attempts (
            id BIGINT PRIMARY KEY DEFAULT nextval('webhook_attempts_id_seq'),
            message_id VARCHAR NOT NULL,
            webhook_id VARCHAR NOT NULL,
            attempted_at TIMESTAMPTZ NOT NULL,
            attempt INTEGER NOT NULL,          -- 1 for the first try of the message
            ok BOOLEAN NOT NULL,
            status_code INTEGER,               -- NULL: no HTTP answer (see error)
            error VARCHAR,
            response_body VARCHAR,             -- at most 1 KB is kept
            duration_ms DOUBLE,
            manual BOOLEAN NOT NULL DEFAULT false
        )
        """
    )
