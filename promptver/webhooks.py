"""Webhooks: subscriptions, signed at-least-once delivery from the outbox, the delivery log.

Events are queued by :func:`promptver.outbox.emit` in the transaction of the change they report.
A delivery pass (``promptver webhook deliver``, the thread of ``promptver serve`` and of the
dashboard: :class:`BackgroundDeliverer`) works in three short steps so that the database file
is never held while waiting on the network:

1. one write transaction *leases* the due messages (``lease_until``), so two deliverers (the
   dashboard and a cron job) do not send the same message at the same time;
2. outside any transaction, each message is POSTed with the Standard Webhooks headers
   (``webhook-id`` = the message id, the same on every retry; ``webhook-timestamp``;
   ``webhook-signature`` = ``v1,`` + base64 HMAC-SHA256 computed by the ``standardwebhooks``
   library);
3. one write transaction appends every attempt to the log (status code, at most 1 KB of the
   response body) and moves each message on: delivered on a 2xx, otherwise retried after
   :data:`RETRY_DELAYS` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: 8 attempts over 27.7 h), then
   ``failed``. A process killed between 1 and 3 leaves a lease that expires after
   :data:`LEASE`; the message is sent again (at least once).

Secrets are never stored in the database. Each subscription's secret is derived from a random
key kept in a file beside the database (``<db>.webhook-key``, mode 0600, or
``webhooks.key_file``): ``whsec_`` + base64(HMAC-SHA256(key, subscription id)). A backup of the
database file alone cannot sign a message; back the key file up separately (a new key changes
every secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from promptver import outbox
from promptver.errors import NotFound, Problem, ValidationError
from promptver.limits import check_author
from promptver.store import webhooks as sql
from promptver.store.db import Database

#: waits before attempts 2…8 of a message; the total (27 h 40 min) exceeds a day
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: a message leased by a deliverer that died is sent again after this
LEASE = timedelta(minutes=2)
#: response bodies kept in the log are cut to this many bytes
MAX_BODY = 1024
FORMATS = ("json", "slack")
MAX_URL = 2000


def _now() -> datetime:
    return datetime.now(UTC)


def check_url(url: Any) -> str:
    """An http(s) URL with a host (anything else is refused, naming the field)."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("invalid webhook:", [Problem("a URL is required", field="url")])
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "invalid webhook:",
            [Problem("only http:// and https:// URLs with a host are allowed", field="url")],
        )
    if len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValidationError(
            "invalid webhook:",
            [Problem(f"must be at most {MAX_URL} characters, without spaces", field="url")],
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError(
            "invalid webhook:", [Problem("the port is not a number", field="url")]
        ) from None
    return url


def check_events(events: Iterable[str]) -> list[str]:
    out: list[str] = []
    for e in events:
        if e != "*" and e not in outbox.EVENT_TYPES:
            raise ValidationError(
                "invalid webhook:",
                [
                    Problem(
                        f"unknown event {e!r}; use one of {', '.join(outbox.EVENT_TYPES)} or *",
                        field="events",
                    )
                ],
            )
        if e not in out:
            out.append(e)
    if not out:
        raise ValidationError(
            "invalid webhook:", [Problem("name at least one event (or *)", field="events")]
        )
    return out


# -- secrets ----------------------------------------------------------------------------------


class KeyFile:
    """The random key that webhook secrets are derived from (never stored in the database)."""

    _memory: dict[str, bytes] = {}

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: an in-memory database, the key lives as long as the process
        self._key: bytes | None = None
        self._owner = ""

    @classmethod
    def for_database(cls, db: Database, configured: str | None = None) -> KeyFile:
        if configured:
            return cls(Path(configured).expanduser())
        if isinstance(db.path, Path):
            return cls(Path(f"{db.path}.webhook-key"))
        k = cls(None)
        k._owner = str(id(db))  # one key per in-memory database, for the process's lifetime
        return k

    def key(self) -> bytes:
        if self._key is None:
            self._key = self._load()
        return self._key

    def _load(self) -> bytes:
        if self.path is None:
            return self._memory.setdefault(self._owner, secrets.token_bytes(32))
        try:
            return base64.b64decode(self.path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes creating it at once agree on the first one's key
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return base64.b64decode(self.path.read_text(encoding="ascii").strip())
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b64encode(key).decode() + "\n")
        return key

    def secret(self, webhook_id: str) -> str:
        digest = hmac.new(self.key(), f"webhook:{webhook_id}".encode(), hashlib.sha256).digest()
        return "whsec_" + base64.b64encode(digest).decode()


def sign(secret: str, message_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks ``v1``)."""
    from standardwebhooks.webhooks import Webhook

    return Webhook(secret).sign(message_id, timestamp, body)


# -- payloads ---------------------------------------------------------------------------------


def json_body(message: dict[str, Any]) -> str:
    """``{"type", "timestamp", "data"}``: the same bytes on every attempt."""
    ts = message["timestamp"]
    stamp = ts.astimezone(UTC).isoformat().replace("+00:00", "Z") if ts else None
    return json.dumps(
        {"type": message["type"], "timestamp": stamp, "data": message["data"]},
        ensure_ascii=False,
        default=str,
    )


def _slack_escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SCREENS = {
    outbox.COMMIT_CREATED: "history",
    outbox.DEPLOYMENT_CREATED: "deployments",
    outbox.EXPERIMENT_STARTED: "experiments",
    outbox.EXPERIMENT_STOPPED: "experiments",
    outbox.ALERT_FIRED: "alerts",
    outbox.EVAL_IMPORTED: "evaluations",
    outbox.TEST_EVENT: "webhooks",
}


def slack_text(event_type: str, data: dict[str, Any], dashboard_url: str) -> str:
    """One readable line for Slack (user text escaped), ending in a link to the screen."""
    e = _slack_escape
    d = data
    if event_type == outbox.COMMIT_CREATED:
        where = f"version {d.get('version')}" if d.get("version") else f"branch {d.get('branch')}"
        what = (
            f"{e(d.get('author'))} committed {e(d.get('template'))} {e(where)}: "
            f"{e(d.get('message'))}"
        )
    elif event_type == outbox.DEPLOYMENT_CREATED:
        verb = "rolled back" if d.get("action") == "rollback" else "deployed"
        what = (
            f"{e(d.get('author'))} {verb} {e(d.get('template'))} to "
            f"{e(d.get('version') or str(d.get('commit'))[:10])} in {e(d.get('environment'))}"
        )
    elif event_type in (outbox.EXPERIMENT_STARTED, outbox.EXPERIMENT_STOPPED):
        verb = "started" if event_type == outbox.EXPERIMENT_STARTED else "stopped"
        what = f"experiment {e(d.get('name'))} on {e(d.get('template'))} {verb}"
        if d.get("winner"):
            what += f" (winner: {e(d.get('winner'))})"
    elif event_type == outbox.ALERT_FIRED:
        what = f"alert {e(d.get('rule'))} fired on {e(d.get('template'))}: {e(d.get('message'))}"
    elif event_type == outbox.EVAL_IMPORTED:
        what = f"evaluation imported for {e(d.get('template'))} on {e(d.get('dataset'))}"
    else:
        what = "test message from promptver"
    link = dashboard_url.rstrip("/") + "/" + _SCREENS.get(event_type, "")
    return f"promptver: {what} <{link}|open in promptver>"


def body_for(message: dict[str, Any], fmt: str, dashboard_url: str) -> str:
    if fmt == "slack":
        text = slack_text(message["type"], message["data"], dashboard_url)
        return json.dumps({"text": text}, ensure_ascii=False)
    return json_body(message)


# -- sending ----------------------------------------------------------------------------------


@dataclass
class Answer:
    ok: bool
    status_code: int | None
    error: str | None
    body: str | None
    duration_ms: float
    #: the endpoint did not answer at all (refused, timed out): skip its other messages now
    unreachable: bool = False


class Sender:
    """POSTs over kept-alive connections (one per scheme, host and port), no redirects."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def _conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        c = self._conns.get(key)
        if c is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            c = cls(host, port, timeout=self.timeout)
            self._conns[key] = c
        return c

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        start = time.perf_counter()
        for retry in (False, True):  # a kept-alive connection the server closed: once more
            conn = self._conn(scheme, parts.hostname or "", port)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read(MAX_BODY + 1)
                if resp.length:  # drain (bounded) so the connection can be reused
                    resp.read(min(resp.length, 1 << 20))
                if resp.will_close:
                    self._drop(scheme, parts.hostname or "", port)
                text = raw[:MAX_BODY].decode("utf-8", "replace")
                return Answer(
                    200 <= resp.status < 300,
                    resp.status,
                    None if 200 <= resp.status < 300 else f"HTTP {resp.status}",
                    text,
                    (time.perf_counter() - start) * 1000,
                )
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(scheme, parts.hostname or "", port)
                if retry:
                    return Answer(False, None, "connection closed", None, _ms(start), True)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(scheme, parts.hostname or "", port)
                return Answer(False, None, _short(exc), None, _ms(start), True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, scheme: str, host: str, port: int) -> None:
        c = self._conns.pop((scheme, host, port), None)
        if c is not None:
            c.close()

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


# -- the service ------------------------------------------------------------------------------


class WebhookService:
    """Subscriptions and delivery over one database.

    Args:
        clock: the current time (tests inject one to walk through the retry schedule).
    """

    def __init__(
        self,
        db: Database,
        *,
        key_file: str | None = None,
        dashboard_url: str = "http://localhost:8501",
        timeout: float = 10.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.keys = KeyFile.for_database(db, key_file)
        self.dashboard_url = dashboard_url
        self.timeout = timeout
        self.clock = clock

    @classmethod
    def for_workspace(cls, ws: Any, **kwargs: Any) -> WebhookService:
        s = getattr(ws.settings, "webhooks", None)
        if s is not None:
            kwargs.setdefault("key_file", s.key_file)
            kwargs.setdefault("dashboard_url", s.dashboard_url)
            kwargs.setdefault("timeout", s.timeout_seconds)
        return cls(ws.db, **kwargs)

    # -- subscriptions -------------------------------------------------------------------
    def add(
        self,
        url: str,
        events: Iterable[str],
        *,
        format: str = "json",
        description: str = "",
        author: str = "unknown",
    ) -> tuple[dict[str, Any], str]:
        """Subscribe ``url``; returns the subscription and its signing secret (shown once)."""
        url = check_url(url)
        events = check_events(events)
        if format not in FORMATS:
            raise ValidationError(
                "invalid webhook:", [Problem("must be json or slack", field="format")]
            )
        if not isinstance(description, str) or len(description) > 200:
            raise ValidationError(
                "invalid webhook:",
                [Problem("must be a text of at most 200 characters", field="description")],
            )
        author = check_author(author)
        row = {
            "id": "wh_" + uuid.uuid4().hex[:16],
            "url": url,
            "events": events,
            "format": format,
            "description": description,
            "created_at": self.clock(),
            "created_by": author or "unknown",
        }
        secret = self.keys.secret(row["id"])  # creates the key file before anything is stored
        with self.db.transaction() as con:
            sql.insert_webhook(con, row)
            hook = sql.get_webhook(con, row["id"])
        assert hook is not None
        return hook, secret

    def get(self, webhook_id: str) -> dict[str, Any]:
        with self.db.read() as con:
            hook = sql.get_webhook(con, webhook_id)
        if hook is None or hook["removed_at"] is not None:
            raise NotFound(f"unknown webhook '{webhook_id}' (promptver webhook list)")
        return hook

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as con:
            return sql.list_webhooks(con)

    def remove(self, webhook_id: str) -> dict[str, Any]:
        """Stop a subscription: its pending messages are cancelled, its log stays."""
        with self.db.transaction() as con:
            hook = sql.get_webhook(con, webhook_id)
            if hook is None or hook["removed_at"] is not None:
                raise NotFound(f"unknown webhook '{webhook_id}' (promptver webhook list)")
            sql.remove_webhook(con, webhook_id, self.clock())
        return hook

    def deliveries(self, webhook_id: str | None = None, *, limit: int = 100) -> list[dict]:
        """Messages (newest first) with every attempt (``attempt_log``)."""
        if webhook_id is not None:
            with self.db.read() as con:
                if sql.get_webhook(con, webhook_id) is None:
                    raise NotFound(f"unknown webhook '{webhook_id}' (promptver webhook list)")
        with self.db.read() as con:
            return sql.messages(con, webhook_id, limit=limit)

    def count(self) -> int:
        """How many subscriptions there are."""
        return len(self.list())

    def has_pending(self) -> bool:
        """Whether any message waits (a cheap read: an idle pass writes nothing)."""
        with self.db.read() as con:
            return sql.has_pending(con, self.clock())

    def counts(self) -> dict[str, int]:
        with self.db.read() as con:
            return sql.counts(con)

    # -- delivery ------------------------------------------------------------------------
    def redeliver(self, message_id: str) -> dict[str, Any]:
        """Queue a message again now (same ``webhook-id``), whatever its status."""
        with self.db.transaction() as con:
            m = sql.get_message(con, message_id)
            if m is None:
                raise NotFound(f"unknown delivery '{message_id}' (promptver webhook deliveries)")
            hook = sql.get_webhook(con, m["webhook_id"])
            if hook is None or hook["removed_at"] is not None:
                raise ValidationError(f"the webhook of {message_id} was removed")
            sql.requeue(con, message_id, self.clock())
        return m

    def send_test(self, webhook_id: str) -> dict[str, Any]:
        """Queue a ``webhook.test`` message for one subscription and deliver it now; returns
        the message with its attempt."""
        self.get(webhook_id)
        mid = outbox.new_message_id()
        now = self.clock()
        data = {"message": "test message from promptver", "webhook": webhook_id}
        with self.db.transaction() as con:
            sql.insert_messages(
                con, [(mid, webhook_id, outbox.TEST_EVENT, now, json.dumps(data), now)]
            )
        self.deliver_now(mid)
        with self.db.read() as con:
            return next(m for m in sql.messages(con, webhook_id, limit=1000) if m["id"] == mid)

    def deliver_now(self, message_id: str) -> dict[str, int]:
        """Attempt one pending message now and return the pass's summary. When another
        deliverer (the dashboard's thread, a cron job) has just leased it, wait for that
        attempt instead (at most the request timeout and a few seconds)."""
        with self.db.read() as con:
            m = sql.get_message(con, message_id)
        if m is None:
            raise NotFound(f"unknown delivery '{message_id}' (promptver webhook deliveries)")
        before = m["attempts"]
        deadline = time.monotonic() + self.timeout + 5
        while True:
            summary = self.deliver(only=[message_id])
            if summary["attempted"]:
                return summary
            with self.db.read() as con:
                m = sql.get_message(con, message_id)
            assert m is not None
            if m["attempts"] > before or m["status"] != "pending":  # someone else tried it
                key = {"delivered": "delivered", "pending": "retrying"}.get(m["status"], "failed")
                return {"attempted": 1, "delivered": 0, "retrying": 0, "failed": 0, key: 1}
            if time.monotonic() > deadline:
                return summary
            time.sleep(0.05)

    def deliver(
        self,
        *,
        include_waiting: bool = False,
        limit: int = 1000,
        only: list[str] | None = None,
    ) -> dict[str, int]:
        """One pass over the messages that are due (``include_waiting``: every pending one).

        Returns ``{"attempted", "delivered", "retrying", "failed"}`` for this pass.
        """
        now = self.clock()
        with self.db.transaction() as con:
            batch = sql.claim_due(
                con,
                now,
                now + LEASE,
                include_waiting=include_waiting or only is not None,
                limit=limit,
                ids=only,
            )
        summary = {"attempted": 0, "delivered": 0, "retrying": 0, "failed": 0}
        if not batch:
            return summary
        results: list[dict[str, Any]] = []
        skipped: list[str] = []
        down: set[tuple[str, str | None, int | None]] = set()
        sender = Sender(self.timeout)
        try:
            for m in batch:
                host = _host_key(m["url"])
                if host in down:
                    skipped.append(m["id"])
                    continue
                answer = self._send(sender, m)
                if answer.unreachable:
                    down.add(host)
                results.append(self._outcome(m, answer, manual=bool(m["manual"])))
        finally:
            sender.close()
            with self.db.transaction() as con:
                sql.record_attempts(con, results)
                sql.release(con, skipped)
        for r in results:
            summary["attempted"] += 1
            key = {"delivered": "delivered", "pending": "retrying", "failed": "failed"}
            summary[key[r["new_status"]]] += 1
        return summary

    def _send(self, sender: Sender, m: dict[str, Any]) -> Answer:
        body = body_for(m, m["format"], self.dashboard_url)
        ts = self.clock().replace(microsecond=0)
        headers = {
            "content-type": "application/json",
            "user-agent": "promptver-webhooks",
            "webhook-id": m["id"],
            "webhook-timestamp": str(int(ts.timestamp())),
            "webhook-signature": sign(self.keys.secret(m["webhook_id"]), m["id"], ts, body),
        }
        return sender.post(m["url"], body.encode("utf-8"), headers)

    def _outcome(self, m: dict[str, Any], a: Answer, *, manual: bool) -> dict[str, Any]:
        attempt = int(m["attempts"]) + 1
        at = self.clock()
        if a.ok:
            status, nxt = "delivered", None
        elif attempt >= MAX_ATTEMPTS:
            status, nxt = "failed", None
        else:
            status, nxt = "pending", at + RETRY_DELAYS[attempt - 1]
        return {
            "message_id": m["id"],
            "webhook_id": m["webhook_id"],
            "attempted_at": at,
            "attempt": attempt,
            "ok": a.ok,
            "status_code": a.status_code,
            "error": a.error,
            "response_body": (a.body or "")[:MAX_BODY] if a.body is not None else None,
            "duration_ms": a.duration_ms,
            "manual": manual,
            "new_status": status,
            "next_attempt_at": nxt,
        }


def _host_key(url: str) -> tuple[str, str | None, int | None]:
    p = urlsplit(url)
    return (p.scheme, p.hostname, p.port)


# -- background delivery ----------------------------------------------------------------------


class BackgroundDeliverer:
    """A daemon thread that runs a delivery pass every ``interval`` seconds.

    It opens the database only for the short lease and record transactions (its own
    connection: promptver.store.db gives each thread one), never while a request is in flight.
    One per database file and process (:meth:`start`).
    """

    _running: dict[str, BackgroundDeliverer] = {}
    _lock = threading.Lock()
    _atexit = False

    def __init__(self, service: WebhookService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.passes = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="promptver-webhooks", daemon=True)

    @classmethod
    def start(cls, ws: Any, interval: float | None = None) -> BackgroundDeliverer:
        key = str(ws.db.path)
        with cls._lock:
            running = cls._running.get(key)
            if running is not None and running._thread.is_alive():
                return running
            s = getattr(ws.settings, "webhooks", None)
            every = interval if interval is not None else (s.poll_seconds if s else 5.0)
            # its own Database object: per-thread state never mixes with the caller's
            db = Database(ws.db.path, busy_timeout=ws.db.busy_timeout)
            service = WebhookService.for_workspace(ws)
            service.db = db
            d = cls(service, every)
            cls._running[key] = d
            if not cls._atexit:
                # stop the threads before the interpreter tears down: a daemon thread killed
                # inside DuckDB's C++ code aborts the process ("exception not rethrown")
                import atexit

                atexit.register(cls.stop_all)
                cls._atexit = True
            d._thread.start()
            return d

    @classmethod
    def running(cls, ws: Any) -> bool:
        d = cls._running.get(str(ws.db.path))
        return d is not None and d._thread.is_alive()

    @classmethod
    def stop_all(cls) -> None:
        for d in list(cls._running.values()):
            d.stop()

    def wake(self) -> None:
        """Run a pass now (after a write that queued messages)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            for k, v in list(self._running.items()):
                if v is self:
                    del self._running[k]

    def _run(self) -> None:
        from promptver.errors import PromptverError

        path = self.service.db.path
        while not self._stop.is_set():
            if isinstance(path, Path) and not path.exists():
                break  # the database was removed (a test's folder): never create it again
            try:
                if self.service.has_pending():
                    self.service.deliver()
                self.last_error = None
            except PromptverError as exc:  # busy file, a migration not applied yet …
                self.last_error = exc.message
            except Exception as exc:
                self.last_error = _short(exc)
            self.passes += 1
            self._wake.wait(self.interval)
            self._wake.clear()
