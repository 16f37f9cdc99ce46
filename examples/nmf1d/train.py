"""Train the nmf1d example on synthetic cluster-charge histograms and write its files.

    cd examples/nmf1d && /tmp/envs/parity/bin/python train.py

Run it with the serving image's versions (numpy 1.26.x, joblib 1.3.x): a joblib file written
under numpy 2 may not load in the image. Deterministic (fixed seed). Writes
``mlserver-model/nmf1d.joblib`` (uncompressed) and ``reference_batch.npz``, and prints the
score distributions and the AnomalyThreshold to put in template.yaml.

The synthetic monitoring element: cluster charge on BPix layer 1, 100 bins of 1 ke. A normal
lumisection is a Landau-like (Moyal) peak at ~22 ke with a small double-hit bump near twice
that and a low-charge shoulder above the read-out threshold, with a few percent of per-LS
jitter in peak position and width, and Poisson counts for 20k-150k clusters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SERVER_FOLDER = HERE / "mlserver-model"
# The model class must be pickled as ``nmf1d.model.NMF1D``: import it from the server folder,
# exactly as MLServer will, never through this repository's package layout.
sys.path.insert(0, str(SERVER_FOLDER))

from nmf1d import NMF1D  # noqa: E402

INPUT_NAME = "ChargeBPix1"
N_BINS = 100
BIN_CENTRES = np.arange(N_BINS) + 0.5  # ke
THRESHOLD_BINS = 3  # nothing below the read-out threshold
SEED = 20251127
N_COMPONENTS = 3
MIN_ENTRIES = 10_000
THRESHOLD_PERCENTILE = 99.9
ANOMALIES = ("shifted_peak", "low_gain", "broadened", "hot_bin", "dead_half_bins")


def _moyal(x: np.ndarray, peak: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Moyal density (a Landau look-alike) at x for per-row peak and width; rows (N, n_bins)."""
    lam = (x[None, :] - peak[:, None]) / width[:, None]
    return np.exp(-0.5 * (lam + np.exp(-lam)))


def _unit_rows(shapes: np.ndarray) -> np.ndarray:
    return shapes / shapes.sum(axis=1, keepdims=True)


def expected_shapes(rng: np.random.Generator, n: int, peak_factor=1.0, width_factor=1.0) -> np.ndarray:
    """Expected fractions per bin (N, n_bins) of normal lumisections (optionally distorted)."""
    peak = 22.0 * (1 + 0.02 * rng.standard_normal(n)) * peak_factor
    width = 2.6 * (1 + 0.06 * rng.standard_normal(n)) * width_factor
    double_fraction = np.clip(0.08 + 0.02 * rng.standard_normal(n), 0.02, None)
    low_fraction = np.clip(0.04 + 0.015 * rng.standard_normal(n), 0.005, None)
    main = _unit_rows(_moyal(BIN_CENTRES, peak, width))
    double = _unit_rows(_moyal(BIN_CENTRES, 2 * peak, 2 * width))
    low = np.exp(-BIN_CENTRES / 4.0)[None, :].repeat(n, axis=0)
    low[:, :THRESHOLD_BINS] = 0.0
    low = _unit_rows(low)
    shapes = (
        (1 - double_fraction - low_fraction)[:, None] * main + double_fraction[:, None] * double + low_fraction[:, None] * low
    )
    shapes[:, :THRESHOLD_BINS] = 0.0
    return _unit_rows(shapes)


def sample_counts(rng: np.random.Generator, shapes: np.ndarray) -> np.ndarray:
    entries = rng.uniform(20_000, 150_000, size=len(shapes))
    return rng.poisson(shapes * entries[:, None]).astype(np.int32)


def normal_histograms(rng: np.random.Generator, n: int) -> np.ndarray:
    return sample_counts(rng, expected_shapes(rng, n))


