"""A static HTML report on one DIALS model folder: verdict, flags on the reference batch, pictures.

    python -m dialsgate.report --template template.yaml [--build-dir DIR] [--reference-batch F] --out report/

The report folder holds ``index.html`` and PNG pictures (relative links; no JavaScript):

1. header: model name, template, resource key, date, and the gate's verdict table when given;
2. the reference batch answered by the handler in this interpreter (as MLServer loads it):
   Flag and Metric per lumisection against the labels in the ``.npz`` (optional), per-kind summary;
3. for a PixelNMF model (recognised by duck typing, loaded from the server folder): per pictured
   lumisection the preprocessed maps, reconstructions, loss maps and the combined map with the
   flagging blocks outlined;
4. the serving image's package versions (``serving/pins.txt``) and the local image, if Docker answers;
5. the model file's sha256 and every file ``dismcli package`` would zip.

Everything except section 3 works for any DIALS MLServer model folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import v2
from .contract import Contract, load_contract
from .profiles import PROFILES_DIR

#: The core package set of the serving image (the profile of the image the templates name).
DEFAULT_PINS = PROFILES_DIR / "mlserver-1.5.0" / "core.txt"

#: Serving packages shown in section 4, in this order (names as in pins.txt, normalised).
SERVING_PACKAGES = ("numpy", "scikit-learn", "joblib", "scipy", "mlserver", "mlserver-sklearn", "pydantic")
PYTHON_NOTE = (
    "Python 3.10.12 (conda) in the real seldonio/mlserver:1.5.0 image; "
    "Python 3.11 (Debian 12) in the local stand-in built by serving/build-standin-image.sh"
)
#: At most this many lumisection pictures (the clean one included).
MAX_PICTURES = 24
DPI = 85
DOCKER_TIMEOUT_S = 5.0
#: Module size in bins (rows = ladder halves, columns = read-out chips) for axis labels when
#: the model's package does not say.
DEFAULT_MODULE_SHAPE = (2, 8)
PICTURE_PATTERN = "ls-*.png"


@contextlib.contextmanager
def _no_bytecode():
    """Import from the model folder without leaving __pycache__ in it (dismcli package would zip it)."""
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = previous


# -- reference batch through the handler ------------------------------------------------------
@dataclass
class BatchAnswers:
    """The handler's answers on the reference batch, with the optional labels of the .npz."""

    path: Path
    arrays: dict[str, np.ndarray]
    n_ls: int
    kind: np.ndarray | None = None
    expected: np.ndarray | None = None
    flag: np.ndarray | None = None
    metric: np.ndarray | None = None
    error: str | None = None
    flag_rule: str = ""


def default_reference_batch(contract: Contract) -> Path | None:
    """tests/data/reference_batch.npz or reference_batch.npz beside the template, if present."""
    folder = contract.template_path.parent
    for candidate in (folder / "tests" / "data" / "reference_batch.npz", folder / "reference_batch.npz"):
        if candidate.is_file():
            return candidate
    return None


