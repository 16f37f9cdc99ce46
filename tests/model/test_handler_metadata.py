"""The one handler (mlserver-model/app.py, synced into every server folder) on the 2025F model:
each declared metadata input is required and checked like the maps; a malformed one is an
InferenceError (HTTP 400) naming it; undeclared ``a__b`` inputs are ignored."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

mlserver = pytest.importorskip("mlserver")
from mlserver.errors import InferenceError  # noqa: E402
from mlserver.types import InferenceRequest, RequestInput  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
SERVER_FOLDER = REPOSITORY / "mlserver-model"  # one server folder for both deployments
MODEL_FILE = REPOSITORY / "models" / "pixelnmf-2025f.joblib"


@pytest.fixture(scope="module")
def handler():
    import joblib

    spec = importlib.util.spec_from_file_location("app_2025f_under_test", SERVER_FOLDER / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.Handler.__new__(module.Handler)  # no MLServer settings needed to decode
    handler._model = joblib.load(MODEL_FILE)
    handler._metadata_inputs = dict(handler._model.metadata_inputs)
    return handler


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    with np.load(REPOSITORY / "tests" / "data" / "reference_batch_2025f.npz", allow_pickle=False) as archive:
        return {key: archive[key][:3] for key in archive.files}


def _v2(name: str, array: np.ndarray) -> dict:
    datatype = {"b": "BOOL", "f": "FP32"}.get(array.dtype.kind, "INT32")
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def _request(handler, batch, **replace) -> InferenceRequest:
    names = [*handler._model.input_names, *handler._metadata_inputs]
    inputs = {name: _v2(name, batch[name]) for name in names}
    for name, value in replace.items():
        if value is None:
            del inputs[name]
        else:
            inputs[name] = {**inputs[name], **value} if name in inputs else value
    return InferenceRequest(inputs=[RequestInput(**item) for item in inputs.values()])


def test_well_formed_request_decodes_every_declared_input(handler, batch):
    decoded = handler.decode_maps(_request(handler, batch))
    assert set(decoded) == {*handler._model.input_names, *handler._metadata_inputs}
    assert decoded["oms_lumisection_info__pileup"].dtype == np.float32
    assert decoded["oms_lumisection_info__beams_stable"].dtype == bool
    assert decoded["oms_lumisection_info__run_number"].dtype == np.int32
    flag = handler._model.predict(decoded)
    np.testing.assert_array_equal(flag, batch["expected_flag"])


def test_undeclared_metadata_inputs_are_ignored(handler, batch):
    extra = {"name": "oms_lumisection_info__delivered_lumi", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}
    decoded = handler.decode_maps(_request(handler, batch, oms_lumisection_info__delivered_lumi=extra))
    assert "oms_lumisection_info__delivered_lumi" not in decoded


@pytest.mark.parametrize(
    "name, change",
    [
        ("oms_lumisection_info__pileup", None),
        ("hlt_zerobias__rate", None),
        ("oms_lumisection_info__pileup", {"datatype": "FP64"}),
        ("oms_lumisection_info__beams_stable", {"datatype": "INT32", "data": [1, 1, 1]}),
        ("oms_lumisection_info__beams_stable", {"data": [1.0, 0.0, 1.0], "datatype": "BOOL"}),
        ("hlt_zerobias__rate", {"shape": [2], "data": [10.0, 10.0]}),
        ("hlt_zerobias__rate", {"data": [10.0, 10.0]}),
        ("hlt_zerobias__rate", {"shape": [3, 1]}),
        ("oms_lumisection_info__run_number", {"data": [1.5, 2.5, 3.5]}),
        ("oms_lumisection_info__run_number", {"data": [2**40, 1, 1]}),
        ("oms_lumisection_info__pileup", {"data": ["a", "b", "c"]}),
        ("oms_lumisection_info__pileup", {"data": [[40.0], [41.0], [42.0]]}),
        ("hlt_zerobias__rate", {"data": [10.0, float("nan"), 10.0]}),
        ("oms_lumisection_info__pileup", {"data": [40.0, float("inf"), 40.0]}),
    ],
    ids=[
        "pileup_missing",
        "rate_missing",
        "datatype",
        "bool_as_int32",
        "bool_as_float",
        "length_n_mismatch",
        "too_few_values",
        "not_1d",
        "int_as_float",
        "int32_range",
        "strings",
        "nested",
        "nan",
        "inf",
    ],  # fmt: skip
)
def test_malformed_metadata_is_a_400_naming_it(handler, batch, name, change):
    with pytest.raises(InferenceError, match=name):
        handler.decode_maps(_request(handler, batch, **{name: change}))
