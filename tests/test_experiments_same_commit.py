"""Two variants on the same commit (an accidental A/A test) are refused unless confirmed."""

from __future__ import annotations

import pytest

from promptver.errors import ValidationError
from promptver.experiments import dump_spec, load_spec, to_spec
from tests.experiments_helpers import lab_fixture, spec  # noqa: F401 - fixture used by name

SAME = [
    {"name": "control", "ref": "1.1.0", "weight": 50},
    {"name": "again", "ref": "main", "weight": 50},  # main's head is 1.1.0: the same commit
]


def test_same_commit_is_refused_naming_both_variants_and_the_way_to_confirm(lab) -> None:
    with pytest.raises(ValidationError) as err:
        lab.experiments.create(spec(variants=SAME))
    [p] = err.value.problems
    assert p.field == "variants[1].ref" and p.code == "same_commit"
    assert "'again'" in p.message and "'control'" in p.message
    assert lab.templates.get("qa-basic", "1.1.0").commit[:10] in p.message
    assert "allow_same_commit: true" in p.message
    assert lab.experiments.list() == []
    assert [q.field for q in lab.experiments.check(spec(variants=SAME))] == ["variants[1].ref"]


def test_confirmed_same_commit_is_accepted_and_round_trips(lab) -> None:
    e = lab.experiments.create(spec(variants=SAME, allow_same_commit=True))
    assert e.variants[0].commit == e.variants[1].commit
    again = to_spec(e)
    assert again["allow_same_commit"] is True
    copy = lab.experiments.create(load_spec(dump_spec(again | {"name": "copy"})))
    assert copy.variants[0].commit == copy.variants[1].commit
    # an ordinary experiment's file does not carry the flag
    assert "allow_same_commit" not in to_spec(lab.experiments.create(spec(name="third")))


def test_the_confirmation_applies_to_updates_and_must_be_true_or_false(lab) -> None:
    e = lab.experiments.create(spec())
    with pytest.raises(ValidationError, match="same commit"):
        lab.experiments.update(e.id, spec(variants=SAME))
    assert (
        lab.experiments.update(e.id, spec(variants=SAME, allow_same_commit=True)).variants[1].ref
        == "main"
    )
    with pytest.raises(ValidationError) as err:
        lab.experiments.create(spec(name="x", allow_same_commit="yes"))
    assert [p.field for p in err.value.problems] == ["allow_same_commit"]