def _optional_labels(path: Path, n_ls: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        kind = archive["kind"] if "kind" in archive.files else None
        expected = archive["expected_flag"] if "expected_flag" in archive.files else None
    kind = np.asarray(kind).astype(str) if kind is not None and len(kind) == n_ls else None
    expected = np.asarray(expected).astype(bool) if expected is not None and len(expected) == n_ls else None
    return kind, expected


def answer_batch(contract: Contract, path: Path) -> BatchAnswers:
    """Send the batch as DIALS would (flattened V2 request) to the handler in its serving environment."""
    from .subject import Subject

    try:
        arrays = v2.reference_arrays(path, contract)
    except (OSError, KeyError, ValueError) as error:
        return BatchAnswers(path=path, arrays={}, n_ls=0, error=f"cannot read the reference batch: {error}")
    n_ls = len(next(iter(arrays.values()))) if arrays else 0
    kind, expected = _optional_labels(path, n_ls)
    answers = BatchAnswers(path=path, arrays=arrays, n_ls=n_ls, kind=kind, expected=expected)
    subject = Subject(contract, arrays)
    try:
        try:
            handler = subject.handler
        except Exception as error:  # a handler that does not load is the first thing to report
            answers.error = f"the handler {contract.handler} did not load from {contract.code_dir}: {error}"
            return answers
        outcome = handler.predict(v2.request_body(contract, arrays, flatten=True, request_id="dialsgate-report"))
    finally:
        subject.close()
    if outcome.response is None:
        answers.error = f"the handler refused the reference batch (HTTP {outcome.status}): {outcome.error}"
        return answers
    outputs = v2.outputs_by_name(outcome.response)
    if contract.metric_key and contract.metric_key in outputs:
        answers.metric = np.asarray(outputs[contract.metric_key], dtype=np.float64).reshape(-1)
    if contract.builtin_threshold and contract.flagging_key in outputs:
        answers.flag = np.asarray(outputs[contract.flagging_key]).astype(bool).reshape(-1)
        answers.flag_rule = f"{contract.flagging_key} as answered (BuiltinThreshold: true)"
    elif not contract.builtin_threshold and answers.metric is not None and contract.anomaly_threshold is not None:
        answers.flag = answers.metric > float(contract.anomaly_threshold)
        answers.flag_rule = f"{contract.metric_key} > AnomalyThreshold {contract.anomaly_threshold} (BuiltinThreshold: false)"
    else:
        answers.error = f"the response lacks the flagging output: got {sorted(outputs)}"
    for name, values in (("flag", answers.flag), ("metric", answers.metric)):
        if values is not None and len(values) != n_ls:
            answers.error = f"the handler answered {len(values)} {name} values for {n_ls} lumisections"
    return answers


def picture_indices(answers: BatchAnswers, limit: int = MAX_PICTURES) -> tuple[list[int], int | None, int]:
    """(flagged or missed LS, the clean LS, how many were left out by the limit)."""
    if answers.flag is None:
        return [], None, 0
    interesting = answers.flag.copy()
    if answers.expected is not None:
        interesting |= answers.expected  # a missed anomaly deserves a picture too
    chosen = [int(i) for i in np.flatnonzero(interesting)]
    left_out = max(0, len(chosen) - (limit - 1))
    chosen = chosen[: limit - 1]
    quiet = ~interesting
    candidates = (
        np.flatnonzero(quiet & (np.char.find(answers.kind, "clean") >= 0)) if answers.kind is not None else np.array([], int)
    )
    if not len(candidates):
        candidates = np.flatnonzero(quiet)
    clean = int(candidates[0]) if len(candidates) else None
    return chosen, clean, left_out


# -- PixelNMF intermediates -------------------------------------------------------------------
@dataclass
class LayerMaps:
    name: str
    preprocessed: np.ndarray
    reconstruction: np.ndarray
    loss: np.ndarray
    clustered: np.ndarray
    total: float
    min_entries: float | None
    row_labels: tuple[np.ndarray, np.ndarray]  # tick positions, signed ladder numbers
    column_labels: tuple[np.ndarray, np.ndarray]  # tick positions, signed module numbers
    row_seam: float | None
    column_seam: float | None


@dataclass
class LSMaps:
    index: int
    flag: bool
    metric: float
    evaluated: bool
    layers: list[LayerMaps]
    combined: np.ndarray
    flagged_area: np.ndarray
    layer_count: np.ndarray | None


@dataclass
class ModelPictures:
    parameters: dict
    loss_mask: np.ndarray | None
    maps: list[LSMaps] = field(default_factory=list)
    batch_flag: np.ndarray | None = None  # the model's own flags on the whole batch (cross-check)


def _signed_ticks(kept: np.ndarray, n_raw: int, unit: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Tick positions (reduced bin coordinates) and signed numbers of ``unit``-bin groups.

    Groups count outwards from the removed middle band: ... -2, -1 | +1, +2 ...
    """
    kept = np.asarray(kept)
    middle = n_raw / 2
    below = kept[kept < middle]
    above = kept[kept >= middle]
    positions, numbers = [], []
    for group in range(len(below) // unit):
        positions.append(len(below) - (group + 0.5) * unit - 0.5)
        numbers.append(-(group + 1))
    for group in range(len(above) // unit):
        positions.append(len(below) + (group + 0.5) * unit - 0.5)
        numbers.append(group + 1)
    order = np.argsort(positions)
    seam = len(below) - 0.5 if len(below) and len(above) else None
    return np.asarray(positions)[order], np.asarray(numbers)[order], seam


def _thin_ticks(positions: np.ndarray, numbers: np.ndarray, per_side: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Keep the multiples of a step (1, 2, 4, 8, ...) so that at most ``per_side`` ticks remain per side."""
    largest = int(np.abs(numbers).max()) if len(numbers) else 0
    step = 1
    while largest / step > per_side:
        step *= 2
    keep = np.abs(numbers) % step == 0
    return positions[keep], numbers[keep]


def pixelnmf_pictures(contract: Contract, answers: BatchAnswers, indices: list[int]) -> ModelPictures | str:
    """Intermediate maps of the pictured LS, computed by the model loaded from the server folder.

    Returns a sentence instead when the model file does not hold a PixelNMF-like object.
    """
    from .inprocess import isolated_imports
    from .pickle_audit import audit_joblib

    if audit_joblib(contract.model_file).dangerous():
        return "the model file references dangerous globals: it is not loaded, no pictures"
    with _no_bytecode(), isolated_imports(contract.code_dir):
        import joblib

        model = joblib.load(contract.model_file)
        if not (hasattr(model, "evaluate") and hasattr(model, "layers")):
            return f"the model file holds a {type(model).__module__}.{type(model).__qualname__}, not a PixelNMF: no pictures"
        package = type(model).__module__.split(".")[0]
        flagging = importlib.import_module(f"{package}.flagging")
        try:
            combination = importlib.import_module(f"{package}.combination")
        except ImportError:
            combination = None
        try:
            module_shape = tuple(importlib.import_module(f"{package}.geometry").MODULE_SHAPE)
        except (ImportError, AttributeError):
            module_shape = DEFAULT_MODULE_SHAPE
        parameters = dict(model.parameters)
        whole = model.evaluate(answers.arrays)
        try:
            loss_mask = np.asarray(model.loss_mask)
        except Exception:  # an older model without the property: the panel simply omits it
            loss_mask = None
        pictures = ModelPictures(parameters=parameters, loss_mask=loss_mask, batch_flag=np.asarray(whole.flag, dtype=bool))
        if not indices:
            return pictures
        subset = {name: array[indices] for name, array in answers.arrays.items()}
        evaluation = model.evaluate(subset, keep_intermediates=True)
        area = flagging.flagged_area(evaluation.combined, parameters["flag_blocks"])
        grid = evaluation.combined.shape[1:]
        counts = None
        if combination is not None and hasattr(combination, "to_grid"):
            counts = sum(combination.to_grid(result.clustered, grid).astype(np.int16) for result in evaluation.layers.values())
        layer_facts = {layer["name"]: layer for layer in model.layers}

    for position, index in enumerate(indices):
        layers = []
        for name, result in evaluation.layers.items():
            facts = layer_facts.get(name, {})
            raw_shape = facts.get("shape", answers.arrays[name].shape[1:])
            rows = _signed_ticks(facts.get("kept_rows", np.arange(raw_shape[0])), raw_shape[0], module_shape[0])
            columns = _signed_ticks(facts.get("kept_columns", np.arange(raw_shape[1])), raw_shape[1], module_shape[1])
            layers.append(
                LayerMaps(
                    name=name,
                    preprocessed=np.asarray(result.preprocessed[position], dtype=np.float32),
                    reconstruction=np.asarray(result.reconstruction[position], dtype=np.float32),
                    loss=np.asarray(result.loss[position], dtype=np.float32),
                    clustered=np.asarray(result.clustered[position], dtype=bool),
                    total=float(answers.arrays[name][index].sum(dtype=np.int64)),
                    min_entries=facts.get("min_entries"),
                    row_labels=_thin_ticks(rows[0], rows[1]),
                    column_labels=_thin_ticks(columns[0], columns[1]),
                    row_seam=rows[2],
                    column_seam=columns[2],
                )
            )
        pictures.maps.append(
            LSMaps(
                index=index,
                flag=bool(evaluation.flag[position]),
                metric=float(evaluation.metric[position]),
                evaluated=bool(evaluation.evaluated[position]),
                layers=layers,
                combined=np.asarray(evaluation.combined[position], dtype=bool),
                flagged_area=np.asarray(area[position], dtype=bool),
                layer_count=None if counts is None else np.asarray(counts[position]),
            )
        )
    return pictures


# -- drawing ----------------------------------------------------------------------------------
def plot_style() -> tuple[dict, str]:
    """mplhep's CMS style scaled down for a grid of small panels, or plain matplotlib."""
    small = {
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "axes.linewidth": 0.8,
        "xtick.major.size": 3,
        "ytick.major.size": 3,
        "xtick.minor.visible": False,
        "ytick.minor.visible": False,
        "xtick.direction": "out",
        "ytick.direction": "out",
        "xtick.top": False,
        "ytick.right": False,
        "figure.figsize": (15.0, 11.0),
        "savefig.dpi": DPI,
        "image.interpolation": "nearest",
    }
    try:
        import mplhep

        return {**mplhep.style.CMS, **small}, f"mplhep {mplhep.__version__} CMS style"
    except Exception:  # mplhep is optional: plain matplotlib is readable too
        return dict(small), "plain matplotlib (mplhep not importable)"


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Segments (K, 2, 2) along the border between set and unset bins (bin centres at integers)."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)
    horizontal = padded[1:, 1:-1] != padded[:-1, 1:-1]  # (R+1, C): edge below row r at y = r - 0.5
    vertical = padded[1:-1, 1:] != padded[1:-1, :-1]  # (R, C+1): edge left of column c at x = c - 0.5
    rows, columns = np.nonzero(horizontal)
    h = np.stack([np.stack([columns - 0.5, rows - 0.5], -1), np.stack([columns + 0.5, rows - 0.5], -1)], 1)
    rows, columns = np.nonzero(vertical)
    v = np.stack([np.stack([columns - 0.5, rows - 0.5], -1), np.stack([columns - 0.5, rows + 0.5], -1)], 1)
    return np.concatenate([h, v]).astype(float) if len(h) + len(v) else np.zeros((0, 2, 2))


def _draw_outline(ax, mask, color, width, style="solid", zorder=3):
    from matplotlib.collections import LineCollection

    segments = mask_outline(mask)
    if not len(segments):
        return None
    collection = LineCollection(
        segments, colors=color, linewidths=width, linestyles=style, capstyle="projecting", zorder=zorder, animated=True
    )
    return ax.add_collection(collection, autolim=False)


@dataclass
class Scales:
    occupancy_max: float
    reconstruction_spread: float  # the reconstruction's own scale is 1 +- this
    loss_min: float
    loss_max: float
    threshold: float


def common_scales(pictures: ModelPictures) -> Scales:
    """One colour scale per kind of map for all pictures, so they compare at a glance."""
    threshold = float(pictures.parameters.get("loss_threshold", 0.04))
    clip = float(pictures.parameters.get("clip", 5.0))
    # Up to the largest input value (hot regions keep a colour of the scale), at least 2, at most the clip.
    high = max((float(layer.preprocessed.max()) for ls in pictures.maps for layer in ls.layers), default=2.0)
    occupancy_max = float(min(max(2.0, np.ceil(high * 2) / 2), clip))
    deviations = [float(np.abs(layer.reconstruction - 1.0).max()) for ls in pictures.maps for layer in ls.layers]
    spread = float(min(max(0.05, np.ceil(max(deviations, default=0.05) * 20) / 20), 1.0))
    losses = [float(layer.loss.max()) for ls in pictures.maps for layer in ls.layers]
    loss_max = 10.0 ** np.ceil(np.log10(max(max(losses, default=1.0), 1.0)))
    return Scales(
        occupancy_max=occupancy_max, reconstruction_spread=spread, loss_min=1e-4, loss_max=float(loss_max), threshold=threshold
    )


def _loss_colormap(scales: Scales):
    """Greys below the threshold, warm colours above it, on a log scale."""
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap

    span = np.log10(scales.loss_max) - np.log10(scales.loss_min)
    below = int(np.clip(round(256 * (np.log10(scales.threshold) - np.log10(scales.loss_min)) / span), 1, 255))
    greys = mpl.colormaps["Greys"](np.linspace(0.08, 0.45, below))
    warm = mpl.colormaps["YlOrRd"](np.linspace(0.3, 1.0, 256 - below))
    cmap = ListedColormap(np.vstack([greys, warm]), name="loss_threshold")
    return cmap.with_extremes(under="white", over="black")


def _decorate(ax, layer: LayerMaps, x_label: bool, y_label: bool):
    ax.set_xticks(layer.column_labels[0], [f"{n:+d}" for n in layer.column_labels[1]])
    ax.set_yticks(layer.row_labels[0], [f"{n:+d}" for n in layer.row_labels[1]])
    for seam, draw in ((layer.column_seam, ax.axvline), (layer.row_seam, ax.axhline)):
        if seam is not None:
            draw(seam, color="0.3", linewidth=0.7, linestyle=(0, (3, 3)), zorder=2)
    if x_label:
        ax.set_xlabel("signed module (cross removed)")
    if y_label:
        ax.set_ylabel(f"{layer.name}\nsigned ladder (cross removed)")


def _fmt_flag(value) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


#: Outline colours: clustered loss bins, combined-map bins, flagging blocks.
CLUSTER_COLOUR, COMBINED_COLOUR, BLOCK_COLOUR = "#0050ff", "black", "#00c8ff"


class LSFigure:
    """One figure reused for every pictured LS: only image data, outlines and text change.

    Laying out and drawing a 4x4 grid of panels with tick labels and colour bars costs far more
    than the maps themselves, so the static parts are drawn once and kept as a background; each
    picture restores it and draws only what changes (blitting).
    """

    def __init__(self, template: LSMaps, pictures: ModelPictures, scales: Scales, style: dict):
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, TwoSlopeNorm
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        self.style = style
        self.scales = scales
        self._outlines = []
        self._layers_above = {}  # axes -> artists drawn over its image (seams, spines, mask shade)
        n_layers = len(template.layers)
        with mpl.rc_context(style):
            figure = Figure(figsize=(15.0, 2.55 * n_layers + 1.6), dpi=DPI)
            self.canvas = FigureCanvasAgg(figure)
            self.figure = figure
            height = figure.get_figheight()
            grid = figure.add_gridspec(n_layers, 4, left=0.07, right=0.985, top=1 - 0.75 / height, bottom=1.25 / height,
                                       wspace=0.2, hspace=0.3, width_ratios=[1, 1, 1, 1.12])  # fmt: skip
            occupancy_norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=scales.occupancy_max)
            occupancy_cmap = mpl.colormaps["RdBu_r"].with_extremes(over="#3b0000")
            spread = scales.reconstruction_spread
            reconstruction_norm = TwoSlopeNorm(vmin=1.0 - spread, vcenter=1.0, vmax=1.0 + spread)
            reconstruction_cmap = mpl.colormaps["PuOr_r"].with_extremes(under="black", over="black")
            loss_norm = LogNorm(vmin=scales.loss_min, vmax=scales.loss_max)
            loss_cmap = _loss_colormap(scales)
            self.images = []  # per layer: preprocessed, reconstruction, loss images
            self.loss_axes = []
            map_axes = [[], [], []]
            for row, layer in enumerate(template.layers):
                images = []
                for column, (norm, cmap) in enumerate(
                    ((occupancy_norm, occupancy_cmap), (reconstruction_norm, reconstruction_cmap), (loss_norm, loss_cmap))
                ):
                    ax = figure.add_subplot(grid[row, column])
                    images.append(
                        ax.imshow(
                            np.ones(layer.loss.shape),
                            origin="lower",
                            aspect="auto",
                            norm=norm,
                            cmap=cmap,
                            interpolation="nearest",
                        )
                    )
                    _decorate(ax, layer, x_label=row == n_layers - 1, y_label=column == 0)
                    map_axes[column].append(ax)
                self.images.append(images)
                self.loss_axes.append(map_axes[2][-1])
            headers = (
                "input: occupancy / reference, unit mean",
                "NMF reconstruction (own scale)",
                "loss = (input - reconstruction)$^2$",
            )
            for column, header in enumerate(headers):
                map_axes[column][0].set_title(header, fontsize=10, loc="left")
            bottom = map_axes[0][-1].get_position().y0
            bar_height, bar_y = 0.012, bottom - 0.75 / height
            input_box, reconstruction_box = map_axes[0][-1].get_position(), map_axes[1][-1].get_position()
            cax = figure.add_axes((input_box.x0, bar_y, input_box.width, bar_height))
            bar = figure.colorbar(self.images[0][0], cax=cax, orientation="horizontal", extend="max")
            bar.set_label("relative occupancy (1 = reference)")
            cax = figure.add_axes((reconstruction_box.x0, bar_y, reconstruction_box.width, bar_height))
            bar = figure.colorbar(self.images[0][1], cax=cax, orientation="horizontal", extend="both")
            bar.set_label("reconstructed relative occupancy")
            loss_box = map_axes[2][-1].get_position()
            cax = figure.add_axes((loss_box.x0, bar_y, loss_box.width, bar_height))
            bar = figure.colorbar(self.images[0][2], cax=cax, orientation="horizontal", extend="both")
            bar.ax.axvline(scales.threshold, color=CLUSTER_COLOUR, linewidth=3)
            bar.ax.minorticks_off()
            bar.set_label(f"loss, log scale (threshold {scales.threshold:g}: blue line)")

            # The combined map on the first layer's grid.
            ax = figure.add_subplot(grid[0, 3])
            first = template.layers[0]
            self.has_counts = template.layer_count is not None
            levels = n_layers if self.has_counts else 1
            palette = ["#ffffff", "#fee391", "#fe9929", "#d7301f", "#7f0000", "#40004b", "#000000"][: levels + 1]
            self.count_image = ax.imshow(np.zeros(template.combined.shape), origin="lower", aspect="auto", cmap=ListedColormap(palette),
                                         norm=BoundaryNorm(np.arange(-0.5, levels + 1), len(palette)), interpolation="nearest")  # fmt: skip
            self.has_mask = pictures.loss_mask is not None and pictures.loss_mask.shape == template.combined.shape
            shade = None
            if self.has_mask:
                masked = np.ma.masked_where(pictures.loss_mask == 0, pictures.loss_mask)
                shade = ax.imshow(
                    masked, origin="lower", aspect="auto", cmap=ListedColormap(["0.5"]), alpha=0.4, interpolation="nearest"
                )
            _decorate(ax, first, x_label=True, y_label=False)
            ax.set_ylabel(f"signed ladder ({first.name} grid)")
            ax.set_title(f"combined map on {first.name}'s grid", fontsize=10, loc="left")
            self.combined_ax = ax
            box = ax.get_position()
            cax = figure.add_axes((box.x0, box.y0 - 0.95 / height, box.width, bar_height))
            bar = figure.colorbar(self.count_image, cax=cax, orientation="horizontal", ticks=np.arange(levels + 1))
            bar.set_label("layers with clustered loss in the bin" if self.has_counts else "combined bin set")

            # Legend and facts below it.
            text_top = box.y0 - 1.35 / height
            ax = figure.add_axes((box.x0, bottom, box.width, text_top - bottom))
            ax.axis("off")
            blocks = " or ".join(f"{h}x{w}" for h, w in pictures.parameters.get("flag_blocks", ()))
            handles = [
                Line2D([], [], color=CLUSTER_COLOUR, linewidth=1.5, label="loss: bins kept by the window clustering"),
                Line2D([], [], color=COMBINED_COLOUR, linewidth=1.0, label="combined: bin set"),
                Line2D([], [], color=BLOCK_COLOUR, linewidth=3.0, label=f"combined: flagging blocks ({blocks})"),
                Line2D([], [], color="0.3", linewidth=0.7, linestyle=(0, (3, 3)), label="where the empty cross was cut out"),
            ]
            if self.has_mask:
                handles.insert(3, Patch(facecolor="0.5", alpha=0.4, label="loss mask > 0 (empty in training)"))
            ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=9, borderaxespad=0)
            self.facts = ax.text(
                0.0, 0.7, "", family="monospace", fontsize=8.5, va="top", ha="left", transform=ax.transAxes, animated=True
            )
            self.title = figure.suptitle("", fontsize=13, animated=True)

            # Everything drawn over the changing images is redrawn after them, in z order.
            for axes in [*(ax for row in self.images for ax in (image.axes for image in row)), self.combined_ax]:
                above = [line for line in axes.lines] + list(axes.spines.values())
                if axes is self.combined_ax and shade is not None:
                    above.append(shade)
                for artist in above:
                    artist.set_animated(True)
                self._layers_above[axes] = above
            for image in [*(image for row in self.images for image in row), self.count_image]:
                image.set_animated(True)
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(figure.bbox)

    def render(self, ls: LSMaps, title: str, path: Path) -> None:
        import matplotlib as mpl
        from PIL import Image

        for outline in self._outlines:
            outline.remove()
        self._outlines = []
        with mpl.rc_context(self.style):
            drawn = {}  # axes -> artists to draw, in order
            for images, layer in zip(self.images, ls.layers, strict=True):
                images[0].set_data(layer.preprocessed)
                images[1].set_data(layer.reconstruction)
                images[2].set_data(np.maximum(layer.loss, self.scales.loss_min * 0.5))
                for image in images:
                    drawn[image.axes] = [image]
                drawn[images[2].axes].append(_draw_outline(images[2].axes, layer.clustered, CLUSTER_COLOUR, 1.5))
            self.count_image.set_data(ls.layer_count if self.has_counts else ls.combined.astype(int))
            drawn[self.combined_ax] = [
                self.count_image,
                _draw_outline(self.combined_ax, ls.combined, COMBINED_COLOUR, 1.0),
                _draw_outline(self.combined_ax, ls.flagged_area, BLOCK_COLOUR, 3.0, zorder=4),
            ]
            threshold = format(self.scales.threshold, "g")
            lines = [
                f"evaluated (minimum entries): {_fmt_flag(ls.evaluated)}",
                f"model Flag {_fmt_flag(ls.flag)}, Metric {ls.metric:g}",
                "",
            ]
            lines.append(f"{'layer':<6}{'entries':>9}{'minimum':>8}{'>' + threshold:>7}{'clust.':>7}{'max loss':>9}")
            for layer in ls.layers:
                minimum = "-" if layer.min_entries is None else f"{layer.min_entries:.0f}"
                above = int((layer.loss > self.scales.threshold).sum())
                lines.append(
                    f"{layer.name:<6}{layer.total:>9.0f}{minimum:>8}{above:>7d}{int(layer.clustered.sum()):>7d}{float(layer.loss.max()):>9.3g}"
                )
            lines += ["", f">{threshold}: loss bins above the threshold", "clust.: bins kept by the window clustering", ""]
            lines.append(f"combined map: {int(ls.combined.sum())} bins set,")
            lines.append(f"{int(ls.flagged_area.sum())} of them in flagging blocks")
            self.facts.set_text("\n".join(lines))
            self.title.set_text(title)

            self.canvas.restore_region(self.background)
            for axes, (image, *outlines) in drawn.items():
                outlines = [outline for outline in outlines if outline is not None]
                self._outlines += outlines
                # the image first, then everything above it (mask shade, seams, outlines, spines) by z order
                for artist in [image, *sorted(outlines + self._layers_above[axes], key=lambda artist: artist.get_zorder())]:
                    self.figure.draw_artist(artist)
            self.figure.draw_artist(self.facts)
            self.figure.draw_artist(self.title)
            pixels = np.asarray(self.canvas.buffer_rgba())[..., :3]
        # A 256-colour palette keeps the PNGs small (the pictures use few distinct colours).
        Image.fromarray(pixels).quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            path, optimize=True
        )


