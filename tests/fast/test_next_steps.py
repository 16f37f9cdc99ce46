"""After a pass the gate prints what to run next, and the gate is never skipped before packaging."""

from __future__ import annotations

from pathlib import Path

from dialsgate.contract.template import load_contract
from dialsgate.gate.verdict import next_steps

REPOSITORY = Path(__file__).resolve().parents[2]
URL = "https://dev-cmsdials-api.web.cern.ch"


def test_from_code_uri_build_then_gate_the_build_folder_then_package():
    steps = next_steps(load_contract(REPOSITORY / "template.yaml"), URL)
    assert len(steps) == 3
    build, gate, package = steps
    assert "dismcli build -f template.yaml" in build
    assert "dialsgate check" in gate and str(REPOSITORY / ".dism-artifacts" / "build" / "PixelNMF") in gate
    assert package.split("#")[0].rstrip().endswith(f"dismcli package -u {URL}")
    assert "dismcli package -u" not in build + gate


def test_from_a_build_folder_package_it(tmp_path):
    build_dir = tmp_path / "project" / ".dism-artifacts" / "build" / "PixelNMF"
    build_dir.mkdir(parents=True)
    steps = next_steps(load_contract(REPOSITORY / "template.yaml", build_dir=build_dir), URL)
    assert steps == [f"cd {tmp_path / 'project'} && dismcli package -u {URL}"]
