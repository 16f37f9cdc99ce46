"""Benchmark PixelNMF.predict: median wall time for 100, 750 and 3000 lumisections, the split
per pipeline stage, and peak memory. Prints figures; asserts nothing.

    python benchmarks/bench_predict.py [--model mlserver-model/pixelnmf.joblib] [--repeat 7]
    python benchmarks/bench_predict.py --compare-sklearn     # + scikit-learn's iterative transform

Goal on a 2-core machine: 750 LS in at most 0.15 s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import joblib
import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPOSITORY / "model_src")]

from pixelnmf import preprocessing  # noqa: E402
from pixelnmf_train import synthetic  # noqa: E402


def synthetic_maps(n_ls: int) -> dict[str, np.ndarray]:
    run = synthetic.generate_run(min(n_ls, 750), seed=4242, conditions=synthetic.default_conditions())
    return {name: np.resize(maps, (n_ls, *maps.shape[1:])) for name, maps in run.maps.items()}


def measure(model, maps: dict, repeat: int) -> tuple[float, dict, float]:
    model.predict_with_score(maps)  # warm-up: caches, page faults
    times, stages = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        model.evaluate(maps, stage_times=stages)
        times.append(time.perf_counter() - start)
    stages = {name: seconds / repeat for name, seconds in stages.items()}
    tracemalloc.start()
    model.predict_with_score(maps)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), stages, peak


def compare_sklearn(model, maps: dict) -> None:
    from pixelnmf_train.train import sklearn_transform_reconstruction

    start = time.perf_counter()
    for layer in model.layers:
        reduced = preprocessing.remove_cross(maps[layer["name"]], layer["kept_rows"], layer["kept_columns"])
        flat = preprocessing.normalise(reduced, layer["reference"]).reshape(len(reduced), -1)
        sklearn_transform_reconstruction(preprocessing.transform_input(flat, model.parameters["clip"]), layer["components"])
    print(f"scikit-learn iterative transform, reconstruction only, {len(reduced)} LS: {time.perf_counter() - start:.2f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPOSITORY / "mlserver-model" / "pixelnmf.joblib")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 750, 3000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--compare-sklearn", action="store_true")
    args = parser.parse_args(argv)

    model = joblib.load(args.model)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, model {args.model}")
    print(f"{'LS':>6} {'median s':>9} {'per LS ms':>10} {'peak MB':>8}  per stage (s)")
    for n_ls in args.sizes:
        maps = synthetic_maps(n_ls)
        median, stages, peak = measure(model, maps, args.repeat)
        split = "  ".join(f"{name} {seconds:.4f}" for name, seconds in stages.items())
        print(f"{n_ls:>6} {median:>9.4f} {1e3 * median / n_ls:>10.3f} {peak / 1e6:>8.1f}  {split}")
    if args.compare_sklearn:
        compare_sklearn(model, synthetic_maps(750))
    return 0


if __name__ == "__main__":
    sys.exit(main())
