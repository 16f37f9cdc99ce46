"""OMS lumisection metadata that DIALS sends beside the monitoring elements.

The template's InputMetadata ``oms_lumisection_info`` (Source OMS, Endpoint lumisections)
reaches the handler as one V2 input per attribute, named ``oms_lumisection_info__<attribute>``,
shape [N], one value per lumisection in the order of the monitoring elements.
"""

from __future__ import annotations

import numpy as np
from mlserver.errors import InferenceError

METADATA = "oms_lumisection_info"
#: attribute -> V2 datatype, as declared in template.yaml
ATTRIBUTES = {"run_number": "INT32", "lumisection_number": "INT32", "pileup": "FP32", "bpix_ready": "BOOL"}
INT32_MAX = 2**31 - 1


def input_name(attribute: str) -> str:
    return f"{METADATA}__{attribute}"


def _values(request_input) -> np.ndarray:
    data = request_input.data
    data = getattr(data, "root", getattr(data, "__root__", data))  # MLServer >= 1.6 / 1.5
    try:
        return np.asarray(data)
    except ValueError as error:
        raise InferenceError(f"input {request_input.name!r}: data is not a regular list ({error})") from None


def decode_attribute(request_input, attribute: str, n_ls: int) -> np.ndarray:
    """One metadata input -> (N,) array; InferenceError naming the input when it is malformed."""
    name = request_input.name
    wanted = ATTRIBUTES[attribute]
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != wanted:
        raise InferenceError(f"input {name!r}: datatype {datatype}, expected {wanted}")
    shape = [int(d) for d in request_input.shape]
    if shape != [n_ls]:
        raise InferenceError(f"input {name!r}: shape {shape}, expected [{n_ls}] (one value per lumisection)")
    values = _values(request_input).reshape(-1)
    if values.size != n_ls:
        raise InferenceError(f"input {name!r}: {values.size} values for shape {shape}")
    if wanted == "BOOL":
        if values.size and values.dtype.kind != "b":
            raise InferenceError(f"input {name!r}: BOOL data must be true/false, received {values.dtype} values")
        return values.astype(bool)
    if values.size and values.dtype.kind not in "iuf":
        raise InferenceError(f"input {name!r}: data must be numbers, received {values.dtype} values")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise InferenceError(f"input {name!r}: values must be finite (NaN or infinity received)")
    if wanted == "INT32":
        if values.size and ((values != np.round(values)).any() or values.min() < 0 or values.max() > INT32_MAX):
            raise InferenceError(f"input {name!r}: {attribute} must be whole numbers in [0, {INT32_MAX}]")
        return values.astype(np.int64)
    if values.size and values.min() < 0:
        raise InferenceError(f"input {name!r}: {attribute} must not be negative")
    return values


def decode_metadata(inputs_by_name: dict, n_ls: int) -> dict[str, np.ndarray]:
    """Every declared attribute, validated; InferenceError naming a missing or malformed one."""
    decoded = {}
    for attribute in ATTRIBUTES:
        name = input_name(attribute)
        if name not in inputs_by_name:
            raise InferenceError(f"input {name!r} is missing: the template declares InputMetadata {METADATA}.{attribute}")
        decoded[attribute] = decode_attribute(inputs_by_name[name], attribute, n_ls)
    return decoded
