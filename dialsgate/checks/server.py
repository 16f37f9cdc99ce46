"""The server layer's checks: the folder served by MLServer in its image (``Subject.served``),
asked over HTTP as DIALS and KServe's probes ask it.

Every expected answer comes from the same handler loaded apart in the folder's worker container
(``Subject.handler``, the same image): the server must answer exactly what the folder's own code
answers, in the shape the template promises. The fast layer's signature, bad-request and
exploration checks also run here over HTTP and tritonclient (ids ending in ``@http`` and
``@tritonclient``; ``server_cases``). The served model runs the folder's code, so every row here
rests on it (``runs_model_code``).
"""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np

from dialsgate.checks import explore, signature
from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.subject import HandlerWork
from dialsgate.container.memory import container_peak_memory
from dialsgate.contract.quantity import describe_bytes
from dialsgate.contract.resources import declared_memory_limit_bytes
from dialsgate.limits import limit
from dialsgate.protocol import badrequests, v2

#: The most of an answer's text a reason quotes (the whole answer: the container's log).
QUOTED_CHARS = 300


def answer_refused(what: str, answer) -> CheckFailed:
    """A refusal as a sentence: what was asked, and the HTTP status and text it got."""
    return CheckFailed(f"{what}: HTTP {answer.status}: {answer.text[:QUOTED_CHARS]}")


def tile_batch(arrays: dict[str, np.ndarray], n_ls: int) -> dict[str, np.ndarray]:
    """The reference batch repeated (or cut) along axis 0 to ``n_ls`` lumisections."""
    return {name: np.resize(array, (n_ls, *array.shape[1:])) for name, array in arrays.items()}


def reference_n_ls(subject) -> int:
    return len(next(iter(subject.reference_arrays.values()))) if subject.reference_arrays else 0


def body_of(subject, n_ls: int, request_id: str, flatten: bool = True) -> dict:
    return v2.request_body(subject.contract, tile_batch(subject.reference_arrays, n_ls), flatten=flatten, request_id=request_id)


def expected_response(subject, body: dict) -> dict:
    """The handler's own answer to ``body`` (loaded apart, in its worker container)."""
    outcome = subject.handler.predict(body)
    if outcome.status != 200 or outcome.response is None:
        raise CheckFailed(
            "the handler loaded apart (the reference answers) refused the request the server is checked with: "
            f"HTTP {outcome.status}: {outcome.error}"
        )
    return outcome.response


def assert_same_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str = "") -> None:
    problems = v2.output_differences(got, want, where)
    if problems:
        raise CheckFailed("the served model's answer differs from the handler's own (loaded apart): " + "; ".join(problems))


def served_outputs(answer, what: str) -> dict[str, np.ndarray]:
    if answer.status != 200:
        raise answer_refused(f"the served model refused {what}", answer)
    return v2.outputs_by_name(answer.json())


def _signature_text(found: dict[str, tuple[str, list[int]]]) -> str:
    return ", ".join(f"{name} {datatype} {shape}" for name, (datatype, shape) in found.items()) or "no output"


# --------------------------------------------------------------------------- serving, health, metadata


@check(kind="failure", concern="server", runs_model_code=True)
def check_model_is_served(subject) -> str:
    """MLServer in the serving image loads the folder as ``dismcli start-api`` does and the model
    becomes ready (the root of every other server row)."""
    failure = subject.serving_failure()
    if failure:
        raise CheckFailed(failure)
    served = subject.served
    return (
        f"{subject.contract.name} served by {subject.contract.image} at {served.url} ({served.network_mode} network), "
        f"model ready {served.ready_seconds:.1f} s after start"
    )


@check(kind="failure", concern="server", runs_model_code=True)
def check_server_is_live(subject) -> None:
    answer = subject.client.get("/v2/health/live")
    if answer.status != 200:
        raise answer_refused("the server is not live (/v2/health/live)", answer)


@check(kind="failure", concern="server", runs_model_code=True)
def check_server_is_ready(subject) -> None:
    answer = subject.client.get("/v2/health/ready")
    if answer.status != 200:
        raise answer_refused("the server is not ready (/v2/health/ready)", answer)


