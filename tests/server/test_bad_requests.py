"""Malformed requests are refused with HTTP 400 naming the input; the model stays ready.

The cases are generated from the template's InputSignature (only those that make sense for it:
mismatched batch sizes need two inputs, negative counts an integer input, non-numeric data a
non-BYTES input). Each starts from a valid 2-LS slice of the reference batch, flattened, and
breaks one thing, on the template's last input unless the case says otherwise.
"""

from __future__ import annotations

import copy
import json

import pytest

from dialsgate import v2
from dialsgate.contract import load_contract

BASE_N_LS = 2
UNKNOWN_INPUT = "not_a_template_input"
INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}

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


def _contract_of(config):
    """The contract, at collection time (same options as the root `contract` fixture)."""
    return load_contract(
        config.getoption("--template"), build_dir=config.getoption("--build-dir"), resource_key=config.getoption("--resource")
    )


def bad_request_cases(contract) -> list[str]:
    cases = [
        "missing_input",
        "unknown_input",
        "duplicated_input",
        "wrong_per_ls_dims",
        "wrong_datatype",
        "data_length_not_matching_shape",
        "inputs_empty_list",
    ]
    target = contract.inputs[-1]
    if len(contract.inputs) >= 2:
        cases.append("mismatched_batch_sizes")
    if target.datatype != "BYTES":
        cases.append("non_numeric_data")
    if target.datatype in INTEGER_TYPES:
        cases.append("negative_counts")
    return cases


def pytest_generate_tests(metafunc):
    if "bad_case" in metafunc.fixturenames:
        cases = bad_request_cases(_contract_of(metafunc.config))
        metafunc.parametrize("bad_case", cases, ids=cases)
    if "not_v2_body" in metafunc.fixturenames:
        metafunc.parametrize("not_v2_body", list(NOT_V2_BODIES.values()), ids=list(NOT_V2_BODIES))


def _wrong_datatype(datatype: str) -> str:
    if datatype in INTEGER_TYPES or datatype == "BOOL":
        return "FP32"
    return "INT32" if datatype != "INT32" else "FP32"


def _wrong_shape(signature, n_ls: int) -> list[int]:
    """A shape whose per-LS part contradicts the template: a fixed dim + 1, or one axis too many."""
    shape = list(v2.concrete_shape(signature.dims, n_ls))
    fixed = [i for i, d in enumerate(signature.dims) if i > 0 and d != -1]
    if fixed:
        shape[fixed[-1]] += 1
    else:
        shape.append(2)
    return shape


def _size(shape) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def make_bad_request(case: str, contract, base: dict) -> tuple[dict, list[str]]:
    """(broken body, input names of which at least one must appear in the error message)."""
    body = copy.deepcopy(base)
    inputs = body["inputs"]
    first, last = contract.inputs[0], contract.inputs[-1]
    item = next(entry for entry in inputs if entry["name"] == last.name)
    if case == "missing_input":
        body["inputs"] = [entry for entry in inputs if entry["name"] != first.name]
        return body, [first.name]
    if case == "unknown_input":
        inputs.append({**copy.deepcopy(item), "name": UNKNOWN_INPUT})
        return body, [UNKNOWN_INPUT]
    if case == "duplicated_input":
        inputs.append(copy.deepcopy(item))
        return body, [last.name]
    if case == "wrong_per_ls_dims":
        item["shape"] = _wrong_shape(last, BASE_N_LS)
        item["data"] = (item["data"] * 2)[: _size(item["shape"])]
        return body, [last.name]
    if case == "wrong_datatype":
        item["datatype"] = _wrong_datatype(last.datatype)
        return body, [last.name]
    if case == "data_length_not_matching_shape":
        item["data"] = item["data"][:-1]
        return body, [last.name]
    if case == "inputs_empty_list":
        body["inputs"] = []
        return body, [first.name]
    if case == "mismatched_batch_sizes":
        item["shape"] = [BASE_N_LS - 1, *item["shape"][1:]]
        item["data"] = item["data"][: _size(item["shape"])]
        return body, [last.name]
    if case == "non_numeric_data":
        item["data"][0] = "not-a-number"
        return body, [last.name]
    if case == "negative_counts":
        item["data"][len(item["data"]) // 2] = -1
        return body, [last.name]
    raise ValueError(f"unknown case {case}")


@pytest.fixture(scope="module")
def base_body(contract, batch_of) -> dict:
    return v2.request_body(contract, batch_of(BASE_N_LS), flatten=True, request_id="dialsgate-bad-request")


def test_base_request_is_accepted(v2_client, base_body):
    """The cases below break a request that is otherwise valid."""
    answer = v2_client.infer(base_body)
    assert answer.status == 200, f"HTTP {answer.status}: {answer.text[:2000]}"


def test_bad_request_is_refused(v2_client, contract, base_body, bad_case):
    body, names = make_bad_request(bad_case, contract, base_body)
    answer = v2_client.infer(body)
    assert answer.status < 500, f"{bad_case}: server error HTTP {answer.status}: {answer.text[:2000]}"
    assert answer.status == 400, f"{bad_case}: HTTP {answer.status} instead of 400: {answer.text[:2000]}"
    assert any(name in answer.text for name in names), f"{bad_case}: the error does not name {names}: {answer.text[:2000]}"
    assert v2_client.model_ready_status() == 200, f"{bad_case}: model no longer ready after the refusal"


def test_body_that_is_not_a_v2_request_is_refused(v2_client, not_v2_body):
    data, content_type = not_v2_body
    answer = v2_client.infer_raw(data, content_type)
    assert 400 <= answer.status < 500, f"HTTP {answer.status} (expected 4xx, never 5xx): {answer.text[:2000]}"
    assert v2_client.model_ready_status() == 200, "model no longer ready after a malformed body"


def test_server_still_answers_correctly_after_bad_requests(
    v2_client, contract, base_body, expected_response, assert_same_outputs
):
    """Refusals leave no state behind: a valid request right after still gets the right answer."""
    for case in bad_request_cases(contract):
        v2_client.infer(make_bad_request(case, contract, base_body)[0])
    v2_client.infer_raw(b"{not json", "application/json")
    answer = v2_client.infer(base_body)
    assert answer.status == 200, f"HTTP {answer.status}: {answer.text[:2000]}"
    assert_same_outputs(v2.outputs_by_name(json.loads(answer.text)), v2.outputs_by_name(expected_response(base_body)))
