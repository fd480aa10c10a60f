"""Three-way merge of template texts and metadata (pure functions, no database).

The text merge is the classic diff3 algorithm (as in GNU diff3, bzr/breezy ``merge3`` and
git): the matching blocks of ``difflib.SequenceMatcher`` between the base and each side give the
*sync regions*, the stretches of the base that neither side touched. Between two sync regions:

- if only one side differs from the base, that side's lines are taken;
- if both sides made the same change, it is taken once;
- otherwise the region is a **conflict** (both sides changed the same or adjacent lines).

Lines are the pieces between ``\\n`` characters (``text.split("\\n")``), so a missing final
newline is an ordinary (empty) last line and ``"\\n".join`` rebuilds every text exactly.

Metadata (a JSON mapping) merges key by key: a key that only one side changed takes that side's
value, nested mappings merge recursively, and a key that both sides changed differently is a
conflict named by its dotted path.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from promptver.errors import ConflictHunk, Problem, ValidationError

MARK_OURS = "<<<<<<<"
MARK_BASE = "|||||||"
MARK_SEP = "======="
MARK_THEIRS = ">>>>>>>"
_MISSING: Any = object()

Choice = Literal["ours", "theirs", "ours+theirs", "theirs+ours", "base"]
CHOICES: tuple[str, ...] = ("ours", "theirs", "ours+theirs", "theirs+ours", "base")


def split(text: str) -> list[str]:
    """The lines of ``text`` without their ``\\n`` (``"\\n".join`` restores ``text``)."""
    return text.split("\n")


def join(lines: Sequence[str]) -> str:
    return "\n".join(lines)


@dataclass(frozen=True)
class Clean:
    """Merged lines with no conflict."""

    lines: list[str]


@dataclass(frozen=True)
class Conflicted:
    """A region both sides changed differently. ``base_start`` is 0-based in the base."""

    base_start: int
    base: list[str]
    ours: list[str]
    theirs: list[str]

    def hunk(self) -> ConflictHunk:
        return ConflictHunk(self.base_start + 1, self.base, self.ours, self.theirs)

    def resolved(self, choice: str) -> list[str]:
        if choice == "ours":
            return self.ours
        if choice == "theirs":
            return self.theirs
        if choice == "ours+theirs":
            return self.ours + self.theirs
        if choice == "theirs+ours":
            return self.theirs + self.ours
        if choice == "base":
            return self.base
        raise ValidationError(
            f"unknown conflict choice {choice!r}; use one of {', '.join(CHOICES)}"
        )


Region = Clean | Conflicted


def _sync_regions(base: list[str], a: list[str], b: list[str]) -> list[tuple[int, ...]]:
    """Stretches (base_lo, base_hi, a_lo, a_hi, b_lo, b_hi) unchanged on both sides."""
    am = difflib.SequenceMatcher(None, base, a, autojunk=False).get_matching_blocks()
    bm = difflib.SequenceMatcher(None, base, b, autojunk=False).get_matching_blocks()
    ia = ib = 0
    out: list[tuple[int, ...]] = []
    while ia < len(am) and ib < len(bm):
        abase, amatch, alen = am[ia]
        bbase, bmatch, blen = bm[ib]
        lo, hi = max(abase, bbase), min(abase + alen, bbase + blen)
        if lo < hi:
            asub, bsub = amatch + (lo - abase), bmatch + (lo - bbase)
            out.append((lo, hi, asub, asub + hi - lo, bsub, bsub + hi - lo))
        # advance whichever matching block ends first in the base
        if abase + alen < bbase + blen:
            ia += 1
        else:
            ib += 1
    out.append((len(base), len(base), len(a), len(a), len(b), len(b)))
    return out


def merge_lines(base: list[str], ours: list[str], theirs: list[str]) -> list[Region]:
    """The regions of a line-level three-way merge (adjacent clean regions are joined)."""
    regions: list[Region] = []

    def clean(lines: list[str]) -> None:
        if not lines:
            return
        if regions and isinstance(regions[-1], Clean):
            regions[-1] = Clean(regions[-1].lines + lines)
        else:
            regions.append(Clean(list(lines)))

    iz = ia = ib = 0
    for zlo, zhi, alo, ahi, blo, bhi in _sync_regions(base, ours, theirs):
        zs, os_, ts = base[iz:zlo], ours[ia:alo], theirs[ib:blo]
        if os_ or ts or zs:
            if os_ == ts:
                clean(os_)
            elif os_ == zs:
                clean(ts)
            elif ts == zs:
                clean(os_)
            else:
                regions.append(Conflicted(iz, zs, os_, ts))
        clean(base[zlo:zhi])
        iz, ia, ib = zhi, ahi, bhi
    return regions


@dataclass
class TextMerge:
    """The outcome of merging three texts."""

    regions: list[Region]
    ours_label: str = "ours"
    theirs_label: str = "theirs"

    @property
    def conflicts(self) -> list[Conflicted]:
        return [r for r in self.regions if isinstance(r, Conflicted)]

    @property
    def clean(self) -> bool:
        return not self.conflicts

    @property
    def hunks(self) -> list[ConflictHunk]:
        return [c.hunk() for c in self.conflicts]

    def text(self) -> str:
        """The merged text (only when there is no conflict)."""
        if not self.clean:
            raise ValidationError(f"the merge has {len(self.conflicts)} conflicting hunks")
        return self.resolve([])

    def resolve(self, choices: Sequence[str | None]) -> str:
        """The text with conflict ``i`` replaced by ``choices[i]`` (ours, theirs, …); a
        ``None`` choice keeps that conflict with its markers."""
        if len(choices) != len(self.conflicts) and self.conflicts:
            raise ValidationError(
                f"give one choice per conflict: {len(self.conflicts)} "
                f"conflicts, {len(choices)} choices"
            )
        out: list[str] = []
        k = 0
        for r in self.regions:
            if isinstance(r, Clean):
                out.extend(r.lines)
            else:
                choice = choices[k]
                out.extend(self._markers(r) if choice is None else r.resolved(choice))
                k += 1
        return join(out)

    def _markers(self, r: Conflicted, with_base: bool = False) -> list[str]:
        out = [f"{MARK_OURS} {self.ours_label}", *r.ours]
        if with_base:
            out += [f"{MARK_BASE} base", *r.base]
        return [*out, MARK_SEP, *r.theirs, f"{MARK_THEIRS} {self.theirs_label}"]

    def marked(self, *, with_base: bool = False) -> str:
        """The text with git-style conflict markers around each conflicting hunk."""
        out: list[str] = []
        for r in self.regions:
            out.extend(r.lines if isinstance(r, Clean) else self._markers(r, with_base))
        return join(out)


def merge_texts(
    base: str, ours: str, theirs: str, *, ours_label: str = "ours", theirs_label: str = "theirs"
) -> TextMerge:
    """Three-way merge of three texts line by line."""
    return TextMerge(merge_lines(split(base), split(ours), split(theirs)), ours_label, theirs_label)


def conflict_markers(text: str) -> list[Problem]:
    """Leftover conflict markers in a resolution, each with its line."""
    problems: list[Problem] = []
    for n, line in enumerate(split(text), start=1):
        if line.startswith((MARK_OURS + " ", MARK_THEIRS + " ", MARK_BASE + " ")) or line in (
            MARK_OURS,
            MARK_THEIRS,
            MARK_SEP,
            MARK_BASE,
        ):
            problems.append(
                Problem(
                    f"conflict marker {line[:7]!r} left in the resolution; "
                    "edit the text so that only the wanted lines remain",
                    field="resolution",
                    line=n,
                    column=1,
                    code="merge.marker",
                )
            )
    return problems


# ---- metadata --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataConflict:
    """A metadata key both sides changed differently (``_MISSING`` values are ``None`` here,
    with ``*_present`` telling whether the key existed)."""

    key: str
    base: Any
    ours: Any
    theirs: Any
    base_present: bool = True
    ours_present: bool = True
    theirs_present: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "base": self.base,
            "ours": self.ours,
            "theirs": self.theirs,
            "base_present": self.base_present,
            "ours_present": self.ours_present,
            "theirs_present": self.theirs_present,
        }


@dataclass
class MetadataMerge:
    merged: dict[str, Any]
    conflicts: list[MetadataConflict] = field(default_factory=list)
    #: the value of each conflicting key on each side, to rebuild a resolution
    _paths: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts

    def resolve(self, choices: Mapping[str, str]) -> dict[str, Any]:
        """The merged metadata with each conflicting key taken from ``ours`` or ``theirs``
        (``choices`` maps the dotted key to the side; a missing key means ``ours``)."""
        out = json.loads(json.dumps(self.merged))
        for c, path in zip(self.conflicts, self._paths, strict=True):
            side = choices.get(c.key, "ours")
            if side not in ("ours", "theirs", "base"):
                raise ValidationError(f"metadata key {c.key}: choose ours, theirs or base")
            present = {"ours": c.ours_present, "theirs": c.theirs_present, "base": c.base_present}[
                side
            ]
            value = {"ours": c.ours, "theirs": c.theirs, "base": c.base}[side]
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            if present:
                node[path[-1]] = value
            else:
                node.pop(path[-1], None)
        return out


def merge_metadata(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> MetadataMerge:
    """Key-by-key three-way merge of two metadata mappings against their base.

    A conflicting key keeps the ``ours`` value in ``merged``; ``resolve`` picks sides.
    """
    result = MetadataMerge({})

    def walk(b: Any, o: Any, t: Any, path: tuple[str, ...], into: dict[str, Any]) -> None:
        for key in sorted(
            set(o if isinstance(o, Mapping) else {})
            | set(t if isinstance(t, Mapping) else {})
            | set(b if isinstance(b, Mapping) else {}),
            key=str,
        ):
            bv = b.get(key, _MISSING) if isinstance(b, Mapping) else _MISSING
            ov = o.get(key, _MISSING) if isinstance(o, Mapping) else _MISSING
            tv = t.get(key, _MISSING) if isinstance(t, Mapping) else _MISSING
            here = (*path, str(key))
            if _same(ov, tv):
                value = ov
            elif _same(ov, bv):
                value = tv
            elif _same(tv, bv):
                value = ov
            elif isinstance(ov, Mapping) and isinstance(tv, Mapping):
                sub: dict[str, Any] = {}
                walk(bv if isinstance(bv, Mapping) else {}, ov, tv, here, sub)
                into[key] = sub
                continue
            else:
                result.conflicts.append(
                    MetadataConflict(
                        ".".join(here),
                        None if bv is _MISSING else bv,
                        None if ov is _MISSING else ov,
                        None if tv is _MISSING else tv,
                        bv is not _MISSING,
                        ov is not _MISSING,
                        tv is not _MISSING,
                    )
                )
                result._paths.append(here)
                value = ov
            if value is not _MISSING:
                into[key] = value

    walk(base, ours, theirs, (), result.merged)
    return result


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return a == b and type(a) is type(b)
