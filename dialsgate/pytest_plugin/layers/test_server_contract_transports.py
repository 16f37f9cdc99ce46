"""The fast layer's signature and bad-request checks, sent to the served model over HTTP and
through tritonclient (ids end in @http and @tritonclient; `pytest -k check_input_dims` selects
every transport). Written once in dialsgate/checks/signature.py; only the way requests travel
differs. What only a server has (health, readiness, load, non-V2 bodies) is in the other files.
"""

from __future__ import annotations

import pytest

from dialsgate.checks import explore, signature
from dialsgate.pytest_plugin.options import contract_from_options
from dialsgate.pytest_plugin.parametrize import parametrize_layer_checks
from dialsgate.transports.http import HttpEndpoint
from dialsgate.transports.triton import TritonEndpoint

ENDPOINTS = {"http": HttpEndpoint, "tritonclient": TritonEndpoint}


def pytest_generate_tests(metafunc):
    if "transport_check" in metafunc.fixturenames:
        contract = contract_from_options(metafunc.config)
        parametrize_layer_checks(
            metafunc,
            "transport_check",
            # The exploration over HTTP only: tritonclient builds the same requests, one more time.
            [found for transport in ENDPOINTS for found in signature.cases(contract, transport)]
            + explore.cases(contract, "http"),
        )


@pytest.fixture(scope="session")
def over_transport(served, subject):
    """{transport: the subject whose requests travel that way to the served model}."""
    made = {transport: subject.over(endpoint(served.url, served.model_name)) for transport, endpoint in ENDPOINTS.items()}
    yield made
    for other in made.values():
        other.close()


def test_contract_over_transport(transport_check, over_transport):
    transport_check(over_transport[transport_check.transport])
