"""Measure the training deviations on held-out clean lumisections.

    python -m pixelnmf_train.quality [--variants documented forget_0.7 ...] [--layers BPix2 BPix4]

Each variant trains the four-layer deployment's layers on the same synthetic training runs as
``pixelnmf_train.train`` and is evaluated on a held-out clean synthetic run (a seed no training
run uses): per layer the mean squared residual (mean of the loss map: squared difference of the
preprocessed input and its reconstruction, over the bins without the cross) and the fraction of
bins whose loss exceeds the 0.04 threshold, plus the number of LS flagged (all are clean). Both
figures are given over all bins and over the live bins only (reference > 0): the permanently
dead bins (about 0.5 % of each layer) have a loss near 1 whatever the training.
``documented`` is what ``train`` does (read from the shipped four-layer joblib, which that
deterministic training wrote; ``--retrain-documented`` trains it again); the others change one
setting each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from pixelnmf import PixelNMF
from pixelnmf.geometry import layer_by_name

from . import synthetic
from .deployments import DEPLOYMENTS, Deployment
from .train import N_PARTIAL_FITS, synthetic_training_data, train

HELD_OUT_SEED = synthetic.BASE_SEED + 1000
VARIANTS = {
    "documented": {},
    "forget_factor_0.7": {"forget_factor": 0.7},  # scikit-learn's default, used before it was passed
    "rescale_each_fit": {"rescale_each_fit": True},
    "one_partial_fit": {"n_partial_fits": 1},  # each training LS used once (one batch of all LS)
}


def held_out_quality(model: PixelNMF, maps: dict[str, np.ndarray]) -> dict:
    result = model.evaluate({name: maps[name] for name in model.input_names}, keep_intermediates=True)
    kept = result.evaluated
    figures = {"flagged": int(result.flag.sum()), "evaluated": int(kept.sum())}
    threshold = model.parameters["loss_threshold"]
    for layer_state, (name, layer) in zip(model.layers, result.layers.items(), strict=True):
        loss = layer.loss[kept].astype(np.float64)
        live = loss[:, layer_state["reference"] > 0]
        figures[name] = (
            float(loss.mean()),
            float((loss > threshold).mean()),
            float(live.mean()),
            float((live > threshold).mean()),
        )
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--layers", nargs="+", default=["BPix1", "BPix2", "BPix3", "BPix4"])
    parser.add_argument("--held-out-ls", type=int, default=750)
    parser.add_argument("--retrain-documented", action="store_true")
    args = parser.parse_args(argv)

    maps, _ = synthetic_training_data(4, 750)
    held_out = synthetic.generate_run(args.held_out_ls, seed=HELD_OUT_SEED, conditions=synthetic.default_conditions()).maps
    geometries = [layer_by_name(name) for name in args.layers]
    print(
        f"held-out clean run: {args.held_out_ls} LS (seed {HELD_OUT_SEED}); per layer: mean squared residual / fraction of bins > 0.04,"
    )
    print("all bins | live bins (reference > 0)")
    print(f"{'variant':<18} " + " ".join(f"{g.name:>43}" for g in geometries) + "  flagged LS  train s")
    for variant in args.variants:
        options = dict(VARIANTS[variant])
        n_fits = options.pop("n_partial_fits", N_PARTIAL_FITS)
        start = time.perf_counter()
        if variant == "documented" and not args.retrain_documented:
            import joblib

            shipped = joblib.load(Path(__file__).resolve().parents[2] / DEPLOYMENTS["four-layer"].output)
            model = PixelNMF([layer for layer in shipped.layers if layer["name"] in args.layers])
        else:
            model = train(
                maps,
                n_partial_fits=n_fits,
                log=lambda line: None,
                deployment=Deployment(variant, tuple(geometries), "", ""),
                **options,
            )
        seconds = time.perf_counter() - start
        figures = held_out_quality(model, held_out)
        cells = " ".join("{:.7f} / {:.7f} | {:.7f} / {:.7f}".format(*figures[g.name]) for g in geometries)
        print(f"{variant:<18} {cells}  {figures['flagged']:>4} of {figures['evaluated']}  {seconds:>6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
