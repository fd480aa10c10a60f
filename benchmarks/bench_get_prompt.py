"""get_prompt + render, cached and uncached, beside a plain DuckDB lookup.

Run: ``python benchmarks/bench_get_prompt.py [--calls N]``

Targets (issue #4): cached median ≤ 10 µs per call; uncached (cache disabled, so every call opens
the file) ≤ 15 ms. Chat prompts (issue #16): cached ``get_prompt`` + ``messages()`` of a
3-message chat prompt (system, a history placeholder, user) ≤ 1.5× cached ``get_prompt`` +
``text()`` of the text prompt, measured interleaved in the same run. The baseline does the same work by hand: open the file with ``duckdb``, SELECT
the content live in the environment, render with ``str.replace``; its cached variant keeps the
fetched text in a dict. Both run in this one process, on the same file, interleaved.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed promptver

import duckdb  # noqa: E402

from promptver import Settings, Workspace  # noqa: E402

CONTENT = (
    "You are a helpful support assistant for {product}.\n"
    "Answer the question using only the context below. If the answer is not in the context, "
    "say you do not know.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
)
METADATA = {
    "variables": {
        "context": {"type": "str", "description": "Retrieved passages"},
        "question": {"type": "str", "description": "The customer's question"},
        "product": {"type": "str", "required": False, "default": "Acme Cloud"},
    }
}
VALUES = {
    "question": "How do I reset my password?",
    "context": "Passwords are reset from the account page.",
}

CHAT = [
    {"role": "system", "content": "You are a helpful support assistant for {product}."},
    {"placeholder": "history"},
    {
        "role": "user",
        "content": "Answer using only this context:\n{context}\n\nQuestion: {question}",
    },
]
HISTORY = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
]

BASELINE_SQL = """
    SELECT c.content FROM deployments d
    JOIN templates t ON t.id = d.template_id
    JOIN commits c ON c.id = d.commit_id
    WHERE t.name = ? AND d.environment = ?
    ORDER BY d.env_seq DESC LIMIT 1
"""


def baseline_render(content: str) -> str:
    return (
        content.replace("{product}", "Acme Cloud")
        .replace("{context}", VALUES["context"])
        .replace("{question}", VALUES["question"])
    )


def per_call(fn: Callable[[], object], calls: int) -> list[float]:
    """Wall time of each call, in seconds."""
    out = []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def interleaved(
    a: Callable[[], object], b: Callable[[], object], calls: int, rounds: int = 5
) -> tuple[float, float]:
    """Medians of ``a`` and ``b``, measured in alternating rounds so drift hits both."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        ta += per_call(a, calls // rounds)
        tb += per_call(b, calls // rounds)
    return statistics.median(ta), statistics.median(tb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="cached calls per side")
    parser.add_argument("--uncached-calls", type=int, default=150, help="uncached calls per side")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pv-bench-"))
    path = tmp / "bench.duckdb"
    setup = Workspace.open(path, settings=Settings())
    setup.templates.create("qa-basic", CONTENT, metadata=METADATA)
    setup.deployments.deploy("qa-basic", "1.0.0", "production")
    setup.templates.create(
        "qa-chat", messages=CHAT, config={"model": "gpt-4o-mini"}, metadata=METADATA
    )
    setup.deployments.deploy("qa-chat", "1.0.0", "production")
    setup.close()

    cached_ws = Workspace.open(path, settings=Settings().with_overrides(cache__ttl_seconds=3600))
    uncached_ws = Workspace.open(path, settings=Settings().with_overrides(cache__ttl_seconds=0))
    expected = cached_ws.get_prompt("qa-basic", "production").text(**VALUES)

    def ours_cached() -> str:
        return cached_ws.get_prompt("qa-basic", "production", user_id="u42").text(**VALUES)

    def ours_uncached() -> str:
        return uncached_ws.get_prompt("qa-basic", "production", user_id="u42").text(**VALUES)

    def fetch() -> str:
        con = duckdb.connect(str(path))
        try:
            return con.execute(BASELINE_SQL, ["qa-basic", "production"]).fetchone()[0]
        finally:
            con.close()

    memo: dict[tuple[str, str], str] = {("qa-basic", "production"): fetch()}

    def base_cached() -> str:
        return baseline_render(memo[("qa-basic", "production")])

    def base_uncached() -> str:
        return baseline_render(fetch())

    assert ours_cached() == ours_uncached() == expected == base_cached() == base_uncached()

    def chat_cached() -> list:
        p = cached_ws.get_prompt("qa-chat", "production", user_id="u42")
        return p.messages(history=HISTORY, **VALUES)

    assert chat_cached()[0]["content"].endswith("Acme Cloud.") and len(chat_cached()) == 4

    gc.collect()
    for f in (ours_cached, base_cached):  # warm up
        per_call(f, 2000)
    c_ours, c_base = interleaved(ours_cached, base_cached, args.calls)
    for f in (ours_uncached, base_uncached):
        per_call(f, 3)
    u_ours, u_base = interleaved(ours_uncached, base_uncached, args.uncached_calls, rounds=5)
    per_call(chat_cached, 2000)
    c_chat, c_text = interleaved(chat_cached, ours_cached, args.calls)

    rows = [
        ("cached (TTL 1 h)", c_ours * 1e6, "µs", c_base * 1e6, 10.0),
        ("uncached (TTL 0, opens the file)", u_ours * 1e3, "ms", u_base * 1e3, 15.0),
    ]
    print(
        f"get_prompt + render, median per call ({args.calls} cached / {args.uncached_calls} "
        f"uncached calls per side, duckdb {duckdb.__version__}, Python "
        f"{sys.version.split()[0]})"
    )
    print(f"{'':34} {'promptver':>12} {'plain DuckDB':>14} {'ratio':>7} {'target':>9}  result")
    ok = True
    for label, ours, unit, base, target in rows:
        passed = ours <= target
        ok &= passed
        print(
            f"{label:34} {ours:9.2f} {unit:>2} {base:11.2f} {unit:>2} {ours / base:6.2f}x "
            f"{'≤ ' + format(target, 'g') + ' ' + unit:>9}  {'ok' if passed else 'TOO SLOW'}"
        )
    print(
        "ratio = promptver / plain DuckDB. The cached baseline is a dict lookup and "
        "str.replace: no environment check, no archived check, no variable schema."
    )
    print(
        "For reference (issue #4): MLflow's prompt registry, cached alias load ~21 µs, "
        "uncached ~16 ms."
    )
    chat_ok = c_chat <= 1.5 * c_text
    ok &= chat_ok
    print(
        f"\nchat prompt (3 messages) get_prompt + messages(): {c_chat * 1e6:.2f} µs vs text "
        f"prompt get_prompt + text(): {c_text * 1e6:.2f} µs = {c_chat / c_text:.2f}x "
        f"(target ≤ 1.5x)  {'ok' if chat_ok else 'TOO SLOW'}"
    )
    cached_ws.close()
    uncached_ws.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
