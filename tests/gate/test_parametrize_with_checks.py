"""parametrize_with_checks: a model author puts the gate's checks in their own test file, as
scikit-learn's parametrize_with_checks does for estimators; ids are the check ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialsgate.environment.serving import CACHE_ENV, cache_dir

pytest_plugins = ("pytester",)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nmf1d"

AUTHORS_TEST = """
from dialsgate.pytest_plugin.parametrize import parametrize_with_checks


@parametrize_with_checks({template!r})
def test_my_model_meets_its_dials_contract(dials_check):
    dials_check()
"""


def _model(tmp_path: Path, *, fp64_score: bool) -> Path:
    copy = tmp_path / "my-model"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "dialsgate.toml"))
    if fp64_score:  # the seed's Metric defect: the handler answers FP64 where the template says FP32
        app = copy / "mlserver-model" / "app.py"
        text = app.read_text()
        text = text.replace('SCORE_DATATYPE = "FP32"', 'SCORE_DATATYPE = "FP64"')
        app.write_text(text.replace("score.astype(np.float32).tolist()", "score.astype(np.float64).tolist()"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy / "template.yaml"


@pytest.fixture(autouse=True)
def _outer_machine(monkeypatch):
    """pytester gives the inner run a home of its own: keep this machine's caches."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv(CACHE_ENV, str(cache_dir()))


def test_the_checks_run_in_an_authors_test_file(pytester, tmp_path):
    pytester.makepyfile(test_mine=AUTHORS_TEST.format(template=str(_model(tmp_path, fp64_score=False))))
    result = pytester.runpytest_inprocess("-p", "dialsgate.pytest_plugin.plugin", "-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes.get("passed", 0) > 30, result.stdout.str()[-3000:]
    selected = pytester.runpytest_inprocess(
        "-p", "dialsgate.pytest_plugin.plugin", "-p", "no:cacheprovider", "-k", "check_output_matches_signature", "-v"
    )
    assert "test_my_model_meets_its_dials_contract[check_output_matches_signature[Score]] PASSED" in selected.stdout.str()


def test_a_defect_fails_the_authors_test_naming_the_check(pytester, tmp_path):
    pytester.makepyfile(test_mine=AUTHORS_TEST.format(template=str(_model(tmp_path, fp64_score=True))))
    result = pytester.runpytest_inprocess(
        "-p", "dialsgate.pytest_plugin.plugin", "-q", "-p", "no:cacheprovider", "-k", "check_output_matches_signature"
    )
    assert result.ret == 1
    assert "check_output_matches_signature[Score]" in result.stdout.str() and "FP64" in result.stdout.str()