@check(kind="failure", concern="server", runs_model_code=True)
def check_model_is_ready(subject) -> None:
    answer = subject.client.get(f"/v2/models/{subject.contract.name}/ready")
    if answer.status != 200:
        raise answer_refused(f"model {subject.contract.name!r} is not ready", answer)


@check(kind="failure", concern="server", runs_model_code=True)
def check_server_metadata_answers(subject) -> None:
    answer = subject.client.get("/v2")
    if answer.status != 200:
        raise answer_refused("the server's metadata (/v2) was refused", answer)
    metadata = answer.json()
    if not metadata.get("name"):
        raise CheckFailed(f"the server's metadata (/v2) names no server: {answer.text[:QUOTED_CHARS]}")
    if "version" not in metadata:
        raise CheckFailed(f"the server's metadata (/v2) gives no version: {answer.text[:QUOTED_CHARS]}")


@check(kind="failure", concern="server", runs_model_code=True)
def check_model_metadata_names_the_model(subject) -> None:
    name = subject.contract.name
    answer = subject.client.get(f"/v2/models/{name}")
    if answer.status != 200:
        raise answer_refused(f"the metadata of model {name!r} was refused", answer)
    if answer.json().get("name") != name:
        raise CheckFailed(f"the metadata of model {name!r} names {answer.json().get('name')!r}: {answer.text[:QUOTED_CHARS]}")


@check(kind="failure", concern="server", runs_model_code=True)
def check_unknown_model_is_not_found(subject) -> None:
    answer = subject.client.get(f"/v2/models/{subject.contract.name}-no-such-model/ready")
    if not 400 <= answer.status < 500:
        raise CheckFailed(
            f"a model the server does not have was answered HTTP {answer.status} (expected 4xx): {answer.text[:QUOTED_CHARS]}"
        )


# --------------------------------------------------------------------------- inference


@check(kind="failure", concern="server", runs_model_code=True)
def check_served_answer_matches_handler(subject) -> None:
    """The reference batch, flattened as DIALS sends it, is answered as the handler answers it apart."""
    body = body_of(subject, reference_n_ls(subject), "dialsgate-reference-batch")
    answer = subject.client.infer(body)
    assert_same_outputs(served_outputs(answer, "the reference batch"), v2.outputs_by_name(expected_response(subject, body)))


@check(kind="failure", concern="server", runs_model_code=True)
def check_request_id_echoed(subject) -> None:
    body = body_of(subject, reference_n_ls(subject), "dialsgate-reference-batch")
    answer = subject.client.infer(body)
    served_outputs(answer, "the reference batch")
    if answer.json().get("id") != body["id"]:
        raise CheckFailed(f"the answer's id is {answer.json().get('id')!r}, the request's {body['id']!r}")


@check(kind="failure", concern="server", runs_model_code=True)
def check_response_names_the_model(subject) -> None:
    body = body_of(subject, reference_n_ls(subject), "dialsgate-reference-batch")
    answer = subject.client.infer(body)
    served_outputs(answer, "the reference batch")
    if answer.json().get("model_name") != subject.contract.name:
        raise CheckFailed(f"the answer names model {answer.json().get('model_name')!r}, not {subject.contract.name!r}")


@check(kind="failure", concern="server", runs_model_code=True)
def check_tritonclient_gets_the_same_answer(subject) -> None:
    """An independent V2 client (tritonclient) gets the handler's own answer."""
    body = body_of(subject, reference_n_ls(subject), "dialsgate-tritonclient", flatten=False)
    outcome = subject.over_transport("tritonclient").handler.predict(body)
    if outcome.status != 200:
        raise CheckFailed(f"the served model refused tritonclient's request: HTTP {outcome.status}: {outcome.error}")
    if outcome.response.get("id") != "dialsgate-tritonclient":
        raise CheckFailed(f"tritonclient's answer has id {outcome.response.get('id')!r}, the request's 'dialsgate-tritonclient'")
    want = v2.outputs_by_name(expected_response(subject, body))
    assert_same_outputs(v2.outputs_by_name(outcome.response), want, where="tritonclient: ")


