"""Signature agreement, both directions, by running the handler (in-process, @http, @tritonclient).

Failure checks: a request inside the template's contract (the declared inputs, datatypes and
Dims, flattened, with the declared metadata: what DIALS sends) is answered, with exactly the
OutputSignature (names, datatypes, shapes), in request order. Advice checks: requests outside
the contract (DIALS never sends them) are refused with HTTP 400 naming the input, never a crash.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from dialsgate.checks.base import CheckAdvice, CheckFailed, CheckNotApplicable, CheckNotRun, case, check
from dialsgate.protocol import badrequests, v2
from dialsgate.settings import settings


def _answer(subject, body: dict, what: str) -> dict:
    # The reference batch is answered once per session (it is the largest request).
    outcome = subject.reference_outcome if body is subject.reference_body else subject.handler.predict(body)
    if outcome.status != 200:
        raise CheckFailed(f"{what}: the handler answered HTTP {outcome.status}: {outcome.error}")
    return outcome.response


#: Said by every advice about a request outside the contract.
OUTSIDE = "DIALS never sends this (outside the template's contract)"


def _refused(subject, body: dict, name: str, what: str) -> None:
    """Advice unless a request outside the contract is refused with HTTP 400 naming ``name``."""
    outcome = subject.handler.predict(body)
    if outcome.status == 200:
        raise CheckAdvice(f"{what}: the handler accepted it (harden it: HTTP 400 naming {name!r}); {OUTSIDE}")
    if outcome.status != 400:
        raise CheckAdvice(
            f"{what}: HTTP {outcome.status} (harden it: raise mlserver.errors.InferenceError, HTTP 400); {OUTSIDE}: {outcome.error}"
        )
    if name not in (outcome.error or ""):
        raise CheckAdvice(f"{what}: refused, but the message does not name {name!r}; {OUTSIDE}: {outcome.error}")


def _n_ls(subject) -> int:
    return len(next(iter(subject.reference_arrays.values())))


def _same_outputs(expected: dict, received: dict, what: str) -> None:
    problems = v2.output_differences(v2.outputs_by_name(received), v2.outputs_by_name(expected), f"{what}: ")
    if problems:
        raise CheckFailed("; ".join(problems))


@check(kind="failure", concern="signature", runs_model_code=True)
def check_handler_answers_template_request(subject) -> None:
    """A request built from the template, flattened as DIALS sends it, gets an answer."""
    outcome = subject.reference_outcome
    if outcome.status != 200:
        raise CheckFailed(f"request built from the template: HTTP {outcome.status}: {outcome.error}")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_output_matches_signature(subject, name: str) -> None:
    """The output exists with exactly the template's datatype (FP32 is not FP64) and shape."""
    response = _answer(subject, subject.reference_body, "request built from the template")
    signature = subject.contract.output(name)
    received = v2.output_signature(response)
    if name not in received:
        raise CheckFailed(f"output {name!r} of the OutputSignature is missing from the answer (got {sorted(received)})")
    datatype, shape = received[name]
    expected_shape = list(v2.concrete_shape(signature.dims, _n_ls(subject)))
    if datatype != signature.datatype:
        raise CheckFailed(f"output {name!r} is {datatype}, the template declares {signature.datatype}")
    if shape != expected_shape:
        message = f"output {name!r} has shape {shape}, the template's Dims {list(signature.dims)} mean {expected_shape}"
        if shape == [*expected_shape, 1]:
            message += (
                "; MLServer's NumpyCodec.encode_output adds that axis to a 1-D array (shape [N] becomes [N, 1]): "
                f"declare Dims {[*signature.dims, 1]} for {name!r} in the OutputSignature, or answer shape {expected_shape} "
                "(a ResponseOutput with shape [N])"
            )
        raise CheckFailed(message)


