"""The worker container's figures for one DIALS model folder: start, handler load, close.

    .venv/bin/python benchmarks/bench_worker.py [--template tests/gate/corpus/sklearn_nmf_plain/template.yaml]
        [--starts 5]

Prints (nothing is asserted; goals are reported against):

- image: the serving image the worker runs (ensure_image: the stand-in check, extra packages)
  and the seconds it took;
- per start: ``docker run`` to the container's first process answering (goal: at most 3 s
  warm), the handler's load in a fresh worker process (``docker exec``, import, ``load()``), one
  prediction of the sample batch, and removing the container.

Needs a running engine (Docker or Podman) and the stand-in or real image.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dialsgate.container.image import ensure_image
from dialsgate.container.worker import WorkerContainer
from dialsgate.contract.template import load_contract
from dialsgate.environment.profiles import profile_for_image
from dialsgate.environment.serving import folder_needs
from dialsgate.protocol import v2
from dialsgate.transports.worker import WorkerHandler

REPOSITORY = Path(__file__).resolve().parents[1]
GOAL_START_SECONDS = 3.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=REPOSITORY / "tests/gate/corpus/sklearn_nmf_plain/template.yaml")
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args(argv)

    contract = load_contract(args.template.resolve())
    profile = profile_for_image(contract.image)
    requirements = folder_needs(contract.code_dir, profile).requirements(profile)
    began = time.perf_counter()
    image = ensure_image(contract.image, log=lambda line: None, profile=profile, requirements=requirements)
    print(f"image: {image} (extra packages: {', '.join(requirements) or 'none'}), ready in {time.perf_counter() - began:.2f} s")
    body = v2.request_body(contract, v2.sample_inputs(contract, n_ls=4), flatten=True)

    starts, loads, predictions, closes = [], [], [], []
    for number in range(1, args.starts + 1):
        worker = WorkerContainer(contract, image)
        try:
            began = time.perf_counter()
            handler = WorkerHandler(contract, worker)
            loads.append(time.perf_counter() - began)
            began = time.perf_counter()
            outcome = handler.predict(body)
            predictions.append(time.perf_counter() - began)
            handler.close()
        finally:
            began = time.perf_counter()
            worker.close()
            closes.append(time.perf_counter() - began)
        starts.append(worker.start_seconds)
        print(
            f"start {number}: container {starts[-1]:.2f} s, handler load {loads[-1]:.2f} s, "
            f"predict {predictions[-1] * 1000:.0f} ms (HTTP {outcome.status}), remove {closes[-1]:.2f} s"
        )
    print(
        f"median: container start {statistics.median(starts):.2f} s (goal <= {GOAL_START_SECONDS:.0f} s), "
        f"handler load {statistics.median(loads):.2f} s, remove {statistics.median(closes):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