@check(kind="failure", concern="server", runs_model_code=True)
def check_single_lumisection_served(subject) -> None:
    body = body_of(subject, 1, "dialsgate-one-ls", flatten=False)
    answer = subject.client.infer(body)
    assert_same_outputs(served_outputs(answer, "one lumisection"), v2.outputs_by_name(expected_response(subject, body)))
    got = v2.output_signature(answer.json())
    promised = {sig.name: (sig.datatype, list(v2.concrete_shape(sig.dims, 1))) for sig in subject.contract.outputs}
    if got != promised:
        raise CheckFailed(
            f"one lumisection was answered {_signature_text(got)}; the template's OutputSignature promises "
            f"{_signature_text(promised)}"
        )


# --------------------------------------------------------------------------- bodies that are not requests

#: The malformed requests are made from this many lumisections of the reference batch.
BASE_N_LS = 2

# Bodies that are not a V2 request at all. MLServer 1.5.0 (FastAPI 0.110, pydantic 1) answers
# them itself, before the handler runs; observed with the serving image:
#   not JSON text ..................... 422 {"detail":[{"type":"json_invalid",...}]}
#   truncated JSON .................... 422 json_invalid
#   empty body ........................ 422 "field required" (loc body)
#   binary octets (octet-stream) ...... 422 "value is not a valid dict"
#   JSON array / object without inputs  422 "field required" (loc body.inputs)
#   {"inputs": null} .................. 422 "none is not an allowed value"
# and {"inputs": []} reaches the handler: 400 naming the missing inputs.
NOT_V2_BODIES = {
    "not_json_text": (b"this is not json", "application/json"),
    "truncated_json": (b'{"inputs": [{"name": "x", "shape": [1', "application/json"),
    "empty_body": (b"", "application/json"),
    "binary_octets": (bytes(range(256)) * 4, "application/octet-stream"),
    "json_array": (b"[1, 2, 3]", "application/json"),
    "no_inputs_field": (b'{"id": "x"}', "application/json"),
    "inputs_null": (b'{"inputs": null}', "application/json"),
}


@check(kind="failure", concern="server", runs_model_code=True)
def check_base_request_accepted(subject) -> None:
    """The request the malformed ones are made from is valid (else their rows prove nothing)."""
    answer = subject.client.infer(body_of(subject, BASE_N_LS, "dialsgate-bad-request"))
    if answer.status != 200:
        raise answer_refused(f"the valid request the malformed ones are made from ({BASE_N_LS} LS) was refused", answer)


@check(kind="failure", concern="server", runs_model_code=True)
def check_not_v2_body_refused(subject, label: str) -> None:
    """A body that is not a V2 request gets a 4xx (never a 5xx) and the model stays ready."""
    data, content_type = NOT_V2_BODIES[label]
    answer = subject.client.infer_raw(data, content_type)
    if not 400 <= answer.status < 500:
        raise CheckFailed(
            f"a body that is not a V2 request was answered HTTP {answer.status} (expected 4xx, never 5xx): "
            f"{answer.text[:QUOTED_CHARS]}"
        )
    if subject.client.model_ready_status() != 200:
        raise CheckFailed("the model is no longer ready after a body that is not a V2 request")


@check(kind="failure", concern="server", runs_model_code=True)
def check_answers_right_after_bad_requests(subject) -> None:
    """Refusals leave no state behind: a valid request right after them gets the right answer."""
    client, contract = subject.client, subject.contract
    for label, bad in badrequests.bad_requests(contract, tile_batch(subject.reference_arrays, BASE_N_LS)).items():
        client.infer(bad.body)
        if client.model_ready_status() != 200:
            raise CheckFailed(f"the model is no longer ready after the malformed request {label!r}")
    client.infer_raw(b"{not json", "application/json")
    body = body_of(subject, BASE_N_LS, "dialsgate-bad-request")
    answer = client.infer(body)
    if answer.status != 200:
        raise answer_refused("a valid request right after the malformed ones was refused", answer)
    assert_same_outputs(v2.outputs_by_name(answer.json()), v2.outputs_by_name(expected_response(subject, body)))


# --------------------------------------------------------------------------- memory and load