# -- package, pins, image ---------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class PackageListing:
    folder: Path | None
    origin: str
    files: list[tuple[str, int, str]]  # relative path, bytes, sha256
    error: str | None = None


def package_listing(contract: Contract) -> PackageListing:
    """What dismcli package would zip: the build folder, or an offline build made for the purpose."""
    from .checks.package import package_files

    temp = None
    try:
        if contract.built:
            folder, origin = contract.code_dir, "the build folder given (--build-dir)"
        else:
            from .build import build

            temp = Path(tempfile.mkdtemp(prefix="dialsgate-report-build-"))
            build(contract.template_path, temp / "build")
            folder, origin = (
                temp / "build" / contract.resource_key,
                "an offline build (python -m dialsgate.build) made for this report",
            )
        files = [(path.as_posix(), (folder / path).stat().st_size, sha256_of(folder / path)) for path in package_files(folder)]
        return PackageListing(folder=None if temp else folder, origin=origin, files=files)
    except Exception as error:  # shown in the report; the rest of the report is still useful
        return PackageListing(folder=None, origin="", files=[], error=f"{type(error).__name__}: {error}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serving_pins(pins_file: Path = DEFAULT_PINS) -> dict[str, str]:
    pins = {}
    if pins_file.is_file():
        for line in pins_file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[_normalise_name(name)] = version.strip()
    return pins


def docker_image(image: str | None, timeout: float = DOCKER_TIMEOUT_S) -> dict:
    """``docker image inspect`` of the contract's image; {'error': ...} on any failure."""
    if not image:
        return {"error": "the template names no Image"}
    if shutil.which("docker") is None:
        return {"error": "docker is not installed here"}
    try:
        done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"docker did not answer within {timeout:g} s"}
    except OSError as error:
        return {"error": f"docker could not be run: {error}"}
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        return {"error": f"not available locally ({message[-1] if message else f'exit {done.returncode}'})"}
    try:
        found = json.loads(done.stdout)[0]
    except (ValueError, IndexError, KeyError) as error:
        return {"error": f"unreadable docker answer: {error}"}
    config = found.get("Config") or {}
    return {
        "id": found.get("Id"),
        "tags": found.get("RepoTags") or [],
        "created": found.get("Created"),
        "comment": found.get("Comment") or "",
        "size": found.get("Size"),
        "user": config.get("User") or "",
        "labels": config.get("Labels") or {},
    }


