"""The parity layer: where the model code ran is the image's own.

The fast layer already runs every handler and joblib check in the folder's worker container (the
serving image, see dialsgate/container/worker.py). This layer proves that what ran it is what the
image profile says (Python minor, every installed distribution at the image's version, nothing
foreign in a stand-in) and that the model file was written with those versions
(no InconsistentVersionWarning, no numpy-2 pickle).
"""

from __future__ import annotations

from dialsgate.checks import parity_checks
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.pytest_plugin.parametrize import judge_item, parametrize_layer_checks


def pytest_generate_tests(metafunc):
    if "parity_check" in metafunc.fixturenames:
        parametrize_layer_checks(metafunc, "parity_check", parity_checks(contract_from_options(metafunc.config)))


def test_parity(parity_check, subject, request):
    judge_item(request, parity_check, subject, "parity")
