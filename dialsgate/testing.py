"""pytest glue shared by the layers: options -> contract -> subject, and check cases as params."""

from __future__ import annotations

from pathlib import Path

from .contract import load_contract


def contract_from_options(config):
    return load_contract(
        config.getoption("--template"), build_dir=config.getoption("--build-dir"), resource_key=config.getoption("--resource")
    )


def reference_batch_path(config, contract) -> Path | None:
    given = config.getoption("--reference-batch")
    if given:
        return Path(given)
    folder = contract.template_path.parent
    for candidate in (folder / "tests" / "data" / "reference_batch.npz", folder / "reference_batch.npz"):
        if candidate.is_file():
            return candidate
    return None


def parametrize_checks(metafunc, argname: str, cases) -> None:
    """Parametrize ``argname`` with check cases; ids like check_input_dims[BPix3]."""
    import pytest

    from .checks import EXPECTED_FAILURES

    params = [
        pytest.param(case, id=case.id, marks=[pytest.mark.xfail(reason=EXPECTED_FAILURES[case.id], strict=True)] if case.id in EXPECTED_FAILURES else [])
        for case in cases
    ]
    metafunc.parametrize(argname, params)
