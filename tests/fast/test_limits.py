"""The gate's limits on the host side (dialsgate.limits): a worker that never answers or answers
too much, a template alias bomb or size, Dims beyond the elements cap, a reference batch and an
HTTP answer beyond their caps. Each reaches its limit quickly and names it; the fake worker is
this test's own Python process, not a folder's code."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from dialsgate.checks import CheckFailed, fast_checks
from dialsgate.checks.subject import Subject
from dialsgate.checks.template import check_dims_within_limit
from dialsgate.contract.template import (
    MAX_TEMPLATE_BYTES,
    TemplateRefused,
    load_contract,
    parse_yaml,
    read_template,
)
from dialsgate.environment.runtime import ModelRuntime
from dialsgate.limits import LIMITS, limit, shorten
from dialsgate.plainfiles import NotPlain
from dialsgate.protocol import jsontext, v2
from dialsgate.transports.http import Answer, AnswerTooLarge, HttpEndpoint
from dialsgate.transports.worker import Worker, WorkerHandler, WorkerLimitReached

REPOSITORY = Path(__file__).resolve().parents[2]
PLAIN = REPOSITORY / "tests" / "gate" / "corpus" / "sklearn_nmf_plain"


class ScriptRuntime(ModelRuntime):
    """A runtime whose worker is a small Python script of this test (answers as told)."""

    kind = "host"

    def __init__(self, script: str):
        self.script = textwrap.dedent(script)

    def worker_command(self, args):
        return [sys.executable, "-c", self.script, *args]

    @contextlib.contextmanager
    def alone(self):
        yield "", ""

    def describe(self):
        return "a test script"


SLEEPS = """
import sys, time
for line in sys.stdin:
    time.sleep(3600)
"""


def loads_then_answers(response: str) -> str:
    """A worker script that loads, then answers every request with the text of ``response`` (a
    Python expression) as its response."""
    return f"""
import json, sys
for line in sys.stdin:
    op = json.loads(line)["op"]
    if op == "load":
        print(json.dumps({{"loaded": True}}), flush=True)
    else:
        sys.stdout.write('{{"status": 200, "response": ' + {response} + '}}\\n')
        sys.stdout.flush()
