"""The gate's layers as pytest modules shipped with dialsgate (collected by the plugin).

fast: template, static, image, pickle, signature (in-process), round-trip and package checks;
parity: the serving environment is the image's own; server: MLServer in the serving image.
"""

from __future__ import annotations

from pathlib import Path

LAYERS_DIR = Path(__file__).resolve().parent
LAYER_NAMES = ("fast", "parity", "server")


def layer_files(layer: str) -> list[Path]:
    """The test modules of one layer."""
    if layer not in LAYER_NAMES:
        raise KeyError(f"unknown layer {layer!r}; layers are {', '.join(LAYER_NAMES)}")
    return sorted(LAYERS_DIR.glob(f"test_{layer}*.py"))


def layer_of(path) -> str | None:
    """The layer a collected module belongs to, or None for a module that is not ours."""
    path = Path(path).resolve()
    if path.parent != LAYERS_DIR:
        return None
    return next((layer for layer in LAYER_NAMES if path.name.startswith(f"test_{layer}")), None)
