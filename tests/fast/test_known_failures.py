"""Known failures are the model author's data: [known_failures] in dialsgate.toml beside the template."""

from __future__ import annotations

from pathlib import Path
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


# -- --ignore-known-failures: a maintainer judges the folder without its author's declarations --

pytest_plugins = ("pytester",)

LAYER_MODULE = """
import pytest

from types import SimpleNamespace

from dialsgate.checks import CheckAdvice, CheckFailed, case, check
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.pytest_plugin.parametrize import judge_item, parametrize_layer_checks


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_declared_advice(subject):
    raise CheckAdvice("an empty batch (N=0) crashed the handler")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_declared_failure(subject):
    raise CheckFailed("output 'Score' is FP64")


def pytest_generate_tests(metafunc):
    parametrize_layer_checks(metafunc, "contract_check", [case(check_declared_advice), case(check_declared_failure)])


def test_contract(contract_check, request):
    judge_item(request, contract_check, SimpleNamespace(contract=contract_from_options(request.config), wait_for_handler_work=lambda: None), "fast")
"""

#: The plugin's template options without its layer collection (only this module runs).
CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--dials-template")
    parser.addoption("--dials-build-dir")
    parser.addoption("--dials-resource")
"""


def _judged(pytester, *options) -> dict[str, str]:
    import json
    import shutil

    example = Path(__file__).resolve().parents[2] / "examples" / "nmf1d"
    folder = pytester.path / "folder"
    if not folder.exists():
        shutil.copytree(example, folder, ignore=shutil.ignore_patterns("__pycache__", "dialsgate.toml"))
    (folder / "dialsgate.toml").write_text(
        '[known_failures]\n"check_declared_advice" = "never empty; MODEL-7"\n"check_declared_failure" = "MODEL-8"\n'
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_layer=LAYER_MODULE)
    summary = pytester.path / "summary.json"
    pytester.runpytest_inprocess(
        "test_layer.py", "-p", "dialsgate.pytest_plugin.results", "--gate-summary", str(summary),
        "--dials-template", str(folder / "template.yaml"), *options,
    )  # fmt: skip
    return {row["check"]: row["outcome"] for row in json.loads(summary.read_text())["results"]}


def test_known_failures_are_honoured_by_default(pytester):
    assert _judged(pytester, "--dials-strict") == {"check_declared_advice": "advice", "check_declared_failure": "xfailed"}


def test_ignored_known_failures_are_judged_as_if_not_declared(pytester):
    assert _judged(pytester, "--dials-strict", "--dials-ignore-known-failures") == {
        "check_declared_advice": "failed",
        "check_declared_failure": "failed",
    }
    assert _judged(pytester, "--dials-ignore-known-failures") == {
        "check_declared_advice": "advice",
        "check_declared_failure": "failed",
    }


def test_the_gate_passes_ignore_known_failures_to_every_layer_and_records_it(monkeypatch, tmp_path):
    from dialsgate.gate import runner
    from dialsgate.gate.cli import check_parser
    from dialsgate.gate.verdict import verdict_provenance

    example = Path(__file__).resolve().parents[2] / "examples" / "nmf1d"
    (tmp_path / "nmf1d").mkdir()
    for name in ("template.yaml",):
        (tmp_path / "nmf1d" / name).write_bytes((example / name).read_bytes())
    (tmp_path / "nmf1d" / "dialsgate.toml").write_text('[known_failures]\n"check_input_dims[x]" = "MODEL-1"\n')
    seen = []
    monkeypatch.setattr(runner, "judge_layer", lambda layer, subject, key, strict, known, **_: seen.append((layer, known)) or [])
    for given, wanted in (([], False), (["--strict", "--ignore-known-failures"], True)):
        seen.clear()
        args = check_parser().parse_args([str(tmp_path / "nmf1d" / "template.yaml"), "--layers", "fast,parity", *given])
        verdict = runner.run_gate(args, [])
        assert [layer for layer, _ in seen] == ["fast", "parity"]
        assert all((known == {}) is wanted for _, known in seen)
        assert verdict_provenance(verdict, args)["known_failures_ignored"] is wanted
