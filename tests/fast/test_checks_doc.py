"""docs/checks.md lists every registered check with its declared kind and concern (it cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialsgate.checks import CONCERNS, KINDS, REGISTRY, case

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"
ROW = re.compile(r"^\| `(check_[a-z0-9_]+)` \| (\w+) \| (\w+) \| (.+) \|$")


def documented() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, kind, concern, why = match.groups()
            assert name not in rows, f"docs/checks.md lists {name} twice"
            rows[name] = (kind, concern, why.strip())
    return rows


def registered() -> dict:

    return {name: function for name, function in REGISTRY.items() if function.__module__.startswith("dialsgate.checks.")}


def test_every_registered_check_is_documented_with_its_kind_and_concern():
    rows = documented()
    for name, function in registered().items():
        assert name in rows, f"{name} ({function.__module__}) is not in docs/checks.md"
        kind, concern, why = rows[name]
        assert (kind, concern) == (function.dialsgate_kind, function.dialsgate_concern), (
            f"docs/checks.md says {name} is {kind}/{concern}; it is declared "
            f"{function.dialsgate_kind}/{function.dialsgate_concern}"
        )
        assert why, f"{name}: no reason in docs/checks.md"


def test_docs_name_no_check_that_does_not_exist():
    assert sorted(set(documented()) - set(registered())) == []


def test_kinds_and_concerns_are_the_declared_sets():
    for kind, concern, _ in documented().values():
        assert kind in KINDS and concern in CONCERNS


def test_every_advice_check_says_why_it_is_advice():
    """Advice is hardening against requests outside the contract, or good practice; never a contract breach."""
    for name, (kind, _, why) in documented().items():
        if kind == "advice":
            assert why.startswith(("outside the contract", "good practice")), name


def test_a_check_without_a_declared_kind_cannot_be_registered():
    def check_undeclared(subject):
        pass

    with pytest.raises(TypeError, match="not declared with @check"):
        case(check_undeclared)