@check(kind="failure", concern="signature", runs_model_code=True)
def check_no_undeclared_outputs(subject) -> None:
    """Every output the handler returns is declared in the OutputSignature."""
    response = _answer(subject, subject.reference_body, "request built from the template")
    declared = {sig.name for sig in subject.contract.outputs}
    extra = sorted(set(v2.output_signature(response)) - declared)
    if extra:
        raise CheckFailed(f"outputs {extra} are not in the OutputSignature {sorted(declared)}")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_input_required(subject, name: str) -> None:
    """Without this template input the request is refused, naming it (DIALS always sends every input)."""
    body = {"inputs": [item for item in subject.small_body["inputs"] if item["name"] != name]}
    _refused(subject, body, name, f"request without input {name!r}")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_input_dims(subject, name: str) -> None:
    """Per-LS dims: data shaped by the template's Dims is accepted (what DIALS sends).

    Built from the template, not from the reference batch, so a template whose Dims disagree
    with the handler fails here even when the batch matches the handler.
    """
    contract = subject.contract
    signature = next(sig for sig in contract.inputs if sig.name == name)
    arrays = v2.sample_inputs(contract, n_ls=2)
    _answer(subject, v2.request_body(contract, arrays), f"input {name!r} shaped by the template's Dims {list(signature.dims)}")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_input_dims_wider_refused(subject, name: str) -> None:
    """Data with one bin more per lumisection than the template's Dims is refused, naming the input."""
    contract = subject.contract
    signature = next(sig for sig in contract.inputs if sig.name == name)
    arrays = v2.sample_inputs(contract, n_ls=2)
    wider = v2.widened(arrays[name], signature.dims)
    if wider is None:
        return
    body = v2.request_body(contract, {**arrays, name: wider})
    _refused(
        subject, body, name, f"input {name!r} with per-LS dims {list(wider.shape[1:])} instead of {list(signature.per_ls_dims)}"
    )


@check(kind="failure", concern="signature", runs_model_code=False)
def check_reference_batch_matches_template(subject) -> None:
    """The batch every other check sends must itself have the template's Dims."""
    problems = v2.shape_mismatches(subject.contract, subject.reference_arrays)
    if problems:
        raise CheckFailed("reference batch disagrees with the template: " + "; ".join(problems))


@check(kind="failure", concern="signature", runs_model_code=True)
def check_input_datatype(subject, name: str) -> None:
    """The input sent with the template's DataType decodes and is answered (what DIALS sends)."""
    _answer(subject, subject.reference_body, f"input {name!r} as the template's DataType")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_input_datatype_bytes_refused(subject, name: str) -> None:
    """BYTES (strings) in place of the template's DataType is refused, naming the input."""
    body = subject.small_body
    size = next(len(item["data"]) for item in body["inputs"] if item["name"] == name)
    _refused(
        subject, badrequests.replace_input(body, name, datatype="BYTES", data=["x"] * size), name, f"input {name!r} sent as BYTES"
    )


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_flattened_and_nested_agree(subject) -> None:
    """Production sends flattened data (check_handler_answers_template_request). Nested lists
    must give the same answer, or be refused (4xx): DIALS never sends them, but a handler should
    not answer them differently."""
    flat = subject.reference_outcome
    if flat.status != 200:
        raise CheckNotRun("check_handler_answers_template_request", "the flattened request was not answered")
    nested = subject.handler.predict(v2.request_body(subject.contract, subject.reference_arrays, flatten=False))
    if 400 <= nested.status < 500:
        return
    if nested.status != 200:
        raise CheckAdvice(f"nested request: the handler answered HTTP {nested.status}; {OUTSIDE}: {nested.error}")
    try:
        _same_outputs(flat.response, nested.response, "nested request")
    except CheckFailed as difference:
        raise CheckAdvice(f"{difference}; {OUTSIDE}") from None


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_metadata_input_malformed_not_crashing(subject, name: str) -> None:
    """A declared OMS metadata input that arrives malformed is refused (400) or ignored, never a 500.

    DIALS sends every declared attribute, one value per lumisection, with its declared datatype;
    a malformed one is outside the contract. A model may filter lumisections on them, so no
    value is assumed to change nothing. Only a crash is advised against here.
    """
    body = subject.small_body
    n_ls = len(next(iter(subject.small_arrays.values())))
    variants = {
        f"with {max(n_ls - 1, 0)} values for {n_ls} lumisections": {"shape": [max(n_ls - 1, 0)], "data": [1] * max(n_ls - 1, 0)},
        "as BYTES strings": {"datatype": "BYTES", "data": ["x"] * n_ls},
    }
    for what, changes in variants.items():
        broken = badrequests.replace_input(body, name, **changes)
        outcome = subject.handler.predict(broken)
        if outcome.status >= 500:
            raise CheckAdvice(
                f"metadata input {name!r} {what}: the handler crashed with HTTP {outcome.status} "
                f"(harden it: refuse it with mlserver.errors.InferenceError naming {name!r}); {OUTSIDE}: {outcome.error}"
            )


