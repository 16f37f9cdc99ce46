"""Malformed V2 requests built from a template, each with the input its error message must name.

DIALS sends counts of monitoring elements; a handler must refuse anything else with HTTP 400
and a message naming the input (and stay ready). Every case starts from a valid body.
"""

from __future__ import annotations

import copy

import numpy as np

from . import v2
from .contract import Contract


def _replace_input(body: dict, name: str, **changes) -> dict:
    broken = copy.deepcopy(body)
    for item in broken["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return broken


def bad_requests(contract: Contract, arrays: dict[str, np.ndarray]) -> dict[str, tuple[dict, str]]:
    """{label: (body, name the error must mention)} for every defect that applies to the template."""
    small = {name: array[:2] for name, array in arrays.items()}
    body = v2.request_body(contract, small)
    first = contract.inputs[0]
    first_array = small[first.name]
    wrong_dims = v2.widened(first_array, first.dims)
    wrong_datatype = "FP64" if first.datatype != "FP64" else "INT32"
    cases = {
        "missing_input": ({"inputs": [item for item in body["inputs"] if item["name"] != first.name]}, first.name),
        "unknown_input": (
            {"inputs": body["inputs"] + [v2.request_input("not_a_template_input", first_array, first.datatype)]},
            "not_a_template_input",
        ),
        "wrong_datatype": (_replace_input(body, first.name, datatype=wrong_datatype), first.name),
        "data_length_not_matching_shape": (_replace_input(body, first.name, data=first_array.ravel().tolist()[:-1]), first.name),
        "non_numeric_data": (_replace_input(body, first.name, data=["counts"] * first_array.size), first.name),
        "negative_counts": (_replace_input(body, first.name, data=(-first_array.astype(np.int64) - 1).ravel().tolist()), first.name),
    }
    if wrong_dims is not None:
        cases["wrong_dims"] = (_replace_input(body, first.name, shape=list(wrong_dims.shape), data=wrong_dims.ravel().tolist()), first.name)
    if len(contract.inputs) >= 2:
        second = contract.inputs[1]
        one_ls = small[second.name][:1]
        cases["mismatched_batch_sizes"] = (_replace_input(body, second.name, shape=list(one_ls.shape), data=one_ls.ravel().tolist()), second.name)
    return cases


def non_finite_request(contract: Contract, arrays: dict[str, np.ndarray]) -> tuple[dict, str]:
    """A NaN in the data: not expressible in strict JSON, so only sent in-process."""
    small = {name: array[:2] for name, array in arrays.items()}
    body = v2.request_body(contract, small)
    first = contract.inputs[0]
    data = small[first.name].astype(np.float64).ravel().tolist()
    data[0] = float("nan")
    return _replace_input(body, first.name, data=data), first.name
