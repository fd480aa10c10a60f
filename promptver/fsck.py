"""``fsck``: check the integrity of everything version control wrote.

Every commit's id is recomputed from its content (:func:`promptver.versioning.commit_id`), its
metadata and recorded variables are checked against its text, parent links, branch heads and
version labels must name commits of the same template, ``main`` must exist and every version
must label a commit of ``main``'s history, and experiment arms and deployments must name commits
that exist. Nothing is repaired; each problem names the template and the object.
``VersionControl.fsck`` and ``promptver fsck`` call :func:`fsck`."""

from __future__ import annotations

from promptver.commit_graph import Graph
from promptver.commits import MAIN, commit_id, variables_used
from promptver.models.versioning import FsckProblem, FsckReport
from promptver.store import versioning as vsql
from promptver.store.db import Database


def fsck(db: Database) -> FsckReport:
    """Check every commit hash, parent link, branch head, version label, experiment arm and
    deployment.

    Nothing is repaired; each problem names the template and the object.
    """
    import json as _json

    problems: list[FsckProblem] = []
    with db.read() as con:
        names = vsql.template_names(con)
        commits = vsql.raw_commits(con)
        branches = vsql.raw_branches(con)
        versions = vsql.raw_versions(con)
        arms = vsql.experiment_variant_commits(con)
        deployed = vsql.deployment_commits(con)

    def add(kind: str, tid: str | None, obj: str, message: str) -> None:
        problems.append(
            FsckProblem(
                kind=kind,
                template_id=tid,
                template=names.get(tid or ""),
                object=obj,
                message=message,
            )
        )

    owner: dict[str, str] = {}
    parents_of: dict[str, list[str]] = {}
    for row in commits:
        cid, tid, parents, content, variables, metadata, message, author, at = row[:9]
        kind, raw_messages, raw_config = row[9:12]
        owner[cid] = tid
        parents_of[cid] = list(parents)
        if tid not in names:
            add(
                "orphan_commit",
                tid,
                cid,
                f"commit {cid[:12]} belongs to template {tid}, which does not exist",
            )
        try:
            meta = _json.loads(metadata)
            if not isinstance(meta, dict):
                add(
                    "bad_metadata",
                    tid,
                    cid,
                    f"commit {cid[:12]} has metadata that is not a JSON object",
                )
                continue
            msgs = _json.loads(raw_messages) if raw_messages else None
            cfg = _json.loads(raw_config) if raw_config else {}
            want = commit_id(
                tid, parents, content, meta, author, at, message, kind or "text", msgs, cfg
            )
        except (TypeError, ValueError):
            add(
                "bad_metadata",
                tid,
                cid,
                f"commit {cid[:12]} has metadata, messages or config that is not JSON",
            )
            continue
        except RecursionError:  # stored by a version that did not limit the depth
            add(
                "bad_metadata",
                tid,
                cid,
                f"commit {cid[:12]} has metadata nested too deeply to check its id",
            )
            continue
        if want != cid:
            add(
                "hash_mismatch",
                tid,
                cid,
                f"commit {cid[:12]} does not match its content "
                f"(recomputed {want[:12]}): the row was changed after it was written",
            )
        uses = variables_used(content, msgs)
        if list(variables) != uses:
            add(
                "bad_variables",
                tid,
                cid,
                f"commit {cid[:12]} lists variables {list(variables)} but its text uses {uses}",
            )
    for cid, parents in parents_of.items():
        for p in parents:
            if p not in owner:
                add(
                    "missing_parent",
                    owner[cid],
                    cid,
                    f"commit {cid[:12]} names parent {p[:12]}, which does not exist",
                )
            elif owner[p] != owner[cid]:
                add(
                    "foreign_parent",
                    owner[cid],
                    cid,
                    f"commit {cid[:12]} names parent {p[:12]} of another template",
                )
    heads: dict[str, dict[str, str]] = {}
    for tid, name, head in branches:
        heads.setdefault(tid, {})[name] = head
        if head not in owner:
            add(
                "missing_head",
                tid,
                f"branch {name}",
                f"branch '{name}' points at commit {head[:12]}, which does not exist",
            )
        elif owner[head] != tid:
            add(
                "foreign_head",
                tid,
                f"branch {name}",
                f"branch '{name}' points at commit {head[:12]} of another template",
            )
    for tid in names:
        if MAIN not in heads.get(tid, {}):
            add("missing_main", tid, "branch main", "the template has no 'main' branch")
    g = Graph(parents_of, {})
    main_anc: dict[str, set[str]] = {}
    for tid, version, major, minor, patch, cid in versions:
        obj = f"version {version}"
        if version != f"{major}.{minor}.{patch}":
            add(
                "bad_version",
                tid,
                obj,
                f"version {version} does not match its parts {major}.{minor}.{patch}",
            )
        if cid not in owner:
            add(
                "missing_version_commit",
                tid,
                obj,
                f"version {version} labels commit {cid[:12]}, which does not exist",
            )
            continue
        if owner[cid] != tid:
            add(
                "foreign_version_commit",
                tid,
                obj,
                f"version {version} labels commit {cid[:12]} of another template",
            )
            continue
        main_head = heads.get(tid, {}).get(MAIN)
        if main_head is not None and main_head in owner:
            if tid not in main_anc:
                main_anc[tid] = g.ancestors(main_head)
            if cid not in main_anc[tid]:
                add(
                    "version_off_main",
                    tid,
                    obj,
                    f"version {version} labels commit "
                    f"{cid[:12]}, which is not in the history of main",
                )
    for exp, variant, tid, cid in arms:
        if cid not in owner:
            add(
                "missing_variant_commit",
                tid,
                f"experiment {exp}",
                f"variant '{variant}' of experiment {exp} uses commit {cid[:12]}, "
                "which does not exist",
            )
    for dep_id, env, tid, cid, replaced in deployed:
        for what, ref in (("deploys", cid), ("replaced", replaced)):
            if ref is None:
                continue
            if ref not in owner:
                add(
                    "missing_deployed_commit",
                    tid,
                    f"deployment {dep_id}",
                    f"deployment #{dep_id} to {env} {what} commit {ref[:12]}, which does not exist",
                )
            elif owner[ref] != tid:
                add(
                    "foreign_deployed_commit",
                    tid,
                    f"deployment {dep_id}",
                    f"deployment #{dep_id} to {env} {what} commit {ref[:12]} of another template",
                )
    return FsckReport(
        ok=not problems,
        problems=problems,
        templates=len(names),
        commits=len(commits),
        branches=len(branches),
        versions=len(versions),
    )
