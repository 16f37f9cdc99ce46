"""The plugin's command-line options read back: the template, its contract, the reference batch
and the author's settings for the folder under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialsgate.contract.template import load_contract
from dialsgate.settings import given_batch_problem, reference_batch_beside, settings


def template_option(config) -> str:
    template = config.getoption("dials_template")
    if template is None:
        raise pytest.UsageError("the dialsgate layers need --dials-template path/to/template.yaml")
    return template


def contract_from_options(config):
    return load_contract(
        template_option(config), build_dir=config.getoption("dials_build_dir"), resource_key=config.getoption("dials_resource")
    )


def reference_batch_path(config, contract) -> Path | None:
    """The reference batch the checks send: ``--dials-reference-batch`` when it is a plain file,
    else the one beside the template (``settings.reference_batch_beside``); a refused path gives
    None (sample data; check_folder_plain_files names it)."""
    given = given_reference_batch(config)
    if given is not None:
        return None if given_batch_problem(given) else given
    return reference_batch_beside(contract)


def given_reference_batch(config) -> Path | None:
    given = config.getoption("dials_reference_batch")
    return Path(given) if given else None


def settings_from_options(config) -> dict:
    if config.getoption("dials_template", default=None) is None:
        return {}
    return settings(contract_from_options(config))
