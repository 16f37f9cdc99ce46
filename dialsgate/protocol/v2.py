"""V2 (Open Inference Protocol) request bodies and responses as plain JSON-able dicts.

Bodies are built the way DIALS sends them: one input per signature, ``data`` flattened, ``shape``
the full array shape. Used in-process, over HTTP and through tritonclient alike.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np

from dialsgate.contract.template import DTYPE_OF_DATATYPE, Contract
from dialsgate.limits import limit
from dialsgate.plainfiles import NotPlain, read_plain


def concrete_shape(dims: tuple[int, ...], n_ls: int) -> tuple[int, ...]:
    """Template Dims with the batch axis (-1 first) set to ``n_ls``; other -1 become 1."""
    return tuple(n_ls if i == 0 and d == -1 else (1 if d == -1 else d) for i, d in enumerate(dims))


def sample_inputs(contract: Contract, n_ls: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid-looking arrays for every template input (plain counts for integer types), plus the
    declared metadata inputs with plausible values (``metadata_arrays``). Refused (ValueError)
    beyond the elements cap per lumisection (``Contract.oversized_inputs``)."""
    if contract.oversized_inputs():
        raise ValueError(f"no sample data beyond the elements cap per lumisection: {contract.oversized_inputs()}")
    rng = np.random.default_rng(seed)
    arrays = {}
    for signature in contract.inputs:
        shape = concrete_shape(signature.dims, n_ls)
        dtype = np.dtype(DTYPE_OF_DATATYPE[signature.datatype])
        if dtype.kind == "b":
            arrays[signature.name] = rng.random(shape) < 0.5
        elif dtype.kind in "iu":
            arrays[signature.name] = rng.poisson(20, size=shape).astype(dtype)
        elif dtype.kind == "f":
            arrays[signature.name] = rng.random(shape).astype(dtype)
        else:
            arrays[signature.name] = np.full(shape, "x", dtype=object)
    return {**arrays, **metadata_arrays(contract, n_ls)}


#: Plausible OMS values for a lumisection DIALS would run a model on (stable beams, every
#: subsystem ready, typical Run 3 pileup and rates): a model filtering on them keeps the LS.
PLAUSIBLE_RUN_NUMBER = 398_000
PLAUSIBLE_FLOAT = 60.0


def metadata_arrays(contract: Contract, n_ls: int) -> dict[str, np.ndarray]:
    """Each declared metadata input as DIALS sends it, with plausible values.

    BOOL true; run numbers one run; lumisection (and other integer) numbers increasing from 1;
    floating point values positive (60: a Run 3 pileup, a healthy trigger rate).
    """
    arrays = {}
    for signature in contract.metadata_inputs:
        shape = concrete_shape(signature.dims, n_ls)
        dtype = np.dtype(DTYPE_OF_DATATYPE[signature.datatype])
        attribute = signature.name.rsplit("__", 1)[-1].lower()
        if dtype.kind == "b":
            array = np.ones(shape, dtype=bool)
        elif dtype.kind in "iu":
            counting = np.arange(1, n_ls + 1).reshape((n_ls,) + (1,) * (len(shape) - 1)) * np.ones(shape, dtype=np.int64)
            array = np.full(shape, PLAUSIBLE_RUN_NUMBER) if "run" in attribute and "lumi" not in attribute else counting
            array = array.astype(dtype)
        elif dtype.kind == "f":
            array = np.full(shape, PLAUSIBLE_FLOAT, dtype=dtype)
        else:
            array = np.full(shape, "x", dtype=object)
        arrays[signature.name] = array
    return arrays


def request_input(name: str, array: np.ndarray, datatype: str, flatten: bool = True) -> dict:
    array = np.asarray(array)
    data = array.ravel().tolist() if flatten else array.tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def request_body(contract: Contract, arrays: dict[str, np.ndarray], flatten: bool = True, request_id: str | None = None) -> dict:
    """A V2 request with every array in ``arrays``, datatypes taken from the template."""
    datatypes = {sig.name: sig.datatype for sig in contract.inputs + contract.metadata_inputs}
    body = {"inputs": [request_input(name, array, datatypes[name], flatten) for name, array in arrays.items()]}
    if request_id is not None:
        body["id"] = request_id
    return body


def outputs_by_name(response: dict) -> dict[str, np.ndarray]:
    """Response outputs as arrays of their declared shape and datatype."""
    decoded = {}
    for output in response.get("outputs", []):
        dtype = DTYPE_OF_DATATYPE.get(str(output["datatype"]), "object")
        decoded[output["name"]] = np.asarray(output["data"], dtype=dtype).reshape(output["shape"])
    return decoded


