"""pytest plugin (entry point ``pytest11``): the gate's checks on a DIALS model folder.

    pytest --dials-template template.yaml                        # every layer, as dialsgate check
    pytest --dials-template template.yaml --dials-layers fast,parity,server
    pytest --dials-template t.yaml --dials-build-dir .dism-artifacts/build/<Key>

Options, fixtures (``contract``, ``reference_arrays``, ``subject`` and the server layer's) and
the layer modules (``dialsgate/pytest_plugin/layers``) come from here; a model repository needs no conftest.
Known failures are the caller's: ``[known_failures]`` in a ``dialsgate.toml`` beside the
template (``"check id" = "reason"``): a failing one is an xfail, a passing one fails (the gate
refuses both).
Without ``--dials-template`` the plugin adds no test and changes nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from dialsgate.checks import early_questions, explore
from dialsgate.checks.subject import Subject, make_subject
from dialsgate.environment.runtime import NO_CONTAINER_ENV
from dialsgate.pytest_plugin.layers import LAYER_NAMES, layer_files, layer_of
from dialsgate.pytest_plugin.options import contract_from_options, given_reference_batch
from dialsgate.stopping import restore, stop_on

pytest_plugins = ("dialsgate.pytest_plugin.results",)

DEFAULT_LAYERS = "fast,parity,server"
#: The signal handlers stop_on replaced for the session, restored when it ends.
REPLACED_HANDLERS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("dialsgate", "DIALS model folder under test (dialsgate)")
    group.addoption("--dials-template", default=None, help="the model's DISM template.yaml")
    group.addoption("--dials-resource", default=None, help="resource key, when the template has several MLServer resources")
    group.addoption(
        "--dials-build-dir", default=None, help="a dismcli .dism-artifacts/build/<ResourceKey> folder to check instead of CodeUri"
    )
    group.addoption(
        "--dials-reference-batch",
        default=None,
        help=".npz with one array per template input (default: found beside the template)",
    )
    group.addoption(
        "--dials-server-url", default=None, help="run the server layer against this running server instead of a container"
    )
    group.addoption(
        "--dials-no-container",
        action="store_true",
        default=False,
        help="run model code on this machine, outside the serving image (no container engine here; never a pass)",
    )
    group.addoption(
        "--dials-layers",
        default=None,
        help=f"layers to collect with --dials-template (default {DEFAULT_LAYERS}; all: {','.join(LAYER_NAMES)})",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    for layer in LAYER_NAMES:
        config.addinivalue_line("markers", f"{layer}: dialsgate's {layer} layer")
    # hypothesis's own option (its plugin): the seed of check_contract_explored's exploration.
    explore.use_seed(config.getoption("hypothesis_seed", default=None))
    if config.getoption("dials_no_container"):
        os.environ[NO_CONTAINER_ENV] = "1"  # every Subject of this session, and worker processes' parents
    if config.getoption("dials_template") is None:
        return
    if threading.current_thread() is threading.main_thread():
        # A cancelled CI job's SIGTERM unwinds the session as Ctrl-C does: the subject's teardown
        # removes its containers (the served one stopped by its lifeline, and left, otherwise).
        config.stash[REPLACED_HANDLERS] = stop_on((signal.SIGTERM, signal.SIGHUP))
    # Collect the layer modules unless the caller named some of them (as the gate does).
    given = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    wanted = [
        path
        for layer in (config.getoption("dials_layers") or DEFAULT_LAYERS).split(",")
        if layer.strip()
        for path in layer_files(layer.strip())
    ]
    if not any(layer_of(path) or path == wanted[0].parent for path in given):
        config.args[:] = (
            [*config.args, *map(str, wanted)] if config.args_source == pytest.Config.ArgsSource.ARGS else list(map(str, wanted))
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        layer = layer_of(item.path)
        if layer:
            item.add_marker(getattr(pytest.mark, layer))
    if config.getoption("dials_template") is not None and any("subject" in item.fixturenames for item in items):
        _early_work_first(items)


def _early_work_first(items) -> None:
    """While the folder's work starts in the background (``pytest_collection_finish``), the test
    files that need neither it nor monkeypatch run first, then those that use the folder (each
    check waits only for its own answer), then those that patch (they wait for all of that work
    to end: ``pytest_runtest_setup``), so the folder's slowest early question overlaps its other
    checks. A file moves whole, its order kept."""
    group = {}
    for item in items:
        needs = 2 if "monkeypatch" in item.fixturenames else 1 if "subject" in item.fixturenames else 0
        group[item.path] = max(group.get(item.path, 0), needs)
    items.sort(key=lambda item: group[item.path])  # stable: the collection order within a group


#: The session's subject, made and asking early since the end of collection (``_start_early``).
EARLY_SUBJECT = pytest.StashKey[Subject]()


def _start_early(config, items) -> Subject:
    """The model folder under test as the gate makes it (``checks.subject.make_subject``), its
    worker container, handler and the selected checks' questions started in the background."""
    made = make_subject(
        contract_from_options(config), given_reference_batch(config), server_url=config.getoption("dials_server_url")
    )
    layers = tuple(sorted({layer for item in items if (layer := layer_of(item.path))}))
    selected = {item.callspec.id for item in items if layer_of(item.path) and hasattr(item, "callspec")}
    made.ask_early(lambda subject: early_questions(subject, layers, selected))
    return made


def pytest_collection_finish(session):
    """The folder's work starts when collection ends, beside the tests that need none of it."""
    config = session.config
    if config.option.collectonly or config.getoption("dials_template") is None:
        return
    if not any("subject" in item.fixturenames for item in session.items):
        return
    try:
        config.stash[EARLY_SUBJECT] = _start_early(config, session.items)
    except Exception:  # noqa: BLE001  (the contract or subject fixture raises it where a test asks)
        pass


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # A test that changes the environment the gate reads (its limits, the engine) or patches its
    # classes does it with monkeypatch: it waits until the folder's early work has ended, so
    # nothing of that work runs beside it.
    made = item.config.stash.get(EARLY_SUBJECT, None)
    if made is not None and "monkeypatch" in item.fixturenames:
        made.wait_early()


def pytest_unconfigure(config):
    restore(config.stash.get(REPLACED_HANDLERS, {}))


def pytest_sessionfinish(session):
    made = session.config.stash.get(EARLY_SUBJECT, None)
    if made is not None:
        made.close()  # the subject fixture's teardown closed it already, unless no test asked for it


@pytest.fixture(scope="session")
def contract(request):
    """The deployment contract of the model folder under test."""
    made = request.config.stash.get(EARLY_SUBJECT, None)
    return made.contract if made is not None else contract_from_options(request.config)


@pytest.fixture(scope="session")
def subject(request, contract):
    """The model folder under test, with its handler (worker container), build and served model
    made once (``checks.subject.make_subject``, as the gate makes it), asking early since the end
    of collection (made here when that could not start it)."""
    made = request.config.stash.get(EARLY_SUBJECT, None) or _start_early(request.config, request.session.items)
    request.config.stash[EARLY_SUBJECT] = made
    yield made
    made.close()
    del request.config.stash[EARLY_SUBJECT]


@pytest.fixture(scope="session")
def reference_arrays(subject):
    """The reference batch's inputs, or template-shaped sample inputs when the model ships none."""
    return subject.reference_arrays
