"""Check cases as pytest parameters, with readable ids (``check_input_dims[Occupancy]``) and the
author's known failures as strict xfails.

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
from dialsgate.checks.subject import Subject
from dialsgate.contract.template import Contract, load_contract
from dialsgate.protocol import v2
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.settings import given_batch_problem, known_failures, reference_batch_beside


def _params(cases, known: dict[str, str]) -> list:
    return [
        pytest.param(case, id=case.id, marks=[pytest.mark.xfail(reason=known[case.id], strict=True)] if case.id in known else [])
        for case in cases
    ]


def parametrize_layer_checks(metafunc, argname: str, cases) -> None:
    """Parametrize ``argname`` of a layer's test with its check cases (template: --dials-template);
    the author's known failures as strict xfails, none under ``--dials-ignore-known-failures``."""
    ignored = metafunc.config.getoption("dials_ignore_known_failures", default=False)
    known = {} if ignored else known_failures(contract_from_options(metafunc.config))
    metafunc.parametrize(argname, _params(cases, known))


#: The folders under test of parametrize_with_checks, one Subject each (loaded on first use).
_SUBJECTS: dict[tuple, Subject] = {}


def _subject_for(contract: Contract, reference_batch: Path | None) -> Subject:
    key = (contract.template_path, contract.code_dir, contract.resource_key, reference_batch)
    if key not in _SUBJECTS:
        batch = reference_batch if reference_batch and not given_batch_problem(reference_batch) else None
        batch = batch or (None if reference_batch else reference_batch_beside(contract))
        if contract.oversized_inputs():
            arrays = {}  # nothing is built beyond the elements cap: check_dims_within_limit names it
        else:
            arrays = v2.reference_arrays(batch, contract) if batch else v2.sample_inputs(contract, n_ls=4)
        _SUBJECTS[key] = Subject(contract, arrays, reference_is_sample=batch is None)
        _SUBJECTS[key].reference_batch = Path(reference_batch) if reference_batch else None
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

    @property
    def id(self) -> str:
        return self.case.id

    def __call__(self) -> None:
        self.case(_subject_for(self.contract, self.reference_batch))


def parametrize_with_checks(template, layer: str = "fast", *, build_dir=None, resource=None, reference_batch=None):
    """``pytest.mark.parametrize("dials_check", ...)`` over the checks of ``layer`` ("fast" or
    "parity") generated from ``template``; known failures of its dialsgate.toml are strict xfails.
    Result kinds (advice, not applicable, not run) are the plugin's, as in the gate."""
    contract = load_contract(template, build_dir=build_dir, resource_key=resource)
    cases = {"fast": fast_checks, "parity": parity_checks}[layer](contract)
    batch = Path(reference_batch) if reference_batch is not None else None
    return pytest.mark.parametrize(
        "dials_check", _params([BoundCheck(case, contract, batch) for case in cases], known_failures(contract))
    )
