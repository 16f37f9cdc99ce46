"""KServe V2 (Open Inference Protocol) datatypes and their numpy equivalents.

DISM templates write datatypes with or without a ``TYPE_`` prefix (``TYPE_INT32`` or ``INT32``);
the V2 protocol itself uses the bare names.
"""

from __future__ import annotations

import numpy as np

V2_TO_NUMPY = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items() if name != "BYTES"}


def normalise_datatype(datatype: str) -> str:
    """``TYPE_INT32`` -> ``INT32``; raises ValueError for names outside the V2 set."""
    name = str(datatype).upper()
    if name.startswith("TYPE_"):
        name = name[len("TYPE_") :]
    if name not in V2_TO_NUMPY:
        raise ValueError(f"unknown V2 datatype {datatype!r}; expected one of {sorted(V2_TO_NUMPY)}")
    return name


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype that holds values of a V2 datatype."""
    return V2_TO_NUMPY[normalise_datatype(datatype)]


def v2_datatype(dtype) -> str:
    """The V2 datatype name of a numpy dtype (bool -> BOOL, float32 -> FP32, ...)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return NUMPY_TO_V2[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no V2 datatype") from None
