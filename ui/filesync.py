"""The Templates screen's note on prompt files (``promptver export`` / ``sync``)."""

from __future__ import annotations

from datetime import datetime

from promptver.filesync import FileSync
from promptver.workspace import Workspace
from ui.common import cached, code, md


def file_sync_note(ws: Workspace, name: str, commit: str) -> str | None:
    """ "Exported to files at commit …" (Markdown, user text escaped) when the last export or
    sync wrote this template; ``None`` otherwise."""
    last = cached(FileSync(ws).last_sync)
    if not last or name not in last.get("templates", {}):
        return None
    at = last["templates"][name]
    try:
        when = f" on {datetime.fromisoformat(last['at']):%Y-%m-%d %H:%M} UTC"
    except (KeyError, TypeError, ValueError):
        when = ""
    text = f"Exported to files at commit {code(at[:10])} ({md(last.get('dir', ''))}{when})"
    if at != commit:
        text += " · this version is newer: `promptver sync` writes it to the file"
    return text
