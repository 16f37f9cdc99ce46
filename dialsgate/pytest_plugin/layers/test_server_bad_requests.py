"""Malformed requests leave the served model ready and correct.

Each malformed request of the fast layer (``dialsgate.badrequests``) is refused with 400 naming
the input over HTTP too: check_bad_request_refused[...]@http in test_contract_transports.py.
Here: bodies that are not V2 requests at all (MLServer answers them itself), and a valid
request right after all of them still gets the right answer.
"""

from __future__ import annotations

import json

import pytest

from dialsgate.checks import CheckFailed
from dialsgate.protocol import badrequests, v2
from dialsgate.pytest_plugin.layers.server_fixtures import QUOTED_CHARS, answer_refused

BASE_N_LS = 2

# Bodies that are not a V2 request at all. MLServer 1.5.0 (FastAPI 0.110, pydantic 1) answers
# them itself, before the handler runs; observed with the serving image:
#   not JSON text ..................... 422 {"detail":[{"type":"json_invalid",...}]}
#   truncated JSON .................... 422 json_invalid
#   empty body ........................ 422 "field required" (loc body)
#   binary octets (octet-stream) ...... 422 "value is not a valid dict"
#   JSON array / object without inputs  422 "field required" (loc body.inputs)
#   {"inputs": null} .................. 422 "none is not an allowed value"
#   unknown datatype "FLOAT" .......... 422 "value is not a valid enumeration member"
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


def pytest_generate_tests(metafunc):
    if "not_v2_body" in metafunc.fixturenames:
        metafunc.parametrize("not_v2_body", list(NOT_V2_BODIES.values()), ids=list(NOT_V2_BODIES))


@pytest.fixture(scope="module")
def base_body(contract, batch_of) -> dict:
    return v2.request_body(contract, batch_of(BASE_N_LS), flatten=True, request_id="dialsgate-bad-request")


def test_base_request_is_accepted(v2_client, base_body):
    """The cases below break a request that is otherwise valid."""
    answer = v2_client.infer(base_body)
    if answer.status != 200:
        raise answer_refused(f"the valid request the malformed ones are made from ({BASE_N_LS} LS) was refused", answer)


def test_body_that_is_not_a_v2_request_is_refused(v2_client, not_v2_body):
    data, content_type = not_v2_body
    answer = v2_client.infer_raw(data, content_type)
    if not 400 <= answer.status < 500:
        raise CheckFailed(
            f"a body that is not a V2 request was answered HTTP {answer.status} (expected 4xx, never 5xx): "
            f"{answer.text[:QUOTED_CHARS]}"
        )
    if v2_client.model_ready_status() != 200:
        raise CheckFailed("the model is no longer ready after a body that is not a V2 request")


def test_server_still_answers_correctly_after_bad_requests(
    v2_client, contract, batch_of, base_body, expected_response, assert_same_outputs
):
    """Refusals leave no state behind: a valid request right after still gets the right answer."""
    for label, case in badrequests.bad_requests(contract, batch_of(BASE_N_LS)).items():
        v2_client.infer(case.body)
        if v2_client.model_ready_status() != 200:
            raise CheckFailed(f"the model is no longer ready after the malformed request {label!r}")
    v2_client.infer_raw(b"{not json", "application/json")
    answer = v2_client.infer(base_body)
    if answer.status != 200:
        raise answer_refused("a valid request right after the malformed ones was refused", answer)
    assert_same_outputs(v2.outputs_by_name(json.loads(answer.text)), v2.outputs_by_name(expected_response(base_body)))
