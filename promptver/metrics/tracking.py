"""The tracking buffer behind ``Workspace.track``: validate now, write in batches, lose nothing.

``track()`` checks an event at call time (the same rules as the CSV import) and appends one tuple
to an in-memory buffer: no I/O, a few microseconds. A daemon thread writes the buffer with its
own connection every ``flush_interval`` seconds, and as soon as ``batch_size`` events wait. A
flush takes the whole buffer in one ``INSERT`` (column-wise parameters, no row-by-row work). If
the database file is busy (another process is writing) or the write fails, the events go back to
the front of the buffer and the thread retries later with backoff; ``flush()`` raises to a caller
that asked for it. ``close()`` and interpreter exit (``atexit``) flush what is left, waiting for
the file up to ``storage.busy_timeout`` like any other write. If the file is still busy at exit,
the events are saved to ``<database>.pending/`` and the next flush of any process tracking on
that database writes them (files are claimed by renaming, so two processes never both do).

References (template, version, commit, experiment, variant) are checked against sets cached from
the database; a miss reloads them once, so a template created after the cache was filled is
found, and a bogus reference is an error at call time, never a surprise at flush time.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import numbers
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptver.clock import utcnow
from promptver.config import Settings
from promptver.errors import PromptverError, ValidationError, check_unicode
from promptver.metrics.csv_columns import (
    CUSTOM_NAME_RE,
    MAX_CUSTOM,
    MAX_CUSTOM_TEXT,
    MAX_DIMENSION_CHARS,
    METRIC_MAX,
    is_dimension,
)
from promptver.models.core import Prompt
from promptver.models.metrics import MetricsWritten
from promptver.store import metrics as sql
from promptver.store import templates as template_sql
from promptver.store.db import Database

log = logging.getLogger("promptver.metrics")

# tuple layout of one buffered event (the order of sql.insert_columns)
_FIELDS = tuple(sql.TRACK_TYPES)
_METRIC_SLOT = {
    "latency_ms": 9,
    "success": 10,
    "error": 11,
    "quality_score": 12,
    "cost_usd": 13,
    "tokens_in": 14,
    "tokens_out": 15,
}
_BATCH_WRITE = 100_000
_STALE_CLAIM_SECONDS = 600  # a claimed file this old belongs to a process that died  # events per INSERT statement when a big backlog is flushed


def _bad(name: str, message: str) -> ValidationError:
    return ValidationError(f"track(): {name} {message}")


def _number(name: str, value: Any) -> float:
    kind = type(value)
    # float and int skip the slower isinstance checks (almost every call)
    if (kind is not float and kind is not int) and (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
    ):
        raise _bad(name, f"must be a number, got {type(value).__name__} {value!r:.60}")
    v = float(value)
    if not math.isfinite(v):
        if math.isnan(v):
            raise _bad(name, "is NaN, which is not a valid value")
        raise _bad(name, "is infinite, which is not a valid value")
    return v


def _non_negative(name: str, value: Any) -> float:
    v = _number(name, value)
    if v < 0:
        raise _bad(name, f"must be ≥ 0 (got {value!r})")
    limit, text = METRIC_MAX[name]
    if v > limit:
        raise _bad(name, f"must be at most {text} (got {value!r})")
    return v


def _custom(name: str, value: Any) -> float:
    v = float(value) if isinstance(value, bool) else _number(name, value)
    if abs(v) > MAX_CUSTOM:
        raise _bad(name, f"must be {MAX_CUSTOM_TEXT} (got {value!r})")
    return v


def _dimension(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, f"a segment value must be non-empty text, got {value!r:.60}")
    value = value.strip()
    if len(value) > MAX_DIMENSION_CHARS:
        raise _bad(name, f"a segment value has at most {MAX_DIMENSION_CHARS} characters")
    check_unicode(value, name)
    return value


def _unit(name: str, value: Any) -> float:
    v = _number(name, value)
    if v < 0 or v > 1:
        raise _bad(name, f"must be between 0 and 1 (got {value!r})")
    return v


def _integer(name: str, value: Any) -> int:
    v = _non_negative(name, value)
    if v != int(v):
        raise _bad(name, f"must be a whole number (got {value!r})")
    return int(v)


_TRUE = {"true": True, "false": False, "1": True, "0": False}


def _boolean(name: str, value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return _TRUE[value.strip().lower()]
    raise _bad(name, f"must be a boolean (True/False, 1/0), got {value!r:.60}")


_RULES: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative,
    "success": _boolean,
    "error": _boolean,
    "quality_score": _unit,
    "cost_usd": _non_negative,
    "tokens_in": _integer,
    "tokens_out": _integer,
}


class _References:
    """Known templates, versions, commits and experiment variants, reloaded on a miss."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.templates: set[str] = set()
        self.versions: set[tuple[str, str, str]] = set()
        self.commits: set[tuple[str, str]] = set()
        self.variants: set[tuple[str, str, str]] = set()

    def reload(self) -> None:
        with self.db.read() as con:
            templates = sql.known_template_ids(con)
            versions = sql.known_versions(con)
            commits = sql.known_commits(con)
            variants = sql.known_variants(con)
        with self.lock:
            self.templates, self.versions = templates, versions
            self.commits, self.variants = commits, variants

    def check(self, p: Prompt) -> None:
        if self._known(p):
            return
        self.reload()
        if self._known(p):
            return
        tid = p.template_id
        if tid not in self.templates:
            raise ValidationError(f"track(): unknown template '{p.name}' (id {tid})")
        if p.version is not None and (tid, p.version, p.commit) not in self.versions:
            raise ValidationError(
                f"track(): template '{p.name}' has no version {p.version} at commit {p.commit[:12]}"
            )
        if (tid, p.commit) not in self.commits:
            raise ValidationError(f"track(): template '{p.name}' has no commit {p.commit[:12]}")
        raise ValidationError(
            f"track(): experiment {p.experiment_id} of template '{p.name}' has no variant "
            f"'{p.variant}'"
        )

    def _known(self, p: Prompt) -> bool:
        tid = p.template_id
        if tid not in self.templates:
            return False
        if p.version is not None:
            if (tid, p.version, p.commit) not in self.versions:
                return False
        elif (tid, p.commit) not in self.commits:
            return False
        return p.experiment_id is None or (p.experiment_id, tid, p.variant) in self.variants


