"""The time promptver records: now in UTC, which the demo may move back (:func:`demo_clock`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now in UTC, at the microsecond precision DuckDB stores (see :func:`demo_clock`)."""
    fn = _CLOCK.get()
    return datetime.now(UTC) if fn is None else fn()


# The demo back-dates the history it writes (commits, deployments) so that its metrics can
# follow it. A context variable keeps that to the thread building the demo: other threads of
# the process (a tracking flush, another dashboard session) keep the real time.
_CLOCK: ContextVar[Callable[[], datetime] | None] = ContextVar("promptver_clock", default=None)


@contextmanager
def demo_clock(fn: Callable[[], datetime]) -> Iterator[None]:
    """Make :func:`utcnow` answer ``fn()`` in the current thread for the block (demo only)."""
    token = _CLOCK.set(fn)
    try:
        yield
    finally:
        _CLOCK.reset(token)