def output_signature(response: dict) -> dict[str, tuple[str, list[int]]]:
    """{name: (datatype, shape)} of a response, for comparison with the template."""
    return {output["name"]: (str(output["datatype"]), list(output["shape"])) for output in response.get("outputs", [])}


def last_fixed_axis(dims: tuple[int, ...]) -> int | None:
    """Index (in the full array, batch axis first) of the last per-LS axis with a fixed size."""
    fixed = [axis for axis, size in enumerate(dims) if axis > 0 and size != -1]
    return fixed[-1] if fixed else None


def widened(array: np.ndarray, dims: tuple[int, ...]) -> np.ndarray | None:
    """Zeros shaped like ``array`` with one more bin on its last fixed axis (None if all vary)."""
    axis = last_fixed_axis(dims)
    if axis is None:
        return None
    shape = list(array.shape)
    shape[axis] += 1
    return np.zeros(shape, dtype=array.dtype)


def shape_mismatches(contract: Contract, arrays: dict[str, np.ndarray]) -> list[str]:
    """Inputs whose per-LS shape disagrees with the template's Dims (-1 matches any size)."""
    problems = []
    for signature in contract.inputs:
        array = arrays.get(signature.name)
        if array is None:
            continue
        per_ls = array.shape[1:]
        wanted = signature.per_ls_dims
        if len(per_ls) != len(wanted) or any(w != -1 and w != got for w, got in zip(wanted, per_ls, strict=True)):
            problems.append(f"{signature.name}: per-LS shape {list(per_ls)}, template Dims {list(signature.dims)}")
    return problems


def reference_arrays(batch_file, contract: Contract) -> dict[str, np.ndarray]:
    """The template's inputs from an .npz reference batch (arrays named like the inputs).

    Declared metadata inputs come from the batch when it holds them (``<Name>__<Attribute>``),
    else with plausible values (``metadata_arrays``).
    """
    archive = read_npz(batch_file, [sig.name for sig in contract.inputs + contract.metadata_inputs])
    missing = [sig.name for sig in contract.inputs if sig.name not in archive]
    if missing:
        raise KeyError(f"{batch_file} has no array for template inputs {missing}")
    arrays = {sig.name: archive[sig.name] for sig in contract.inputs}
    n_ls = len(next(iter(arrays.values())))
    plausible = metadata_arrays(contract, n_ls)
    for sig in contract.metadata_inputs:
        arrays[sig.name] = archive[sig.name] if sig.name in archive else plausible[sig.name]
    return arrays


def read_npz(path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``names`` (all when None) of an .npz, read as a folder's file: a plain file
    (``plainfiles.read_plain``, no link, FIFO or device) of at most ``DIALSGATE_MAX_BATCH_BYTES``,
    no pickled object, and the arrays' sizes (from their headers) within the same cap before any
    is decompressed."""
    cap = int(limit("reference_batch_bytes"))
    data = read_plain(Path(path), cap)
    arrays, total = {}, 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if names is not None and name not in names:
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
            if dtype.hasobject:
                raise ValueError(f"{Path(path).name}: array {name!r} holds Python objects (a pickle): it is not read")
            total += math.prod(shape) * dtype.itemsize
            if total > cap:
                raise NotPlain(
                    f"{Path(path).name}: its arrays hold more than {cap:,} bytes (the reference batch cap, "
                    "DIALSGATE_MAX_BATCH_BYTES): not read"
                )
            with archive.open(info) as member:
                arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays


#: Float outputs of two answers to the same request must agree within this (absolute and relative).
FLOAT_TOLERANCE = 1e-6


def output_differences(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str = "") -> list[str]:
    """Differences between two {name: array} output sets: BOOL/int exact, floats within 1e-6."""
    if sorted(got) != sorted(want):
        return [f"{where}outputs {sorted(got)}, expected {sorted(want)}"]
    problems = []
    for name in want:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        if a.shape != b.shape:
            problems.append(f"{where}output {name!r} has shape {a.shape}, expected {b.shape}")
            continue
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            close = np.isclose(a64, b64, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE, equal_nan=True)
            bad = np.flatnonzero(~close.ravel())
            if bad.size:
                problems.append(
                    f"{where}output {name!r}: {bad.size} of {a.size} values differ beyond {FLOAT_TOLERANCE}; first at {bad[0]}: "
                    f"{a64.ravel()[bad[0]]!r}, expected {b64.ravel()[bad[0]]!r}"
                )
        else:
            bad = np.flatnonzero(a.ravel() != b.ravel())
            if bad.size:
                problems.append(
                    f"{where}output {name!r}: {bad.size} of {a.size} values differ; first at {bad[0]}: {a.ravel()[bad[0]]!r}, expected {b.ravel()[bad[0]]!r}"
                )
    return problems