# -- HTML -------------------------------------------------------------------------------------
CSS = """
body { font-family: "Helvetica Neue", Arial, sans-serif; margin: 1.5em auto; max-width: 1250px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f2f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.mismatch td { background: #fde2e1; } tr.flagged td.flag { font-weight: bold; color: #b00020; }
td.passed { color: #0a7a20; font-weight: bold; } td.failed, td.error { color: #b00020; font-weight: bold; }
td.other { color: #8a6d00; font-weight: bold; }
td.reason { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60em; }
p.verdict-passed { color: #0a7a20; font-size: 1.2em; font-weight: bold; } p.verdict-failed { color: #b00020; font-size: 1.2em; font-weight: bold; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 0.92em; }
.note { color: #555; font-size: 0.92em; } .problem { color: #b00020; font-weight: bold; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.92em; color: #444; } dl.facts dt { font-weight: bold; float: left; clear: left; width: 11em; } dl.facts dd { margin-left: 12em; }
ul.toc { columns: 2; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _table(headers, rows, table_id=None, row_classes=None, cell_classes=None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, value in enumerate(row):
            cell_css = (cell_classes[i][j] if cell_classes else None) or (
                "num" if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) else ""
            )
            attribute = f' class="{cell_css}"' if cell_css else ""
            cells.append(f"<td{attribute}>{value if isinstance(value, Markup) else _e(value)}</td>")
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    attribute = f' id="{table_id}"' if table_id else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Markup(str):
    """Text already escaped (links, code)."""


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return str(n_bytes)


def _verdict_section(verdict_rows) -> str:
    """The gate's rows (layer, check, result, reason): anything but 'passed' first, then the rest."""
    if not verdict_rows:
        return '<p class="note">No gate verdict was given to the report (run it from the gate to include one).</p>'
    results = [str(entry.get("result", "")) for entry in verdict_rows]
    passed = [result == "passed" for result in results]
    order = sorted(range(len(verdict_rows)), key=lambda i: passed[i])  # stable: the gate's order within each group
    rows, classes = [], []
    for i in order:
        entry = verdict_rows[i]
        rows.append(
            [
                entry.get("layer", ""),
                Markup(f"<code>{_e(entry.get('check', ''))}</code>"),
                results[i],
                entry.get("reason", "") or "",
            ]
        )
        css = results[i] if results[i] in ("passed", "failed", "error") else "other"
        classes.append([None, None, css, "reason"])  # the whole reason, its line breaks kept
    counts = ", ".join(f"{results.count(result)} {result}" for result in dict.fromkeys(results))
    ok = all(passed)
    summary = (
        f'<p class="verdict-{"passed" if ok else "failed"}">Gate verdict: {"PASSED" if ok else "FAILED"}</p>'
        f"<p>{len(verdict_rows)} rows: {_e(counts)}. Anything but <i>passed</i> (skipped, xfailed, deselected, not run included) fails the gate.</p>"
    )
    return summary + _table(["layer", "check", "result", "reason"], rows, table_id="verdict-table", cell_classes=classes)