@check(kind="failure", concern="signature", runs_model_code=True)
def check_outputs_in_request_order(subject) -> None:
    """Outputs come one per lumisection in request order: a reversed batch reverses them."""
    reversed_arrays = {name: array[::-1] for name, array in subject.reference_arrays.items()}
    answer = _answer(subject, v2.request_body(subject.contract, reversed_arrays), "reversed batch")
    expected = copy.deepcopy(_answer(subject, subject.reference_body, "request built from the template"))
    for output in expected["outputs"]:
        output["data"] = np.asarray(output["data"]).reshape(output["shape"])[::-1].ravel().tolist()
    _same_outputs(expected, answer, "reversed batch")


@check(kind="advice", concern="signature", runs_model_code=True)
def check_answers_vary_across_lumisections(subject) -> None:
    """The answers every comparison rests on differ between lumisections (else they cannot fail).

    Request order, batch against single lumisection, parity and the server's answers are all
    compared with the answer to the reference batch. When every lumisection gets the same
    answer (a model whose filters leave every sample lumisection unevaluated answers alike),
    those comparisons cannot see a difference.
    """
    outcome = subject.reference_outcome
    if outcome.status != 200:
        raise CheckNotRun("check_handler_answers_template_request", "the reference request was not answered")
    n_ls = _n_ls(subject)
    if n_ls < 2:
        raise CheckNotApplicable(f"the reference batch holds {n_ls} lumisection: nothing to compare")
    outputs = v2.outputs_by_name(outcome.response)
    varying = [name for name, array in outputs.items() if len(array) == n_ls and not (array == array[:1]).all()]
    if varying:
        return
    source = "the gate's sample data (no reference batch was given)" if subject.reference_is_sample else "the reference batch"
    raise CheckAdvice(
        f"every lumisection of {source} got the same answer ({', '.join(sorted(outputs))}): the checks that compare "
        "answers (request order, parity, the server's answers) cannot fail on it; give lumisections your model "
        "answers differently with --reference-batch (an .npz with one array per input, e.g. normal and anomalous "
        "lumisections that pass your filters)"
    )


#: Why an empty batch is advice, not a failure.
EMPTY_BATCH_OUTSIDE = (
    "DIALS never sends an empty batch (the production upstream pixel handler cannot answer one and runs in DIALS)"
)


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_empty_batch_answered(subject) -> None:
    """A request with zero lumisections answers empty outputs (or a 400), never a crash."""
    empty = {name: array[:0] for name, array in subject.reference_arrays.items()}
    outcome = subject.handler.predict(v2.request_body(subject.contract, empty))
    if outcome.status >= 500:
        raise CheckAdvice(
            f"an empty batch (N=0) crashed the handler: HTTP {outcome.status} (harden it: empty outputs or HTTP 400); "
            f"{EMPTY_BATCH_OUTSIDE}: {outcome.error}"
        )
    if outcome.status == 200:
        sizes = {name: array.size for name, array in v2.outputs_by_name(outcome.response).items()}
        if any(sizes.values()):
            raise CheckAdvice(f"an empty batch (N=0) answered non-empty outputs {sizes}; {EMPTY_BATCH_OUTSIDE}")


