"""The Configure form of the Experiments screen (issue 22): the control defaults to what is
live, out-of-range statistics are refused rather than replaced, a same-commit pair needs a
confirmation, problems show under their field in the form's words, the split never lags."""

from __future__ import annotations

import pytest

from promptver import Workspace
from tests.experiments_helpers import seed_lab
from tests.test_experiments_page import key, open_page, rerun, shown


@pytest.fixture
def db(db_path, monkeypatch):
    """qa-basic (1.0.0, 1.1.0, branch concise-tone), the file the page opens."""
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    ws = Workspace.open(db_path)
    seed_lab(ws)
    yield ws
    ws.close()


def errors(at) -> list[str]:
    return [shown(e.value) for e in at.error]


def warnings(at) -> list[str]:
    return [shown(w.value) for w in at.warning]


def test_the_control_defaults_to_the_version_live_in_the_environment(db) -> None:
    db.deployments.deploy("qa-basic", "1.0.0", "production", author="t")
    at = open_page()
    assert key(at, "exp_f_env").value == "production"
    assert key(at, "exp_f_ref_0").value == "1.0.0"  # live, although 1.1.0 is the latest
    assert not [w for w in warnings(at) if "live" in w]
    # picking another control warns that it is not what users get now
    key(at, "exp_f_ref_0").select("1.1.0")
    rerun(at)
    [w] = [w for w in warnings(at) if "live" in w]
    assert "1.1.0" in w and "1.0.0 is live in production" in w
    # a new form in an environment where nothing is live falls back to the latest version
    key(at, "exp_clear").click()
    rerun(at)
    key(at, "exp_f_env").select("staging")
    rerun(at)
    assert key(at, "exp_f_ref_0").value == "1.1.0"
    assert any("Nothing of qa-basic is live in staging" in shown(c.value) for c in at.caption)
    key(at, "exp_f_env").select("production")  # untouched control follows the environment
    rerun(at)
    assert key(at, "exp_f_ref_0").value == "1.0.0"


def test_alpha_and_minimum_sample_of_zero_are_refused_with_the_range(db) -> None:
    at = open_page()
    key(at, "exp_f_name").input("zeros")
    key(at, "exp_f_alpha").set_value(0.0)
    key(at, "exp_f_sample").set_value(0)
    rerun(at)
    assert key(at, "exp_f_alpha").value == 0.0  # kept as typed, not replaced by 0.05
    assert key(at, "exp_f_sample").value == 0
    errs = errors(at)
    assert any(
        e.startswith("Significance level α:") and "greater than 0 and at most 0.5" in e
        for e in errs
    ), errs
    assert any(
        e.startswith("Minimum sample (users per variant):") and "from 2 to 1,000,000,000" in e
        for e in errs
    ), errs
    assert key(at, "exp_save").disabled
    assert db.experiments.list() == []


def test_the_same_commit_twice_warns_and_needs_a_confirmation(db) -> None:
    at = open_page()
    key(at, "exp_f_name").input("a-a")
    key(at, "exp_f_ref_1").select("1.1.0")  # the control is 1.1.0 (nothing live: the latest)
    rerun(at)
    [w] = [w for w in warnings(at) if "same commit" in w]
    assert w.startswith("Variant 2 ref:") and "'control'" in w
    assert key(at, "exp_save").disabled
    at.checkbox(key="exp_f_same_ok").check()
    rerun(at)
    assert any("same commit" in w for w in warnings(at))  # still said, no longer blocking
    assert not key(at, "exp_save").disabled
    key(at, "exp_save").click()
    rerun(at)
    [e] = db.experiments.list()
    assert e.variants[0].commit == e.variants[1].commit


def test_problems_show_under_their_field_in_the_forms_words(db) -> None:
    db.experiments.create(
        {
            "name": "taken",
            "template": "qa-basic",
            "variants": [{"name": "a", "ref": "1.0.0"}, {"name": "b", "ref": "1.1.0"}],
            "metrics": ["quality_score"],
        }
    )
    at = open_page()
    key(at, "exp_f_name").input("Taken")
    key(at, "exp_f_vname_1").input("Control")
    rerun(at)
    errs = errors(at)
    dup = [e for e in errs if e.startswith("Variant 2 name:")]
    assert dup and "duplicate variant name 'Control' (same as Variant 1, ignoring case)" in dup[0]
    assert any(e.startswith("Name:") and "already exists" in e for e in errs), errs
    assert not any("variants[" in e for e in errs), errs
    assert key(at, "exp_save").disabled
    # each message sits in the form, under its field (in the column of the variant's name
    # box), not in one list at the bottom
    holders = [c for c in at.columns if any("Variant 2 name:" in shown(e.value) for e in c.error)]
    assert holders and any(w.key == "exp_f_vname_1" for w in holders[0].text_input)
    key(at, "exp_f_vname_1").input("treatment")
    key(at, "exp_f_name").input("fresh")
    rerun(at)
    assert errors(at) == []
    assert not key(at, "exp_save").disabled


def test_the_split_summary_matches_the_sliders_in_the_same_run(db) -> None:
    at = open_page()
    key(at, "exp_f_w_0").set_value(70)
    rerun(at)
    key(at, "exp_f_n").set_value(3)  # a third variant: 70 + 33 would leave -3 % for the last
    rerun(at)
    shares = [key(at, f"exp_f_w_{i}").value for i in range(2)]
    last = 100 - sum(shares)
    assert last >= 1 and all(s >= 1 for s in shares)
    split = [shown(m.value) for m in at.markdown if m.value.startswith("Split:")][0]
    assert split.endswith(f"**{last} %**") and "-" not in split.replace("variant-", "")
    assert key(at, "exp_f_w_last").value == last  # the disabled "rest" slider agrees
    key(at, "exp_f_w_0").set_value(60)
    key(at, "exp_f_w_1").set_value(45)
    rerun(at)
    split = [m.value for m in at.markdown if m.value.startswith("Split:")][0]
    assert "−" not in split and "-5" not in split
    assert key(at, "exp_f_w_last").value == 0


def test_tables_show_a_dash_for_missing_values(db) -> None:
    db.experiments.create(
        {
            "name": "never started",
            "template": "qa-basic",
            "variants": [{"name": "a", "ref": "1.0.0"}, {"name": "b", "ref": "1.1.0"}],
            "metrics": ["quality_score"],
        }
    )
    at = open_page()
    listing = [d for d in at.dataframe if "stopped" in d.value.columns][0]
    assert listing.value["stopped"].isna().all()  # no stop time …
    assert listing.proto.placeholder == "—"  # … shows as a dash, not "None"
    assert all(d.proto.placeholder == "—" for d in at.dataframe)