class TrackingBuffer:
    """Buffered, batched writes of tracked events (one per workspace)."""

    def __init__(
        self, db: Database, settings: Settings, on_written: Callable[[MetricsWritten], None]
    ) -> None:
        self.db = db
        self.settings = settings
        self.batch_size = settings.performance_tracking.batch_size
        self.flush_interval = settings.performance_tracking.flush_interval
        self.tolerance = settings.performance_tracking.future_tolerance_seconds
        self.environments = frozenset(settings.deployment.environments)
        self._on_written = on_written
        self._refs = _References(db)
        self._rows: list[tuple[Any, ...]] = []
        self._inflight = 0  # events taken by a flush that has not committed yet
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.last_error: PromptverError | None = None
        atexit.register(_flush_at_exit, weakref.ref(self))

    # -- recording ----------------------------------------------------------------------
    def record(
        self,
        prompt: Prompt,
        metrics: Mapping[str, Any],
        *,
        user_id: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Validate one event and buffer it (see ``Workspace.track``)."""
        if self._closed:
            raise ValidationError("track(): the workspace is closed")
        if not isinstance(prompt, Prompt):
            raise ValidationError(
                f"track(): expected the Prompt returned by get_prompt, got {type(prompt).__name__}"
            )
        uid = user_id if user_id is not None else prompt.user_id
        if not uid or not isinstance(uid, str) or not uid.strip():
            raise ValidationError(
                "track(): user_id is required: pass user_id= to get_prompt or to track"
            )
        env = prompt.environment
        if env is not None and env not in self.environments:
            raise ValidationError(
                f"track(): unknown environment '{env}' (known: "
                f"{', '.join(self.settings.deployment.environments)})"
            )
        if (prompt.experiment_id is None) != (prompt.variant is None):
            raise ValidationError(
                "track(): a variant needs its experiment and an experiment needs its variant"
            )
        if event_id is not None and (not isinstance(event_id, str) or not event_id.strip()):
            raise ValidationError("track(): event_id must be a non-empty string")
        check_unicode(uid, "user_id")  # a lone surrogate would poison the buffer's every flush
        if event_id is not None:
            check_unicode(event_id, "event_id")
        row: list[Any] = [
            event_id,
            0,
            prompt.template_id,
            uid.strip(),
            prompt.experiment_id,
            prompt.variant,
            prompt.version,
            prompt.commit,
            env,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        present = 0
        for name, value in metrics.items():
            if value is None:
                continue
            if is_dimension(name):  # a segment value (text), not a metric
                row[17] = {**(row[17] or {}), name: _dimension(name, value)}
                continue
            rule = _RULES.get(name)
            if rule is not None:
                row[_METRIC_SLOT[name]] = rule(name, value)
            else:
                if not CUSTOM_NAME_RE.match(name):
                    raise _bad(
                        name,
                        "is not a valid custom metric name (use lower-case "
                        "letters, digits and '_', starting with a letter)",
                    )
                v = _custom(name, value)
                if row[16] is None:
                    row[16] = {}
                row[16][name] = v
            present += 1
        if not present:
            raise ValidationError(
                "track(): at least one metric is required, e.g. latency_ms=812, success=True"
            )
        row[1] = self._timestamp(timestamp)
        self._refs.check(prompt)
        with self._lock:
            self._rows.append(tuple(row))
            waiting = len(self._rows)
        if self._thread is None:
            self._start()
        if waiting >= self.batch_size:
            self._wake.set()

    def _timestamp(self, ts: datetime | None) -> int:
        if ts is None:
            return time.time_ns() // 1000
        if not isinstance(ts, datetime):
            raise ValidationError(f"track(): timestamp must be a datetime, got {ts!r:.60}")
        if ts.tzinfo is None:  # like the CSV: no offset means UTC
            ts = ts.replace(tzinfo=UTC)
        if (ts - utcnow()).total_seconds() > self.tolerance:
            raise ValidationError(f"track(): timestamp {ts.isoformat()} is in the future")
        delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    @property
    def pending(self) -> int:
        """Events not written yet (buffered, or in a flush that has not committed)."""
        with self._lock:
            return len(self._rows) + self._inflight

    # -- writing ------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything buffered now (and events saved by an earlier exit, see
        :meth:`spill`); returns the number of events written.

        Raises:
            DatabaseBusy: the file stayed locked; the events stay buffered for a later flush.
        """
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                self._inflight = len(rows)
            claimed = self._claim_spilled()
            if not claimed and not rows:
                with self._lock:
                    self._inflight = 0
                return 0
            batch: list[tuple[Any, ...]] = []
            try:
                written = 0
                with self.db.transaction() as con:
                    # A saved file is written once: its name is recorded in the same
                    # transaction, so a process killed after COMMIT but before removing the
                    # file cannot have it written again when its claim goes stale.
                    for path, saved in claimed:
                        key = "tracking-spill:" + path.name.split(".claimed-")[0]
                        if template_sql.get_info(con, key) is None:
                            template_sql.set_info(con, key, "written", utcnow())
                            batch.extend(saved)
                    batch.extend(rows)
                    for i in range(0, len(batch), _BATCH_WRITE):
                        # events saved by a version without segments lack the last field
                        part = [
                            r if len(r) == len(_FIELDS) else (*r, None)
                            for r in batch[i : i + _BATCH_WRITE]
                        ]
                        cols = dict(zip(_FIELDS, zip(*part), strict=True))
                        cols["custom"] = [
                            None if c is None else json.dumps(c) for c in cols["custom"]
                        ]
                        cols["dims"] = [None if d is None else json.dumps(d) for d in cols["dims"]]
                        written += sql.insert_columns(con, cols)
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows  # back in front, in order: nothing is lost
                    self._inflight = 0
                for path, _ in claimed:  # give saved files back for a later flush
                    _rename(path, path.with_name(path.name.split(".claimed-")[0]))
                raise
            with self._lock:
                self._inflight = 0
            for path, _ in claimed:
                path.unlink(missing_ok=True)
        self.last_error = None
        if not batch:  # only saved files that had been written already
            return 0
        ts = [r[1] for r in batch]
        note = MetricsWritten(
            source="track",
            rows=written,
            template_ids=sorted({r[2] for r in batch}),
            first=_from_us(min(ts)),
            last=_from_us(max(ts)),
            written_at=utcnow(),
        )
        self._on_written(note)
        return written

    # -- events that could not be written before exit ----------------------------------
    @property
    def spill_dir(self) -> Path | None:
        """Where events that could not be written at exit wait (next to the database)."""
        if str(self.db.path) == ":memory:":
            return None
        return Path(f"{self.db.path}.pending")

    def spill(self) -> Path | None:
        """Save the buffer to a file next to the database (the last resort at exit).

        The next flush of any process tracking on this database writes those events.
        Returns the file, or None when there was nothing to save.
        """
        folder = self.spill_dir
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows or folder is None:
            with self._lock:
                self._rows[:0] = rows
            return None
        folder.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        tmp = folder / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        final = folder / name
        os.replace(tmp, final)  # complete files only: a reader never sees half of one
        return final

    def _claim_spilled(self) -> list[tuple[Path, list[tuple[Any, ...]]]]:
        """Take saved files (renamed, so that two processes never write the same events)."""
        folder = self.spill_dir
        if folder is None or not folder.is_dir():
            return []
        now = time.time()
        for stale in folder.glob("*.claimed-*"):  # a process died while writing them
            try:
                if now - stale.stat().st_mtime > _STALE_CLAIM_SECONDS:
                    _rename(stale, stale.with_name(stale.name.split(".claimed-")[0]))
            except OSError:
                pass
        claimed = []
        for path in sorted(folder.glob("*.jsonl")):
            mine = path.with_name(f"{path.name}.claimed-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            if not _rename(path, mine):
                continue  # another process took it
            try:
                with mine.open(encoding="utf-8") as f:
                    saved = [tuple(json.loads(line)) for line in f if line.strip()]
            except (OSError, ValueError) as exc:
                log.error("promptver: cannot read saved events %s: %s", mine, exc)
                continue
            claimed.append((mine, saved))
        return claimed

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="promptver-track-flush", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        wait = self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(timeout=wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
                wait = self.flush_interval
            except PromptverError as exc:  # busy file or a damaged one: keep and retry
                self.last_error = exc
                log.warning("promptver: tracked events not written yet (%s); retrying", exc)
                wait = min(self.flush_interval, max(0.5, wait / 2 if wait < 1 else 1.0))
            except Exception as exc:  # a bug must not kill the thread and strand the buffer
                log.exception("promptver: flushing tracked events failed; retrying")
                self.last_error = PromptverError(str(exc))
                wait = min(self.flush_interval, 5.0)

    def close(self) -> None:
        """Stop the thread and flush what is left (raises if the file stays busy)."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.db.busy_timeout + 5)
        self.flush()
        self._closed = True


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _rename(src: Path, dst: Path) -> bool:
    try:
        os.rename(src, dst)
        return True
    except OSError:
        return False


def _flush_at_exit(ref: weakref.ReferenceType[TrackingBuffer]) -> None:
    buf = ref()
    if buf is None or buf._closed:
        return
    try:
        buf.close()
    except Exception as exc:  # nothing can be raised to anyone now: keep the events on disk
        try:
            saved = buf.spill()
        except OSError as spill_exc:
            log.error(
                "promptver: %d tracked events could not be written at exit (%s) nor saved (%s)",
                buf.pending,
                exc,
                spill_exc,
            )
            return
        if saved is not None:
            log.warning(
                "promptver: tracked events could not be written at exit (%s); they were saved "
                "to %s and the next flush on this database writes them",
                exc,
                saved,
            )
