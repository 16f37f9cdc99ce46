"""Checks stay quiet on what ordinary DIALS folders legitimately do (each case would be a false alarm)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dialsgate.checks import CheckAdvice, CheckFailed
from dialsgate.checks.package import check_package_has_no_stray_files
from dialsgate.checks.signature import check_flattened_and_nested_agree
from dialsgate.contract.template import load_contract
from dialsgate.protocol import v2
from dialsgate.transports.outcome import Outcome

REPOSITORY = Path(__file__).resolve().parents[2]


def _package(tmp_path, code: str):
    (tmp_path / "model.joblib").write_bytes(b"")
    (tmp_path / "app.py").write_text(code)
    (tmp_path / "reference.npy").write_bytes(b"")
    # A plain folder (check_folder_plain_files is tested on its own): only the stray-file logic is judged here.
    return SimpleNamespace(
        package_folder=tmp_path, contract=SimpleNamespace(model_file=tmp_path / "model.joblib"), require_plain_folder=lambda: None
    )


def test_data_file_the_code_loads_is_not_stray(tmp_path):
    check_package_has_no_stray_files(
        _package(tmp_path, 'import numpy as np\nREFERENCE = np.load(__file__.replace("app.py", "reference.npy"))\n')
    )


def test_data_file_nobody_loads_is_stray(tmp_path):
    with pytest.raises(CheckFailed, match=r"reference\.npy"):
        check_package_has_no_stray_files(_package(tmp_path, "import numpy as np\n"))


class _Handler:
    """Answers flattened requests; nested ones as ``nested`` says (DIALS only sends flattened)."""

    def __init__(self, nested: Outcome, flat: Outcome):
        self.nested, self.flat = nested, flat

    def predict(self, body):
        return self.nested if isinstance(body["inputs"][0]["data"][0], list) else self.flat


def _subject(nested: Outcome):
    contract = load_contract(REPOSITORY / "examples" / "nmf1d" / "template.yaml")
    arrays = v2.sample_inputs(contract, n_ls=3)
    flat = Outcome(response={"outputs": [{"name": "Score", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}]})
    body = v2.request_body(contract, arrays)
    return SimpleNamespace(
        contract=contract, reference_arrays=arrays, reference_body=body, reference_outcome=flat, handler=_Handler(nested, flat)
    )


def test_nested_data_refused_is_no_defect():
    check_flattened_and_nested_agree(_subject(Outcome(status=400, error="Input 'ChargeBPix1': send flattened data")))


def test_nested_data_answered_differently_is_advice():
    """DIALS only sends flattened data: a nested request is outside the contract (advice, not a failure)."""
    other = Outcome(
        response={"outputs": [{"name": "Score", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, np.float32(9.0).item()]}]}
    )
    with pytest.raises(CheckAdvice, match="Score"):
        check_flattened_and_nested_agree(_subject(other))


def test_nested_data_crashing_is_advice():
    with pytest.raises(CheckAdvice, match="HTTP 500"):
        check_flattened_and_nested_agree(_subject(Outcome(status=500, error="ValueError")))
