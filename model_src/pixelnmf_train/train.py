"""Train the PixelNMF model and write the joblib the server folder ships.

Run with the serving image's package versions (``tox -e train``): the joblib holds only numpy
arrays and builtins, but numpy's own pickle format still differs between major releases.

    python -m pixelnmf_train.train --output mlserver-model/pixelnmf.joblib            # synthetic runs
    python -m pixelnmf_train.train --data dials_export.npz --output ...               # real data
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from pixelnmf import PixelNMF, entries, preprocessing
from pixelnmf.geometry import BPIX_LAYERS, LayerGeometry

#: The original training settings (CONTEXT.md, "Training in the original").
NMF_SETTINGS = {"n_components": 5, "alpha_H": 0.1, "batch_size": 3000, "tol": 0.0, "max_iter": 1000}
N_PARTIAL_FITS = 30
TRAINING_SEED = 20251127


def make_nmf(seed: int = TRAINING_SEED, **overrides):
    """A scikit-learn MiniBatchNMF with the original settings (training side only)."""
    from sklearn.decomposition import MiniBatchNMF

    return MiniBatchNMF(**{**NMF_SETTINGS, **overrides}, random_state=seed)


def fit_components(training: np.ndarray, seed: int = TRAINING_SEED, n_partial_fits: int = N_PARTIAL_FITS) -> np.ndarray:
    """Fit one layer's NMF on flattened, preprocessed maps; components rescaled to unit mean."""
    from threadpoolctl import threadpool_limits

    nmf = make_nmf(seed)
    rng = np.random.default_rng(seed)
    batch_size = min(NMF_SETTINGS["batch_size"], len(training))
    # One BLAS thread: multi-threaded reductions may round differently from run to run, and a
    # rerun must reproduce the joblib bit for bit.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", category=FutureWarning)
        for _ in range(n_partial_fits):
            batch = training[rng.choice(len(training), size=batch_size, replace=False)]
            nmf.partial_fit(batch)
    components = np.asarray(nmf.components_, dtype=np.float64)
    means = components.mean(axis=1, keepdims=True)
    return components / np.where(means > 0, means, 1.0)


def sklearn_transform_reconstruction(x: np.ndarray, components: np.ndarray, seed: int = TRAINING_SEED) -> np.ndarray:
    """The comparison solver: scikit-learn's iterative ``transform`` with the components fixed.

    A MiniBatchNMF is fitted on the components themselves (which sets its solver state) and its
    ``components_`` are then replaced by the given ones.
    """
    nmf = make_nmf(seed, n_components=components.shape[0], batch_size=components.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nmf.fit(components)
    nmf.components_ = components.copy()
    return nmf.inverse_transform(nmf.transform(x))


def train_layer(raw: np.ndarray, geometry: LayerGeometry, seed: int, n_partial_fits: int) -> dict:
    reduced = preprocessing.remove_cross(raw, geometry.kept_rows, geometry.kept_columns).astype(np.float64)
    reference = reduced.mean(axis=0)
    zero_fraction = (reduced == 0).mean(axis=0)
    preprocessed = preprocessing.normalise(reduced, reference).reshape(len(reduced), -1)
    preprocessed[preprocessed == 0] = 1.0
    return {
        "name": geometry.name,
        "shape": geometry.shape,
        "kept_rows": geometry.kept_rows,
        "kept_columns": geometry.kept_columns,
        "components": fit_components(preprocessed, seed, n_partial_fits),
        "reference": reference,
        "zero_fraction": zero_fraction,
        "min_entries": geometry.min_entries,
    }


def train(maps: dict[str, np.ndarray], seed: int = TRAINING_SEED, n_partial_fits: int = N_PARTIAL_FITS, log=print) -> PixelNMF:
    """Train on {layer name: (N, rows, cols) counts}; LS failing the entries filter are dropped."""
    passing = entries.has_enough_entries([maps[g.name] for g in BPIX_LAYERS], [g.min_entries for g in BPIX_LAYERS])
    if passing.sum() < 10:
        raise ValueError(f"only {int(passing.sum())} lumisections pass the minimum-entries filter; need at least 10")
    log(f"training on {int(passing.sum())} of {len(passing)} lumisections (the rest fail the entries filter)")
    layers = []
    for geometry in BPIX_LAYERS:
        start = time.perf_counter()
        layers.append(train_layer(maps[geometry.name][passing], geometry, seed + geometry.layer, n_partial_fits))
        log(f"  {geometry.name}: NMF fitted in {time.perf_counter() - start:.1f} s")
    return PixelNMF(layers)


def load_training_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a DIALS export: one (N, rows, cols) array per ME, keyed by layer name or ME path."""
    found = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            match = re.search(r"(?:BPix|PXLayer_)(\d)$", key)
            if match:
                found[f"BPix{match.group(1)}"] = archive[key]
    missing = [g.name for g in BPIX_LAYERS if g.name not in found]
    if missing:
        raise SystemExit(f"{path}: no array for {missing}; keys must be layer names (BPix1) or ME paths ending in PXLayer_N")
    for geometry in BPIX_LAYERS:
        if found[geometry.name].shape[1:] != geometry.shape:
            raise SystemExit(f"{path}: {geometry.name} has per-LS shape {found[geometry.name].shape[1:]}, expected {geometry.shape}")
    return found


def synthetic_training_maps(n_runs: int, n_ls: int) -> dict[str, np.ndarray]:
    from . import synthetic

    conditions = synthetic.default_conditions()
    runs = [synthetic.generate_run(n_ls, seed=synthetic.BASE_SEED + run, conditions=conditions).maps for run in range(n_runs)]
    return {g.name: np.concatenate([run[g.name] for run in runs]) for g in BPIX_LAYERS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("mlserver-model/pixelnmf.joblib"))
    parser.add_argument("--data", type=Path, help="an .npz of real maps (DIALS export); default: synthetic runs")
    parser.add_argument("--synthetic-runs", type=int, default=4, help="runs of --run-length LS (synthetic data only)")
    parser.add_argument("--run-length", type=int, default=750)
    parser.add_argument("--seed", type=int, default=TRAINING_SEED)
    args = parser.parse_args(argv)

    import joblib

    start = time.perf_counter()
    maps = load_training_npz(args.data) if args.data else synthetic_training_maps(args.synthetic_runs, args.run_length)
    model = train(maps, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Uncompressed: a plain pickle stream plus array payloads, readable by the pickle audit.
    joblib.dump(model, args.output)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}) in {time.perf_counter() - start:.1f} s")
    print(f"numpy {np.__version__}, joblib {joblib.__version__}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
