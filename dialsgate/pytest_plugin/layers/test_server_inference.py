"""Inference over HTTP: the served model answers what the folder's handler answers in-process.

The reference batch is sent as production sends it (flattened ``data``); the answer must equal
the in-process handler's, carry exactly the template's OutputSignature (Dims -1 -> N), and echo
the request id; tritonclient gets the same answer. The template's signature, nested data, the
empty batch and the malformed requests are the fast layer's own checks, run over HTTP and
tritonclient in test_contract_transports.py. Declared OMS metadata inputs travel in every request.
"""

from __future__ import annotations

import numpy as np

from dialsgate.checks import CheckFailed
from dialsgate.protocol import v2
from dialsgate.pytest_plugin.layers.server_fixtures import answer_refused
from dialsgate.transports.triton import TritonEndpoint


def _outputs(answer, what: str) -> dict[str, np.ndarray]:
    if answer.status != 200:
        raise answer_refused(f"the served model refused {what}", answer)
    return v2.outputs_by_name(answer.json())


def _signature_text(signature: dict[str, tuple[str, list[int]]]) -> str:
    return ", ".join(f"{name} {datatype} {shape}" for name, (datatype, shape) in signature.items()) or "no output"


def test_reference_batch_matches_inprocess_handler(v2_client, reference_body, reference_expected, assert_same_outputs):
    answer = v2_client.infer(reference_body)
    assert_same_outputs(_outputs(answer, "the reference batch"), v2.outputs_by_name(reference_expected))


def test_request_id_is_echoed(v2_client, reference_body):
    answer = v2_client.infer(reference_body)
    _outputs(answer, "the reference batch")
    if answer.json().get("id") != reference_body["id"]:
        raise CheckFailed(f"the answer's id is {answer.json().get('id')!r}, the request's {reference_body['id']!r}")


def test_response_names_the_model(v2_client, reference_body, contract):
    answer = v2_client.infer(reference_body)
    _outputs(answer, "the reference batch")
    if answer.json().get("model_name") != contract.name:
        raise CheckFailed(f"the answer names model {answer.json().get('model_name')!r}, not {contract.name!r}")


def test_tritonclient_gets_the_same_answer(
    server_url, contract, batch_of, reference_n_ls, reference_expected, assert_same_outputs
):
    """An independent V2 client (tritonclient) gets the same answer as the in-process handler."""
    body = v2.request_body(contract, batch_of(reference_n_ls), request_id="dialsgate-tritonclient")
    client = TritonEndpoint(server_url, contract.name)
    try:
        outcome = client.predict(body)
    finally:
        client.close()
    if outcome.status != 200:
        raise CheckFailed(f"the served model refused tritonclient's request: HTTP {outcome.status}: {outcome.error}")
    if outcome.response.get("id") != "dialsgate-tritonclient":
        raise CheckFailed(f"tritonclient's answer has id {outcome.response.get('id')!r}, the request's 'dialsgate-tritonclient'")
    assert_same_outputs(v2.outputs_by_name(outcome.response), v2.outputs_by_name(reference_expected), where="tritonclient: ")


def test_single_lumisection(v2_client, contract, batch_of, expected_response, template_output_signature, assert_same_outputs):
    body = v2.request_body(contract, batch_of(1), request_id="dialsgate-one-ls")
    answer = v2_client.infer(body)
    assert_same_outputs(_outputs(answer, "one lumisection"), v2.outputs_by_name(expected_response(body)))
    got, promised = v2.output_signature(answer.json()), template_output_signature(1)
    if got != promised:
        raise CheckFailed(
            f"one lumisection was answered {_signature_text(got)}; the template's OutputSignature promises "
            f"{_signature_text(promised)}"
        )
