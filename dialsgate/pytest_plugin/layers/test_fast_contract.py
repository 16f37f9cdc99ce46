"""The fast layer's checks, generated from the template under test, judged as the gate judges
them (``checks.findings.judge``).

pytest -k fast                          # all of them
pytest -k check_input_dims              # one check, every input
"""

from dialsgate.checks import fast_checks
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.pytest_plugin.parametrize import judge_item, parametrize_layer_checks


def pytest_generate_tests(metafunc):
    if "contract_check" in metafunc.fixturenames:
        parametrize_layer_checks(metafunc, "contract_check", fast_checks(contract_from_options(metafunc.config)))


def test_contract(contract_check, subject, request):
    judge_item(request, contract_check, subject, "fast")
