"""Health and metadata endpoints of the V2 protocol, as KServe's probes and DIALS use them."""

from __future__ import annotations


def test_server_is_live(v2_client):
    answer = v2_client.get("/v2/health/live")
    assert answer.status == 200, answer.text


def test_server_is_ready(v2_client):
    answer = v2_client.get("/v2/health/ready")
    assert answer.status == 200, answer.text


def test_model_is_ready(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}/ready")
    assert answer.status == 200, f"model {contract.name!r} not ready: {answer.status} {answer.text}"


def test_server_metadata_answers(v2_client):
    answer = v2_client.get("/v2")
    assert answer.status == 200, answer.text
    metadata = answer.json()
    assert metadata.get("name"), f"server metadata without a name: {metadata}"
    assert "version" in metadata, f"server metadata without a version: {metadata}"


def test_model_metadata_names_the_model(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}")
    assert answer.status == 200, answer.text
    assert answer.json().get("name") == contract.name, answer.text


def test_unknown_model_is_not_found(v2_client, contract):
    answer = v2_client.get(f"/v2/models/{contract.name}-no-such-model/ready")
    assert 400 <= answer.status < 500, f"{answer.status} {answer.text}"
