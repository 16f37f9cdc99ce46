"""Peak memory of the served model against the template's declared memory limit.

The largest request the server layer sends (the reference batch tiled to 750 lumisections, a
whole run as DIALS sends it, the largest size of test_load.py) is answered, then the container's
peak memory is read from its cgroup (``container_peak_memory``: memory.peak on cgroup v2,
memory.max_usage_in_bytes on v1, read inside the container). The peak is the container's since it started, so it also covers every
server test before this one (the concurrent load test included): it is what the pod would
have needed. The figure is printed and recorded in the verdict; the test fails when it exceeds
``Resources.Limits.memory`` (Kubernetes would OOM-kill the pod there). No declared limit (the
DIALS default): the figure is recorded and the test passes.
"""

from __future__ import annotations

import pytest

from dialsgate.checks import CheckFailed
from dialsgate.container.memory import container_peak_memory
from dialsgate.contract.quantity import describe_bytes
from dialsgate.contract.resources import declared_memory_limit_bytes
from dialsgate.protocol import v2
from dialsgate.pytest_plugin.layers.server_fixtures import answer_refused

LARGEST_N_LS = 750


def test_peak_memory_within_declared_limit(contract, served, batch_of, v2_client, record_property, pytestconfig):
    limit = declared_memory_limit_bytes(contract)
    body = v2.request_body(contract, batch_of(LARGEST_N_LS), flatten=True, request_id="dialsgate-peak-memory")
    answer = v2_client.infer(body)
    if answer.status != 200:
        raise answer_refused(f"the largest request ({LARGEST_N_LS} LS) was refused", answer)
    limit_text = "no Resources.Limits.memory declared" if limit is None else f"declared limit {describe_bytes(limit)}"
    if served.container is None:
        note = f"peak memory not measurable on an external server ({served.url}); {limit_text}"
        record_property("dialsgate_note", note)
        if limit is not None:
            pytest.fail(f"{note}: run the server layer without --server-url to check the limit", pytrace=False)
        return
    peak = container_peak_memory(served.name)
    note = f"peak memory {describe_bytes(peak.bytes)} after a {LARGEST_N_LS}-LS request ({peak.source}); {limit_text}"
    record_property("dialsgate_note", note)
    record_property("peak_memory_bytes", peak.bytes)
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n[server layer] {note}", flush=True)
    if limit is not None and peak.bytes > limit:
        raise CheckFailed(
            f"the container's peak memory {describe_bytes(peak.bytes)} exceeds "
            f"Resources.{contract.resource_key}.Properties.Resources.Limits.memory = "
            f"{contract.properties['Resources']['Limits']['memory']!r} ({describe_bytes(limit)}): "
            "Kubernetes would OOM-kill the pod; raise the limit or lower the model's memory"
        )
