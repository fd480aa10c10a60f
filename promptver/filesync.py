"""Prompts as files: ``export`` and two-way ``sync`` with a folder of prompt files.

A folder holds one prompt file per template (``DIR/<name>.yaml``, the format of
:func:`promptver.chat.prompt_document` plus ``name``, ``description``, ``category``, ``tags`` and
``version``) and ``DIR/.promptver-sync.json``, which records per template the commit each file
was written from, the SHA-256 of the bytes written and the template's description, category and
tags at that moment. That record is the *base* of a three-way reconciliation:

- the file's bytes differ from the recorded hash → the file side changed;
- the file promptver would write now differs from the recorded hash → the database side changed
  (a commit, a new version, an edited description …);
- only the file changed → its prompt is committed (a version on ``main``, or on ``--branch``);
- only the database changed → the file is rewritten;
- both → the file's prompt becomes a commit whose parent is the recorded one, merged into the
  target branch with :meth:`promptver.versioning.VersionControl.merge` (the same three-way merge
  as ``promptver merge``: per line, per message, per metadata and config path). A conflict is
  reported with the template and the paths, and nothing is written anywhere.

The database side of a whole sync is one transaction; files are written after it committed
(each through a temporary file and ``os.replace``), the record last. A crash between the two
leaves files and database that the next sync recognises as already agreeing. Output is
byte-stable: the same prompt always gives the same bytes, so a pull request diff shows only
what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptver.errors import MergeConflict, ValidationError
from promptver.outbox import SYNC_BRANCH_PREFIX

if TYPE_CHECKING:
    from promptver.chat import PromptDocument
    from promptver.models.core import Template
    from promptver.workspace import Workspace

RECORD_NAME = ".promptver-sync.json"
SUFFIXES = (".yaml", ".yml")
INFO_FIELDS = ("description", "category", "tags")
MAIN = "main"
#: workspace_info key of the last export or sync (folder, time, commit per template)
INFO_KEY = "file_sync"


@dataclass
class SyncResult:
    """What a sync did (or, with ``check``, would do); lists hold template names."""

    created: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    #: per conflicting template, a readable reason with the conflicting paths
    details: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.committed or self.written or self.conflicts)

    def as_dict(self) -> dict[str, list[str]]:
        """The contract's ``sync --json`` shape."""
        return {
            "created": sorted(self.created),
            "committed": sorted(self.committed),
            "written": sorted(self.written),
            "unchanged": sorted(self.unchanged),
            "conflicts": sorted(self.conflicts),
        }


class _Abort(Exception):
    """Rolls the sync transaction back (a conflict, or ``check``)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_file(t: Template) -> str:
    """The prompt file (YAML text) of template view ``t``; the same view gives the same bytes."""
    from promptver.chat import dump_prompt_file, prompt_document

    return dump_prompt_file(
        prompt_document(
            t.kind,
            t.content,
            t.messages,
            t.config,
            name=t.name,
            version=t.version,
            description=t.description,
            category=t.category,
            tags=t.tags,
            metadata=t.metadata,
        )
    )


def file_for(folder: Path, name: str) -> Path:
    """``DIR/<name>.yaml`` (a name with ``/`` lives in a subfolder)."""
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValidationError(f"template name '{name}' cannot be a file path inside {folder}")
    return folder.joinpath(*parts[:-1], parts[-1] + ".yaml")


def _info(t: Template) -> dict[str, Any]:
    return {"description": t.description, "category": t.category, "tags": list(t.tags)}


def _record_entry(t: Template, text: str) -> dict[str, Any]:
    return {"commit": t.commit, "sha256": sha256(text), **_info(t)}


def dump_record(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_record(folder: Path) -> dict[str, dict[str, Any]]:
    """The per-template entries of ``DIR/.promptver-sync.json`` (empty when there is none).

    Raises:
        ValidationError: the record is not the JSON promptver writes.
    """
    from promptver.limits import load_json, read_text_file

    path = folder / RECORD_NAME
    if not path.exists():
        return {}
    data = load_json(read_text_file(path, what="sync record"), str(path))
    entries = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("commit"), str) for v in entries.values()
    ):
        raise ValidationError(
            f'{path} is not a promptver sync record (expected {{"templates": {{NAME: '
            '{"commit": …}}}}); export again to rebuild it'
        )
    return entries


def _prompt_files(folder: Path) -> dict[str, Path]:
    """Template name → prompt file, for every ``*.yaml``/``*.yml`` below ``folder`` (hidden
    folders such as ``.git`` are skipped)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.suffix not in SUFFIXES:
            continue
        if not path.is_file():
            continue
        name = rel.with_suffix("").as_posix()
        if name in found:
            raise ValidationError(f"two prompt files for template '{name}': {found[name]}, {path}")
        found[name] = path
    return found


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def _same_prompt(doc: PromptDocument, c: Any) -> bool:
    """The file's prompt equals that of commit or view ``c`` (metadata compared as
    ``template update`` does: a variable rule spelled out as its default is no change)."""
    from promptver.templates import same_metadata

    if doc.kind != c.kind or (doc.config or {}) != (c.config or {}):
        return False
    if doc.kind == "text" and doc.content != c.content:
        return False
    if doc.kind == "chat" and doc.messages != c.messages:
        return False
    return same_metadata(dict(doc.metadata or {}), dict(c.metadata or {}))


