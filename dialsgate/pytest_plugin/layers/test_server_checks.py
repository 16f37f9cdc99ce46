"""The server layer: the folder served by MLServer in its image, checked over HTTP and
tritonclient (``checks.server``), judged as the gate judges it. The served container is the
subject's, started by the first row and stopped with the session.

    pytest --dials-template t.yaml --dials-layers server
    pytest --dials-template t.yaml --dials-layers server --dials-server-url http://127.0.0.1:8080
"""

from __future__ import annotations

from dialsgate.checks.server import server_cases
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.pytest_plugin.parametrize import judge_item, parametrize_layer_checks


def pytest_generate_tests(metafunc):
    if "server_check" in metafunc.fixturenames:
        parametrize_layer_checks(metafunc, "server_check", server_cases(contract_from_options(metafunc.config)))


def test_server(server_check, subject, request):
    judge_item(request, server_check, subject, "server")
