"""Benchmark PixelNMF.evaluate against its floor and the iterative reference, for both deployments.

For 100, 750 and 3000 lumisections (LS) of synthetic runs, per deployment, in one run:

* ours: the median wall time of ``model.predict_with_score`` (with OMS filtering for 2025F),
  with the engine the server uses (the compiled loop of ``pixelnmf.compiled`` when numba is
  importable, as in the serving image);
* numpy s: the same with the numpy stages (``evaluate(engine="numpy")``), for comparison;
* floor: one pass over the input (a max over every map) plus one single-threaded float32
  product of the preprocessed data with the components per layer (``x @ H.T`` under
  threadpoolctl, one BLAS thread): the work no implementation can avoid;
* x floor: ours as a multiple of the floor;
* sklearn x: how many times faster we are than the iterative reference path, scikit-learn's
  ``MiniBatchNMF.transform`` + ``inverse_transform`` with the original settings on the same
  components and the same preprocessed data (reconstruction only, so the ratio is a lower
  bound for the whole pipeline);
* peak MB: peak memory allocated by one evaluation beyond its input (tracemalloc);
* per-stage split of our time.

    python benchmarks/bench_predict.py [--repeat 7] [--sizes 100 750 3000] [--no-sklearn] [--busy]

``--busy`` keeps the other core busy (a second process multiplying matrices) while measuring.

Goal on a 2-core machine: 750 LS in at most 0.05 s and at most 3x the floor; peak < 50 MB.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import joblib
import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPOSITORY / "mlserver-model"), str(REPOSITORY / "model_src")]

from pixelnmf import preprocessing  # noqa: E402
from pixelnmf_train import synthetic  # noqa: E402
from pixelnmf_train.deployments import DEPLOYMENTS  # noqa: E402

SEED = 4242


def synthetic_inputs(model, n_ls: int) -> dict[str, np.ndarray]:
    """Maps of one synthetic run (repeated beyond 750 LS), plus OMS metadata the model needs."""
    run = synthetic.generate_run(min(n_ls, 750), seed=SEED, conditions=synthetic.default_conditions())
    inputs = {
        name: np.ascontiguousarray(np.resize(run.maps[name], (n_ls, *run.maps[name].shape[1:]))) for name in model.input_names
    }
    if model.metadata_inputs:
        metadata = synthetic.oms_metadata(np.resize(run.pileup, n_ls))
        inputs.update({name: metadata[name] for name in model.metadata_inputs})
    return inputs


def median_time(function, repeat: int) -> float:
    function()  # warm-up: caches, page faults
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prepared_layers(model, inputs: dict) -> list[np.ndarray]:
    """Per layer, what the NMF sees (float32, N x kept bins): the floor's and sklearn's input."""
    out = []
    for layer in model.layers:
        raw = inputs[layer["name"]]
        index = preprocessing.flat_index(layer["kept_rows"], layer["kept_columns"], layer["shape"][1])
        inverse = preprocessing.inverse_reference(layer["reference"])
        out.append(preprocessing.prepare(raw.reshape(len(raw), -1), index, inverse, model.parameters["clip"])[1])
    return out


def floor_time(model, inputs: dict, repeat: int) -> tuple[float, float, float]:
    """(floor, input pass, products): one pass over the input + one float32 product per layer."""
    from threadpoolctl import threadpool_limits

    maps = [inputs[name] for name in model.input_names]
    prepared = prepared_layers(model, inputs)
    components = [np.ascontiguousarray(layer["components"], dtype=np.float32) for layer in model.layers]

    def one_pass():
        for array in maps:
            array.max()

    def products():
        for x, h in zip(prepared, components, strict=True):
            np.matmul(x, h.T)

    with threadpool_limits(limits=1, user_api="blas"):
        input_pass = median_time(one_pass, repeat)
        product = median_time(products, repeat)
    return input_pass + product, input_pass, product


def sklearn_time(model, inputs: dict) -> float:
    """scikit-learn's iterative transform + inverse_transform, original settings, same components."""
    from pixelnmf_train.train import sklearn_transform_reconstruction

    prepared = prepared_layers(model, inputs)
    start = time.perf_counter()
    for x, layer in zip(prepared, model.layers, strict=True):
        sklearn_transform_reconstruction(x.astype(np.float64), layer["components"])
    return time.perf_counter() - start


def peak_memory(model, inputs: dict) -> float:
    tracemalloc.start()
    model.predict_with_score(inputs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _spin() -> None:
    """A busy core: BLAS products on one thread, until killed."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((400, 400))
    with threadpool_limits(limits=1):
        while True:
            a = a @ a
            a /= np.abs(a).max()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", nargs="+", choices=list(DEPLOYMENTS), default=list(DEPLOYMENTS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 750, 3000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-sklearn", action="store_true", help="skip the (slow) iterative reference")
    parser.add_argument("--busy", action="store_true", help="keep another core busy while measuring")
    args = parser.parse_args(argv)
    if args.busy:
        import multiprocessing

        spinner = multiprocessing.Process(target=_spin, daemon=True)
        spinner.start()
        print(f"another core kept busy by process {spinner.pid}")

    import sklearn
    import threadpoolctl

    blas = ", ".join(
        f"{info['internal_api']} {info.get('version')} {info.get('architecture')}"
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, BLAS: {blas}")  # fmt: skip
    from pixelnmf import compiled

    numba_version = compiled.numba.__version__ if compiled.AVAILABLE else "not importable"
    print(f"numba {numba_version}")
    for key in args.deployments:
        deployment = DEPLOYMENTS[key]
        model = joblib.load(REPOSITORY / deployment.output)
        model.warm_up()  # compiling the loop is part of loading the model, not of a request
        print(f"\n{key}: {deployment.output}, inputs {model.input_names}, {len(model.filters)} metadata filters")
        print(
            f"{'LS':>6} {'ours s':>8} {'numpy s':>8} {'floor s':>8} {'(pass':>7} {'+ prod)':>8} {'x floor':>8} {'sklearn s':>10} {'sklearn x':>10} {'peak MB':>8}  per stage (s)"
        )
        for n_ls in args.sizes:
            inputs = synthetic_inputs(model, n_ls)
            engine = model.compiled_unavailable(inputs)
            if n_ls == args.sizes[0]:
                print(f"{'':>6} engine: {'compiled' if engine is None else 'numpy stages (' + engine + ')'}")
            stages: dict = {}
            ours = median_time(lambda model=model, inputs=inputs: model.predict_with_score(inputs), args.repeat)
            numpy_stages = median_time(lambda model=model, inputs=inputs: model.evaluate(inputs, engine="numpy"), args.repeat)
            for _ in range(args.repeat):
                model.evaluate(inputs, stage_times=stages)
            split = "  ".join(f"{name} {seconds / args.repeat:.4f}" for name, seconds in stages.items())
            floor, input_pass, product = floor_time(model, inputs, args.repeat)
            reference = float("nan") if args.no_sklearn else sklearn_time(model, inputs)
            peak = peak_memory(model, inputs)
            print(f"{n_ls:>6} {ours:>8.4f} {numpy_stages:>8.4f} {floor:>8.4f} {input_pass:>7.4f} {product:>8.4f} {ours / floor:>8.1f} "
                  f"{reference:>10.2f} {reference / ours:>10.0f} {peak / 1e6:>8.1f}  {split}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
