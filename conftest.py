"""Root pytest configuration of this repository: our model by default, layer markers.

    pytest -k fast                                   # the fast layer, on ./template.yaml
    pytest --template other/template.yaml            # another DIALS MLServer model
    pytest --build-dir .dism-artifacts/build/PixelNMF  # exactly what dismcli package zips
    pytest -m server --server-url http://127.0.0.1:8080   # an already running server

The options are short aliases of the dialsgate plugin's (--dials-template, ...), which carries
the fixtures and the layer modules (dialsgate/layers); this file only picks our template.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Options, fixtures, layers and --gate-summary (installed, the plugin loads by its entry point).
pytest_plugins = ("dialsgate.plugin",)

REPOSITORY = Path(__file__).resolve().parent
#: Layer of each test folder; the folder decides the marker, so `-k fast` / `-m fast` select it.
LAYER_OF_FOLDER = {
    "fast": "fast",
    "model": "fast",
    "gate": "gate",
    "report": "report",
    "dismcli": "dismcli",
    "installed": "installed",
}


#: Short option -> the plugin's option it stands for.
ALIASES = {"template": "dials_template", "resource": "dials_resource", "build_dir": "dials_build_dir",
           "reference_batch": "dials_reference_batch", "server_url": "dials_server_url"}  # fmt: skip


def pytest_addoption(parser):
    group = parser.getgroup("dialsgate")
    group.addoption("--template", default=None, help="--dials-template (default here: ./template.yaml)")
    group.addoption("--resource", default=None, help="--dials-resource")
    group.addoption("--build-dir", default=None, help="--dials-build-dir")
    group.addoption("--reference-batch", default=None, help="--dials-reference-batch")
    group.addoption("--server-url", default=None, help="--dials-server-url")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    for alias, option in ALIASES.items():
        if getattr(config.option, option) is None:
            setattr(config.option, option, getattr(config.option, alias))
    if config.option.dials_template is None:
        config.option.dials_template = str(REPOSITORY / "template.yaml")


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
