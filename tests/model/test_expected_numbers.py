"""Golden values of the reference batch (pytest-regressions, files in test_expected_numbers/).

Regenerate only on purpose, after a deliberate change of the model or the batch:

    python -m pytest tests/model/test_expected_numbers.py --force-regen

Stored: per layer the reconstruction, loss and clustered maps of ten LS (one of each kind) and
per-LS sums of every intermediate map for all 40 LS; the combined maps, flags, metric and
evaluated mask for all 40 LS (booleans as uint8).

Tolerances: the maps are computed in float32, and the NNLS pass over the data accumulates up
to 8192 float32 products, so values move by a few 1e-6 between numpy releases and machines
(measured: <= 1e-5 absolute between numpy 1.26 and 2.4). Maps: rtol 1e-4, atol 1e-5 (10x that);
sums over a layer (up to 8192 bins): rtol 1e-4, atol 1e-3. Booleans, counts, the metric (a
number of bins) and the flags: exact.
"""

from __future__ import annotations

import numpy as np
import pytest

#: One LS of each of the ten kinds (the batch is grouped by kind, four LS each).
SUBSET = np.arange(0, 40, 4)
MAP_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
SUM_TOLERANCE = {"rtol": 1e-4, "atol": 1e-3}
EXACT = {"rtol": 0.0, "atol": 0.0}


def test_subset_covers_every_kind_once(reference_batch):
    kinds = reference_batch["kind"][SUBSET]
    assert len(set(kinds.tolist())) == len(SUBSET) == len(set(reference_batch["kind"].tolist()))


@pytest.mark.parametrize("name", ["BPix1", "BPix2", "BPix3", "BPix4"])
def test_layer_maps_of_the_reference_batch(reference_evaluation, ndarrays_regression, name):
    layer = reference_evaluation.layers[name]
    assert layer.reconstruction.dtype == layer.loss.dtype == np.float32
    data = {
        "reconstruction": layer.reconstruction[SUBSET],
        "loss": layer.loss[SUBSET],
        "clustered": layer.clustered[SUBSET].astype(np.uint8),
        "preprocessed_sum": layer.preprocessed.sum(axis=(1, 2), dtype=np.float64),
        "reconstruction_sum": layer.reconstruction.sum(axis=(1, 2), dtype=np.float64),
        "loss_sum": layer.loss.sum(axis=(1, 2), dtype=np.float64),
        "clustered_count": layer.clustered.sum(axis=(1, 2)).astype(np.int64),
    }
    tolerances = {key: SUM_TOLERANCE for key in ("preprocessed_sum", "reconstruction_sum", "loss_sum")}
    ndarrays_regression.check(data, basename=f"{name}_maps", default_tolerance=MAP_TOLERANCE, tolerances=tolerances)


def test_combined_maps_flags_and_metric_of_the_reference_batch(reference_evaluation, ndarrays_regression):
    data = {
        "combined": reference_evaluation.combined.astype(np.uint8),
        "flag": reference_evaluation.flag.astype(np.uint8),
        "metric": reference_evaluation.metric,
        "evaluated": reference_evaluation.evaluated.astype(np.uint8),
    }
    assert data["metric"].dtype == np.float32
    ndarrays_regression.check(data, basename="combined_flags_metric", default_tolerance=EXACT)
