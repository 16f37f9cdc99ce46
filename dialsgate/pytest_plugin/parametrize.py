"""Check cases as pytest parameters, with readable ids (``check_input_dims[Occupancy]``), each
judged as the gate judges it (``checks.findings.judge``: strict, the author's known failures).

``parametrize_with_checks`` puts the gate's checks in a model author's own test file, as
scikit-learn's ``parametrize_with_checks`` does for estimators::

    from dialsgate.pytest_plugin.parametrize import parametrize_with_checks

    @parametrize_with_checks("template.yaml")
    def test_dials_contract(dials_check):
        dials_check()

``pytest -k check_output_matches_signature`` then selects one check. The layers' own modules use
``parametrize_layer_checks`` (the template comes from ``--dials-template`` there).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialsgate.checks import CheckCase, fast_checks, parity_checks
from dialsgate.checks.findings import judge
from dialsgate.checks.server import server_cases
from dialsgate.checks.subject import Subject, make_subject
from dialsgate.contract.template import Contract, load_contract
from dialsgate.pytest_plugin.results import enact, strict_mode
from dialsgate.settings import known_failures, settings


def _params(cases) -> list:
    return [pytest.param(case, id=case.id) for case in cases]


def parametrize_layer_checks(metafunc, argname: str, cases) -> None:
    """Parametrize ``argname`` of a layer's test with its check cases (template: --dials-template)."""
    metafunc.parametrize(argname, _params(cases))


def judge_item(request, case: CheckCase, subject, layer: str) -> None:
    """Judge one case as the gate does (``checks.findings.judge``: strict, the author's known
    failures unless --dials-ignore-known-failures) and say the finding to pytest."""
    config = request.config
    ignored = config.getoption("dials_ignore_known_failures", default=False)
    known = {} if ignored else known_failures(subject.contract)
    finding = judge(case, subject, layer=layer, resource=subject.contract.resource_key, strict=strict_mode(config), known=known)
    enact(finding, request.node)


#: The folders under test of parametrize_with_checks, one Subject each (loaded on first use).
_SUBJECTS: dict[tuple, Subject] = {}


def _subject_for(contract: Contract, reference_batch: Path | None) -> Subject:
    key = (contract.template_path, contract.code_dir, contract.resource_key, reference_batch)
    if key not in _SUBJECTS:
        _SUBJECTS[key] = make_subject(contract, reference_batch)
    return _SUBJECTS[key]


@atexit.register
def _close_subjects() -> None:
    for made in _SUBJECTS.values():
        made.close()


@dataclass(frozen=True)
class BoundCheck:
    """One check case bound to a model folder: calling it runs the check (``dials_check()``)."""

    case: CheckCase
    contract: Contract
    reference_batch: Path | None = None
    layer: str = "fast"

    @property
    def id(self) -> str:
        return self.case.id

    def __call__(self) -> None:
        subject = _subject_for(self.contract, self.reference_batch)
        strict = bool(settings(self.contract).get("strict", False))
        known = known_failures(self.contract)
        enact(judge(self.case, subject, layer=self.layer, resource=self.contract.resource_key, strict=strict, known=known))


def parametrize_with_checks(template, layer: str = "fast", *, build_dir=None, resource=None, reference_batch=None):
    """``pytest.mark.parametrize("dials_check", ...)`` over the checks of ``layer`` ("fast",
    "parity" or "server") generated from ``template``; each judged as the gate judges it (strict
    and known failures from its dialsgate.toml)."""
    contract = load_contract(template, build_dir=build_dir, resource_key=resource)
    cases = {"fast": fast_checks, "parity": parity_checks, "server": server_cases}[layer](contract)
    batch = Path(reference_batch) if reference_batch is not None else None
    return pytest.mark.parametrize("dials_check", _params([BoundCheck(case, contract, batch, layer) for case in cases]))