"""


LOADS_THEN_ANSWERS_HUGE = loads_then_answers("""'{"trace": "' + "x" * 3_000_000 + '"}'""")


def test_a_worker_call_that_never_answers_stops_at_its_timeout_naming_it(monkeypatch):
    monkeypatch.setenv("DIALSGATE_WORKER_LOAD_TIMEOUT", "0.1")
    worker = Worker(ScriptRuntime(SLEEPS))
    started = time.monotonic()
    with pytest.raises(WorkerLimitReached, match=r"did not load within 0.1 s .*DIALSGATE_WORKER_LOAD_TIMEOUT"):
        worker.call("load", folder="", handler="app.Model", name="x", model_file="")
    assert time.monotonic() - started < 30
    assert worker.process.poll() is not None, "the worker process was left running"
    worker.close()


def test_a_request_that_never_answers_uses_the_request_timeout(monkeypatch):
    monkeypatch.setenv("DIALSGATE_WORKER_CALL_TIMEOUT", "0.1")
    worker = Worker(ScriptRuntime(SLEEPS))
    with pytest.raises(WorkerLimitReached, match=r"did not answer 'predict' within 0.1 s .*DIALSGATE_WORKER_CALL_TIMEOUT"):
        worker.call("predict", body={})
    worker.close()


def test_an_answer_line_over_the_cap_is_not_read_and_names_the_cap(monkeypatch):
    monkeypatch.setenv("DIALSGATE_WORKER_ANSWER_BYTES", "1000000")
    contract = load_contract(PLAIN / "template.yaml")
    handler = WorkerHandler(contract, ScriptRuntime(LOADS_THEN_ANSWERS_HUGE))
    first = handler.predict({"inputs": []})
    assert first.status == 500 and "longer than 1,000,000 bytes" in first.error and "DIALSGATE_WORKER_ANSWER_BYTES" in first.error
    assert handler.worker.process.poll() is not None, "the worker that answered too much was left running"
    later = handler.predict({"inputs": []})
    assert later.status == 500 and later.error.startswith("not sent: an earlier request reached a limit")
    handler.close()


def test_an_answer_under_the_cap_is_read(monkeypatch):
    monkeypatch.setenv("DIALSGATE_WORKER_ANSWER_BYTES", "4000000")
    handler = WorkerHandler(load_contract(PLAIN / "template.yaml"), ScriptRuntime(LOADS_THEN_ANSWERS_HUGE))
    outcome = handler.predict({"inputs": []})
    assert outcome.status == 200 and len(outcome.response["trace"]) == 3_000_000
    handler.close()


LOADS_THEN_ANSWERS_MANY_VALUES = loads_then_answers("""'{"outputs": [' + "{}," * 1500 + '{}]}'""")


def test_an_answer_of_more_values_than_the_cap_is_not_parsed(monkeypatch):
    """Under its byte cap (64 MiB), an answer of ``{},`` held 1.66 GB once parsed."""
    monkeypatch.setattr(jsontext, "ANSWER_VALUES_CAP", 1000)
    handler = WorkerHandler(load_contract(PLAIN / "template.yaml"), ScriptRuntime(LOADS_THEN_ANSWERS_MANY_VALUES))
    outcome = handler.predict({"inputs": []})
    handler.close()
    assert outcome.status == 500 and "may hold 3,005 JSON values, more than 1,000" in outcome.error, outcome
    with pytest.raises(jsontext.TooManyValues, match="the served model.s answer may hold 1,001 JSON values"):
        Answer(200, "[" + "0," * 1000 + "0]").json()
    assert Answer(200, '{"a": [1, 2, {"b": "c,d"}]}').json() == {"a": [1, 2, {"b": "c,d"}]}


def test_limits_read_their_environment_and_refuse_nonsense(monkeypatch):
    assert limit("worker_load_timeout") == 120 and limit("worker_call_timeout") == 60
    assert limit("worker_answer_bytes") == limit("http_answer_bytes") == 64 * 2**20
    monkeypatch.setenv(LIMITS["worker_load_timeout"].variable, "20")
    assert limit("worker_load_timeout") == 20
    monkeypatch.setenv(LIMITS["worker_load_timeout"].variable, "soon")
    with pytest.raises(ValueError, match="DIALSGATE_WORKER_LOAD_TIMEOUT"):
        limit("worker_load_timeout")


def test_printed_template_strings_are_cut_with_an_ellipsis():
    assert shorten("short") == "short"
    cut = shorten("H" * 1000)
    assert cut.startswith("H" * 200) and "800 more characters" in cut and len(cut) < 240


# --------------------------------------------------------------------------- YAML


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands():
    started = time.monotonic()
    with pytest.raises(TemplateRefused, match="more than 50 YAML aliases"):
        parse_yaml(billion_laughs())
    assert time.monotonic() - started < 5


def test_few_aliases_that_expand_a_lot_are_refused_too():
    # 2 aliases per level, 22 levels: 44 aliases, 2**22 nodes once expanded.
    with pytest.raises(TemplateRefused, match="expand to more than 100,000 nodes"):
        parse_yaml(billion_laughs(levels=22, width=2))


def test_a_recursive_alias_is_refused():
    with pytest.raises(TemplateRefused):
        parse_yaml("a: &a [1, *a]\n")


def test_aliases_of_one_scalar_count_as_aliases():
    # One anchored scalar, 51 aliases of it: few nodes, and still an alias over the cap.
    text = "a: &s lol\n" + "".join(f"k{i}: *s\n" for i in range(51))
    with pytest.raises(TemplateRefused, match=r"more than 50 YAML aliases \(51\)"):
        parse_yaml(text)
    assert parse_yaml("a: &s lol\n" + "".join(f"k{i}: *s\n" for i in range(50)))["k49"] == "lol"


def test_every_template_of_the_repository_reads_as_pyyamls_own_loader_reads_it():
    # The gate parses with libyaml's loader when PyYAML has it: the same documents.
    templates = sorted(REPOSITORY.glob("*.yaml")) + sorted((REPOSITORY / "tests" / "gate" / "corpus").glob("*/template*.yaml"))
    refused = []
    for path in templates:
        try:
            document = parse_yaml(path.read_bytes())
        except TemplateRefused:
            refused.append(path.parent.name)
            continue
        assert document == yaml.load(path.read_bytes(), Loader=yaml.SafeLoader), path
    assert len(templates) - len(refused) > 20
    assert refused == ["template_alias_bomb"]


def test_ordinary_aliases_and_templates_load():
    assert parse_yaml("base: &base {cpu: 1}\nlimits: *base\nrequests: *base\n") == {
        "base": {"cpu": 1},
        "limits": {"cpu": 1},
        "requests": {"cpu": 1},
    }
    assert read_template(PLAIN / "template.yaml") == yaml.safe_load((PLAIN / "template.yaml").read_text())


def test_a_template_over_the_size_cap_is_not_read(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text("Description: " + "x" * (MAX_TEMPLATE_BYTES + 10) + "\n")
    with pytest.raises(TemplateRefused, match="cap"):
        read_template(path)


# --------------------------------------------------------------------------- Dims


def huge_dims_template(tmp_path) -> Path:
    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "mlserver-model").mkdir()
    for name in ("app.py", "nmf_bpix1.joblib"):
        (folder / "mlserver-model" / name).write_bytes((PLAIN / "mlserver-model" / name).read_bytes())
    text = (PLAIN / "template.yaml").read_text().replace("Dims: [-1, 20, 16]", "Dims: [-1, 100000, 100000]")
    (folder / "template.yaml").write_text(text)
    return folder / "template.yaml"


def test_dims_beyond_the_elements_cap_build_nothing_and_fail_the_template_row(tmp_path):
    contract = load_contract(huge_dims_template(tmp_path))
    assert contract.oversized_inputs() == ["OccupancyBPix1 (Dims [-1, 100000, 100000]: 10,000,000,000 values)"]
    with pytest.raises(ValueError, match="elements cap"):
        v2.sample_inputs(contract, n_ls=4)  # refused before any allocation (40 GB as INT32)
    ids = [case.id for case in fast_checks(contract)]
    assert "check_dims_within_limit" in ids and "check_handler_loads" not in ids
    with pytest.raises(CheckFailed, match=r"more than 2,000,000 values .*DIALSGATE_MAX_ELEMENTS_PER_LS.*10,000,000,000"):
        check_dims_within_limit(Subject(contract, {}))


def test_ordinary_dims_pass_the_elements_cap():
    check_dims_within_limit(Subject(load_contract(PLAIN / "template.yaml"), {}))


# --------------------------------------------------------------------------- reference batch


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_a_batch_whose_arrays_exceed_the_cap_is_refused_from_their_headers(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_MAX_BATCH_BYTES", "1000000")
    path = tmp_path / "batch.npz"
    path.write_bytes(npz_bytes(OccupancyBPix1=np.zeros((4000, 20, 16), dtype=np.int32)))  # 5 MB, compresses to KB
    assert path.stat().st_size < 1_000_000
    with pytest.raises(NotPlain, match="more than 1,000,000 bytes"):
        v2.read_npz(path)


def test_a_batch_holding_objects_is_refused(tmp_path):
    path = tmp_path / "batch.npz"
    path.write_bytes(npz_bytes(OccupancyBPix1=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ValueError, match="Python objects"):
        v2.read_npz(path)


def test_a_fifo_as_batch_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "batch.npz")
    started = time.monotonic()
    with pytest.raises(NotPlain, match="FIFO"):
        v2.read_npz(tmp_path / "batch.npz")
    assert time.monotonic() - started < 5


def test_the_reference_batch_reads_as_before():
    contract = load_contract(PLAIN / "template.yaml")
    arrays = v2.reference_arrays(PLAIN / "reference_batch.npz", contract)
    with np.load(PLAIN / "reference_batch.npz") as archive:
        assert np.array_equal(arrays["OccupancyBPix1"], archive["OccupancyBPix1"])
    with zipfile.ZipFile(PLAIN / "reference_batch.npz") as archive:
        assert "OccupancyBPix1.npy" in archive.namelist()


# --------------------------------------------------------------------------- HTTP


class _Large(http.server.BaseHTTPRequestHandler):
    """3 MB answers (10 bytes of padding for the model ``small``), keep-alive as uvicorn serves;
    the server records each request's client address (one per connection)."""

    protocol_version = "HTTP/1.1"
    size = 3_000_000

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.peers.append(self.client_address)
        size = 10 if self.path.startswith("/v2/models/small/") else self.size
        body = b'{"outputs": [], "trace": "' + b"x" * size + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # The client hanging up mid-answer is what the cap tests provoke: no traceback in the output.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def http_server():
    server = _QuietServer(("127.0.0.1", 0), _Large)
    server.peers = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def large_server(http_server):
    return f"http://127.0.0.1:{http_server.server_address[1]}"


