"""Fixtures of the PixelNMF model tests: the shipped model file and the committed reference batch.

Both are loaded once per session; tests must not modify them (copy before changing anything).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
MODEL_FILE = REPOSITORY / "models" / "pixelnmf.joblib"
REFERENCE_BATCH_FILE = REPOSITORY / "tests" / "data" / "reference_batch.npz"


@pytest.fixture(scope="session")
def model():
    """The trained model the server folder ships (a pixelnmf.PixelNMF)."""
    import joblib

    return joblib.load(MODEL_FILE)


@pytest.fixture(scope="session")
def reference_batch() -> dict[str, np.ndarray]:
    """The committed reference batch: BPix1..4 int32 (N, rows, 72), expected_flag, kind, pileup."""
    with np.load(REFERENCE_BATCH_FILE, allow_pickle=False) as archive:
        batch = {key: archive[key] for key in archive.files}
    for array in batch.values():
        array.setflags(write=False)
    return batch


@pytest.fixture(scope="session")
def reference_inputs(model, reference_batch) -> dict[str, np.ndarray]:
    """The model inputs of the reference batch (read-only arrays)."""
    return {name: reference_batch[name] for name in model.input_names}


@pytest.fixture(scope="session")
def reference_evaluation(model, reference_inputs):
    """One evaluation of the whole reference batch with every intermediate map kept."""
    return model.evaluate(reference_inputs, keep_intermediates=True)
