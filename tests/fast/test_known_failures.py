"""Known failures are the model author's data: [known_failures] in dialsgate.toml beside the template."""

from __future__ import annotations

from types import SimpleNamespace

from dialsgate.testing import known_failures


def test_known_failures_are_read_beside_the_template(tmp_path):
    (tmp_path / "template.yaml").write_text("")
    (tmp_path / "dialsgate.toml").write_text('[known_failures]\n"check_input_dims[BPix3]" = "tracked in MODEL-12"\n')
    assert known_failures(SimpleNamespace(template_path=tmp_path / "template.yaml")) == {
        "check_input_dims[BPix3]": "tracked in MODEL-12"
    }


def test_no_file_means_no_known_failure(tmp_path):
    assert known_failures(SimpleNamespace(template_path=tmp_path / "template.yaml")) == {}