#: The largest request of the server layer: the reference batch tiled to a whole run.
LARGEST_N_LS = 750


@check(kind="failure", concern="server", runs_model_code=True)
def check_peak_memory_within_declared_limit(subject) -> str:
    """The container's peak memory after the largest request (a whole run, 750 LS, as DIALS sends
    it) against ``Resources.Limits.memory`` (Kubernetes OOM-kills the pod beyond it). The peak is
    the container's since it started (memory.peak on cgroup v2, max_usage_in_bytes on v1), so it
    covers every server row before this one; the load check runs after it. No declared limit
    (the DIALS default): the figure is recorded and the row passes."""
    contract = subject.contract
    declared = declared_memory_limit_bytes(contract)
    answer = subject.client.infer(body_of(subject, LARGEST_N_LS, "dialsgate-peak-memory"))
    if answer.status != 200:
        raise answer_refused(f"the largest request ({LARGEST_N_LS} LS) was refused", answer)
    limit_text = "no Resources.Limits.memory declared" if declared is None else f"declared limit {describe_bytes(declared)}"
    served = subject.served
    if served.container is None:
        note = f"peak memory not measurable on an external server ({served.url}); {limit_text}"
        if declared is not None:
            raise CheckFailed(f"{note}: run the server layer without --server-url to check the limit")
        return note
    peak = container_peak_memory(served.name)
    note = f"peak memory {describe_bytes(peak.bytes)} after a {LARGEST_N_LS}-LS request ({peak.source}); {limit_text}"
    if declared is not None and peak.bytes > declared:
        raise CheckFailed(
            f"the container's peak memory {describe_bytes(peak.bytes)} exceeds "
            f"Resources.{contract.resource_key}.Properties.Resources.Limits.memory = "
            f"{contract.properties['Resources']['Limits']['memory']!r} ({describe_bytes(declared)}): "
            "Kubernetes would OOM-kill the pod; raise the limit or lower the model's memory"
        )
    return note


#: Concurrent load: 8 clients x 12 requests of mixed sizes (96 requests, 3,044 LS in all). Most
#: of DIALS's requests are short; a 750-LS flattened JSON body (a whole run) takes the single
#: MLServer worker seconds on 2 cores, so one of them (and three of 250) keep the row within
#: seconds on a plain folder while large requests still meet concurrent small ones. No request
#: holds more values than one of the exploration (``DIALSGATE_MAX_EXPLORE_ELEMENTS``, 2,000,000:
#: 91 LS of the pixel maps, whose 750-LS body is 84 MB); the whole run is the memory check's.
#: Sizes are shuffled with a fixed seed and dealt round-robin.
CLIENTS = 8
REQUESTS_PER_CLIENT = 12
MIX = {1: 32, 3: 24, 10: 16, 40: 12, 100: 8, 250: 3, 750: 1}
SEED = 20260


def request_sizes() -> list[list[int]]:
    """The sizes each client sends, in order."""
    sizes = [size for size, count in MIX.items() for _ in range(count)]
    if len(sizes) != CLIENTS * REQUESTS_PER_CLIENT:
        raise ValueError(f"MIX holds {len(sizes)} requests, not {CLIENTS} x {REQUESTS_PER_CLIENT}")
    random.Random(SEED).shuffle(sizes)
    return [sizes[client::CLIENTS] for client in range(CLIENTS)]


def load_answers(subject) -> dict[int, dict[str, np.ndarray]]:
    """The handler's own answers to the load check's requests, by size: worked out once, early
    (``early_load_answers``: on the handler's worker while the served model starts) or by the
    check itself."""

    def answers() -> dict[int, dict[str, np.ndarray]]:
        largest = explore.most_lumisections(subject.contract)
        return {
            size: v2.outputs_by_name(expected_response(subject, body_of(subject, size, f"dialsgate-load-{size}")))
            for size in sorted({min(size, largest) for size in MIX})
        }

    return subject.worked_once("load check answers", answers)


