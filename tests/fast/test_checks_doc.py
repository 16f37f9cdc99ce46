"""docs/checks.md lists every registered check with its declared kind, concern and whether model
code can forge its row (it cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialsgate.checks import CONCERNS, KINDS, REGISTRY, case, check

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"
ROW = re.compile(r"^\| `(check_[a-z0-9_]+)` \| (\w+) \| (\w+) \| (yes|no) \| (.+) \|$")


def documented() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, kind, concern, forgeable, why = match.groups()
            assert name not in rows, f"docs/checks.md lists {name} twice"
            rows[name] = (kind, concern, forgeable == "yes", why.strip())
    return rows


def registered() -> dict:

    return {name: function for name, function in REGISTRY.items() if function.__module__.startswith("dialsgate.checks.")}


def test_every_registered_check_is_documented_with_its_kind_and_concern():
    rows = documented()
    for name, function in registered().items():
        assert name in rows, f"{name} ({function.__module__}) is not in docs/checks.md"
        kind, concern, forgeable, why = rows[name]
        assert (kind, concern) == (function.dialsgate_kind, function.dialsgate_concern), (
            f"docs/checks.md says {name} is {kind}/{concern}; it is declared "
            f"{function.dialsgate_kind}/{function.dialsgate_concern}"
        )
        assert forgeable == function.dialsgate_runs_model_code, (
            f"docs/checks.md says model code can{'' if forgeable else ' not'} forge {name}; it is declared "
            f"runs_model_code={function.dialsgate_runs_model_code}"
        )
        assert why, f"{name}: no reason in docs/checks.md"


def test_docs_name_no_check_that_does_not_exist():
    assert sorted(set(documented()) - set(registered())) == []


def test_kinds_and_concerns_are_the_declared_sets():
    for kind, concern, _, _ in documented().values():
        assert kind in KINDS and concern in CONCERNS


def test_every_advice_check_says_why_it_is_advice():
    """Advice is hardening against requests outside the contract, or good practice; never a contract breach."""
    for name, (kind, _, _, why) in documented().items():
        if kind == "advice":
            assert why.startswith(("outside the contract", "good practice")), name


def test_a_check_without_a_declared_kind_cannot_be_registered():
    def check_undeclared(subject):
        pass

    with pytest.raises(TypeError, match="not declared with @check"):
        case(check_undeclared)


def test_a_check_must_say_whether_it_runs_model_code():
    """No default: a new check that runs the handler must not be shown as unforgeable by omission."""
    with pytest.raises(TypeError):
        check(kind="failure", concern="template")
    with pytest.raises(TypeError, match="runs_model_code"):
        check(kind="failure", concern="template", runs_model_code="yes")


def test_the_rows_of_model_code_are_those_that_ask_it():
    """Spot checks computed from what each check does, not from the declarations: the template
    and the audit read files; the handler and the round trip run the folder's code."""
    rows = documented()
    for name in ("check_template_schema", "check_pickle_globals_safe", "check_package_size", "check_python_version_compatible"):
        assert rows[name][2] is False, name
    for name in ("check_handler_loads", "check_clean_interpreter_round_trip", "check_output_matches_signature"):
        assert rows[name][2] is True, name
