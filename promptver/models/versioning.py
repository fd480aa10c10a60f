"""What version control returns: merges, fsck reports, the commit graph."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from promptver.models.core import Model


class MergeResult(Model):
    """What a merge did. ``as_contract()`` is the ``merge --json`` shape."""

    template_id: str
    target: str
    source: str
    commit: str
    version: str | None = None
    fast_forward: bool = False
    #: the target already contained the source: nothing was written
    up_to_date: bool = False
    #: the merge base(s): one lowest common ancestor, or several for criss-cross histories
    merge_bases: list[str] = Field(default_factory=list)
    #: conflicting hunks the caller resolved with the resolution text
    conflicts_resolved: int = 0

    def as_contract(self) -> dict[str, Any]:
        return {"commit": self.commit, "version": self.version, "fast_forward": self.fast_forward}


class FsckProblem(Model):
    """One inconsistency found by ``fsck``."""

    kind: str
    template_id: str | None = None
    template: str | None = None
    object: str
    message: str


class FsckReport(Model):
    ok: bool
    problems: list[FsckProblem] = Field(default_factory=list)
    templates: int = 0
    commits: int = 0
    branches: int = 0
    versions: int = 0


class GraphRow(Model):
    """One commit of a template's history, placed in a lane for drawing the graph.

    Rows are newest first; ``lane`` 0 is ``main``; ``lane_name`` is the branch whose first-parent
    chain holds the commit (empty for commits of deleted branches).
    """

    row: int
    commit: str
    parents: list[str]
    parent_rows: list[int]
    parent_lanes: list[int]
    lane: int
    lane_name: str
    version: str | None
    message: str
    author: str
    created_at: datetime
    branches: list[str] = Field(default_factory=list)
