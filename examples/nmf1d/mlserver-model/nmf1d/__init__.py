"""nmf1d: a one-histogram NMF anomaly score for DIALS (numpy only at run time).

Per lumisection the 1D histogram is normalised to unit sum, reconstructed as a non-negative
combination of a few learned components (exact NNLS), and scored by its mean squared
reconstruction error relative to the training median.
"""

from .model import FORMAT_VERSION, NMF1D, InputError

__all__ = ["FORMAT_VERSION", "InputError", "NMF1D"]
