"""Root pytest configuration: which model folder the conformance suite checks, and layer markers.

    pytest -k fast                                   # the fast layer, on ./template.yaml
    pytest --template other/template.yaml            # another DIALS MLServer model
    pytest --build-dir .dism-artifacts/build/PixelNMF  # exactly what dismcli package zips
    pytest tests/server --server-url http://127.0.0.1:8080   # an already running server
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialsgate.testing import contract_from_options, reference_batch_path

#: --gate-summary: outcomes as JSON for the pre-deploy gate.
pytest_plugins = ("dialsgate.gate_plugin",)

REPOSITORY = Path(__file__).resolve().parent
#: Layer of each test folder; the folder decides the marker, so `-k fast` / `-m fast` select it.
LAYER_OF_FOLDER = {"fast": "fast", "model": "fast", "parity": "parity", "server": "server", "gate": "gate", "dismcli": "dismcli"}


def pytest_addoption(parser):
    group = parser.getgroup("dialsgate", "DIALS model folder under test")
    group.addoption("--template", default=str(REPOSITORY / "template.yaml"), help="DISM template (default: ./template.yaml)")
    group.addoption("--resource", default=None, help="resource key, when the template has several MLServer resources")
    group.addoption("--build-dir", default=None, help="a dismcli .dism-artifacts/build/<ResourceKey> folder to check instead of CodeUri")
    group.addoption("--reference-batch", default=None, help=".npz with one array per template input (default: found beside the template)")
    group.addoption("--server-url", default=None, help="run the server layer against this running server instead of a container")


def pytest_collection_modifyitems(config, items):
    tests_root = REPOSITORY / "tests"
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(tests_root).parts[0]
        except ValueError:
            continue
        layer = LAYER_OF_FOLDER.get(folder)
        if layer:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def contract(request):
    """The deployment contract of the model folder under test (from --template / --build-dir)."""
    return contract_from_options(request.config)


@pytest.fixture(scope="session")
def reference_arrays(request, contract):
    """The reference batch's inputs, or template-shaped sample inputs when the model ships none."""
    from dialsgate import v2

    path = reference_batch_path(request.config, contract)
    if path is None:
        return v2.sample_inputs(contract, n_ls=4)
    return v2.reference_arrays(path, contract)


@pytest.fixture(scope="session")
def subject(contract, reference_arrays):
    """The model folder under test, with its in-process handler and build folder made once."""
    from dialsgate.subject import Subject

    made = Subject(contract, reference_arrays)
    yield made
    made.close()
