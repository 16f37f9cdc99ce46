"""Train the PixelNMF model and write each deployment's model file (models/, the templates' ModelUri).

Run with the serving image's package versions (``tox -e train``): the joblib holds only numpy
arrays and builtins, but numpy's own pickle format still differs between major releases.

    python -m pixelnmf_train.train                                   # both deployments, synthetic runs
    python -m pixelnmf_train.train --deployment 2025f                # one deployment
    python -m pixelnmf_train.train --deployment 2025f --data dials_export.npz   # real data

Deployments (``pixelnmf_train.deployments``): ``four-layer`` (BPix1-4, template.yaml,
models/pixelnmf.joblib) and ``2025f`` (BPix2-4, OMS filters, template-2025f.yaml,
models/pixelnmf-2025f.joblib). Each is trained on its own layers only: the
minimum-entries filter that selects training LS uses those layers, and for 2025F the OMS
filters too (on the synthetic runs' metadata, or on real data's metadata arrays if present).

Deterministic: fixed seeds, one BLAS thread; a rerun under the same package versions writes
the same joblib bit for bit.
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

from .deployments import DEPLOYMENTS, Deployment

#: The original training settings (docs/training.md, "The original"). forget_factor=1: the
#: original passes it (scikit-learn's default would be 0.7).
NMF_SETTINGS = {"n_components": 5, "alpha_H": 0.1, "batch_size": 3000, "tol": 0.0, "max_iter": 1000, "forget_factor": 1.0}
N_PARTIAL_FITS = 30
TRAINING_SEED = 20251127


def make_nmf(seed: int = TRAINING_SEED, **overrides):
    """A scikit-learn MiniBatchNMF with the original settings (training side only)."""
    from sklearn.decomposition import MiniBatchNMF

    return MiniBatchNMF(**{**NMF_SETTINGS, **overrides}, random_state=seed)


def fit_components(
    training: np.ndarray,
    seed: int = TRAINING_SEED,
    n_partial_fits: int = N_PARTIAL_FITS,
    rescale_each_fit: bool = False,
    **overrides,
) -> np.ndarray:
    """Fit one layer's NMF on flattened, preprocessed maps; components rescaled to unit mean.

    ``rescale_each_fit`` rescales the components to unit mean after every ``partial_fit`` (and
    fits on from the rescaled ones) instead of once at the end; ``overrides`` replace
    NMF_SETTINGS. Both exist to measure deviations (``pixelnmf_train.quality``).
    """
    from threadpoolctl import threadpool_limits

    nmf = make_nmf(seed, **overrides)
    rng = np.random.default_rng(seed)
    batch_size = min(NMF_SETTINGS["batch_size"], len(training))
    # One BLAS thread: multi-threaded reductions may round differently from run to run, and a
    # rerun must reproduce the joblib bit for bit.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", category=FutureWarning)
        for _ in range(n_partial_fits):
            batch = training[rng.choice(len(training), size=batch_size, replace=False)]
            nmf.partial_fit(batch)
            if rescale_each_fit:
                means = nmf.components_.mean(axis=1, keepdims=True)
                nmf.components_ /= np.where(means > 0, means, 1.0)
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


def train_layer(raw: np.ndarray, geometry: LayerGeometry, seed: int, n_partial_fits: int, **fit_options) -> dict:
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
        "components": fit_components(preprocessed, seed, n_partial_fits, **fit_options),
        "reference": reference,
        "zero_fraction": zero_fraction,
        "min_entries": geometry.min_entries,
    }


def train(
    maps: dict[str, np.ndarray],
    seed: int = TRAINING_SEED,
    n_partial_fits: int = N_PARTIAL_FITS,
    log=print,
    deployment: Deployment = DEPLOYMENTS["four-layer"],
    metadata: dict[str, np.ndarray] | None = None,
    **fit_options,
) -> PixelNMF:
    """Train one deployment on {layer name: (N, rows, cols) counts} (other layers are ignored).

    Training LS: those passing the minimum-entries filter on the deployment's layers and, when
    ``metadata`` holds the deployment's filter inputs, its metadata filters.
    """
    layers_used = deployment.layers
    passing = entries.has_enough_entries([maps[g.name] for g in layers_used], [g.min_entries for g in layers_used])
    reason = "the entries filter"
    if deployment.filters:
        if metadata is not None and all(f["input"] in metadata for f in deployment.filters):
            probe = PixelNMF([], **deployment.model_parameters)
            passing &= probe.passes_filters(metadata, len(passing))
            reason += " or the metadata filters"
        else:
            log("no metadata for the filters in the training data: training LS are not filtered on them")
    if passing.sum() < 10:
        raise ValueError(f"only {int(passing.sum())} lumisections pass {reason}; need at least 10")
    log(f"{deployment.name}: training on {int(passing.sum())} of {len(passing)} lumisections (the rest fail {reason})")
    layers = []
    for geometry in layers_used:
        start = time.perf_counter()
        layers.append(train_layer(maps[geometry.name][passing], geometry, seed + geometry.layer, n_partial_fits, **fit_options))
        log(f"  {geometry.name}: NMF fitted in {time.perf_counter() - start:.1f} s")
    return PixelNMF(layers, **deployment.model_parameters)


def load_training_npz(path: Path, layers=BPIX_LAYERS) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a DIALS export: one (N, rows, cols) array per ME, keyed by layer name or ME path,
    and optional (N,) metadata arrays keyed by their V2 input names (``a__b``)."""
    found, metadata = {}, {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            match = re.search(r"(?:BPix|PXLayer_)(\d)$", key)
            if match:
                found[f"BPix{match.group(1)}"] = archive[key]
            elif "__" in key:
                metadata[key] = archive[key]
    missing = [g.name for g in layers if g.name not in found]
    if missing:
        raise SystemExit(f"{path}: no array for {missing}; keys must be layer names (BPix1) or ME paths ending in PXLayer_N")
    for geometry in layers:
        if found[geometry.name].shape[1:] != geometry.shape:
            raise SystemExit(
                f"{path}: {geometry.name} has per-LS shape {found[geometry.name].shape[1:]}, expected {geometry.shape}"
            )
    return found, metadata


def synthetic_training_data(
    n_runs: int, n_ls: int, first_seed: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Maps of ``n_runs`` synthetic runs (all four layers) and their OMS metadata."""
    from . import synthetic

    first_seed = synthetic.BASE_SEED if first_seed is None else first_seed
    conditions = synthetic.default_conditions()
    runs = [synthetic.generate_run(n_ls, seed=first_seed + run, conditions=conditions) for run in range(n_runs)]
    maps = {g.name: np.concatenate([run.maps[g.name] for run in runs]) for g in BPIX_LAYERS}
    metas = [synthetic.oms_metadata(run.pileup, run_number=398000 + index) for index, run in enumerate(runs)]
    metadata = {key: np.concatenate([meta[key] for meta in metas]) for key in metas[0]}
    return maps, metadata


def synthetic_training_maps(n_runs: int, n_ls: int) -> dict[str, np.ndarray]:
    return synthetic_training_data(n_runs, n_ls)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployment", choices=[*DEPLOYMENTS, "all"], default="all", help="default: all (synthetic data only)")
    parser.add_argument(
        "--output", type=Path, help="the joblib (one deployment only); default: the deployment's model file under models/"
    )
    parser.add_argument(
        "--data", type=Path, help="an .npz of real maps (DIALS export; needs --deployment); default: synthetic runs"
    )
    parser.add_argument("--synthetic-runs", type=int, default=4, help="runs of --run-length LS (synthetic data only)")
    parser.add_argument("--run-length", type=int, default=750)
    parser.add_argument("--seed", type=int, default=TRAINING_SEED)
    args = parser.parse_args(argv)

    import joblib

    chosen = list(DEPLOYMENTS.values()) if args.deployment == "all" else [DEPLOYMENTS[args.deployment]]
    if len(chosen) > 1 and (args.data or args.output):
        parser.error("--data and --output need one --deployment")
    if args.data:
        maps, metadata = load_training_npz(args.data, chosen[0].layers)
    else:
        maps, metadata = synthetic_training_data(args.synthetic_runs, args.run_length)
    for deployment in chosen:
        start = time.perf_counter()
        output = args.output or Path(deployment.output)
        model = train(maps, seed=args.seed, deployment=deployment, metadata=metadata)
        output.parent.mkdir(parents=True, exist_ok=True)
        # Uncompressed: a plain pickle stream plus array payloads, readable by the pickle audit.
        joblib.dump(model, output)
        digest = hashlib.sha256(output.read_bytes()).hexdigest()
        print(
            f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}) in {time.perf_counter() - start:.1f} s"
        )
    print(f"numpy {np.__version__}, joblib {joblib.__version__}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
