"""Connections to the one DuckDB file.

DuckDB lets a single process hold a database file for writing, and a second process cannot even
open it read-only meanwhile. promptver therefore never keeps the file open between user actions:
every operation opens it, works inside one transaction and lets go. A caller that finds the file
locked by another process retries with backoff for ``busy_timeout`` seconds, then raises
:class:`DatabaseBusy`.

Inside one process, ``duckdb.connect`` on the same path shares one database instance, so each
thread simply opens its own connection (a DuckDB connection refuses concurrent calls from two
threads). Nested uses on the same thread reuse the connection and transaction that is already
open, so a service method may call another and the whole user action stays one transaction.
``session()`` keeps the connection for a longer block (one dashboard script run) to avoid paying
the ~10 ms open cost per query.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from promptver.errors import (
    Conflict,
    DatabaseBusy,
    DatabaseError,
    ValidationError,
    WriteRace,
    surrogate_problem,
)

log = logging.getLogger("promptver.store")

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")
#: another thread of this process is closing the last connection to the file right now
_RACE_MARKERS = ("Unique file handle conflict", "is already attached")

#: Serialises ``duckdb.connect`` and ``close`` within this process. Opening the first
#: connection creates the shared database instance and closing the last one tears it down
#: (checkpointing the log); a thread connecting in the middle of either got "Unique file handle
#: conflict … already attached" or a connection without the pandas scan function ("Table
#: Function with name pandas_scan does not exist"), found by tests/test_reliability_stress.py.
_OPEN_CLOSE_LOCK = threading.Lock()

# Taking turns with other processes. DuckDB's file lock has no queue: a process whose threads
# open connections back to back keeps its database instance (and the lock) alive indefinitely,
# and another process retrying for the file never gets in (tests/test_reliability_db.py). A
# process that finds the file locked therefore writes its pid into ``<file>.waiting`` on each
# retry; a process that holds the file and sees a fresh mark from another process opens no new
# connection until its open ones are closed (at most ``_DRAIN_WAIT`` seconds, so a long
# operation of its own cannot stall it), then keeps away for ``_HANDOVER`` seconds, longer than
# a waiter's longest retry pause, so the waiter can take the file. Without contention none of
# this runs: the mark is only looked at while this process already has the file open.
_TURNS = threading.Condition(_OPEN_CLOSE_LOCK)
_OPEN: dict[Path, int] = {}  # connections this process has open, per file
_HOLD_OFF: dict[Path, float] = {}  # no new connection to the file before this monotonic time
_WAIT_FRESH = 1.0  # seconds a waiting mark counts
_DRAIN_WAIT = 1.0
_HANDOVER = 0.3
_WAL_MARKERS = ("replay", "WAL", "write-ahead", "checkpoint")

RECOVERY_HINT = (
    "see 'Recovering a damaged database' in README.md: restore the latest backup "
    "(promptver backup) or move the .wal file aside and open again"
)


#: Crash-test hook, off unless ``PROMPTVER_CRASH_POINT`` is set (tests/test_reliability_crash.py,
#: RELIABILITY.md). ``before-commit`` pauses a write transaction after its last statement,
#: ``after-commit`` right after COMMIT (before anything is checkpointed); ``NAME:N`` pauses at
#: the N-th such moment (opening a current file writes nothing: its schema check is one read).
#: The process prints ``promptver-crash-point NAME`` on stderr and sleeps, so a
#: test can ``kill -9`` it exactly there. When unset, the cost is one ``if`` on a module
#: constant per write transaction.
_crash_spec = (os.environ.get("PROMPTVER_CRASH_POINT") or "").partition(":")
CRASH_POINT: str | None = _crash_spec[0] or None
CRASH_AT: int = int(_crash_spec[2]) if _crash_spec[2].isdigit() else 1
_crash_hits = 0


def _crash_point(name: str) -> None:
    global _crash_hits
    if name != CRASH_POINT:
        return
    _crash_hits += 1
    if _crash_hits >= CRASH_AT:
        sys.stderr.write(f"promptver-crash-point {name}\n")
        sys.stderr.flush()
        time.sleep(3600)


class WouldBlock(Exception):
    """Raised inside :meth:`Database.cache_only` by an operation that needs the file.

    Not a ``PromptverError``: it never reaches a user; the caller runs the operation again where
    blocking is fine (a worker thread).
    """


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.con: duckdb.DuckDBPyConnection | None = None
        self.depth = 0  # connection users on this thread
        self.tx_depth = 0  # nested transaction() blocks on this thread
        self.tx_failed = False
        self.wrote = False  # a transaction() (not read()) block ran inside the outer one
        self.lazy = 0  # open lazy_session() blocks
        self.held = False  # a lazy session holds a reference on ``con``
        self.cache_only = 0  # open cache_only() blocks: opening the file raises WouldBlock


class Database:
    """The promptver database file and how to reach it.

    Args:
        path: the DuckDB file (created with its folder when missing); ``":memory:"`` for tests.
        busy_timeout: seconds to wait for a file another process holds.
    """

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = path if str(path) == ":memory:" else Path(path).expanduser().resolve()
        self.busy_timeout = busy_timeout
        self._state = _ThreadState()
        self._memory_con: duckdb.DuckDBPyConnection | None = None
        self._memory_lock = threading.Lock()
        self._writes = 0  # successful write transactions in this process

    # -- connections -------------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.path == ":memory:":
            with self._memory_lock:
                if self._memory_con is None:
                    self._memory_con = duckdb.connect(":memory:")
                con = self._memory_con.cursor()
        else:
            con = self._open_file()
        try:
            con.execute("SET TimeZone = 'UTC'")
        except BaseException:
            self._close(con)
            raise
        return con

    def _open_file(self) -> duckdb.DuckDBPyConnection:
        assert isinstance(self.path, Path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        waited = False
        while True:
            try:
                con = self._connect_in_turn()
            except duckdb.IOException as exc:
                text = str(exc)
                if not any(m in text for m in _LOCK_MARKERS + _RACE_MARKERS):
                    raise self._damaged(exc) from None
                waited = True
                self._mark_waiting()
                if time.monotonic() >= deadline:
                    self._unmark_waiting()
                    raise DatabaseBusy(
                        "database busy: another promptver process is writing "
                        f"{self.path} (waited {self.busy_timeout:g} s); try again"
                    ) from None
                time.sleep(
                    min(delay, max(0.0, deadline - time.monotonic())) + random.random() * 0.002
                )
                delay = min(delay * 2, 0.2)
            except duckdb.Error as exc:
                if any(m in str(exc) for m in _RACE_MARKERS) and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                raise self._damaged(exc) from None
            else:
                if waited:
                    self._unmark_waiting()
                return con

    @property
    def _wait_mark(self) -> Path:
        return Path(f"{self.path}.waiting")

    def _connect_in_turn(self) -> duckdb.DuckDBPyConnection:
        """``duckdb.connect``, after letting a process that waits for the file go first."""
        path = self.path
        assert isinstance(path, Path)
        with _TURNS:
            if _OPEN.get(path, 0) and self._others_waiting():
                drain_until = time.monotonic() + _DRAIN_WAIT
                while _OPEN.get(path, 0) and time.monotonic() < drain_until:
                    _TURNS.wait(drain_until - time.monotonic())
                if not _OPEN.get(path, 0):
                    _HOLD_OFF[path] = time.monotonic() + _HANDOVER
            while time.monotonic() < _HOLD_OFF.get(path, 0.0) and not _OPEN.get(path, 0):
                _TURNS.wait(_HOLD_OFF[path] - time.monotonic())
            con = duckdb.connect(str(path))
            _OPEN[path] = _OPEN.get(path, 0) + 1
            return con

    def _others_waiting(self) -> bool:
        """Another process marked the file as waited for within the last ``_WAIT_FRESH`` s."""
        try:
            mark = self._wait_mark
            if time.time() - mark.stat().st_mtime > _WAIT_FRESH:
                return False
            return mark.read_text().strip() != str(os.getpid())
        except (OSError, ValueError):
            return False

    def _mark_waiting(self) -> None:
        try:
            self._wait_mark.write_text(str(os.getpid()))
        except OSError:  # a read-only folder: no turns, plain retries
            pass

    def _unmark_waiting(self) -> None:
        try:
            if self._wait_mark.read_text().strip() == str(os.getpid()):
                self._wait_mark.unlink()
        except OSError:
            pass

    def _damaged(self, exc: Exception) -> DatabaseError:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if any(m.lower() in text.lower() for m in _WAL_MARKERS):
            return DatabaseError(
                f"cannot open {self.path}: DuckDB could not replay its write-ahead log ({text}); "
                + RECOVERY_HINT
            )
        return DatabaseError(f"cannot open {self.path}: {text}; {RECOVERY_HINT}")

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for this thread, reused by nested calls, closed when the outer block ends."""
        st = self._state
        if st.con is None:
            if st.cache_only:
                raise WouldBlock(f"{self.path} would be opened")
            st.con = self._open()
            if st.lazy and not st.held:  # a lazy session keeps it until the session ends
                st.held = True
                st.depth += 1
        st.depth += 1
        try:
            yield st.con
        finally:
            self._release(st)

    def _release(self, st: _ThreadState) -> None:
        st.depth -= 1
        if st.depth == 0:
            con, st.con = st.con, None
            self._close(con)  # type: ignore[arg-type]

    def _close(self, con: duckdb.DuckDBPyConnection) -> None:
        with _TURNS:
            try:
                con.close()
            except duckdb.Error:  # pragma: no cover - closing never matters for correctness
                pass
            if isinstance(self.path, Path):
                left = _OPEN.get(self.path, 1) - 1
                _OPEN[self.path] = left
                if not left:
                    _TURNS.notify_all()

    session = connect
    """Hold one connection for a block (e.g. a dashboard script run); same as :meth:`connect`."""

    @contextmanager
    def cache_only(self) -> Iterator[None]:
        """A block that must not touch the file: anything that would open it raises
        :class:`WouldBlock` before changing any state.

        For hot paths served from an event loop (the HTTP API's render): answer from the
        in-process caches when they hold the answer, otherwise run the same call in a worker
        thread, where waiting for the file cannot stall other requests.
        """
        st = self._state
        st.cache_only += 1
        try:
            yield
        finally:
            st.cache_only -= 1

    def lazy_session(self) -> _LazySession:
        """Like :meth:`session`, but the file is opened only if something in the block needs it.

        For hot paths that usually answer from a cache (``get_prompt``): a hit costs nothing, and
        several misses in the block share one open of the file.
        """
        return _LazySession(self)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: committed when the outermost block ends, rolled back on any error.

        Nested blocks join the outer transaction. DuckDB write-write conflicts between threads of
        this process surface as :class:`Conflict`. ``write=False`` (see :meth:`read`) marks a
        block that only reads, so it does not change :meth:`data_version`.
        """
        with self.connect() as con:
            st = self._state
            if write:
                st.wrote = True
            if st.tx_depth:
                st.tx_depth += 1
                try:
                    yield con
                except BaseException:
                    st.tx_failed = True
                    raise
                finally:
                    st.tx_depth -= 1
                return
            con.execute("BEGIN TRANSACTION")
            st.tx_depth = 1
            st.tx_failed = False
            st.wrote = write
            try:
                yield con
            except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
                st.tx_depth = 0
                _rollback(con)
                # DuckDB's own text (table, key and constraint names) is for the log only
                log.info("write race: %s", str(exc).splitlines()[0])
                raise WriteRace(
                    "another writer changed the same data at the same time; nothing was written, "
                    "try again"
                ) from None
            except (UnicodeEncodeError, duckdb.InvalidInputException) as exc:
                st.tx_depth = 0
                _rollback(con)
                if "surrogate" in str(exc):  # a lone surrogate from a Python caller
                    raise ValidationError("invalid input:", [surrogate_problem(None)]) from None
                raise
            except BaseException:
                st.tx_depth = 0
                _rollback(con)
                raise
            st.tx_depth = 0
            if st.tx_failed:  # an inner block failed and the caller swallowed it
                _rollback(con)
                raise Conflict("the operation was aborted part-way; nothing was written")
            if CRASH_POINT is not None and st.wrote:
                _crash_point("before-commit")
            try:
                con.execute("COMMIT")
            except duckdb.TransactionException as exc:
                _rollback(con)
                # DuckDB's own text (table, key and constraint names) is for the log only
                log.info("write race: %s", str(exc).splitlines()[0])
                raise WriteRace(
                    "another writer changed the same data at the same time; nothing was written, "
                    "try again"
                ) from None
            if st.wrote:
                self._writes += 1
                if CRASH_POINT is not None:
                    _crash_point("after-commit")

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only block: one transaction too, for a consistent snapshot of several queries."""
        with self.transaction(write=False) as con:
            yield con

    def data_version(self) -> tuple[int, int, int, int, int]:
        """Changes whenever the data may have changed: a write in this process, or a write by
        another process (DuckDB appends to the ``.wal`` file or checkpoints into the main file).

        Cheap (two ``stat`` calls): the dashboard keys its caches on it.
        """
        if not isinstance(self.path, Path):
            return (self._writes, 0, 0, 0, 0)
        try:
            main = self.path.stat()
            m = (main.st_mtime_ns, main.st_size)
        except FileNotFoundError:
            m = (0, 0)
        try:
            wal = Path(str(self.path) + ".wal").stat()
            w = (wal.st_mtime_ns, wal.st_size)
        except FileNotFoundError:
            w = (0, 0)
        return (self._writes, *m, *w)

    def in_transaction(self) -> bool:
        return self._state.tx_depth > 0

    def close(self) -> None:
        """Release in-memory resources (files are never held between operations)."""
        if self._memory_con is not None:
            self._memory_con.close()
            self._memory_con = None


class _LazySession:
    __slots__ = ("db", "st")

    def __init__(self, db: Database) -> None:
        self.db = db
        self.st = db._state

    def __enter__(self) -> None:
        self.st.lazy += 1

    def __exit__(self, *exc: object) -> None:
        st = self.st
        st.lazy -= 1
        if st.lazy == 0 and st.held:
            st.held = False
            self.db._release(st)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
