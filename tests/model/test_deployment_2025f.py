"""The 2025F production deployment: BPix2-4 only, OMS metadata inputs and filters persisted as
data in the model file, its own template and reference batch.

Expected values here are written from the issue text (filters, thresholds, inputs), not read
from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pixelnmf import InputError, PixelNMF
from pixelnmf_train import synthetic

REPOSITORY = Path(__file__).resolve().parents[2]
MODEL_FILE = REPOSITORY / "models" / "pixelnmf-2025f.joblib"
TEMPLATE_FILE = REPOSITORY / "template-2025f.yaml"
REFERENCE_BATCH_FILE = REPOSITORY / "tests" / "data" / "reference_batch_2025f.npz"

DCS_BITS = ["cms_active", "beams_stable", "bpix_ready", "fpix_ready", "tibtid_ready", "tob_ready", "tecp_ready", "tecm_ready"]
#: One entry per OMS filter: (V2 input, a failing value, a passing value).
OMS_FILTERS = {
    **{bit: (f"oms_lumisection_info__{bit}", False, True) for bit in DCS_BITS},
    "pileup": ("oms_lumisection_info__pileup", 25.0, 25.5),
    "zerobias_rate": ("hlt_zerobias__rate", 5.0, 5.5),
}
METADATA_DATATYPES = {
    "oms_lumisection_info__run_number": "INT32",
    "oms_lumisection_info__lumisection_number": "INT32",
    "oms_lumisection_info__pileup": "FP32",
    **{f"oms_lumisection_info__{bit}": "BOOL" for bit in DCS_BITS},
    "hlt_zerobias__rate": "FP32",
}


@pytest.fixture(scope="module")
def model_2025f() -> PixelNMF:
    import joblib

    return joblib.load(MODEL_FILE)


@pytest.fixture(scope="module")
def batch_2025f() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_BATCH_FILE, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _inputs(model, batch, rows=slice(None)) -> dict[str, np.ndarray]:
    return {name: np.array(batch[name][rows]) for name in [*model.input_names, *model.metadata_inputs]}


@pytest.fixture(scope="module")
def flagged_ls(model_2025f, batch_2025f) -> dict[str, np.ndarray]:
    """The first dead_2x16_two_layers LS of the batch (all filters passing): flagged."""
    index = int(np.flatnonzero(batch_2025f["kind"] == "dead_2x16_two_layers")[0])
    inputs = _inputs(model_2025f, batch_2025f, slice(index, index + 1))
    flag, metric = model_2025f.predict_with_score(inputs)
    assert flag.tolist() == [True] and metric[0] > 0, "precondition: the LS is flagged when every filter passes"
    return inputs


def test_inputs_are_bpix2_to_4_with_their_minimum_entries(model_2025f):
    assert model_2025f.input_shapes == {"BPix2": (58, 72), "BPix3": (90, 72), "BPix4": (130, 72)}
    assert [layer["min_entries"] for layer in model_2025f.layers] == pytest.approx([0.5e6 / 2, 0.5e6 / 3, 0.5e6 / 4])


def test_metadata_inputs_are_the_templates_input_metadata(model_2025f):
    template = yaml.safe_load(TEMPLATE_FILE.read_text())
    properties = template["Resources"]["PixelNMF2025F"]["Properties"]
    declared = {
        f"{meta['Name']}__{attribute['Name']}": attribute["DataType"]
        for meta in properties["InputMetadata"]
        for attribute in meta["Attributes"]
    }
    assert declared == METADATA_DATATYPES
    assert model_2025f.metadata_inputs == METADATA_DATATYPES
    assert [item["Name"] for item in properties["InputSignature"]] == model_2025f.input_names


def test_filters_are_persisted_as_data(model_2025f):
    state = model_2025f.__getstate__()
    filters = state["parameters"]["filters"]
    expected = [{"input": f"oms_lumisection_info__{bit}", "operator": "==", "value": True} for bit in DCS_BITS]
    expected += [
        {"input": "oms_lumisection_info__pileup", "operator": ">", "value": 25.0},
        {"input": "hlt_zerobias__rate", "operator": ">", "value": 5.0},
    ]
    assert [dict(item) for item in filters] == expected
    assert all(type(item) is dict for item in filters)


def test_reference_batch_gets_exactly_the_expected_flags(model_2025f, batch_2025f):
    result = model_2025f.evaluate(_inputs(model_2025f, batch_2025f))
    wrong = [(i, str(batch_2025f["kind"][i])) for i in np.flatnonzero(result.flag != batch_2025f["expected_flag"])]
    assert not wrong, f"LS flagged against expectation: {wrong}"
    assert ((result.metric > 0) == result.flag).all()
    oms = np.char.startswith(batch_2025f["kind"].astype(str), "oms_")
    assert oms.sum() >= len(OMS_FILTERS), "the batch holds LS failing each filter"
    assert not result.passes_filters[oms].any() and result.passes_filters[~oms].all()


@pytest.mark.parametrize("name", list(OMS_FILTERS))
def test_failing_oms_filter_unflags_a_flagged_ls(model_2025f, flagged_ls, name):
    input_name, failing, passing = OMS_FILTERS[name]
    inputs = {key: np.array(value) for key, value in flagged_ls.items()}
    inputs[input_name][:] = passing
    assert model_2025f.predict(inputs).tolist() == [True]
    inputs[input_name][:] = failing
    flag, metric = model_2025f.predict_with_score(inputs)
    assert flag.tolist() == [False]
    assert metric.tolist() == [0.0] and metric.dtype == np.float32


@pytest.mark.parametrize("input_name", list(METADATA_DATATYPES))
def test_each_metadata_input_is_required(model_2025f, flagged_ls, input_name):
    inputs = dict(flagged_ls)
    del inputs[input_name]
    with pytest.raises(InputError, match=input_name):
        model_2025f.predict(inputs)


@pytest.mark.parametrize(
    "input_name, bad",
    [
        ("oms_lumisection_info__pileup", np.array([np.nan], dtype=np.float32)),
        ("hlt_zerobias__rate", np.array([np.inf], dtype=np.float32)),
        ("oms_lumisection_info__beams_stable", np.array([1.0])),
        ("oms_lumisection_info__run_number", np.array([1.5])),
        ("oms_lumisection_info__pileup", np.array([40.0, 40.0], dtype=np.float32)),
        ("oms_lumisection_info__cms_active", np.array([[True]])),
        ("oms_lumisection_info__lumisection_number", np.array([2**40])),
        ("oms_lumisection_info__pileup", np.array([1e39])),
    ],
    ids=["nan", "inf", "bool_as_float", "int_as_float", "length", "nested", "int32_range", "fp32_range"],
)
def test_malformed_metadata_is_refused_naming_it(model_2025f, flagged_ls, input_name, bad):
    inputs = dict(flagged_ls, **{input_name: bad})
    with pytest.raises(InputError, match=input_name):
        model_2025f.predict(inputs)


def test_flags_the_same_anomalies_as_the_four_layer_model(model, model_2025f):
    """Anomalies placed among BPix2-4 only (BPix1 clean): both deployments flag the same LS,
    and both as the labels say."""
    batch = synthetic.make_reference_batch(seed=31, n_per_kind=2, layers=synthetic.LAYERS_2025F)
    four = model.predict({name: batch[name] for name in model.input_names})
    inputs = {name: batch[name] for name in model_2025f.input_names}
    inputs.update(synthetic.oms_metadata(batch["pileup"]))
    production = model_2025f.predict(inputs)
    np.testing.assert_array_equal(production, four)
    np.testing.assert_array_equal(production, batch["expected_flag"])
