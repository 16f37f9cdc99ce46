"""The pixel model's pictures for the DIALS model report (a ``dialsgate.report_pictures`` hook).

Registered in pyproject.toml (entry-point group ``dialsgate.report_pictures``) and usable
without installing anything as ``DIALSGATE_REPORT_PICTURES=model_src/pixelnmf_train/report_pictures.py:pictures``.
This is development code: it lives outside the server folder and is never synced into it.

Per pictured lumisection, one PNG: a row per layer with the preprocessed input map, the NMF
reconstruction and the loss map (the bins kept by the window clustering outlined), and the
combined map on the first layer's grid with the flagging blocks outlined. The model is loaded
from the server folder (as MLServer would), duck-typed: anything with ``evaluate`` and
``layers`` and a sibling ``flagging`` module.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DPI = 85
#: Module size in bins (rows = ladder halves, columns = read-out chips) for axis labels when
#: the model's package does not say.
DEFAULT_MODULE_SHAPE = (2, 8)


@contextlib.contextmanager
def _no_bytecode():
    """Import from the model folder without leaving __pycache__ in it (dismcli package would zip it)."""
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = previous


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


def pixelnmf_pictures(contract, answers, indices: list[int]) -> ModelPictures | str:
    """Intermediate maps of the pictured LS, computed by the model loaded from the server folder.

    Returns a sentence instead when the model file does not hold a PixelNMF-like object.
    """
    from dialsgate.modelfile.pickle_audit import audit_model_file
    from pixelnmf_train.inprocess import isolated_imports

    if audit_model_file(contract.model_file, contract.code_dir).refusal():
        return "the model file's pickle audit refuses it: it is not loaded, no pictures"
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


def _fmt_flag(value) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _description(pictures: ModelPictures, style_note: str, scales: Scales | None) -> str:
    parameters = ", ".join(f"{key} = {value}" for key, value in pictures.parameters.items())
    text = (
        "One picture per flagged lumisection (and per labelled anomaly the model missed), plus one clean lumisection. "
        "Rows: the layers; columns: the preprocessed input map, the model's reconstruction and the loss map "
        "(grey below the loss threshold, warm colours above it; the bins kept by the window clustering outlined in blue), "
        "and the combined map on the first layer's grid (colour: how many layers have clustered loss there; black outline: "
        "bins set in the combined map; thick cyan outline: the flagging blocks found; grey shade: the loss mask). "
        "Axes: signed module (columns) and signed ladder (rows) numbers after the empty cross was removed (dashed line: "
        "where it was). Colour scales are the same in every picture; the reconstruction has its own, narrower scale around 1 "
        f"so that what the NMF models stays visible. Parameters: {parameters}."
    )
    if scales is not None:
        text += (
            f" Drawn with {style_note}; input scale 0 to {scales.occupancy_max:g}, reconstruction 1 ± {scales.reconstruction_spread:g}, "
            f"loss {scales.loss_min:g} to {scales.loss_max:g} (log)."
        )
    return text


def pictures(contract, answers, indices: list[int], out_dir: Path):
    """The hook: one PNG per lumisection of ``indices`` in ``out_dir``; see dialsgate.report.hooks.

    Returns [(None, note), ..., (file name, caption, LS), ...] or a sentence when the model file
    holds no PixelNMF.
    """
    found = pixelnmf_pictures(contract, answers, indices)
    if isinstance(found, str):
        return found
    notes = []
    if found.batch_flag is not None and answers.flag is not None and not np.array_equal(found.batch_flag, answers.flag):
        differing = np.flatnonzero(found.batch_flag != answers.flag).tolist()
        notes.append((None, f"The model object evaluated directly disagrees with the handler on LS {differing}."))
    if not found.maps:
        return [
            *notes,
            (None, _description(found, "", None)),
            (None, "No lumisection of the batch to picture (nothing flagged and no clean one)."),
        ]
    style, style_note = plot_style()
    scales = common_scales(found)
    notes.append((None, _description(found, style_note, scales)))
    width = max(len(str(max(answers.n_ls - 1, 0))), 4)
    drawing = LSFigure(found.maps[0], found, scales, style)
    drawn = []
    for ls in found.maps:
        kind = answers.kind[ls.index] if answers.kind is not None else "no label"
        expected = _fmt_flag(None if answers.expected is None else bool(answers.expected[ls.index]))
        name = f"ls-{ls.index:0{width}d}.png"
        title = f"LS {ls.index}  |  kind: {kind}  |  Flag: {_fmt_flag(ls.flag)}  |  Metric: {ls.metric:g}  |  expected flag: {expected}"
        drawing.render(ls, title, Path(out_dir) / name)
        caption = f"LS {ls.index} ({kind}): Flag {_fmt_flag(ls.flag)}, Metric {ls.metric:g}, expected flag {expected}"
        drawn.append((name, caption, ls.index))
    return [*notes, *drawn]


def _is_a_pixelnmf_folder(contract) -> bool:
    """The hook is for server folders holding the pixelnmf package (either deployment)."""
    return (contract.code_dir / "pixelnmf" / "model.py").is_file()


pictures.applies_to = _is_a_pixelnmf_folder
