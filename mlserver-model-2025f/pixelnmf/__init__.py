"""pixelnmf: the CMS pixel-barrel NMF anomaly model (numpy and scipy only at run time).

Pipeline per lumisection, vectorised over the batch: preprocessing -> reconstruction ->
clustering -> combination -> flagging, with the minimum-entries filter in ``entries``.
"""

from .model import DEFAULT_PARAMETERS, FORMAT_VERSION, Evaluation, InputError, PixelNMF

__all__ = ["FORMAT_VERSION", "DEFAULT_PARAMETERS", "Evaluation", "InputError", "PixelNMF"]
