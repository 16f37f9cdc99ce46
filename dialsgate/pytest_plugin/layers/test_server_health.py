"""Health and metadata endpoints of the V2 protocol, as KServe's probes and DIALS use them."""

from __future__ import annotations

from dialsgate.checks import CheckFailed
from dialsgate.pytest_plugin.layers.server_fixtures import QUOTED_CHARS, answer_refused


def test_server_is_live(v2_client):
    answer = v2_client.get("/v2/health/live")
    if answer.status != 200:
        raise answer_refused("the server is not live (/v2/health/live)", answer)


def test_server_is_ready(v2_client):
    answer = v2_client.get("/v2/health/ready")
    if answer.status != 200:
        raise answer_refused("the server is not ready (/v2/health/ready)", answer)


def test_model_is_ready(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}/ready")
    if answer.status != 200:
        raise answer_refused(f"model {contract.name!r} is not ready", answer)


def test_server_metadata_answers(v2_client):
    answer = v2_client.get("/v2")
    if answer.status != 200:
        raise answer_refused("the server's metadata (/v2) was refused", answer)
    metadata = answer.json()
    if not metadata.get("name"):
        raise CheckFailed(f"the server's metadata (/v2) names no server: {answer.text[:QUOTED_CHARS]}")
    if "version" not in metadata:
        raise CheckFailed(f"the server's metadata (/v2) gives no version: {answer.text[:QUOTED_CHARS]}")


def test_model_metadata_names_the_model(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}")
    if answer.status != 200:
        raise answer_refused(f"the metadata of model {contract.name!r} was refused", answer)
    if answer.json().get("name") != contract.name:
        raise CheckFailed(
            f"the metadata of model {contract.name!r} names {answer.json().get('name')!r}: {answer.text[:QUOTED_CHARS]}"
        )


def test_unknown_model_is_not_found(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}-no-such-model/ready")
    if not 400 <= answer.status < 500:
        raise CheckFailed(
            f"a model the server does not have was answered HTTP {answer.status} (expected 4xx): {answer.text[:QUOTED_CHARS]}"
        )
