"""``POST /events``: a JSON batch of metric events through the CSV import.

The batch is written as a CSV file (one record per event, columns in order of first use) and
handed to :meth:`promptver.metrics.MetricsService.import_csv`, so a JSON event obeys exactly the
CSV's rules: the same checks, the same atomic write, the same skipping of stored event ids. What
this module adds is only the translation of the import's answer back into the batch's terms: a
problem on line N of the file becomes a problem of ``events[i]``.
"""

from __future__ import annotations

import bisect
import csv
import io
import os
import re
import tempfile
from collections.abc import Sequence
from typing import Any

from promptver.api.schemas import EventIn
from promptver.errors import ImportError_, Problem, ValidationError
from promptver.metrics.csv_columns import REQUIRED
from promptver.models.metrics import ImportResult
from promptver.workspace import Workspace

_LINE_REF = re.compile(r"\bon line (\d+)\b")


def _cell(value: Any) -> str:
    """A JSON scalar as the CSV cell the import reads: ``null`` is empty (missing)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)  # round-trips; nan and inf stay recognisable, and are refused
    return str(value)


def _breaks(text: str) -> int:
    """Line breaks as the import counts them (CRLF, LF and CR each end a line)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


class Batch:
    """A batch written as CSV, remembering where each event starts in the file."""

    def __init__(self, events: Sequence[EventIn]) -> None:
        rows = [e.model_dump(exclude_unset=True) for e in events]
        columns: list[str] = list(REQUIRED)
        #: the first event that has each key (to place a problem about a column)
        self.first_with: dict[str, int] = {}
        for i, row in enumerate(rows):
            for key in row:
                self.first_with.setdefault(key, i)
                if key not in columns:
                    columns.append(key)
        if "experiment" in columns and "variant" not in columns:
            # the CSV needs the column whenever experiment is one; each event then gets the
            # row rule ("required with an experiment") under its own index
            columns.append("variant")
        self.columns = columns
        buf = io.StringIO()
        # CRLF: the writer then quotes any value holding CR or LF (with LF alone it leaves a
        # bare CR unquoted, which would end the record early)
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(columns)
        #: physical line (1-based) where each event's record starts
        self.starts: list[int] = []
        line = 1 + _breaks(buf.getvalue())
        for row in rows:
            mark = buf.tell()
            writer.writerow([_cell(row.get(c)) for c in columns])
            self.starts.append(line)
            line += _breaks(buf.getvalue()[mark:])
        self.text = buf.getvalue()

    def index_at(self, line: int) -> int | None:
        """The event whose record holds physical ``line`` (``None``: the header)."""
        if not self.starts or line < self.starts[0]:
            return None
        return bisect.bisect_right(self.starts, line) - 1

    def problem(self, p: Problem) -> Problem:
        """An import problem restated for the batch: ``events[i].field``."""
        column = p.field or None
        if p.line is not None and p.line > 1:
            index = self.index_at(p.line)
        elif column is not None:  # a header problem: the first event that has the key
            index = self.first_with.get(column)
        elif p.column is not None and 0 < p.column <= len(self.columns):
            column = self.columns[p.column - 1]
            index = self.first_with.get(column)
        else:
            index = None
        message = _LINE_REF.sub(lambda m: self._at(int(m.group(1))), p.message)
        if p.code == "duplicate_file":
            message = (
                message.replace("this file was", "this batch was")
                .replace(
                    "a file whose rows lack event_id cannot be imported twice",
                    "a batch whose events lack event_id cannot be sent twice",
                )
                .replace(
                    "add an event_id column to make re-imports skip what is stored",
                    "give each event an event_id so that a retry skips what is stored",
                )
            )
        where = "events" if index is None else f"events[{index}]"
        if column:
            where = f"{where}.{column}"
        extra = {} if index is None else {"index": index}
        return Problem(message, field=where, code=p.code, extra=extra)

    def _at(self, line: int) -> str:
        index = self.index_at(line)
        return f"in events[{index}]" if index is not None else f"on line {line}"


def import_events(ws: Workspace, events: Sequence[EventIn], *, author: str) -> ImportResult:
    """Store ``events`` whole or not at all (see the module docstring).

    Raises:
        ValidationError: an event breaks a CSV rule; each problem names ``events[i].field``.
        DatabaseBusy: another process held the file past the configured wait.
    """
    batch = Batch(events)
    name = f"HTTP batch of {len(events)} event{'s' if len(events) != 1 else ''}"
    fd, path = tempfile.mkstemp(prefix="promptver-events-", suffix=".csv")
    try:
        # the API refuses lone surrogates in request bodies (app.IJsonRequest); a caller that
        # passes one anyway gets the import's refusal of invalid UTF-8, naming the event
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass", newline="") as f:
            f.write(batch.text)
        try:
            return ws.metrics.import_csv(path, author=author, file_name=name)
        except ImportError_ as exc:
            raise _restated(batch, exc) from None
    finally:
        os.unlink(path)


def _restated(batch: Batch, exc: ImportError_) -> ValidationError:
    prefix = "events refused, nothing was imported"
    if not exc.problems:
        detail = exc.message.split("nothing was imported", 1)[-1]
        return ValidationError(prefix + detail)
    problems = [batch.problem(p) for p in exc.problems]
    total = max(getattr(exc, "total_problems", len(problems)), len(problems))
    if total == 1:
        what = "1 problem"
    elif total <= len(problems):
        what = f"{total} problems"
    else:
        what = f"more than {len(problems)} problems, the first {len(problems)} are"
    return ValidationError(f"{prefix}; {what}:", problems)
