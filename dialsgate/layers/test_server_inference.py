"""Inference over HTTP: the served model answers what the folder's handler answers in-process.

The reference batch is sent as production sends it (flattened ``data``); the answer must equal
the in-process handler's, carry exactly the template's OutputSignature (Dims -1 -> N), and echo
the request id; tritonclient gets the same answer. The template's signature, nested data, the
empty batch and the malformed requests are the fast layer's own checks, run over HTTP and
tritonclient in test_contract_transports.py. Declared OMS metadata inputs travel in every request.
"""

from __future__ import annotations

import numpy as np

from dialsgate import v2


def _outputs(answer) -> dict[str, np.ndarray]:
    assert answer.status == 200, f"HTTP {answer.status}: {answer.text[:2000]}"
    return v2.outputs_by_name(answer.json())


def test_reference_batch_matches_inprocess_handler(v2_client, reference_body, reference_expected, assert_same_outputs):
    answer = v2_client.infer(reference_body)
    assert_same_outputs(_outputs(answer), v2.outputs_by_name(reference_expected))


def test_request_id_is_echoed(v2_client, reference_body):
    answer = v2_client.infer(reference_body)
    _outputs(answer)
    assert answer.json().get("id") == reference_body["id"]


def test_response_names_the_model(v2_client, reference_body, contract):
    answer = v2_client.infer(reference_body)
    _outputs(answer)
    assert answer.json().get("model_name") == contract.name


def test_tritonclient_gets_the_same_answer(
    server_url, contract, batch_of, reference_n_ls, reference_expected, assert_same_outputs
):
    import tritonclient.http as triton

    arrays = batch_of(reference_n_ls)
    datatypes = {sig.name: sig.datatype for sig in contract.inputs + contract.metadata_inputs}
    client = triton.InferenceServerClient(url=server_url.removeprefix("http://"), network_timeout=600.0)
    try:
        inputs = []
        for name, array in arrays.items():
            item = triton.InferInput(name, list(array.shape), datatypes[name])
            item.set_data_from_numpy(array, binary_data=False)
            inputs.append(item)
        requested = [triton.InferRequestedOutput(sig.name, binary_data=False) for sig in contract.outputs]
        result = client.infer(contract.name, inputs, outputs=requested, request_id="dialsgate-tritonclient")
        got = {sig.name: result.as_numpy(sig.name) for sig in contract.outputs}
        assert result.get_response().get("id") == "dialsgate-tritonclient"
    finally:
        client.close()
    assert_same_outputs(got, v2.outputs_by_name(reference_expected), where="tritonclient: ")


def test_single_lumisection(v2_client, contract, batch_of, expected_response, template_output_signature, assert_same_outputs):
    body = v2.request_body(contract, batch_of(1), request_id="dialsgate-one-ls")
    answer = v2_client.infer(body)
    assert_same_outputs(_outputs(answer), v2.outputs_by_name(expected_response(body)))
    assert v2.output_signature(answer.json()) == template_output_signature(1)
