"""A verdict says where it came from and what it could not see (provenance, answers that never vary,
resource types the gate does not judge)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dialsgate.checks import CheckAdvice, CheckNotApplicable
from dialsgate.checks.signature import check_answers_vary_across_lumisections
from dialsgate.contract.template import UnsupportedResourceType, load_contract
from dialsgate.environment.runtime import NO_CONTAINER_ENV
from dialsgate.fingerprint import tree_sha256
from dialsgate.gate.cli import check_parser
from dialsgate.gate.provenance import provenance
from dialsgate.gate.runner import Row, run_gate
from dialsgate.gate.verdict import print_sandbox, print_verdict, read_verdict_rows, write_verdict_json
from dialsgate.protocol import v2
from dialsgate.report.facts import provenance_facts
from dialsgate.transports.outcome import Outcome

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"


def _answering(scores: list[float], *, sample: bool) -> SimpleNamespace:
    contract = load_contract(EXAMPLE / "template.yaml")
    arrays = v2.sample_inputs(contract, n_ls=len(scores))
    response = {"outputs": [{"name": "Score", "datatype": "FP32", "shape": [len(scores)], "data": scores}]}
    return SimpleNamespace(
        contract=contract, reference_arrays=arrays, reference_outcome=Outcome(response=response), reference_is_sample=sample
    )


def test_answers_that_vary_pass():
    check_answers_vary_across_lumisections(_answering([0.1, 0.7, 0.1], sample=True))


def test_sample_data_answered_alike_is_advice_asking_for_a_reference_batch():
    with pytest.raises(CheckAdvice, match=r"sample data .* --reference-batch"):
        check_answers_vary_across_lumisections(_answering([0.0, 0.0, 0.0], sample=True))


def test_a_reference_batch_answered_alike_is_advice_too():
    with pytest.raises(CheckAdvice, match="every lumisection of the reference batch"):
        check_answers_vary_across_lumisections(_answering([0.5, 0.5], sample=False))


def test_one_lumisection_is_not_applicable():
    with pytest.raises(CheckNotApplicable):
        check_answers_vary_across_lumisections(_answering([0.5], sample=False))


def test_folder_hash_follows_every_file(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(EXAMPLE / "mlserver-model", folder)
    before = tree_sha256(folder)
    assert tree_sha256(folder) == before
    (folder / "notes.txt").write_text("a stray file dismcli package would zip\n")
    assert tree_sha256(folder) != before


def test_verdict_json_records_where_it_came_from(tmp_path):
    contract = load_contract(EXAMPLE / "template.yaml")
    batch = EXAMPLE / "reference_batch.npz"
    origin = provenance(contract, strict=True, reference_batch=batch, with_image=False)
    assert origin["strict"] is True and origin["dialsgate"]
    assert origin["folder_sha256"] == tree_sha256(contract.code_dir)
    assert len(origin["model_file_sha256"]) == 64 and len(origin["reference_batch_sha256"]) == 64
    assert origin["image"] == {"name": contract.image, "kind": "not used"}
    rows = [Row("fast", "check_x", "passed"), Row("fast", "check_handler_loads", "passed")]
    path = write_verdict_json(rows, tmp_path / "verdict.json", origin)
    document = json.loads(path.read_text())
    assert document["provenance"] == origin and origin["known_failures_ignored"] is False
    # The keys the GitLab job and tests/installed read, then the finding's own (resource, kind, ...).
    kept = ("layer", "check", "result", "reason", "forgeable")
    assert [{key: row[key] for key in kept} for row in read_verdict_rows(path)] == [
        {"layer": "fast", "check": "check_x", "result": "passed", "reason": "", "forgeable": False},
        {"layer": "fast", "check": "check_handler_loads", "result": "passed", "reason": "", "forgeable": True},
    ]
    assert {"resource", "transport", "kind", "concern", "root", "evidence"} <= set(read_verdict_rows(path)[0])


def test_a_tritonserver_resource_is_named_as_not_supported(tmp_path):
    template = yaml.safe_load((EXAMPLE / "template.yaml").read_text())
    resource = next(iter(template["Resources"].values()))
    resource["Type"] = "InferenceService::Tritonserver::ONNX"
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template))
    with pytest.raises(UnsupportedResourceType, match=r"Tritonserver::ONNX.*not supported yet"):
        load_contract(tmp_path / "template.yaml")


def test_the_gate_gives_one_not_supported_row_for_a_tritonserver_resource(tmp_path):
    template = yaml.safe_load((EXAMPLE / "template.yaml").read_text())
    next(iter(template["Resources"].values()))["Type"] = "InferenceService::Tritonserver::Python"
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template))
    args = check_parser().parse_args([str(tmp_path / "template.yaml"), "--no-report"])
    verdict = run_gate(args, [])
    assert [(row.check, row.result) for row in verdict.rows] == [("resource_type_supported", "not supported")]
    assert "Tritonserver::Python" in verdict.rows[0].reason and not verdict.passed


def test_the_verdict_says_where_model_code_ran(monkeypatch, capsys):
    contract = load_contract(EXAMPLE / "template.yaml")
    monkeypatch.delenv(NO_CONTAINER_ENV, raising=False)
    origin = provenance(contract, strict=False, reference_batch=None, with_image=False)
    code = origin["model_code"]
    assert code["where"] == "worker container" and code["network"] == "none" and code["memory_bytes"] == 4 * 2**30
    print_sandbox({**origin, "server_network": "none"})
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("model code ran in a worker container of the image: network none")
    assert second.startswith("the server layer's container had no network either")
    assert ("model code ran", f"in a worker container of the image: network none, {code['limits']}", False) in provenance_facts(
        origin
    )

    monkeypatch.setenv(NO_CONTAINER_ENV, "1")
    origin = provenance(contract, strict=False, reference_batch=None, with_image=False)
    assert origin["model_code"] == {"where": "host", "why": "--no-container"}
    print_sandbox({**origin, "server_network": "host"})
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("MODEL CODE WAS JUDGED OUTSIDE THE SERVING IMAGE (--no-container)") and "cannot pass" in first
    assert second.startswith("the server layer ran MLServer with the host's network")


def test_the_verdict_names_the_rows_the_folders_code_could_forge(capsys):
    rows = [
        Row("fast", "check_template_schema", "passed"),
        Row("fast", "check_pickle_globals_safe", "passed"),
        Row("fast", "check_handler_loads", "passed"),
        Row("fast", "check_input_dims[Occupancy]", "passed"),
        Row("server", "check_input_dims[Occupancy]@http", "passed"),
        Row("server", "check_server_is_live", "passed"),
        Row("server", "(layer)", "error", "pytest did not finish"),
        Row("server", "check_input_dims[Occupancy]@http", "not run", "(see check_model_is_served)", root="check_model_is_served"),
    ]
    # The last rests on the folder's code but nothing came of it: not in the sentence.
    assert [row.forgeable for row in rows] == [False, False, True, True, True, True, False, True]
    print_verdict(rows, columns=400)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("4 rows come from the folder's own code running in the sandbox and could be forged by it")
    assert "packaging 1, signature 2, server 1;" in last and '"forgeable": true in verdict.json' in last
    assert "check_template_schema" not in last and "check_pickle_globals_safe" not in last


def test_no_forgeable_line_without_such_rows(capsys):
    print_verdict([Row("fast", "check_template_schema", "failed", "bad")], columns=200)
    assert "could be forged" not in capsys.readouterr().out