def anomalous_histograms(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "shifted_peak":  # e.g. a wrong gain calibration: +30% charge
        return sample_counts(rng, expected_shapes(rng, n, peak_factor=1.3))
    if kind == "low_gain":  # charge collection loss: -25%
        return sample_counts(rng, expected_shapes(rng, n, peak_factor=0.75))
    if kind == "broadened":  # mixed timing: twice the width
        return sample_counts(rng, expected_shapes(rng, n, width_factor=2.0))
    counts = normal_histograms(rng, n)
    if kind == "hot_bin":  # a noisy channel piling 3% of the entries into one bin
        where = rng.integers(30, 90, size=n)
        counts[np.arange(n), where] += (0.03 * counts.sum(axis=1)).astype(np.int32)
        return counts
    if kind == "dead_half_bins":  # every other bin empty (e.g. a stuck ADC bit): half the bins dead
        counts[:, 1::2] = 0
        return counts
    raise ValueError(f"unknown anomaly {kind!r}")


def fit_nmf(fractions: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 3000) -> np.ndarray:
    """Components H (k, n_bins), unit row sums, of fractions ~ W @ H (multiplicative updates)."""
    n, m = fractions.shape
    scale = np.sqrt(fractions.mean() / k)
    w = rng.uniform(0.5, 1.5, size=(n, k)) * scale
    h = rng.uniform(0.5, 1.5, size=(k, m)) * scale
    eps = 1e-12
    for _ in range(iterations):
        h *= (w.T @ fractions) / (w.T @ w @ h + eps)
        w *= (fractions @ h.T) / (w @ (h @ h.T) + eps)
    h /= h.sum(axis=1, keepdims=True)
    order = np.argsort(np.argmax(h, axis=1))  # components sorted by where they peak
    return h[order]


def cross_check_nnls(model: NMF1D, fractions: np.ndarray) -> float:
    """Largest |difference| between the model's exact subset NNLS residual and scipy's."""
    from scipy.optimize import nnls

    ours = ((fractions - model.reconstruct(fractions)) ** 2).sum(axis=1)
    theirs = np.array([nnls(model.components.T, row)[1] ** 2 for row in fractions])
    return float(np.max(np.abs(ours - theirs)))


def describe(name: str, scores: np.ndarray) -> str:
    q = np.percentile(scores, [0, 50, 90, 99, 99.9, 100])
    return f"{name:<16} n={len(scores):5d}  min {q[0]:7.3f}  median {q[1]:7.3f}  p90 {q[2]:7.3f}  p99 {q[3]:7.3f}  p99.9 {q[4]:7.3f}  max {q[5]:8.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=4000, help="normal lumisections to fit the components on")
    parser.add_argument("--validation", type=int, default=20000, help="normal lumisections to set the threshold on")
    parser.add_argument(
        "--allow-numpy-2", action="store_true", help="write the file under numpy 2 anyway (it may not load in the image)"
    )
    args = parser.parse_args(argv)
    if int(np.__version__.split(".")[0]) >= 2 and not args.allow_numpy_2:
        parser.error(f"numpy {np.__version__}: train with the serving image's numpy 1.26 (see the docstring)")
    import joblib

    rng = np.random.default_rng(SEED)
    train = normal_histograms(rng, args.train)
    fractions = train / train.sum(axis=1, keepdims=True)
    components = fit_nmf(fractions, N_COMPONENTS, rng)

    unscaled = NMF1D(components, input_name=INPUT_NAME, score_scale=1.0, min_entries=MIN_ENTRIES)
    mse_train, _ = unscaled.mean_squared_error(train)
    scale = float(np.median(mse_train))
    print(
        f"subset NNLS vs scipy.optimize.nnls, max |residual difference| on 500 LS: {cross_check_nnls(unscaled, fractions[:500]):.2e}"
    )

    validation = normal_histograms(rng, args.validation)
    scored = NMF1D(components, input_name=INPUT_NAME, score_scale=scale, min_entries=MIN_ENTRIES)
    validation_scores = scored.score(validation).astype(np.float64)
    quantiles = {str(q): float(np.percentile(validation_scores, q)) for q in (50, 90, 99, THRESHOLD_PERCENTILE)}
    model = NMF1D(components, input_name=INPUT_NAME, score_scale=scale, min_entries=MIN_ENTRIES, training_quantiles=quantiles)
    threshold = float(f"{quantiles[str(THRESHOLD_PERCENTILE)]:.2g}")

    print(describe("train (normal)", model.score(train).astype(np.float64)))
    print(describe("validation", validation_scores))
    for kind in ANOMALIES:
        scores = model.score(anomalous_histograms(rng, kind, 1000)).astype(np.float64)
        print(describe(kind, scores) + f"  above threshold {np.mean(scores > threshold):6.1%}")
    print(f"normal validation LS above threshold: {np.mean(validation_scores > threshold):.3%}")

    model_file = SERVER_FOLDER / "nmf1d.joblib"
    joblib.dump(model, model_file)  # uncompressed: numpy arrays stored raw, loads with joblib >= 1.3
    print(f"wrote {model_file} ({model_file.stat().st_size} bytes) with numpy {np.__version__}, joblib {joblib.__version__}")

    kinds = ["normal"] * 10 + list(ANOMALIES) + ["normal"]
    batch = np.concatenate(
        [normal_histograms(rng, 1) if kind == "normal" else anomalous_histograms(rng, kind, 1) for kind in kinds]
    )
    permutation = rng.permutation(len(kinds))
    batch, kinds = batch[permutation], np.array(kinds)[permutation]
    np.savez(HERE / "reference_batch.npz", **{INPUT_NAME: batch.astype(np.int32)}, kind=kinds)
    for kind, score in zip(kinds, model.score(batch), strict=True):
        print(f"  reference LS {kind:<16} score {score:9.3f}")
    print(f"wrote {HERE / 'reference_batch.npz'} ({len(kinds)} LS)")
    print(f"AnomalyThreshold (p{THRESHOLD_PERCENTILE} of the validation scores, 2 digits): {threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
