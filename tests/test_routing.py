"""Routing: the contract's md5 formula in Python and SQL, split, stickiness and coverage.

Every expectation comes from an independent implementation written here (``hashlib.new`` with
``struct`` and exact fractions), from the system's ``md5sum``, or from scipy: never from numbers
printed by promptver itself.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
import sys
from fractions import Fraction

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from promptver.errors import ValidationError
from promptver.routing import (
    Router,
    assign_ids,
    assign_table,
    bucket,
    coverage_bucket,
    route,
    router_for,
    synthetic_split,
)
from promptver.store import routing as routing_sql

# ---- an independent reference ---------------------------------------------------------------


def ref_int(salt: str, user_id: str) -> int:
    """The first 8 digest bytes as a big-endian integer, computed another way."""
    h = hashlib.new("md5")
    h.update(salt.encode("utf-8"))
    h.update(b":")
    h.update(user_id.encode("utf-8"))
    (value,) = struct.unpack(">Q", h.digest()[:8])
    return value


def ref_bucket(salt: str, user_id: str) -> float:
    return float(Fraction(ref_int(salt, user_id), 2**64))  # correctly rounded


def ref_variant(
    salt: str, user_id: str, variants: list[tuple[str, float]], coverage: float = 1.0
) -> str | None:
    """Exact rational arithmetic: the interval of [0, 1) holding the bucket."""
    if coverage < 1 and Fraction(ref_int(f"{salt}:coverage", user_id), 2**64) >= Fraction(coverage):
        return None
    b = Fraction(ref_int(salt, user_id), 2**64)
    total = sum(Fraction(w) for _, w in variants)
    acc = Fraction(0)
    for name, w in variants:
        acc += Fraction(w) / total
        if b < acc:
            return name
    return variants[-1][0]


TRICKY_IDS = [
    "u42",
    "0",
    "user@example.com",
    "Ünïcødé-ñame",
    "用户-七",
    "مستخدم",
    "пользователь",
    "😀🚀👩‍👩‍👧",
    "e\u0301",
    "\u00e9",
    "tab\there",
    "line\nbreak",
    "a\x00b",
    " lead",
    "trail ",
    "x" * 5000,
    "\U0010ffff",
    "ﬁ",
    "ß",
    "İ",
    "Σ",
    "'quote\"",
    "semi;colon",
    "back\\slash",
]


def id_sample(n: int, seed: int = 1) -> list[str]:
    """Ids of many shapes: ascii counters, random unicode (no surrogates), the tricky list."""
    rng = random.Random(seed)
    alphabet = [
        chr(c)
        for c in (
            *range(32, 127),
            *range(0xA0, 0x800),
            *range(0x4E00, 0x4F00),
            *range(0x1F600, 0x1F650),
        )
    ]
    out = dict.fromkeys(f"user-{i}" for i in range(n // 2))
    while len(out) < n - len(TRICKY_IDS):
        out["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))] = None
    return list(dict.fromkeys([*out, *TRICKY_IDS]))


# ---- the bucket -----------------------------------------------------------------------------


def test_bucket_matches_the_reference_for_many_ids() -> None:
    ids = id_sample(20_000)
    for salt in ("exp-1", "ünï salt", "7f3a9c"):
        r = Router.build(salt, [("a", 1), ("b", 1)])
        for u in ids:
            expected = ref_bucket(salt, u)
            assert bucket(salt, u) == expected, u
            assert r.bucket(u) == expected, u
            assert route(r, u)[1] == expected


def test_bucket_matches_md5sum() -> None:
    if shutil.which("md5sum") is None:
        pytest.skip("md5sum is not installed")
    for salt, u in (("s1", "u42"), ("exp", "Ünïcødé-用户-😀")):
        digest = (
            subprocess.run(
                ["md5sum"], input=f"{salt}:{u}".encode(), capture_output=True, check=True
            )
            .stdout.split()[0]
            .decode()
        )
        assert bucket(salt, u) == int(digest[:16], 16) / 2**64


@settings(max_examples=300, deadline=None)
@given(
    salt=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
    user=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60),
)
def test_bucket_property(salt: str, user: str) -> None:
    assert 0.0 <= bucket(salt, user) <= 1.0
    assert bucket(salt, user) == ref_bucket(salt, user)
    assert coverage_bucket(salt, user) == ref_bucket(f"{salt}:coverage", user)


def test_variant_matches_the_reference_for_many_ids() -> None:
    ids = id_sample(20_000, seed=2)
    for variants in (
        [("control", 50), ("concise", 50)],
        [("a", 50), ("b", 30), ("c", 20)],
        [("x", 0.1), ("y", 99.9)],
        [("p", 1), ("q", 1), ("r", 1)],
    ):
        r = Router.build("s", variants)
        for u in ids:
            assert r.route(u)[0] == ref_variant("s", u, variants), (variants, u)


def test_intervals_are_half_open_and_the_last_takes_the_top() -> None:
    r = Router.build("s", [("a", 1), ("b", 1), ("c", 2)])
    assert r.bounds == (0.25, 0.5, 1.0)
    assert [r.variant_index(b) for b in (0.0, 0.2499999, 0.25, 0.4999, 0.5, 0.99, 1.0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        2,
    ]
    assert r.weights == (0.25, 0.25, 0.5)
    assert sum(r.targets().values()) == pytest.approx(1.0)


def test_integer_user_ids_hash_as_their_decimal_text() -> None:
    r = Router.build("s", [("a", 1), ("b", 1)])
    assert r.route(42) == r.route("42")
    assert r.route(42)[1] == ref_bucket("s", "42")


@pytest.mark.parametrize("bad", ["", None, b"u1", 1.5, True, "\ud800x"])
def test_bad_user_ids_are_refused_naming_the_field(bad: object) -> None:
    r = Router.build("s", [("a", 1), ("b", 1)])
    with pytest.raises(ValidationError) as err:
        r.route(bad)  # type: ignore[arg-type]
    assert "user_id" in str(err.value)


@pytest.mark.parametrize(
    ("salt", "variants", "coverage", "field"),
    [
        ("", [("a", 1), ("b", 1)], 1.0, "salt"),
        ("s", [("a", 1)], 1.0, "variants"),
        ("s", [("a", 1), ("a", 1)], 1.0, "variants"),
        ("s", [("a", 1), ("b", 0)], 1.0, "variants[1].weight"),
        ("s", [("a", -1), ("b", 1)], 1.0, "variants[0].weight"),
        ("s", [("a", float("nan")), ("b", 1)], 1.0, "variants[0].weight"),
        ("s", [("a", float("inf")), ("b", 1)], 1.0, "variants[0].weight"),
        ("s", [("a", 1), ("b", 1)], 0.0, "coverage"),
        ("s", [("a", 1), ("b", 1)], 1.5, "coverage"),
    ],
)
def test_router_refuses_bad_configuration(salt, variants, coverage, field) -> None:
    with pytest.raises(ValidationError) as err:
        Router.build(salt, variants, coverage)
    assert field in str(err.value)


# ---- split, stickiness, coverage -------------------------------------------------------------


def test_split_proportions_chi_square() -> None:
    n = 200_000
    ids = [f"u{i}" for i in range(n)]
    for weights in ([50, 50], [50, 30, 20], [10, 10, 80]):
        variants = [(f"v{i}", w) for i, w in enumerate(weights)]
        r = Router.build("chi-square", variants)
        counts = {name: 0 for name, _ in variants}
        for u in ids:
            counts[r.route(u)[0]] += 1
        expected = [n * w / sum(weights) for w in weights]
        p = stats.chisquare(list(counts.values()), expected).pvalue
        assert p > 0.001, (weights, counts, p)


def test_sql_split_of_synthetic_ids_chi_square() -> None:
    r = Router.build("sql-split", [("a", 2), ("b", 1), ("c", 1)])
    frame = synthetic_split(r, 100_000)
    assert list(frame["variant"]) == ["a", "b", "c"]
    assert frame["users"].sum() == 100_000
    assert list(frame["target"]) == [0.5, 0.25, 0.25]
    assert stats.chisquare(frame["users"], [50_000, 25_000, 25_000]).pvalue > 0.001
    # and the counts are exactly what the Python route gives those ids
    py = {"a": 0, "b": 0, "c": 0}
    for i in range(100_000):
        py[r.route(f"user-{i}")[0]] += 1
    assert dict(zip(frame["variant"], frame["users"])) == py


def test_routing_is_sticky_across_calls_objects_and_processes() -> None:
    variants = [("control", 50), ("concise", 50)]
    ids = [f"user-{i}" for i in range(200)] + TRICKY_IDS[:10]
    a = Router.build("sticky", variants)
    b = Router.build("sticky", [("control", 5), ("concise", 5)])  # same normalised split
    first = [a.route(u) for u in ids]
    assert [a.route(u) for u in ids] == first
    assert [b.route(u) for u in ids] == first
    assert [
        route(
            {
                "salt": "sticky",
                "variants": [{"name": "control", "weight": 50}, {"name": "concise", "weight": 50}],
            },
            u,
        )
        for u in ids
    ] == first
    code = (
        "import json,sys; from promptver.routing import Router; "
        "r = Router.build('sticky', [('control', 50), ('concise', 50)]); "
        "print(json.dumps([r.route(u) for u in json.load(sys.stdin)]))"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(ids),
        text=True,
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=str(_root()),
    ).stdout
    assert [tuple(x) for x in json.loads(out)] == first


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_changing_the_salt_reshuffles() -> None:
    ids = [f"user-{i}" for i in range(2000)]
    a = Router.build("salt-a", [("x", 1), ("y", 1)])
    b = Router.build("salt-b", [("x", 1), ("y", 1)])
    same = sum(a.route(u)[0] == b.route(u)[0] for u in ids)
    assert 850 < same < 1150  # independent assignments agree about half the time


def test_raising_coverage_never_moves_users_between_variants() -> None:
    variants = [("control", 50), ("b", 30), ("c", 20)]
    ids = id_sample(30_000, seed=3)
    full = Router.build("cov", variants, 1.0)
    previous: set[str] = set()
    for coverage in (0.05, 0.2, 0.5, 0.8, 1.0):
        r = Router.build("cov", variants, coverage)
        covered = set()
        for u in ids:
            variant, b = r.route(u)
            assert b == full.route(u)[1]  # the variant bucket never depends on coverage
            if variant is not None:
                covered.add(u)
                assert variant == full.route(u)[0]
                assert variant == ref_variant("cov", u, variants, coverage)
            else:
                assert ref_variant("cov", u, variants, coverage) is None
        assert previous <= covered  # raising coverage only adds users
        share = len(covered) / len(ids)
        assert abs(share - coverage) < 4 * (coverage * (1 - coverage) / len(ids)) ** 0.5 + 1e-9
        previous = covered


def test_coverage_bucket_is_independent_of_the_variant_bucket() -> None:
    r = Router.build("indep", [("a", 1), ("b", 1)], 0.5)
    table = [[0, 0], [0, 0]]
    for i in range(40_000):
        u = f"u{i}"
        variant, _ = Router.build("indep", [("a", 1), ("b", 1)]).route(u)
        table[r.route(u)[0] is None][variant == "b"] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001


# ---- Python and SQL agree --------------------------------------------------------------------


@pytest.mark.parametrize("coverage", [1.0, 0.37])
def test_python_and_sql_agree_on_100k_ids(coverage: float) -> None:
    ids = id_sample(100_000, seed=4)
    variants = [("control", 45), ("b", 35), ("c", 20)]
    r = Router.build("agree ✓", variants, coverage)
    frame = assign_ids(r, ids)
    assert list(frame["user_id"]) == ids
    expected = [r.route(u) for u in ids]
    got_buckets = frame["bucket"].tolist()
    assert got_buckets == [b for _, b in expected]  # bit for bit
    got = [None if not c else v for v, c in zip(frame["variant"], frame["covered"])]
    assert got == [v for v, _ in expected]
    assert frame["covered"].tolist() == [v is not None for v, _ in expected]


def test_sql_table_assignment_and_the_portable_formula_agree_with_python() -> None:
    ids = id_sample(20_000, seed=5)
    r = Router.build("tbl", [("a", 1), ("b", 3)], 0.8)
    con = duckdb.connect()
    import pandas as pd

    con.register("src", pd.DataFrame({"uid": pd.Series(ids, dtype=object)}))
    con.execute("CREATE TABLE users AS SELECT * FROM src")
    assert assign_table(con, r, "users", id_column="uid", into="assigned") == len(ids)
    rows = con.execute("SELECT user_id, bucket, variant FROM assigned").fetchall()
    assert {u: (v, b) for u, b, v in rows} == {u: r.route(u) for u in ids}
    portable = routing_sql.portable_bucket_sql("uid", "p")
    fast = routing_sql.bucket_sql("uid", "p")
    both = con.execute(f"SELECT uid, {portable}, {fast} FROM users", {"p": "tbl:"}).fetchall()
    assert all(p == f == ref_bucket("tbl", u) for u, p, f in both)


def test_assign_table_refuses_non_identifiers() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE users (user_id VARCHAR)")
    r = Router.build("s", [("a", 1), ("b", 1)])
    for kwargs, field in (
        ({"table": "users; DROP TABLE x"}, "table"),
        ({"table": "users", "id_column": "user_id)--"}, "id_column"),
        ({"table": "users", "into": "1bad"}, "into"),
    ):
        with pytest.raises(ValidationError) as err:
            assign_table(con, r, **kwargs)
        assert field in str(err.value)


def test_synthetic_split_reports_users_outside_coverage() -> None:
    r = Router.build("syn", [("a", 1), ("b", 1)], 0.25)
    frame = synthetic_split(r, 10_000)
    assert list(frame["variant"]) == ["a", "b", None]
    assert frame["users"].sum() == 10_000
    assert list(frame["target"]) == [0.125, 0.125, 0.75]
    outside = sum(r.route(f"user-{i}")[0] is None for i in range(10_000))
    assert frame["users"].iloc[2] == outside
    with pytest.raises(ValidationError):
        synthetic_split(r, 0)


def test_router_for_experiment_is_built_once() -> None:
    from datetime import UTC, datetime

    from promptver.models import Experiment, MetricSpec, VariantSpec

    exp = Experiment(
        id="e1",
        name="n",
        template_id="t",
        salt="e1",
        created_at=datetime.now(UTC),
        variants=[
            VariantSpec(name="a", ref="1.0.0", weight=1),
            VariantSpec(name="b", ref="1.1.0", weight=3),
        ],
        metrics=[MetricSpec(name="quality_score", direction="higher", role="primary")],
        coverage=0.9,
    )
    r = router_for(exp)
    assert router_for(exp) is r
    assert (r.salt, r.variants, r.weights, r.coverage) == ("e1", ("a", "b"), (0.25, 0.75), 0.9)
    assert route(exp, "u1") == r.route("u1")
    assert route(exp, "u1")[0] == ref_variant("e1", "u1", [("a", 1), ("b", 3)], 0.9)


def test_the_documented_worked_example() -> None:
    # digests from `printf 'optional-string:user-42' | md5sum` (and the coverage salt), as in
    # docs/experiments.md
    r = Router.build("optional-string", [("control", 50), ("concise", 50)], 0.25)
    assert bucket("optional-string", "user-42") == 0xB78FAF1CD781BBA9 / 2**64
    assert r.coverage_bucket("user-42") == 0x28230574CA434451 / 2**64
    assert r.route("user-42") == ("concise", 0.7170361943640334)