def _doc_info(doc: PromptDocument) -> dict[str, Any]:
    return {
        "description": doc.description or "",
        "category": doc.category or "",
        "tags": list(doc.tags or []),
    }


class FileSync:
    """Export and two-way sync of a workspace's templates with a folder of prompt files."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- export -------------------------------------------------------------------------
    def export(self, folder: str | os.PathLike[str]) -> list[str]:
        """Write one prompt file per active template (head of ``main``) and the sync record;
        returns the template names written."""
        folder = Path(folder)
        templates = self.ws.templates.list()
        texts = {t.name: render_file(t) for t in templates}
        record = {"templates": {t.name: _record_entry(t, texts[t.name]) for t in templates}}
        for t in templates:
            path = file_for(folder, t.name)
            if not path.exists() or path.read_text(encoding="utf-8") != texts[t.name]:
                _write_atomic(path, texts[t.name])
        _write_atomic(folder / RECORD_NAME, dump_record({"branch": MAIN, **record}))
        self._remember(folder, record["templates"])
        return sorted(texts)

    def _remember(self, folder: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
        """Note in the database which commit of each template the files hold (the Templates
        screen shows it)."""
        from promptver.clock import utcnow

        value = {
            "dir": str(folder.resolve()),
            "at": utcnow().isoformat(),
            "templates": {k: v["commit"] for k, v in sorted(entries.items())},
        }
        self.ws.mark(INFO_KEY, json.dumps(value, sort_keys=True))

    def last_sync(self) -> dict[str, Any] | None:
        """``{"dir", "at", "templates": {name: commit}}`` of the last export or sync, if any."""
        raw = self.ws.info(INFO_KEY)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- sync ---------------------------------------------------------------------------
    def sync(
        self,
        folder: str | os.PathLike[str],
        *,
        branch: str = MAIN,
        message: str | None = None,
        author: str = "unknown",
        check: bool = False,
    ) -> SyncResult:
        """Reconcile the folder and the database (see the module docstring).

        With ``check`` nothing is changed on either side; the result says what a sync would do.
        On a conflict nothing is written on either side and ``result.conflicts`` names the
        templates (``result.details`` the paths).

        Raises:
            ValidationError: a prompt file or the record is invalid (the message names the
                file and the field); nothing is written.
        """
        folder = Path(folder)
        result = SyncResult()
        writes: dict[Path, str] = {}
        record = read_record(folder)
        new_record: dict[str, dict[str, Any]] = {}
        files = _prompt_files(folder)
        db = self.ws.db
        try:
            with db.transaction():
                active = {t.name: t for t in self.ws.templates.list()}
                archived = {
                    t.name for t in self.ws.templates.list(include_archived=True) if not t.is_active
                }
                names = sorted(set(active) | set(files) | set(record))
                for name in names:
                    if name in archived:  # left alone: restore it to sync it again
                        if name in record:
                            new_record[name] = record[name]
                        continue
                    self._one_named(
                        folder,
                        name,
                        active.get(name),
                        files.get(name),
                        record.get(name),
                        branch=branch,
                        message=message,
                        author=author,
                        result=result,
                        writes=writes,
                        new_record=new_record,
                    )
                if result.conflicts or check:
                    raise _Abort
                self._remember(folder, new_record)
        except _Abort:
            if result.conflicts:
                result.created, result.committed, result.written = [], [], []
            return result
        for path, text in writes.items():
            _write_atomic(path, text)
        rec_text = dump_record({"branch": branch, "templates": new_record})
        rec_path = folder / RECORD_NAME
        if not rec_path.exists() or rec_path.read_text(encoding="utf-8") != rec_text:
            _write_atomic(rec_path, rec_text)
        self.ws.serving.invalidate()
        return result

    def _view(self, name: str, branch: str) -> Template:
        """The template as the target branch shows it (``main`` while the branch is missing)."""
        t = self.ws.templates.get(name)
        if branch == MAIN or branch not in {b.name for b in self.ws.versions.branches(t.id)}:
            return t
        return self.ws.templates.get(name, branch=branch)

    def _one_named(self, folder: Path, name: str, *args: Any, **kwargs: Any) -> None:
        """:meth:`_one`, with a refusal of the prompt's content naming the file it came from."""
        try:
            self._one(folder, name, *args, **kwargs)
        except ValidationError as exc:
            path = args[1]
            if path is None or str(path) in exc.message:
                raise
            raise ValidationError(f"{path}: {exc.message}") from None

    def _one(
        self,
        folder: Path,
        name: str,
        t: Template | None,
        path: Path | None,
        rec: dict[str, Any] | None,
        *,
        branch: str,
        message: str | None,
        author: str,
        result: SyncResult,
        writes: dict[Path, str],
        new_record: dict[str, dict[str, Any]],
    ) -> None:
        if t is not None and branch != MAIN:
            t = self._view(name, branch)
        db_text = render_file(t) if t is not None else None
        if path is None:
            if t is None:  # only in the record: a template no longer here, nor its file
                return
            # a new template in the database, or a deleted file: (re)write it
            writes[file_for(folder, name)] = db_text  # type: ignore[assignment]
            new_record[name] = _record_entry(t, db_text)  # type: ignore[arg-type]
            result.written.append(name)
            return
        file_text = path.read_text(encoding="utf-8") if path.stat().st_size < 10**7 else None
        if file_text is None:
            raise ValidationError(f"{path} is too large for a prompt file")
        if t is None:
            doc = self._parse(path, file_text, name)
            t = self._create(name, doc, author=author, message=message)
            text = render_file(t)
            writes[path] = text
            new_record[name] = _record_entry(t, text)
            result.created.append(name)
            return
        assert db_text is not None
        base_sha = rec.get("sha256") if rec else None
        file_changed = sha256(file_text) != base_sha
        db_changed = sha256(db_text) != base_sha
        if rec is not None and not file_changed and not db_changed:
            new_record[name] = rec
            result.unchanged.append(name)
            return
        if rec is not None and db_changed and not file_changed:
            writes[path] = db_text
            new_record[name] = _record_entry(t, db_text)
            result.written.append(name)
            return
        doc = self._parse(path, file_text, name)
        base_info = {k: rec.get(k) for k in INFO_FIELDS} if rec else None
        info, info_conflicts = self._merge_info(base_info, _info(t), _doc_info(doc))
        conflicts = list(info_conflicts)
        committed = False
        if not _same_prompt(doc, t):
            if rec is None:
                conflicts.append(
                    "the file and the database differ and there is no recorded base to merge "
                    f"them with (no entry in {RECORD_NAME}): export first, or make them equal"
                )
            elif not db_changed or rec.get("commit") == t.commit:
                self._commit(t, doc, branch, message=message, author=author)
                committed = True
            else:
                committed, paths = self._merge(t, doc, rec["commit"], branch, message, author)
                conflicts += paths
        if conflicts:
            result.conflicts.append(name)
            result.details[name] = conflicts
            return
        if info != _info(t):
            self.ws.templates.update_info(
                t.id, description=info["description"], category=info["category"], tags=info["tags"]
            )
        t2 = self._view(name, branch)
        text = render_file(t2)
        if text != file_text:
            writes[path] = text
        new_record[name] = _record_entry(t2, text)
        if committed or info != _info(t):
            result.committed.append(name)
        elif text != file_text or rec is None or db_changed:
            result.written.append(name)
        else:
            result.unchanged.append(name)

    # -- pieces -------------------------------------------------------------------------
    @staticmethod
    def _parse(path: Path, text: str, name: str) -> PromptDocument:
        from promptver.chat import parse_document
        from promptver.limits import load_yaml

        doc = parse_document(load_yaml(text, str(path)), source=str(path))
        if doc.name is not None and doc.name != name:
            raise ValidationError(
                f"{path} is invalid: name: the file says '{doc.name}' but its path names "
                f"template '{name}' (rename the file or fix the name)"
            )
        return doc

    def _create(
        self, name: str, doc: PromptDocument, *, author: str, message: str | None
    ) -> Template:
        return self.ws.templates.create(
            name,
            doc.content if doc.kind == "text" else None,
            kind=doc.kind,
            messages=doc.messages,
            config=doc.config,
            description=doc.description or "",
            category=doc.category or "",
            tags=doc.tags or [],
            metadata=dict(doc.metadata or {}),
            author=author,
            message=message or "Created from a prompt file",
        )

    def _ensure_branch(self, t: Template, branch: str, start: str) -> None:
        if branch == MAIN:
            return
        if branch not in {b.name for b in self.ws.versions.branches(t.id)}:
            self.ws.versions.create_branch(t.id, branch, from_ref=start)

    def _update(
        self, t: Template, doc: PromptDocument, branch: str, *, message: str, author: str
    ) -> Template:
        return self.ws.templates.update(
            t.id,
            doc.content if doc.kind == "text" else None,
            kind=doc.kind,
            messages=doc.messages if doc.kind == "chat" else None,
            config=doc.config or {},
            metadata=dict(doc.metadata or {}),
            branch=branch,
            author=author,
            message=message,
        )

    def _commit(
        self, t: Template, doc: PromptDocument, branch: str, *, message: str | None, author: str
    ) -> None:
        self._ensure_branch(t, branch, t.commit)
        self._update(t, doc, branch, message=message or "Sync from prompt file", author=author)

    def _merge(
        self,
        t: Template,
        doc: PromptDocument,
        base: str,
        branch: str,
        message: str | None,
        author: str,
    ) -> tuple[bool, list[str]]:
        """Commit the file's prompt on a short-lived branch from ``base`` and merge it into
        ``branch``; returns (committed, conflicting paths)."""
        from promptver.errors import NotFound

        vc = self.ws.versions
        try:  # an error here ends the sync anyway (a conflict rolls everything back)
            base_commit = vc.get_commit(base)
        except NotFound:
            return False, [
                f"the recorded commit {base[:12]} is not in this database: export again to "
                "start from what the database holds"
            ]
        if _same_prompt(doc, base_commit):  # the file changed only its description, tags…
            return False, []
        self._ensure_branch(t, branch, t.commit)
        tmp = f"{SYNC_BRANCH_PREFIX}{uuid.uuid4().hex[:10]}"
        vc.create_branch(t.id, tmp, from_ref=base, author=author)
        self._update(t, doc, tmp, message="Prompt file edit", author=author)
        try:
            plan = vc.plan_merge(t.id, tmp, into=branch)
        except MergeConflict:  # a text prompt on one side, a chat prompt on the other
            return False, ["kind: text on one side, chat on the other"]
        if not plan.clean:
            return False, _conflict_paths(plan)
        try:
            vc.merge(
                t.id,
                tmp,
                into=branch,
                message=message or f"Merge prompt file into {branch}",
                author=author,
            )
        except MergeConflict as exc:  # pragma: no cover - plan_merge said clean
            return False, [str(exc)]
        vc.delete_branch(t.id, tmp, force=True)
        return True, []

    @staticmethod
    def _merge_info(
        base: dict[str, Any] | None, ours: dict[str, Any], theirs: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """Description, category and tags, three-way against what the record saw."""
        merged: dict[str, Any] = {}
        conflicts: list[str] = []
        for key in INFO_FIELDS:
            o, f = ours[key], theirs[key]
            b = base.get(key) if base is not None else o
            if o == f or f == b:
                merged[key] = o
            elif o == b:
                merged[key] = f
            else:
                merged[key] = o
                conflicts.append(f"{key}: changed in the file and in the database")
        return merged, conflicts


def _conflict_paths(plan: Any) -> list[str]:
    paths: list[str] = []
    for h in plan.text.hunks if plan.text is not None else []:
        if plan.chat:
            paths.append(f"messages[{max(h.base_start - 1, 0)}]")
        else:
            paths.append(f"content (line {h.base_start})")
    for c in plan.metadata.conflicts if plan.metadata is not None else []:
        paths.append(f"metadata.{c.key}")
    for c in plan.config.conflicts if plan.config is not None else []:
        paths.append(f"config.{c.key}")
    return paths or ["the prompt: both sides changed it differently"]


def iter_conflict_lines(result: SyncResult) -> Iterator[str]:
    """One readable line per conflicting template (for ``error: …`` output)."""
    for name in sorted(result.details):
        yield f"conflict in '{name}': " + "; ".join(result.details[name])
