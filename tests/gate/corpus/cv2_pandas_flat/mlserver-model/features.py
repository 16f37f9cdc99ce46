"""Image features of FPix occupancy maps with OpenCV: smoothed and averaged down to 6 x 8, plus the hottest pixel."""

from __future__ import annotations

import cv2
import numpy as np

#: cv2 sizes are (width, height)
DOWNSAMPLED_SIZE = (8, 6)
N_IMAGE_FEATURES = DOWNSAMPLED_SIZE[0] * DOWNSAMPLED_SIZE[1] + 1


def image_features(maps: np.ndarray) -> np.ndarray:
    """(N, rows, cols) counts -> (N, 49) float32.

    48: the unit-mean map, blurred and area-averaged; 1: log of the largest ratio of a pixel to
    the median of its 3 x 3 neighbourhood (a single noisy module).
    """
    features = np.empty((len(maps), N_IMAGE_FEATURES), dtype=np.float32)
    for i, counts in enumerate(maps):
        image = counts.astype(np.float32)
        image /= max(float(image.mean()), 1e-6)
        blurred = cv2.GaussianBlur(image, (3, 3), 0)
        features[i, :-1] = cv2.resize(blurred, DOWNSAMPLED_SIZE, interpolation=cv2.INTER_AREA).ravel()
        neighbourhood = cv2.medianBlur(image, 3)
        features[i, -1] = np.log(float(np.max((image + 0.05) / (neighbourhood + 0.05))))
    return features