def _flags_section(contract: Contract, answers: BatchAnswers | None, pictured: set[int], picture_names: dict[int, str]) -> str:
    if answers is None:
        return '<p class="note">No reference batch: none was given and none lies beside the template.</p>'
    parts = [f"<p>Batch <code>{_e(answers.path)}</code>: {answers.n_ls} lumisections, sent as one flattened V2 request to the handler "
             f"<code>{_e(contract.handler)}</code> loaded in this interpreter from <code>{_e(contract.code_dir)}</code>.</p>"]  # fmt: skip
    if answers.error:
        return parts[0] + f'<p class="problem">{_e(answers.error)}</p>'
    parts.append(f'<p class="note">Flag: {_e(answers.flag_rule)}; metric: {_e(contract.metric_key or "none declared")}.</p>')
    if answers.expected is not None:
        matches = int((answers.flag == answers.expected).sum())
        css = "" if matches == answers.n_ls else ' class="problem"'
        parts.append(f"<p{css}><b>{matches} of {answers.n_ls} flags match the labels.</b></p>")
    else:
        parts.append('<p class="note">The batch carries no <code>expected_flag</code>: flags are shown without labels.</p>')
    if answers.kind is not None:
        kinds = list(dict.fromkeys(answers.kind.tolist()))
        rows = []
        for kind in kinds:
            members = answers.kind == kind
            expected = int(answers.expected[members].sum()) if answers.expected is not None else "n/a"
            matched = int((answers.flag[members] == answers.expected[members]).sum()) if answers.expected is not None else "n/a"
            rows.append([kind, int(members.sum()), int(answers.flag[members].sum()), expected, matched])
        classes = ["mismatch" if answers.expected is not None and row[4] != row[1] else None for row in rows]
        parts.append(
            "<h3>Per kind</h3>"
            + _table(
                ["kind", "count", "flagged", "expected flagged", "matching"], rows, table_id="kinds-table", row_classes=classes
            )
        )
    rows, classes = [], []
    for i in range(answers.n_ls):
        expected = None if answers.expected is None else bool(answers.expected[i])
        flag = bool(answers.flag[i])
        picture = Markup(f'<a href="#ls-{i}">picture</a>') if i in pictured else ""
        rows.append([
            i,
            answers.kind[i] if answers.kind is not None else "",
            _fmt_flag(expected),
            _fmt_flag(flag),
            f"{answers.metric[i]:g}" if answers.metric is not None else "n/a",
            "n/a" if expected is None else ("yes" if expected == flag else "NO"),
            picture,
        ])  # fmt: skip
        classes.append(
            " ".join(
                filter(None, ["ls", "flagged" if flag else "", "mismatch" if expected is not None and expected != flag else ""])
            )
        )
    cell_classes = [["num", None, None, "flag", "num", None, None] for _ in rows]
    header = [
        "LS",
        "kind",
        "expected flag",
        f"model {contract.flagging_key or 'flag'}",
        contract.metric_key or "metric",
        "match",
        "",
    ]
    parts.append(
        "<h3>Per lumisection</h3>" + _table(header, rows, table_id="flags-table", row_classes=classes, cell_classes=cell_classes)
    )
    return "".join(parts)