def test_requests_share_one_connection(http_server, large_server):
    """The gate's one HTTP client keeps its connection between requests (each new one is a
    connection the relay sets up inside the served container, and MLServer accepts)."""
    client = HttpEndpoint(large_server, "small")
    answers = [client.predict({"inputs": []}) for _ in range(5)]
    client.close()
    assert [answer.status for answer in answers] == [200] * 5
    assert len(http_server.peers) == 5 and len(set(http_server.peers)) == 1, http_server.peers


def test_an_answer_over_the_cap_drops_its_connection_only(http_server, large_server, monkeypatch):
    monkeypatch.setenv("DIALSGATE_HTTP_ANSWER_BYTES", "1000000")
    client = HttpEndpoint(large_server, "m")
    first = client.predict({"inputs": []})
    client.model_path = "/v2/models/small"
    second = client.predict({"inputs": []})
    client.close()
    assert first.status == 500 and "longer than 1,000,000 bytes" in first.error
    assert second.status == 200 and second.response == {"outputs": [], "trace": "x" * 10}
    assert len(set(http_server.peers)) == 2


def test_an_http_answer_over_the_cap_fails_naming_it(large_server, monkeypatch):
    monkeypatch.setenv("DIALSGATE_HTTP_ANSWER_BYTES", "1000000")
    outcome = HttpEndpoint(large_server, "m").predict({"inputs": []})
    assert (
        outcome.status == 500
        and "longer than 1,000,000 bytes" in outcome.error
        and "DIALSGATE_HTTP_ANSWER_BYTES" in outcome.error
    )
    monkeypatch.setenv("DIALSGATE_HTTP_ANSWER_BYTES", "4000000")
    assert HttpEndpoint(large_server, "m").predict({"inputs": []}).status == 200


