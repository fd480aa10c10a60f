"""Backups and restores of the one database file.

``backup`` writes a consistent copy while the dashboard and applications keep running: it holds
the file for the few seconds of a ``COPY FROM DATABASE`` (one snapshot), so other processes wait
as for any other write. ``restore`` checks the backup first (it must open, be a promptver file
this version understands and pass ``fsck``-style hash checks), keeps the replaced file beside it,
and swaps the files atomically.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb

from promptver.errors import DatabaseError, IntegrityError, PromptverError
from promptver.store import maintenance
from promptver.store.db import Database
from promptver.store.migrations import MIGRATIONS, applied


def backup(db: Database, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a consistent copy of ``db`` to ``dest`` (a new DuckDB file).

    Raises:
        PromptverError: ``dest`` exists (unless ``overwrite``) or is the database itself.
        DatabaseBusy: another process kept the file locked past the configured wait.
    """
    target = Path(dest).expanduser().resolve()
    if isinstance(db.path, Path) and target == db.path:
        raise PromptverError("the backup must go to another file than the database itself")
    if target.exists():
        if not overwrite:
            raise PromptverError(f"{target} already exists; choose a new file or pass --overwrite")
        target.unlink()
        Path(str(target) + ".wal").unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    with db.connect() as con:
        try:
            maintenance.copy_database_to(con, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
            raise
    os.replace(tmp, target)
    return target


def check_backup(path: Path) -> list[str]:
    """The migrations recorded in a backup file (raises if it is not a usable promptver file)."""
    if not path.is_file():
        raise PromptverError(f"backup not found: {path}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DatabaseError(
            f"{path} is not a readable DuckDB file: {str(exc).splitlines()[0]}"
        ) from None
    try:
        names = applied(con)
    finally:
        con.close()
    if not names:
        raise PromptverError(f"{path} is not a promptver database (no schema_migrations)")
    unknown = [n for n in names if n not in {m for m, _ in MIGRATIONS}]
    if unknown:
        raise DatabaseError(f"{path} was written by a newer promptver ({', '.join(unknown)})")
    return names


def _verify(staged: Path, source: Path, busy_timeout: float) -> None:
    """Open the staged copy of a backup (upgrading it if older) and run ``fsck`` on it.

    Raises:
        IntegrityError: a commit, branch, version, experiment arm or deployment is broken.
    """
    from promptver.config import Settings
    from promptver.workspace import Workspace

    settings = Settings().with_overrides(storage__busy_timeout=busy_timeout)
    ws = Workspace.open(staged, settings=settings)
    try:
        report = ws.versions.fsck()
    finally:
        ws.close()
    if not report.ok:
        shown = "; ".join(p.message for p in report.problems[:5])
        more = len(report.problems) - 5
        raise IntegrityError(
            f"{source} fails the integrity check, nothing was restored: {shown}"
            + (f"; … and {more} more" if more > 0 else "")
            + " (run 'promptver --db BACKUP fsck' for the full list)"
        )


def restore(db: Database, source: str | os.PathLike[str]) -> Path | None:
    """Replace the database with a backup; returns where the replaced file was kept.

    Stop the dashboard and applications first: they would otherwise keep writing to the file
    being replaced until their next operation.
    """
    src = Path(source).expanduser().resolve()
    check_backup(src)
    assert isinstance(db.path, Path), "restore needs a database file"
    target = db.path
    if src == target:
        raise PromptverError("the backup is the database itself")
    kept: Path | None = None
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(src, staged)
    try:
        _verify(staged, src, db.busy_timeout)
    except BaseException:
        staged.unlink(missing_ok=True)
        Path(str(staged) + ".wal").unlink(missing_ok=True)
        raise
    if target.exists():
        # fold the write-ahead log into the file so the kept copy is complete, then set it aside
        with db.connect() as con:
            maintenance.checkpoint(con)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = target.with_name(f"{target.name}.before-restore-{stamp}")
        os.replace(target, kept)
        wal = Path(str(target) + ".wal")
        if wal.exists():
            os.replace(wal, Path(str(kept) + ".wal"))
    os.replace(staged, target)
    return kept