def _pictures_section(pictures, answers, picture_names, left_out, style_note, scales) -> str:
    if isinstance(pictures, str):
        return f'<p class="note">{_e(pictures)}</p>'
    if pictures is None:
        return '<p class="note">No reference batch answers: no pictures.</p>'
    parts = []
    if pictures.batch_flag is not None and answers.flag is not None and not np.array_equal(pictures.batch_flag, answers.flag):
        differing = np.flatnonzero(pictures.batch_flag != answers.flag).tolist()
        parts.append(f'<p class="problem">The model object evaluated directly disagrees with the handler on LS {differing}.</p>')
    parameters = ", ".join(f"{key} = {value}" for key, value in pictures.parameters.items())
    parts.append(
        "<p>One picture per flagged lumisection (and per labelled anomaly the model missed), plus one clean lumisection. "
        "Rows: the layers; columns: the preprocessed input map, the model's reconstruction and the loss map "
        "(grey below the loss threshold, warm colours above it; the bins kept by the window clustering outlined in blue), "
        "and the combined map on the first layer's grid (colour: how many layers have clustered loss there; black outline: "
        "bins set in the combined map; thick cyan outline: the flagging blocks found; grey shade: the loss mask). "
        "Axes: signed module (columns) and signed ladder (rows) numbers after the empty cross was removed (dashed line: "
        "where it was). Colour scales are the same in every picture; the reconstruction has its own, narrower scale around 1 "
        f'so that what the NMF models stays visible.</p><p class="note">Parameters: {_e(parameters)}.'
        + (
            f" Drawn with {_e(style_note)}; input scale 0 to {scales.occupancy_max:g}, reconstruction 1 &plusmn; {scales.reconstruction_spread:g}, "
            f"loss {scales.loss_min:g} to {scales.loss_max:g} (log).</p>"
            if scales is not None
            else "</p>"
        )
    )
    if not pictures.maps:
        parts.append('<p class="note">No lumisection of the batch to picture (nothing flagged and no clean one).</p>')
    if left_out:
        parts.append(f'<p class="note">{left_out} further flagged lumisections are not pictured (limit {MAX_PICTURES}).</p>')
    for ls in pictures.maps:
        name = picture_names[ls.index]
        kind = answers.kind[ls.index] if answers.kind is not None else "no label"
        caption = f"LS {ls.index} ({kind}): Flag {_fmt_flag(ls.flag)}, Metric {ls.metric:g}, expected flag {_fmt_flag(None if answers.expected is None else bool(answers.expected[ls.index]))}"
        parts.append(
            f'<figure id="ls-{ls.index}"><img src="{_e(name)}" alt="{_e(caption)}" loading="lazy"><figcaption>{_e(caption)}</figcaption></figure>'
        )
    return "".join(parts)