class _Gzipping(http.server.BaseHTTPRequestHandler):
    """As MLServer 1.5.0 answers (its GZipMiddleware): gzip for a client that accepts it. The answer,
    20 MB of zeros in JSON, shrinks to about 20 KB, far below any cap on the bytes received."""

    protocol_version = "HTTP/1.1"
    plain = b'{"outputs": [{"name": "Junk", "data": [' + b"0," * 10_000_000 + b"0]}]}"
    compressed = gzip.compress(plain, compresslevel=1)  # made before the test measures the client's memory

    def _answer(self):
        self.server.accepted.append(self.headers.get("Accept-Encoding"))
        gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        body = self.compressed if gzipped else self.plain
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def do_GET(self):  # noqa: N802
        self._answer()

    def log_message(self, *args):
        pass


def test_an_answer_is_never_inflated_past_its_cap_on_the_gates_side(monkeypatch):
    """requests asks for gzip by default and MLServer gzips any answer over 500 bytes: a handler's
    20 MB of zeros came as 20 KB, under a 1 MB cap, and was inflated whole before the cap was
    looked at (the container's memory, 4 GiB, was the only bound)."""
    import tracemalloc

    monkeypatch.setenv("DIALSGATE_HTTP_ANSWER_BYTES", "1000000")
    server = _QuietServer(("127.0.0.1", 0), _Gzipping)
    server.accepted = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client = HttpEndpoint(f"http://127.0.0.1:{server.server_address[1]}", "m")
    try:
        tracemalloc.start()
        outcome = client.predict({"inputs": []})
        with pytest.raises(AnswerTooLarge):
            client.get("/v2/models/m")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        client.close()
        server.shutdown()
        server.server_close()
    assert outcome.status == 500 and "longer than 1,000,000 bytes" in outcome.error
    assert server.accepted == ["identity", "identity"]
    assert peak < 5_000_000, f"{peak:,} bytes held for answers capped at 1,000,000"


def test_requests_have_a_timeout_by_default():
    assert HttpEndpoint("http://127.0.0.1:1", "m").timeout == limit("request_timeout") == 120


class DetachedRuntime(ScriptRuntime):
    """Like a container: the process the gate starts (``sh``, as ``docker exec`` would be) is not
    the worker; killing it leaves the worker running, so ``exec`` must find the worker by its id."""

    def worker_command(self, args):
        return ["sh", "-c", 'exec 3<&0; python3 -c "$0" "$@" <&3 & wait', self.script, *args]

    def exec(self, command, stdin=b"", timeout=120):
        return subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)


def _processes_holding(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
    return found


def test_a_worker_past_its_timeout_is_killed_where_it_runs(monkeypatch):
    monkeypatch.setenv("DIALSGATE_WORKER_LOAD_TIMEOUT", "0.1")
    worker = Worker(DetachedRuntime(SLEEPS))
    deadline = time.monotonic() + 10
    while not _processes_holding(worker.identity) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _processes_holding(worker.identity), "the worker did not start"
    with pytest.raises(WorkerLimitReached):
        worker.call("load", folder="", handler="app.Model", name="x", model_file="")
    deadline = time.monotonic() + 10
    while _processes_holding(worker.identity) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _processes_holding(worker.identity), "the worker process kept running after its timeout"
    worker.close()
