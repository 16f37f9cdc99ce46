"""Malformed V2 requests built from a template, each with the input its error message must name.

DIALS sends counts of monitoring elements, exactly as the template declares them; a hardened
handler refuses anything else with HTTP 400 and a message naming the input (and stays ready).
Every case starts from a valid body.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dialsgate.contract.template import Contract
from dialsgate.protocol import v2


@dataclass(frozen=True)
class BadRequest:
    body: dict
    name: str  # the input the error message must name
    #: DIALS never sends this defect; a handler may ignore it (200) but must not crash (500).
    may_be_ignored: bool = False


def replace_input(body: dict, name: str, **changes) -> dict:
    """``body`` with ``changes`` to its input ``name``. Everything else is the same objects, not
    copies: a body is never changed once made, and copying the data of a large one cost seconds."""
    return {**body, "inputs": [{**item, **changes} if item["name"] == name else item for item in body["inputs"]]}


def bad_requests(contract: Contract, arrays: dict[str, np.ndarray], signed: Iterable[str] = ()) -> dict[str, BadRequest]:
    """{label: BadRequest} for every defect that applies to the template.

    None of them is something DIALS sends (they are outside the template's contract): a handler
    that refuses them is hardened, one that does not gets advice, not a failure. ``signed``:
    integer inputs whose negative values are normal (no ``negative_counts`` request for them).
    """
    signed = set(signed)
    small = {name: array[:2] for name, array in arrays.items()}
    body = v2.request_body(contract, small)
    first = contract.inputs[0]
    first_array = small[first.name]
    wrong_dims = v2.widened(first_array, first.dims)
    wrong_datatype = "FP64" if first.datatype != "FP64" else "INT32"
    cases = {
        "missing_input": BadRequest({"inputs": [item for item in body["inputs"] if item["name"] != first.name]}, first.name),
        # Not something DIALS sends: a handler may ignore an extra input, but must not crash on it.
        "unknown_input": BadRequest(
            {"inputs": body["inputs"] + [v2.request_input("not_a_template_input", first_array, first.datatype)]},
            "not_a_template_input",
            may_be_ignored=True,
        ),
        # Not something DIALS sends either: taking one of the two copies is no defect.
        "duplicated_input": BadRequest({"inputs": body["inputs"] + [dict(body["inputs"][0])]}, first.name, may_be_ignored=True),
        "inputs_empty_list": BadRequest({"inputs": []}, first.name),
        "wrong_datatype": BadRequest(replace_input(body, first.name, datatype=wrong_datatype), first.name),
        "data_length_not_matching_shape": BadRequest(
            replace_input(body, first.name, data=first_array.ravel().tolist()[:-1]), first.name
        ),
        "non_numeric_data": BadRequest(replace_input(body, first.name, data=["counts"] * first_array.size), first.name),
    }
    counts = [
        sig for sig in contract.inputs if np.dtype(v2.DTYPE_OF_DATATYPE[sig.datatype]).kind in "iu" and sig.name not in signed
    ]
    if counts:
        # Integer inputs are counts (monitoring-element entries): a negative one is corrupt data,
        # unless the author declares the input signed (``signed_inputs`` in dialsgate.toml).
        negative = (-small[counts[0].name].astype(np.int64) - 1).ravel().tolist()
        cases["negative_counts"] = BadRequest(replace_input(body, counts[0].name, data=negative), counts[0].name)
    if wrong_dims is not None:
        cases["wrong_dims"] = BadRequest(
            replace_input(body, first.name, shape=list(wrong_dims.shape), data=wrong_dims.ravel().tolist()), first.name
        )
    if len(contract.inputs) >= 2:
        second = contract.inputs[1]
        one_ls = small[second.name][:1]
        cases["mismatched_batch_sizes"] = BadRequest(
            replace_input(body, second.name, shape=list(one_ls.shape), data=one_ls.ravel().tolist()), second.name
        )
    return cases


def non_finite_request(contract: Contract, arrays: dict[str, np.ndarray]) -> BadRequest:
    """A NaN in the data: not expressible in strict JSON, so only sent in-process."""
    small = {name: array[:2] for name, array in arrays.items()}
    body = v2.request_body(contract, small)
    first = contract.inputs[0]
    data = small[first.name].astype(np.float64).ravel().tolist()
    data[0] = float("nan")
    return BadRequest(replace_input(body, first.name, data=data), first.name)