def _serving_section(contract: Contract, pins_file: Path, image: dict) -> str:
    pins = serving_pins(pins_file)
    rows = [[name, pins.get(name, "not pinned")] for name in SERVING_PACKAGES]
    rows.append(["python", PYTHON_NOTE])
    parts = [
        f"<p>From <code>{_e(pins_file)}</code> (the serving image's package set):</p>",
        _table(["package", "version"], rows, table_id="pins-table"),
    ]
    parts.append(f"<h3>Local image <code>{_e(contract.image or '(none)')}</code></h3>")
    if "error" in image:
        parts.append(f'<p class="note">Docker: {_e(image["error"])}.</p>')
        return "".join(parts)
    stand_in = any(key.endswith("pins-sha256") for key in image["labels"]) or "stand-in" in image["comment"]
    facts = [
        ("image id", Markup(f"<code>{_e(image['id'])}</code>")),
        ("tags", ", ".join(image["tags"]) or "none"),
        ("created", image["created"]),
        ("size", _size(image["size"])),
        ("user", image["user"] or "(image default)"),
        ("comment", image["comment"] or "-"),
        (
            "which",
            "the local stand-in (Debian 12, Python 3.11)"
            if stand_in
            else "not marked as a stand-in (the real image, Python 3.10)",
        ),
    ]
    parts.append(
        '<dl class="facts">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{v if isinstance(v, Markup) else _e(v)}</dd>" for k, v in facts)
        + "</dl>"
    )
    if image["labels"]:
        parts.append(
            _table(
                ["label", "value"],
                [[Markup(f"<code>{_e(k)}</code>"), v] for k, v in sorted(image["labels"].items())],
                table_id="labels-table",
            )
        )
    else:
        parts.append('<p class="note">The image has no labels.</p>')
    return "".join(parts)


