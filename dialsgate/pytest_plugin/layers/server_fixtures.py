"""Fixtures of the server layer: the model folder served by MLServer in its image, over HTTP.

    pytest --dials-template t.yaml --dials-layers server                  # build, serve in a container, check
    pytest --dials-template t.yaml --dials-layers server --dials-build-dir .dism-artifacts/build/<Key>
    pytest --dials-template t.yaml --dials-layers server --dials-server-url http://127.0.0.1:8080

Every expected answer comes from the same handler loaded apart, in the folder's worker container
(``Subject.handler``: the same image, sandboxed): the
server must answer exactly what the folder's own code answers, in the shape the template
promises. No Docker engine is a failure, never a skip: a layer that did not run proved nothing.
Settings: DIALSGATE_DOCKER_NETWORK, DIALSGATE_READY_TIMEOUT (see dialsgate/container/serve.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from dialsgate.checks import CheckFailed
from dialsgate.container.engine import ServingError
from dialsgate.container.image import ensure_image
from dialsgate.container.serve import LOG_TAIL_LINES, Served, prepared_model_folder, serve_model_folder, wait_until_model_ready
from dialsgate.protocol import v2
from dialsgate.transports.http import HttpEndpoint

SERVED_KEY = pytest.StashKey[Served]()
LOG_MARK_KEY = pytest.StashKey[int]()


# --------------------------------------------------------------------------- the server


@contextlib.contextmanager
def _live_output(config):
    """Let progress reach the terminal while a session fixture runs (e.g. an image build)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


@pytest.fixture(scope="session")
def served(request, contract, subject, tmp_path_factory):
    """The server under test: a container serving the contract's folder, or ``--server-url``."""
    config = request.config
    given = config.getoption("dials_server_url")
    if given:
        url = given.rstrip("/")
        failure = None
        try:
            waited = wait_until_model_ready(url, contract.name)
        except ServingError as error:
            failure = f"--server-url {url}: {error}"
        if failure:
            pytest.fail(failure, pytrace=False)
        port = int(url.rsplit(":", 1)[1]) if url.rsplit(":", 1)[-1].isdigit() else 80
        yield Served(
            url=url, http_port=port, grpc_port=None, model_name=contract.name, ready_seconds=waited, network_mode="external"
        )
        return

    def say(line: str) -> None:
        with _live_output(config):
            print(f"[server layer] {line}", flush=True)

    with contextlib.ExitStack() as stack:
        failure = None
        try:
            # Nothing is served that was not fully audited, and a handler that does not load
            # outside the container is one failure (check_handler_loads), not one per server test:
            # both raise CheckNotRun, which every test of this layer then reports as "not run".
            subject.require_plain_folder()
            subject.require_safe_model_file()
            subject.handler  # noqa: B018
            image = ensure_image(
                contract.image, log=say, profile=subject.profile, requirements=subject.needs.requirements(subject.profile)
            )
            folder = stack.enter_context(prepared_model_folder(contract, workdir=tmp_path_factory.mktemp("serve")))
            server = stack.enter_context(serve_model_folder(folder, contract, image=image))
        except (ServingError, AssertionError) as error:  # CheckFailed is an AssertionError
            failure = f"the server layer could not serve {contract.code_dir}:\n{error}"
        if failure:  # outside the except block: the message alone, without a chained traceback
            pytest.fail(failure, pytrace=False)
        say(
            f"{contract.name} served from {folder} by {contract.image} (as {image}) at {server.url} "
            f"({server.network_mode} network), model ready {server.ready_seconds:.1f} s after start"
        )
        config.stash[SERVED_KEY] = server
        try:
            yield server
        finally:
            del config.stash[SERVED_KEY]


@pytest.fixture(scope="session")
def server_url(served) -> str:
    """http://127.0.0.1:PORT of a server whose model is ready."""
    return served.url


@pytest.fixture(autouse=True)
def _mark_container_log(request):
    """Remember how long the container log was when a server test started (see the report hook)."""
    if request.node.get_closest_marker("server") is not None:
        served = request.getfixturevalue("served")
        if served.container is not None:
            request.node.stash[LOG_MARK_KEY] = len(served.logs().splitlines())
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing server test shows what the container logged while it ran (last 200 lines)."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        server = item.config.stash.get(SERVED_KEY, None)
        if server is not None and server.container is not None:
            lines = server.logs().splitlines()[item.stash.get(LOG_MARK_KEY, 0) :]
            shown = lines[-LOG_TAIL_LINES:]
            header = f"container log during this test (last {len(shown)} of {len(lines)} lines)"
            report.sections.append((header, "\n".join(shown) or "(nothing logged)"))
    return report


