"""The commit DAG of one template: ancestors, merge bases and a topological order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime


class Graph:
    """A commit DAG: parents of each commit, and creation times for ordering."""

    def __init__(self, parents: dict[str, list[str]], created: dict[str, datetime]) -> None:
        self.parents = parents
        self.created = created

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, list[str], datetime]]) -> Graph:
        parents: dict[str, list[str]] = {}
        created: dict[str, datetime] = {}
        for cid, ps, at in rows:
            parents[cid] = list(ps)
            created[cid] = at
        return cls(parents, created)

    def ancestors(self, head: str) -> set[str]:
        """``head`` and every commit reachable from it (missing parents are skipped)."""
        seen: set[str] = set()
        stack = [head]
        while stack:
            cid = stack.pop()
            if cid in seen or cid not in self.parents:
                continue
            seen.add(cid)
            stack.extend(self.parents[cid])
        return seen

    def merge_bases(self, a: str, b: str) -> list[str]:
        """The best common ancestors of ``a`` and ``b``: common ancestors that are not an
        ancestor of another common ancestor. Oldest first."""
        common = self.ancestors(a) & self.ancestors(b)
        below: set[str] = set()
        stack = [p for c in common for p in self.parents.get(c, [])]
        while stack:
            cid = stack.pop()
            if cid in below:
                continue
            below.add(cid)
            stack.extend(self.parents.get(cid, []))
        return sorted(common - below, key=lambda c: (self.created.get(c, EPOCH), c))

    def topo_order(self, heads: Iterable[str]) -> list[str]:
        """Commits reachable from ``heads``, newest first, every child before its parents."""
        reach: set[str] = set()
        for h in heads:
            reach |= self.ancestors(h)
        children = {cid: 0 for cid in reach}
        for cid in reach:
            for p in self.parents[cid]:
                if p in children:
                    children[p] += 1
        key = lambda x: (self.created.get(x, EPOCH), x)  # noqa: E731
        ready = sorted((cid for cid, n in children.items() if n == 0), key=key)
        out: list[str] = []
        while ready:
            cid = ready.pop()
            out.append(cid)
            for p in self.parents[cid]:
                if p in children:
                    children[p] -= 1
                    if children[p] == 0:
                        ready.append(p)
                        ready.sort(key=key)
        return out

    def add_virtual(self, cid: str, parents: list[str], created: datetime) -> None:
        self.parents[cid] = parents
        self.created[cid] = created


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