def _package_section(contract: Contract, model_sha: str | None, listing: PackageListing) -> str:
    parts = ["<dl class=\"facts\">",
             f"<dt>model file</dt><dd><code>{_e(contract.model_file)}</code></dd>",
             f"<dt>sha256</dt><dd><code id=\"model-sha256\">{_e(model_sha or 'model file missing')}</code></dd>",
             "</dl>"]  # fmt: skip
    if listing.error:
        parts.append(f'<p class="problem">Could not list what dismcli package would zip: {_e(listing.error)}</p>')
        return "".join(parts)
    total = sum(size for _, size, _ in listing.files)
    where = f" (<code>{_e(listing.folder)}</code>)" if listing.folder else ""
    parts.append(
        f"<p>What <code>dismcli package</code> would zip, from {_e(listing.origin)}{where}: {len(listing.files)} files, {_e(_size(total))}.</p>"
    )
    rows = [
        [Markup(f"<code>{_e(path)}</code>"), size, Markup(f'<span class="mono">{_e(digest[:16])}…</span>')]
        for path, size, digest in listing.files
    ]
    parts.append(_table(["file", "bytes", "sha256 (first 16)"], rows, table_id="package-table"))
    return "".join(parts)


# -- the report -------------------------------------------------------------------------------
def write_report(contract: Contract, out_dir, reference_batch=None, verdict_rows=None, pins_file: Path = DEFAULT_PINS) -> Path:
    """Write ``out_dir/index.html`` and its pictures; returns the index.html path."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(PICTURE_PATTERN):
        stale.unlink()

    batch_path = Path(reference_batch) if reference_batch is not None else default_reference_batch(contract)
    answers = answer_batch(contract, batch_path) if batch_path is not None else None

    pictures, scales, style_note, picture_names, left_out = None, None, "", {}, 0
    if answers is not None and answers.error is None:
        chosen, clean, left_out = picture_indices(answers)
        indices = sorted(chosen + ([clean] if clean is not None else []))
        width = len(str(max(answers.n_ls - 1, 0)))
        picture_names = {i: f"ls-{i:0{max(width, 4)}d}.png" for i in indices}
        try:
            pictures = pixelnmf_pictures(contract, answers, indices)
        except Exception as error:  # the pictures are an extra: say why they are missing
            pictures = f"the model's intermediate maps could not be computed: {type(error).__name__}: {error}"
        if isinstance(pictures, ModelPictures) and pictures.maps:
            style, style_note = plot_style()
            scales = common_scales(pictures)
            drawing = LSFigure(pictures.maps[0], pictures, scales, style)
            for ls in pictures.maps:
                kind = answers.kind[ls.index] if answers.kind is not None else "no label"
                expected = None if answers.expected is None else bool(answers.expected[ls.index])
                title = f"LS {ls.index}  |  kind: {kind}  |  Flag: {_fmt_flag(ls.flag)}  |  Metric: {ls.metric:g}  |  expected flag: {_fmt_flag(expected)}"
                drawing.render(ls, title, out_dir / picture_names[ls.index])
        else:
            picture_names = {}

    model_sha = sha256_of(contract.model_file) if contract.model_file.is_file() else None
    listing = package_listing(contract)
    image = docker_image(contract.image)
    pictured = set(picture_names) if isinstance(pictures, ModelPictures) else set()

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    header = [
        ("model name", contract.name),
        ("template", Markup(f"<code>{_e(contract.template_path)}</code>")),
        ("resource key", contract.resource_key),
        ("handler", Markup(f"<code>{_e(contract.handler)}</code>")),
        (
            "model folder",
            Markup(f"<code>{_e(contract.code_dir)}</code>" + (" (dismcli build folder)" if contract.built else " (CodeUri)")),
        ),
        ("image", contract.image or "-"),
        ("generated", now),
    ]
    sections = [
        ("verdict", "Gate verdict", _verdict_section(verdict_rows)),
        ("flags", "Reference batch: flags against labels", _flags_section(contract, answers, pictured, picture_names)),
        (
            "pictures",
            "Model pictures",
            _pictures_section(pictures, answers, picture_names, left_out, style_note, scales)
            if answers is not None and answers.error is None
            else '<p class="note">No pictures without the reference batch answers.</p>',
        ),
        ("serving", "Serving package versions", _serving_section(contract, Path(pins_file), image)),
        ("package", "Model file and package contents", _package_section(contract, model_sha, listing)),
    ]
    elapsed = time.perf_counter() - started
    document = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(contract.name)}: DIALS model report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(contract.name)}: DIALS model report</h1>",
        '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{v if isinstance(v, Markup) else _e(v)}</dd>" for k, v in header) + "</dl>",
        '<ul class="toc">' + "".join(f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title, _ in sections) + "</ul>",
        *(f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>' for key, title, body in sections),
        f'<p class="note">Written by <code>python -m dialsgate.report</code> in {elapsed:.1f} s.</p>',
        "</body></html>",
    ])  # fmt: skip
    index = out_dir / "index.html"
    index.write_text(document, encoding="utf-8")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Write an HTML report on a DIALS model folder (flags, pictures, versions, package)."
    )
    parser.add_argument("--template", type=Path, default=Path("template.yaml"), help="DISM template (default: ./template.yaml)")
    parser.add_argument("--resource", default=None, help="resource key, when the template has several MLServer resources")
    parser.add_argument(
        "--build-dir", type=Path, default=None, help="a dismcli .dism-artifacts/build/<ResourceKey> folder instead of CodeUri"
    )
    parser.add_argument(
        "--reference-batch", type=Path, default=None, help=".npz with one array per input (default: beside the template)"
    )
    parser.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    contract = load_contract(args.template, build_dir=args.build_dir, resource_key=args.resource)
    index = write_report(contract, args.out, reference_batch=args.reference_batch)
    pictures = sorted(index.parent.glob(PICTURE_PATTERN))
    size = sum(path.stat().st_size for path in [index, *pictures])
    print(f"wrote {index} and {len(pictures)} pictures ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