def signed_inputs(contract) -> tuple[str, ...]:
    """Integer inputs whose negative values are normal: ``signed_inputs`` in dialsgate.toml."""
    return tuple(str(name) for name in settings(contract).get("signed_inputs", []))


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_bad_request_refused(subject, label: str) -> None:
    """A malformed request gets HTTP 400 naming the input, never a crash (500)."""
    bad = badrequests.bad_requests(subject.contract, subject.reference_arrays, signed=signed_inputs(subject.contract))[label]
    if bad.may_be_ignored:
        outcome = subject.handler.predict(bad.body)
        if outcome.status >= 500:
            raise CheckAdvice(
                f"{label.replace('_', ' ')}: the handler crashed with HTTP {outcome.status} (harden it: ignore it or HTTP 400); "
                f"{OUTSIDE}: {outcome.error}"
            )
        if outcome.status != 200 and bad.name not in (outcome.error or ""):
            raise CheckAdvice(
                f"{label.replace('_', ' ')}: refused, but the message does not name {bad.name!r}; {OUTSIDE}: {outcome.error}"
            )
        return
    _refused(subject, bad.body, bad.name, label.replace("_", " "))


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_non_finite_counts_refused(subject) -> None:
    bad = badrequests.non_finite_request(subject.contract, subject.reference_arrays)
    _refused(subject, bad.body, bad.name, "NaN in the counts")


#: How a request reaches the handler. "in-process": the handler in its worker container (a
#: worker process); "http": JSON to the served model; "tritonclient": the independent V2 client,
#: which only builds well-formed requests. One set of checks runs over each.
TRANSPORTS = ("in-process", "http", "tritonclient")


def cases(contract, transport: str = "in-process"):
    """The signature and bad-request checks for one transport (ids end in @http, @tritonclient)."""
    well_formed_only = transport == "tritonclient"
    found = [case(check_reference_batch_matches_template)] if transport == "in-process" else []
    found.append(case(check_handler_answers_template_request))
    found += [case(check_output_matches_signature, sig.name, name=sig.name) for sig in contract.outputs]
    found.append(case(check_no_undeclared_outputs))
    for sig in contract.inputs:
        found += [case(check_input_required, sig.name, name=sig.name), case(check_input_dims, sig.name, name=sig.name)]
        if v2.last_fixed_axis(sig.dims) is not None:  # one bin more is possible
            found.append(case(check_input_dims_wider_refused, sig.name, name=sig.name))
        if not well_formed_only:
            found += [
                case(check_input_datatype, sig.name, name=sig.name),
                case(check_input_datatype_bytes_refused, sig.name, name=sig.name),
            ]
    if not well_formed_only:
        found += [case(check_metadata_input_malformed_not_crashing, sig.name, name=sig.name) for sig in contract.metadata_inputs]
        found.append(case(check_flattened_and_nested_agree))
    found += [case(check_outputs_in_request_order), case(check_empty_batch_answered)]
    if transport == "in-process":  # a property of the batch and the model, not of the transport
        found.append(case(check_answers_vary_across_lumisections))
    if not well_formed_only:
        labels = badrequests.bad_requests(contract, _placeholder_arrays(contract), signed=signed_inputs(contract)).keys()
        found += [case(check_bad_request_refused, label, label=label) for label in labels]
    if transport == "in-process":
        found.append(case(check_non_finite_counts_refused))  # NaN is not JSON: only in-process
        return found
    return [replace(found_case, id=f"{found_case.id}@{transport}", transport=transport) for found_case in found]


def _placeholder_arrays(contract):
    # Only the labels are needed at collection time; tiny arrays of the right shapes suffice.
    return v2.sample_inputs(contract, n_ls=2)