def early_load_answers(subject) -> HandlerWork:
    """The load check's answers as work done early on the handler (``Subject.ask_early``): the
    handler's worker is idle while the served model starts, and the check then only sends."""
    return HandlerWork(load_answers, len(MIX) * limit("worker_call_timeout"))


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@check(kind="failure", concern="server", runs_model_code=True)
def check_concurrent_clients_get_handler_answers(subject) -> str:
    """8 concurrent clients get, for every request, the handler's own answer and their request id."""
    largest = explore.most_lumisections(subject.contract)
    expected = load_answers(subject)
    # Encoded once: the client's encoding is not measured.
    bodies = {size: json.dumps(body_of(subject, size, f"dialsgate-load-{size}")).encode() for size in expected}
    plan = [[min(size, largest) for size in sizes] for sizes in request_sizes()]
    latencies: dict[int, list[float]] = {size: [] for size in bodies}
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(CLIENTS)
    clients = [subject.client_factory() for _ in range(CLIENTS)]

    def client_run(index: int) -> None:
        start_gate.wait()
        for number, size in enumerate(plan[index]):
            where = f"client {index} request {number} ({size} LS): "
            started = time.perf_counter()
            try:
                answer = clients[index].infer_raw(bodies[size])
            except Exception as error:  # connection reset, timeout...
                with lock:
                    errors.append(f"{where}{type(error).__name__}: {error}")
                continue
            elapsed = time.perf_counter() - started
            if answer.status != 200:
                problems = [f"HTTP {answer.status}: {answer.text[:QUOTED_CHARS]}"]
            else:
                try:
                    response = answer.json()
                except ValueError as error:  # not JSON, or more values than the gate parses
                    response, problems = None, [str(error)]
                if response is not None:
                    problems = v2.output_differences(v2.outputs_by_name(response), expected[size])
                    if response.get("id") != f"dialsgate-load-{size}":
                        problems.append(f"request id {response.get('id')!r} echoed instead of 'dialsgate-load-{size}'")
            with lock:
                latencies[size].append(elapsed)
                errors.extend(where + problem for problem in problems)

    threads = [threading.Thread(target=client_run, args=(index,), name=f"load-client-{index}") for index in range(CLIENTS)]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    every = [t for values in latencies.values() for t in values]
    if errors:
        # One sentence first (the verdict's line), then up to 30 of them (the report, verdict.json).
        raise CheckFailed(
            f"{len(errors)} of {CLIENTS * REQUESTS_PER_CLIENT} requests of {CLIENTS} concurrent clients did not get the "
            f"handler's own answer; the first: {errors[0]}\n  " + "\n  ".join(errors[1:30])
        )
    return (
        f"{CLIENTS} clients x {REQUESTS_PER_CLIENT} requests, {sum(map(sum, plan))} LS, wall {wall:.1f} s, "
        f"p50 {_percentile(every, 50):.3f} s, p90 {_percentile(every, 90):.3f} s, max {max(every, default=float('nan')):.3f} s"
    )


# --------------------------------------------------------------------------- the layer's cases


def server_cases(contract) -> list:
    """Every server-layer case, in order: served first (the root), the fast layer's signature,
    bad-request and exploration checks over the transports, memory, then the concurrent load
    (the peak memory must be that of single requests as DIALS sends them)."""
    transports = [found for transport in ("http", "tritonclient") for found in signature.cases(contract, transport)]
    return [
        case(check_model_is_served),
        case(check_server_is_live),
        case(check_server_is_ready),
        case(check_model_is_ready),
        case(check_server_metadata_answers),
        case(check_model_metadata_names_the_model),
        case(check_unknown_model_is_not_found),
        case(check_served_answer_matches_handler),
        case(check_request_id_echoed),
        case(check_response_names_the_model),
        case(check_tritonclient_gets_the_same_answer),
        case(check_single_lumisection_served),
        case(check_base_request_accepted),
        *[case(check_not_v2_body_refused, label, label=label) for label in NOT_V2_BODIES],
        case(check_answers_right_after_bad_requests),
        *transports,
        # The exploration over HTTP only: tritonclient builds the same requests, one more time.
        *explore.cases(contract, "http"),
        case(check_peak_memory_within_declared_limit),
        case(check_concurrent_clients_get_handler_answers),
    ]