# --------------------------------------------------------------------------- HTTP helpers

#: The most of an answer's text a server test's reason quotes (the whole answer: the report's log).
QUOTED_CHARS = 300


def answer_refused(what: str, answer) -> CheckFailed:
    """A server test's failure as a sentence: what was asked, and the HTTP status and text it got."""
    return CheckFailed(f"{what}: HTTP {answer.status}: {answer.text[:QUOTED_CHARS]}")


@pytest.fixture(scope="session")
def v2_client(server_url, contract):
    client = HttpEndpoint(server_url, contract.name)
    yield client
    client.close()


@pytest.fixture(scope="session")
def make_client(server_url, contract):
    """Factory of independent clients (for concurrent use)."""
    made = []

    def make() -> HttpEndpoint:
        client = HttpEndpoint(server_url, contract.name)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --------------------------------------------------------------------------- expected answers


@pytest.fixture(scope="session")
def inprocess(subject):
    """The contract's handler loaded apart from the served container, in the folder's worker
    container (the same image): its answers are the reference."""
    return subject.handler


@pytest.fixture(scope="session")
def expected_response(inprocess):
    """body -> the in-process handler's response dict (the body must be a valid request)."""

    def expected(body: dict) -> dict:
        outcome = inprocess.predict(body)
        if outcome.status != 200 or outcome.response is None:
            raise CheckFailed(
                f"the handler loaded apart (the reference answers) refused the request the server is checked with: "
                f"HTTP {outcome.status}: {outcome.error}"
            )
        return outcome.response

    return expected


@pytest.fixture(scope="session")
def output_differences():
    """output_differences(server_outputs, inprocess_outputs, where="") -> list of problems (empty: equal)."""
    return v2.output_differences


@pytest.fixture(scope="session")
def assert_same_outputs():
    """assert_same_outputs(server_outputs, inprocess_outputs): CheckFailed naming each difference."""

    def check(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str = "") -> None:
        problems = v2.output_differences(got, want, where)
        if problems:
            raise CheckFailed("the served model's answer differs from the handler's own (loaded apart): " + "; ".join(problems))

    return check


@pytest.fixture(scope="session")
def template_output_signature(contract):
    """n_ls -> {name: (datatype, shape)} exactly as the template's OutputSignature promises."""

    def signature(n_ls: int) -> dict[str, tuple[str, list[int]]]:
        return {sig.name: (sig.datatype, list(v2.concrete_shape(sig.dims, n_ls))) for sig in contract.outputs}

    return signature


# --------------------------------------------------------------------------- request bodies


def tile_batch(arrays: dict[str, np.ndarray], n_ls: int) -> dict[str, np.ndarray]:
    """The reference batch repeated (or cut) along axis 0 to ``n_ls`` lumisections."""
    return {name: np.resize(array, (n_ls, *array.shape[1:])) for name, array in arrays.items()}


@pytest.fixture(scope="session")
def batch_of(contract, reference_arrays):
    """n_ls -> input arrays: the reference batch (declared metadata inputs included) tiled along axis 0."""

    def make(n_ls: int) -> dict[str, np.ndarray]:
        return tile_batch(reference_arrays, n_ls)

    return make


@pytest.fixture(scope="session")
def reference_n_ls(reference_arrays) -> int:
    return len(next(iter(reference_arrays.values())))


@pytest.fixture(scope="session")
def reference_body(contract, batch_of, reference_n_ls) -> dict:
    """The reference batch as DIALS sends it: flattened data, with a request id."""
    return v2.request_body(contract, batch_of(reference_n_ls), flatten=True, request_id="dialsgate-reference-batch")


@pytest.fixture(scope="session")
def reference_expected(reference_body, expected_response) -> dict:
    return expected_response(reference_body)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The load test runs last: the container's peak memory (test_server_resources) must be that
    of single requests as DIALS sends them, not of eight concurrent clients."""
    items.sort(key=lambda item: item.path.name == "test_server_load.py")
