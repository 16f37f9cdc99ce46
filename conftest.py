"""Root pytest configuration of this repository: our model by default, layer markers.

    pytest -k fast                                            # this repository's fast tests and layer, on ./template.yaml
    pytest --dials-template other/template.yaml               # another DIALS MLServer model
    pytest --dials-build-dir .dism-artifacts/build/PixelNMF   # exactly what dismcli package zips
    pytest -m server --dials-server-url http://127.0.0.1:8080 # an already running server

The options, fixtures and layer modules (dialsgate/pytest_plugin/layers) are the dialsgate plugin's; this
file only picks our template when none is named, and marks our test folders with their layer.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
from pathlib import Path

import pytest

#: Options, fixtures, layers and --gate-summary (installed, the plugin loads by its entry point).
pytest_plugins = ("dialsgate.pytest_plugin.plugin",)

REPOSITORY = Path(__file__).resolve().parent


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pixelnmf-dials"


def _model_compile_cache() -> Path:
    """Where this repository's tests may cache the model's compiled loop (numba's
    NUMBA_CACHE_DIR): one folder per content of the model package, outside the server folder."""
    digest = hashlib.sha256()
    for path in sorted((REPOSITORY / "mlserver-model" / "pixelnmf").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return _cache_home() / "compiled" / digest.hexdigest()[:16]


# The tests import the model from the server folder; Python would write its bytecode there, in
# __pycache__ folders that dismcli package zips and check_package_has_no_stray_files fails (the
# next run of `pytest -k fast`, on any machine without PYTHONDONTWRITEBYTECODE). Bytecode of
# what is imported from here on goes to a cache outside the repository instead.
if not sys.pycache_prefix:
    sys.pycache_prefix = str(_cache_home() / "pycache")


# The compiled-engine tests compile the loop in the test process; the second run loads it. (The
# gate's worker gets its own cache per server folder; in DIALS nothing is cached.)
os.environ.setdefault("NUMBA_CACHE_DIR", str(_model_compile_cache()))
#: Layer of each test folder; the folder decides the marker, so `-k fast` / `-m fast` select it.
LAYER_OF_FOLDER = {
    "fast": "fast",
    "model": "fast",
    "gate": "gate",
    "report": "report",
    "dismcli": "dismcli",
    "installed": "installed",
}


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if config.option.dials_template is None:
        config.option.dials_template = str(REPOSITORY / "template.yaml")
    _remember_outermost(config)


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


#: The outermost session's config (a session run inside this one, by pytester, is not it).
_OUTERMOST: list = []


def _remember_outermost(config) -> None:
    if not _OUTERMOST:
        _OUTERMOST.append(config)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # The interpreter's own teardown of what these tests load (numba's compiled code, MLServer,
    # scipy, hypothesis) takes about a second after the summary is printed, and writes nothing:
    # the run ends with its exit status once pytest has returned and every exit function has run.
    if _OUTERMOST and session.config is _OUTERMOST[0]:
        atexit.register(_end_now, int(session.exitstatus))


def _end_now(status: int) -> None:
    # Registered last, so called first of the exit functions: the others (a coverage measurement
    # saving its data, the plugin closing its subjects) run here, then the process ends.
    atexit.unregister(_end_now)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
