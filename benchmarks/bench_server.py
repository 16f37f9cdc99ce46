"""Serving figures of a DIALS model folder: image, start-up, round trips, the handler's share.

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements/bench.txt
    .venv-bench/bin/python benchmarks/bench_server.py [--template template.yaml]
        [--build-dir .dism-artifacts/build/PixelNMF] [--sizes 1,100,750] [--repetitions 5] [--starts 3]

Prints (nothing is asserted; goals are reported against):

- image: the stand-in build script's verdict and time (seconds when up to date; a full build
  takes minutes), or "present" when the repository has no such script;
- container start to model ready (``/v2/models/<name>/ready`` answers 200), over ``--starts``
  fresh containers; goal: within 10 s;
- median HTTP round trip of the reference batch tiled to each size, flattened JSON as DIALS sends
  it (body encoded once beforehand; the time covers sending, the server's work and decoding
  the answer);
- the handler's own share of the largest round trip: decode + predict + encode, measured with
  InProcessHandler on the same body in this interpreter (the V2 request parsing, which MLServer
  does before the handler, is measured separately and subtracted); goal: at most 10 %.

Settings as for the server layer: DIALSGATE_DOCKER_NETWORK, DIALSGATE_READY_TIMEOUT. With the default
(network none) every new connection goes through one engine exec (container/relay.py); set
DIALSGATE_DOCKER_NETWORK=host for round trips without it, as DIALS serves them.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
for entry in (REPOSITORY / "mlserver-model", REPOSITORY / "model_src", REPOSITORY):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import numpy as np  # noqa: E402

from dialsgate.container.image import ensure_image, image_build_or_check  # noqa: E402
from dialsgate.container.serve import prepared_model_folder, serve_model_folder  # noqa: E402
from dialsgate.contract.template import load_contract  # noqa: E402
from dialsgate.protocol import v2  # noqa: E402

READY_GOAL_SECONDS = 10.0
HANDLER_SHARE_GOAL = 0.10


def find_reference_batch(template_path: Path, given: Path | None) -> Path | None:
    if given is not None:
        return given
    folder = template_path.parent
    for candidate in (folder / "tests" / "data" / "reference_batch.npz", folder / "reference_batch.npz"):
        if candidate.is_file():
            return candidate
    return None


def batch_of(arrays: dict[str, np.ndarray], n_ls: int) -> dict[str, np.ndarray]:
    return {name: np.resize(array, (n_ls, *array.shape[1:])) for name, array in arrays.items()}


def median_seconds(action, repetitions: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def measure_round_trips(served, contract, bodies: dict[int, bytes], repetitions: int) -> dict[int, float]:
    """Median seconds per batch size: POST the encoded body, decode the JSON answer."""
    import requests

    infer_url = f"{served.url}/v2/models/{contract.name}/infer"
    medians = {}
    with requests.Session() as session:

        def round_trip(body: bytes) -> None:
            response = session.post(infer_url, data=body, headers={"Content-Type": "application/json"}, timeout=600)
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.text[:1000]}\n{served.logs(tail=50)}")
            response.json()

        for n, body in bodies.items():
            round_trip(body)  # warm-up (first request imports, allocates)
            median, times = median_seconds(lambda body=body: round_trip(body), repetitions)
            medians[n] = median
            print(
                f"round trip {n:5d} LS ({len(body) / 1e6:6.1f} MB JSON): median {median * 1e3:8.1f} ms  "
                f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})"
            )
    return medians


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=REPOSITORY / "template.yaml")
    parser.add_argument("--resource", default=None)
    parser.add_argument("--build-dir", type=Path, default=None, help="serve this dismcli build folder instead of building one")
    parser.add_argument("--reference-batch", type=Path, default=None)
    parser.add_argument("--sizes", default="1,100,750", help="batch sizes (LS) to time, comma-separated")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--starts", type=int, default=3, help="fresh containers to time start-to-ready over")
    args = parser.parse_args(argv)

    from pixelnmf_train.inprocess import InProcessHandler, _parse

    contract = load_contract(args.template, build_dir=args.build_dir, resource_key=args.resource)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    batch_file = find_reference_batch(contract.template_path, args.reference_batch)
    arrays = v2.reference_arrays(batch_file, contract) if batch_file else v2.sample_inputs(contract, n_ls=4)
    if contract.metadata_inputs:
        arrays.update({k: a for k, a in v2.sample_inputs(contract, n_ls=1).items() if k not in arrays})
    print(f"model {contract.name} ({contract.handler}) from {contract.code_dir}; image {contract.image}")
    print(f"reference batch: {batch_file or 'template-shaped sample inputs'}; sizes {sizes}; {args.repetitions} repetitions")

    # Image.
    verdict, image_seconds = image_build_or_check(contract.image, log=lambda line: None)
    verdict = re.sub(r"^\[[^]]*\]\s*", "", verdict)
    print(f"image: {image_seconds:6.1f} s  {verdict}")

    # The image the server layer runs: the stand-in plus the image packages this folder imports
    # (for our model: numba, so that the compiled engine runs as in the serving image).
    from dialsgate.checks.subject import Subject

    subject = Subject(contract, arrays)
    subject.require_safe_model_file()
    extras = subject.needs.requirements(subject.profile)
    served_image = ensure_image(contract.image, log=lambda line: None, profile=subject.profile, requirements=extras)
    print(f"served by: {served_image} (the folder's extra image packages: {', '.join(extras) or 'none'})")

    bodies = {n: json.dumps(v2.request_body(contract, batch_of(arrays, n), request_id=f"bench-{n}")).encode() for n in sizes}
    ready_times: list[float] = []
    starts = max(1, args.starts)
    with prepared_model_folder(contract) as folder:
        for start_number in range(starts):
            with serve_model_folder(folder, contract, image=served_image) as served:
                ready_times.append(served.ready_seconds)
                print(
                    f"container start -> model ready: {served.ready_seconds:5.2f} s ({served.network_mode} network, {served.url})"
                )
                if start_number == starts - 1:
                    round_trips = measure_round_trips(served, contract, bodies, args.repetitions)

    ready_median = statistics.median(ready_times)

    # The handler's own share, in-process, on the largest body.
    largest = max(sizes)
    body = json.loads(bodies[largest])
    handler = InProcessHandler(contract)
    try:
        from mlserver.types import InferenceRequest

        outcome = handler.predict(body)  # warm-up and sanity
        if outcome.status != 200:
            raise SystemExit(f"in-process handler refused the {largest}-LS body: {outcome.status} {outcome.error}")
        total, _ = median_seconds(lambda: handler.predict(body), args.repetitions)
        parse, _ = median_seconds(lambda: _parse(InferenceRequest, body), args.repetitions)
        # Optional split for handlers that decode and encode in separate methods (duck-typed:
        # decode_maps, encode_answer) and hold a model with predict_with_score (our handler).
        decode = predict = encode = decode_floor = None
        decoder = getattr(handler.model, "decode_maps", None)
        if callable(decoder):
            import array

            request = _parse(InferenceRequest, body)
            decode, _ = median_seconds(lambda: decoder(request), args.repetitions)
            decoded = decoder(request)
            model = getattr(handler.model, "_model", None)
            if hasattr(model, "predict_with_score"):
                predict, _ = median_seconds(lambda: model.predict_with_score(decoded), args.repetitions)
                encoder = getattr(handler.model, "encode_answer", None)
                if callable(encoder):
                    flag, metric = model.predict_with_score(decoded)
                    encode, _ = median_seconds(lambda: encoder(request.id, flag, metric), args.repetitions)
            if hasattr(model, "compiled_unavailable"):
                why_not = model.compiled_unavailable(decoded)
                print(f"in-process model engine: {'compiled' if why_not is None else 'numpy stages (' + why_not + ')'}")
            # Floor of the decode: one conversion of each input's JSON list into a machine array.
            lists = [item["data"] for item in body["inputs"]]
            decode_floor, _ = median_seconds(
                lambda: [array.array("d" if any(isinstance(v, float) for v in values[:1]) else "q", values) for values in lists],
                args.repetitions,
            )
    finally:
        handler.close()
    handler_seconds = max(total - parse, 0.0)
    share = handler_seconds / round_trips[largest]

    print()
    print(f"request parsing (V2 JSON -> InferenceRequest, in-process, mlserver here): {parse * 1e3:8.1f} ms")
    print(f"handler decode + predict + encode ({largest} LS, in-process):             {handler_seconds * 1e3:8.1f} ms")
    if decode is not None:
        print(
            f"  of which the handler's decode_maps (V2 data -> arrays):                {decode * 1e3:8.1f} ms "
            f"({decode / round_trips[largest]:.1%} of the round trip; floor, one array.array per JSON list: {decode_floor * 1e3:.1f} ms)"
        )
    if predict is not None:
        print(f"  of which predict (model.predict_with_score):                          {predict * 1e3:8.1f} ms")
    if encode is not None:
        print(f"  of which encode (encode_answer: InferenceResponse with the outputs):  {encode * 1e3:8.1f} ms")
        rest = handler_seconds - decode - predict - encode
        # Measured separately, so the parts do not add up exactly: the rest is the call around
        # them plus the noise of separate medians (it can come out negative).
        print(f"  rest (handler total minus the three parts; medians measured apart):  {rest * 1e3:8.1f} ms")
    print(f"round trip total ({largest} LS, container):                                 {round_trips[largest] * 1e3:8.1f} ms")
    print()
    print("summary")
    print(f"  image:                        {verdict} ({image_seconds:.1f} s)")
    print(
        f"  start -> model ready (median of {len(ready_times)}): {ready_median:.2f} s   goal <= {READY_GOAL_SECONDS:.0f} s: "
        f"{'met' if ready_median <= READY_GOAL_SECONDS else 'NOT met'}"
    )
    for n in sizes:
        print(f"  round trip {n:4d} LS:           {round_trips[n] * 1e3:.1f} ms")
    print(
        f"  handler share of {largest}-LS trip: {share:.1%}   goal <= {HANDLER_SHARE_GOAL:.0%}: "
        f"{'met' if share <= HANDLER_SHARE_GOAL else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
