"""Known failures are the model author's data: [known_failures] in dialsgate.toml beside the template."""

from __future__ import annotations

from types import SimpleNamespace

from dialsgate.settings import known_failures


def test_known_failures_are_read_beside_the_template(tmp_path):
    (tmp_path / "template.yaml").write_text("")
    (tmp_path / "dialsgate.toml").write_text('[known_failures]\n"check_input_dims[BPix3]" = "tracked in MODEL-12"\n')
    assert known_failures(SimpleNamespace(template_path=tmp_path / "template.yaml")) == {
        "check_input_dims[BPix3]": "tracked in MODEL-12"
    }


def test_no_file_means_no_known_failure(tmp_path):
    assert known_failures(SimpleNamespace(template_path=tmp_path / "template.yaml")) == {}


def test_signed_inputs_get_no_negative_counts_request(tmp_path):
    from pathlib import Path

    from dialsgate.checks.signature import signed_inputs
    from dialsgate.contract.template import load_contract
    from dialsgate.protocol import badrequests, v2

    example = Path(__file__).resolve().parents[2] / "examples" / "nmf1d"
    contract = load_contract(example / "template.yaml")
    arrays = v2.sample_inputs(contract, n_ls=2)
    first = contract.inputs[0].name
    assert contract.inputs[0].datatype == "INT32"
    assert "negative_counts" in badrequests.bad_requests(contract, arrays)
    assert "negative_counts" not in badrequests.bad_requests(contract, arrays, signed=[first])
    (tmp_path / "template.yaml").write_text("")
    (tmp_path / "dialsgate.toml").write_text(f'signed_inputs = ["{first}"]\n')
    assert signed_inputs(SimpleNamespace(template_path=tmp_path / "template.yaml")) == (first,)
