"""A remote client for applications on other hosts: ``get_prompt`` and ``track`` over the HTTP
API of ``promptver serve`` (docs/client.md).

It imports only the standard library, pydantic (through :mod:`promptver.models`) and httpx
(the ``client`` extra) — no database, no statistics. What it promises:

- answers are cached in process for ``ttl`` seconds; after that the cached answer is returned
  at once and refreshed in the background (stale-while-revalidate);
- when the server cannot be reached, the last good answer is served (one log line says so),
  then the on-disk ``snapshot_path`` (so a restarted application starts without the server),
  then the ``fallback`` prompt given for a cold start;
- ``track`` buffers events and sends them in batches from a background thread, retrying while
  the server is down; each event has an ``event_id``, so a retried batch is stored once. The
  buffer holds at most ``max_buffer`` events: the oldest are dropped first, counted in
  :attr:`Client.dropped`, with a warning. ``close()`` delivers what is left (or, with a
  snapshot path, keeps it on disk for the next start).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from promptver.errors import NotFound, PromptverError, ValidationError
from promptver.models.core import Prompt

if TYPE_CHECKING:
    import httpx

__all__ = ["Client", "ServerUnavailable"]

log = logging.getLogger("promptver.client")

#: the metric names ``track`` knows (any other numeric keyword is a custom metric)
_RESERVED = {"timestamp", "template", "experiment", "variant", "version", "environment"}
_SNAPSHOT_FORMAT = 1


class ServerUnavailable(PromptverError):
    """The server could not be reached (or answered 5xx) and nothing cached, snapshotted or
    given as ``fallback`` could stand in."""


class _Unreachable(Exception):
    """A request failed in a way worth retrying (connection, timeout, 5xx, 429)."""


class _Entry:
    __slots__ = ("expires", "prompt", "refreshing")

    def __init__(self, prompt: Prompt, expires: float) -> None:
        self.prompt = prompt
        self.expires = expires
        self.refreshing = False


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "promptver.client needs httpx: pip install 'promptver[client]' (or httpx>=0.27)"
        ) from None
    return httpx


Key = tuple[str, str, str | None]


class Client:
    """``get_prompt`` / ``track`` over ``promptver serve`` at ``base_url``.

    Args:
        base_url: the server, e.g. ``http://prompts.internal:8765`` (``/api/v1`` is added
            unless the URL already ends with it).
        token: the bearer token for ``track`` (write endpoints), when the server has tokens.
        ttl: seconds an answer is served from the cache without asking the server.
        timeout: seconds per HTTP request.
        fallback: for a cold start with the server down: a :class:`~promptver.models.Prompt`
            (used for its own name), or a mapping of name to a Prompt or to a text.
        snapshot_path: a JSON file where the last good answers (and events not delivered at
            ``close``) are kept, so a restarted application starts without the server.
        batch_size: events per POST.
        flush_interval: seconds between sends of a partial batch.
        max_buffer: events held at most while the server is down (the oldest go first).
        max_cached: answers kept in memory (least recently used go first).
        transport: an httpx transport (tests count requests with it).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ttl: float = 10.0,
        timeout: float = 5.0,
        fallback: Prompt | Mapping[str, Prompt | str] | None = None,
        snapshot_path: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_cached: int = 10_000,
        author: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for name, value in (("ttl", ttl), ("timeout", timeout), ("flush_interval", flush_interval)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValidationError(f"Client: {name} must be a number >= 0, got {value!r}")
        for name, value in (
            ("batch_size", batch_size),
            ("max_buffer", max_buffer),
            ("max_cached", max_cached),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationError(f"Client: {name} must be an integer >= 1, got {value!r}")
        httpx = _httpx()
        url = base_url.rstrip("/")
        if not url.endswith("/api/v1"):
            url += "/api/v1"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )
        self._httpx = httpx
        self.base_url = url
        self.ttl = float(ttl)
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_buffer = max_buffer
        self.max_cached = max_cached
        self.author = author
        self._fallback = self._fallbacks(fallback)
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, _Entry] = OrderedDict()
        self._snapshot_path = Path(snapshot_path) if snapshot_path is not None else None
        self._snapshot: dict[Key, Prompt] = {}
        self._snapshot_dirty = False
        #: set while the server is unreachable, so that the outage is logged once
        self._down = False
        # events
        self._events: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._failures = 0
        self._inflight = 0
        self._drop_warned = False
        #: events dropped because the buffer was full
        self.dropped = 0
        #: events the server refused (422): logged with its reason, not retried
        self.rejected = 0
        #: events delivered
        self.delivered = 0
        if self._snapshot_path is not None:
            self._load_snapshot()
        self._worker = threading.Thread(target=self._run, name="promptver-client", daemon=True)
        self._worker.start()
        ref = weakref.ref(self)
        atexit.register(lambda: (c := ref()) is not None and c.close())

    # -- prompts ------------------------------------------------------------------------
    def get_prompt(self, name: str, env: str, user_id: str | None = None) -> Prompt:
        """The prompt to use now: what is deployed to ``env``, or the experiment variant the
        server routes ``user_id`` to (the in-process ``Workspace.get_prompt``'s answer).

        Raises:
            NotFound: the server says so (unknown template or environment, nothing deployed).
            ValidationError: the server refused the arguments.
            ServerUnavailable: the server cannot be reached and there is no cached answer,
                snapshot or fallback for ``name``.
        """
        key = (name, env, user_id)
        entry = self._cache.get(key)
        if entry is not None:
            if time.monotonic() < entry.expires:
                return entry.prompt  # the hot path: no lock, no request
            self._revalidate(key, entry)
            return entry.prompt
        try:
            return self._fetch(key)
        except _Unreachable as exc:
            return self._stand_in(key, exc)

    def _fetch(self, key: Key) -> Prompt:
        """Ask the server, cache the answer (and mark the snapshot to be written)."""
        name, env, user_id = key
        params = {"env": env} if user_id is None else {"env": env, "user_id": user_id}
        try:
            r = self._http.get(f"/prompts/{quote(name, safe='')}/live", params=params)
        except self._httpx.HTTPError as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from exc
        self._raise_for(r)
        prompt = Prompt.model_validate(r.json())
        with self._lock:
            self._cache[key] = _Entry(prompt, time.monotonic() + self.ttl)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            if self._snapshot_path is not None and self._snapshot.get(key) != prompt:
                self._snapshot[key] = prompt
                while len(self._snapshot) > self.max_cached:
                    self._snapshot.pop(next(iter(self._snapshot)))
                self._snapshot_dirty = True
                self._wake.notify()
        self._reachable()
        return prompt

    def _raise_for(self, r: httpx.Response) -> None:
        if r.status_code < 400:
            return
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise _Unreachable(f"HTTP {r.status_code}")
        try:
            detail = r.json().get("detail") or r.text
        except ValueError:
            detail = r.text
        if r.status_code == 404:
            raise NotFound(str(detail))
        if r.status_code == 422:
            raise ValidationError(str(detail))
        raise PromptverError(f"the server answered HTTP {r.status_code}: {detail}")

    def _revalidate(self, key: Key, entry: _Entry) -> None:
        """Refresh a stale entry in the background (one refresh per entry at a time)."""
        with self._lock:
            if entry.refreshing:
                return
            entry.refreshing = True

        def refresh() -> None:
            try:
                self._fetch(key)
            except _Unreachable as exc:
                self._unreachable(exc)
                # serve the last good answer; ask again after a short pause, not on every call
                entry.expires = time.monotonic() + min(self.ttl, 1.0)
            except PromptverError:
                # undeployed or deleted since: the next call asks again and raises
                with self._lock:
                    if self._cache.get(key) is entry:
                        del self._cache[key]
            finally:
                entry.refreshing = False

        threading.Thread(target=refresh, name="promptver-client-refresh", daemon=True).start()

    def _stand_in(self, key: Key, exc: _Unreachable) -> Prompt:
        """A cold key while the server is unreachable: the snapshot, then the fallback."""
        name, env, user_id = key
        self._unreachable(exc)
        with self._lock:
            snap = self._snapshot.get(key)
            if snap is None:
                # another user's answer of the deployed version (no experiment variant)
                snap = next(
                    (
                        p
                        for (n, e, _), p in self._snapshot.items()
                        if n == name and e == env and p.variant is None
                    ),
                    None,
                )
        if snap is not None:
            return snap.model_copy(update={"user_id": user_id})
        fb = self._fallback.get(name)
        if fb is not None:
            return fb.model_copy(update={"environment": env, "user_id": user_id})
        raise ServerUnavailable(
            f"cannot reach the promptver server at {self.base_url} ({exc}) and there is no "
            f"cached answer, snapshot or fallback for '{name}' in '{env}'"
        )

    def _unreachable(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "promptver server at %s is unreachable (%s): serving the last good answers "
                "until it is back",
                self.base_url,
                exc,
            )

    def _reachable(self) -> None:
        if self._down:
            self._down = False
            log.info("promptver server at %s is reachable again", self.base_url)

    @staticmethod
    def _fallbacks(fallback: Prompt | Mapping[str, Prompt | str] | None) -> dict[str, Prompt]:
        if fallback is None:
            return {}
        if isinstance(fallback, Prompt):
            return {fallback.name: fallback}
        if not isinstance(fallback, Mapping):
            raise ValidationError(
                "Client: fallback must be a Prompt or a mapping of name to Prompt or text, got "
                f"{type(fallback).__name__}"
            )
        out: dict[str, Prompt] = {}
        for name, value in fallback.items():
            if isinstance(value, str):
                value = Prompt(template_id="", name=name, version=None, commit="", content=value)
            elif not isinstance(value, Prompt):
                raise ValidationError(
                    f"Client: fallback['{name}'] must be a Prompt or a text, got "
                    f"{type(value).__name__}"
                )
            out[name] = value.prepare()  # a syntax error shows now, not during an outage
        return out

    # -- snapshot -----------------------------------------------------------------------
    def _load_snapshot(self) -> None:
        assert self._snapshot_path is not None
        try:
            data = json.loads(self._snapshot_path.read_text(encoding="utf-8"))
            if data.get("format") != _SNAPSHOT_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            for item in data.get("prompts", []):
                name, env, user_id = item["key"]
                self._snapshot[(name, env, user_id)] = Prompt.model_validate(item["prompt"])
            pending = data.get("events", [])
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            # a damaged snapshot must not stop the application: it is rewritten on the next fetch
            log.warning("ignoring the promptver snapshot %s: %s", self._snapshot_path, exc)
            return
        self._events.extend(pending[-self.max_buffer :])

    def _write_snapshot(self, events: list[dict[str, Any]] | None = None) -> None:
        """Write the snapshot atomically (a crash leaves the old file, never half a file)."""
        assert self._snapshot_path is not None
        with self._lock:
            prompts = [
                {"key": list(k), "prompt": p.model_dump(mode="json")}
                for k, p in self._snapshot.items()
            ]
            self._snapshot_dirty = False
        data = {"format": _SNAPSHOT_FORMAT, "prompts": prompts, "events": events or []}
        tmp = self._snapshot_path.with_name(self._snapshot_path.name + ".tmp")
        try:
            self._snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self._snapshot_path)
        except OSError as exc:
            log.warning("cannot write the promptver snapshot %s: %s", self._snapshot_path, exc)

    # -- events -------------------------------------------------------------------------
    def track(self, prompt: Prompt, *, user_id: str | None = None, **metrics: Any) -> None:
        """Record one call of ``prompt`` (buffered; sent in batches in the background).

        ``metrics`` are the built-in ones (``latency_ms``, ``success``, ``error``,
        ``quality_score``, ``cost_usd``, ``tokens_in``, ``tokens_out``) or any numeric custom
        metric; ``event_id`` and ``timestamp`` may be given too. The server checks the values
        with the CSV import's rules; a batch it refuses is logged and counted in
        :attr:`rejected`.

        Raises:
            ValidationError: not a Prompt, no user_id, no metric, a value that is not a number,
                boolean or None, or the client is closed.
        """
        if self._closed:
            raise ValidationError("track(): the client is closed")
        if not isinstance(prompt, Prompt):
            raise ValidationError(
                f"track(): expected the Prompt returned by get_prompt, got {type(prompt).__name__}"
            )
        uid = user_id if user_id is not None else prompt.user_id
        if not isinstance(uid, str) or not uid.strip():
            raise ValidationError(
                "track(): user_id is required: pass user_id= to get_prompt or to track"
            )
        event_id = metrics.pop("event_id", None) or uuid.uuid4().hex
        ts = metrics.pop("timestamp", None) or datetime.now(UTC)
        if isinstance(ts, datetime):
            ts = ts.isoformat()
        for k, v in metrics.items():
            if k in _RESERVED:
                raise ValidationError(f"track(): '{k}' comes from the prompt, not a metric")
            if v is not None and not isinstance(v, bool | int | float):
                raise ValidationError(
                    f"track(): metric '{k}' must be a number, a boolean or None, got "
                    f"{type(v).__name__}"
                )
        if not any(v is not None for v in metrics.values()):
            raise ValidationError("track(): give at least one metric (latency_ms=…, success=…)")
        event: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": ts,
            "template": prompt.template_id or prompt.name,
            "user_id": uid.strip(),
            "experiment": prompt.experiment_id,
            "variant": prompt.variant,
            "version": prompt.version,
            "environment": prompt.environment,
            **metrics,
        }
        with self._lock:
            self._push([event])
            if len(self._events) >= self.batch_size:
                self._wake.notify()

    @property
    def pending(self) -> int:
        """Events buffered or being sent, not yet delivered."""
        return len(self._events) + self._inflight

    def _push(self, events: list[dict[str, Any]], *, front: bool = False) -> None:
        """Buffer events (lock held), dropping the oldest beyond ``max_buffer``."""
        if front:
            self._events.extendleft(reversed(events))
        else:
            self._events.extend(events)
        over = len(self._events) - self.max_buffer
        if over > 0:
            for _ in range(over):
                self._events.popleft()
            self.dropped += over
            if not self._drop_warned:
                self._drop_warned = True
                log.warning(
                    "promptver client: the event buffer is full (max_buffer=%d): dropping the "
                    "oldest events until the server takes them",
                    self.max_buffer,
                )

    def _send(self, batch: list[dict[str, Any]]) -> None:
        """POST one batch. Raises _Unreachable when it is worth retrying."""
        body: dict[str, Any] = {"events": batch}
        if self.author:
            body["author"] = self.author
        try:
            r = self._http.post("/events", json=body)
        except self._httpx.HTTPError as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code < 400:
            self.delivered += len(batch)
            return
        if r.status_code >= 500 or r.status_code in (401, 403, 408, 429):
            # a token being rotated is worth waiting for too; the buffer bounds what is kept
            raise _Unreachable(f"HTTP {r.status_code}: {r.text[:200]}")
        self.rejected += len(batch)
        log.error(
            "promptver server refused %d events (HTTP %d): %s",
            len(batch),
            r.status_code,
            r.text[:500],
        )

    def _flush_once(self) -> bool:
        """Send one batch; False when the server was unreachable (the batch is kept)."""
        with self._lock:
            batch = [self._events.popleft() for _ in range(min(self.batch_size, len(self._events)))]
            self._inflight = len(batch)
        if not batch:
            return True
        try:
            self._send(batch)
        except _Unreachable as exc:
            with self._lock:
                self._inflight = 0
                self._push(batch, front=True)
            self._unreachable(exc)
            return False
        self._reachable()
        with self._lock:
            self._inflight = 0
            if self._drop_warned:
                self._drop_warned = False
                log.warning(
                    "promptver client: %d events were dropped while the buffer was full",
                    self.dropped,
                )
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now, retrying until ``timeout`` seconds (default: one
        try per batch). Returns whether the buffer is empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while self._events:
            if self._flush_once():
                delay = 0.05
                continue
            if deadline is None or time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)  # a retry pause, not a wait on a condition
            delay = min(delay * 2, 1.0)
        return True

    def _run(self) -> None:
        """The background sender: a batch when full or every ``flush_interval``; after a
        failure, retries with backoff (at most 5 s)."""
        while True:
            with self._lock:
                wait = self.flush_interval if self._failures == 0 else self._backoff()
                if not self._closed and len(self._events) < self.batch_size:
                    self._wake.wait(wait)
                if self._closed:
                    return
            if self._snapshot_dirty:
                self._write_snapshot()
            while self._events and not self._closed:
                if not self._flush_once():
                    self._failures += 1
                    break
                self._failures = 0
                if len(self._events) < self.batch_size:
                    break

    def _backoff(self) -> float:
        return min(max(self.flush_interval, 0.05) * 2 ** min(self._failures, 10), 5.0)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the sender and deliver what is buffered, retrying up to ``timeout`` seconds.
        What still cannot be delivered is kept in the snapshot file (sent at the next start)
        or, without one, logged as lost. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._worker.join()
        self.flush(timeout)
        left = list(self._events)
        if self._snapshot_path is not None:
            self._write_snapshot(left)
            if left:
                log.warning(
                    "promptver client: %d events kept in %s, sent at the next start",
                    len(left),
                    self._snapshot_path,
                )
        elif left:
            log.error(
                "promptver client: %d events lost: the server at %s was unreachable at close "
                "(give snapshot_path= to keep them)",
                len(left),
                self.base_url,
            )
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"
