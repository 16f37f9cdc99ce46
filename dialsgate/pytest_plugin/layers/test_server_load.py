"""Concurrent load: 8 clients x 25 requests of mixed batch sizes, every answer checked.

Mix (200 requests, 11964 LS in all; the reference batch tiled along axis 0 to each size):

    size (LS)   1    3   10   40  100  250  750
    requests   60   48   36   20   16   12    8

A 750-LS flattened JSON body is ~84 MB (a whole run, as DIALS sends it) and takes the single
MLServer worker a few seconds; the server works on 2 cores here, so this mix keeps the test
within about a minute (measured 25-40 s) while every client meets large and small batches. The sizes are shuffled
with a fixed seed and dealt round-robin to the clients. Bodies are encoded once per size (the
client's JSON encoding is not what is measured) and every answer is compared with the
in-process handler's answer to the same body. Errors (goal 0) and latency percentiles are
printed; timings are not asserted, answers are.
"""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np

from dialsgate.checks import CheckFailed
from dialsgate.protocol import v2

CLIENTS = 8
REQUESTS_PER_CLIENT = 25
MIX = {1: 60, 3: 48, 10: 36, 40: 20, 100: 16, 250: 12, 750: 8}
SEED = 20260


def request_sizes() -> list[list[int]]:
    """The sizes each client sends, in order."""
    sizes = [size for size, count in MIX.items() for _ in range(count)]
    if len(sizes) != CLIENTS * REQUESTS_PER_CLIENT:
        raise ValueError(f"MIX holds {len(sizes)} requests, not {CLIENTS} x {REQUESTS_PER_CLIENT}")
    random.Random(SEED).shuffle(sizes)
    return [sizes[client::CLIENTS] for client in range(CLIENTS)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def test_concurrent_clients_get_the_inprocess_answers(
    contract, batch_of, expected_response, make_client, output_differences, capsys
):
    bodies: dict[int, bytes] = {}
    expected: dict[int, dict[str, np.ndarray]] = {}
    for size in MIX:
        body = v2.request_body(contract, batch_of(size), flatten=True, request_id=f"dialsgate-load-{size}")
        expected[size] = v2.outputs_by_name(expected_response(body))
        bodies[size] = json.dumps(body).encode()
    plan = request_sizes()

    latencies: dict[int, list[float]] = {size: [] for size in MIX}
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(CLIENTS)

    def client_run(index: int) -> None:
        client = make_client()
        start_gate.wait()
        for number, size in enumerate(plan[index]):
            where = f"client {index} request {number} ({size} LS): "
            started = time.perf_counter()
            try:
                answer = client.infer_raw(bodies[size])
            except Exception as error:  # connection reset, timeout...
                with lock:
                    errors.append(f"{where}{type(error).__name__}: {error}")
                continue
            elapsed = time.perf_counter() - started
            if answer.status != 200:
                problems = [f"HTTP {answer.status}: {answer.text[:300]}"]
            else:
                response = json.loads(answer.text)
                problems = output_differences(v2.outputs_by_name(response), expected[size])
                if response.get("id") != f"dialsgate-load-{size}":
                    problems.append(f"request id {response.get('id')!r} echoed instead of 'dialsgate-load-{size}'")
            with lock:
                latencies[size].append(elapsed)
                errors.extend(where + problem for problem in problems)

    threads = [threading.Thread(target=client_run, args=(index,), name=f"load-client-{index}") for index in range(CLIENTS)]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall

    every = [t for values in latencies.values() for t in values]
    lines = [
        f"load: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests, {sum(s * c for s, c in MIX.items())} LS, "
        f"wall {wall:.1f} s, {len(every)} answered, errors {len(errors)} (goal 0)",
        f"  all sizes: p50 {percentile(every, 50):.3f} s  p90 {percentile(every, 90):.3f} s  max {max(every, default=float('nan')):.3f} s",
    ]
    for size, values in latencies.items():
        lines.append(
            f"  {size:4d} LS x{len(values):3d}: p50 {percentile(values, 50):.3f} s  p90 {percentile(values, 90):.3f} s  "
            f"max {max(values, default=float('nan')):.3f} s"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    if errors:
        # One sentence first (the verdict's line), then up to 30 of them (the report, verdict.json).
        raise CheckFailed(
            f"{len(errors)} of {CLIENTS * REQUESTS_PER_CLIENT} requests of {CLIENTS} concurrent clients did not get the "
            f"handler's own answer; the first: {errors[0]}\n  " + "\n  ".join(errors[1:30])
        )
