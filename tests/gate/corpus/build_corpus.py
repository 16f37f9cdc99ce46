"""Rebuild every model file (and reference batch) of the gate's corpus, deterministically.

Each corpus folder is a small third-party-style DIALS model: a plain scikit-learn estimator in
the joblib, flat modules beside app.py. This script trains them on seeded synthetic occupancy
maps (seconds) and writes ``<folder>/mlserver-model/*.joblib`` and ``<folder>/reference_batch.npz``.

Which interpreter builds which folder matters (that is what the corpus tests):

* every folder but one: the serving image's versions, Python 3.10 with dialsgate/environment/profiles/mlserver-1.5.0/core.txt
  (numpy 1.26.4, scikit-learn 1.4.1.post1, joblib 1.3.2, scipy 1.12.0, opencv-python(-headless) 4.9.0.80,
  pandas 2.2.1)::

      /root/.pyenv/versions/3.10.13/bin/python3.10 -m venv /tmp/corpus-serving
      /tmp/corpus-serving/bin/pip install -r dialsgate/environment/profiles/mlserver-1.5.0/core.txt -c dialsgate/environment/profiles/mlserver-1.5.0/image-packages.txt
      /tmp/corpus-serving/bin/python tests/gate/corpus/build_corpus.py

* ``sklearn_nmf_numpy2``: what a user with a recent laptop environment writes, Python 3.11 with
  requirements/common.txt's numpy 2.4.6, scikit-learn 1.9.1, joblib 1.6.0, scipy 1.17.1::

      python3.11 -m venv /tmp/corpus-np2
      /tmp/corpus-np2/bin/pip install numpy==2.4.6 scikit-learn==1.9.1 joblib==1.6.0 scipy==1.17.1
      /tmp/corpus-np2/bin/python tests/gate/corpus/build_corpus.py

Without ``--only``, the script builds the folders that belong to the running environment and
refuses to run under any other package versions. Running it twice gives byte-identical files.
The thresholds live in each handler (app.py); the script checks that they separate the normal
synthetic lumisections from the anomalous ones and stops if not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SERVER_FOLDER = "mlserver-model"

IMAGE_VERSIONS = {"python": "3.10", "numpy": "1.26.4", "sklearn": "1.4.1.post1", "joblib": "1.3.2"}
NUMPY2_VERSIONS = {"python": "3.11", "numpy": "2.4.6", "sklearn": "1.9.1", "joblib": "1.6.0"}

#: folder -> the environment that must write its files
FOLDERS = {
    "sklearn_nmf_plain": "image",
    "sklearn_nmf_numpy2": "numpy2",
    "cv2_pandas_flat": "image",
    "oms_metadata_filter": "image",
    "handler_imports_uproot": "image",
    "handler_needs_py311": "image",
    "pickle_os_system": "image",
    "pickle_walk_breaker": "image",
    "class_from_main": "image",
    "onnx_pca_runtime": "image",
    "memory_limit_250m": "image",
    "trusting_handler_nmf": "image",
    "codec_outputs_declared": "image",
    "codec_outputs_undeclared": "image",
    "xgboost_booster_json": "image",
    "lightgbm_classifier_joblib": "image",
    "handler_caches_beside_itself": "image",
    "handler_import_writes_home": "image",
    "handler_pool_in_load": "image",
    "handler_pool_in_server_process": "image",
    "handler_opens_parameters_uri": "image",
    "handler_metric_at_import": "image",
    "handler_exports_metrics_port": "image",
    "handler_binds_port_in_load": "image",
    "handler_name_escape_sequences": "image",
    "normalising_handler_nmf": "image",
    "normalising_handler_guarded": "image",
    "metric_overflows_to_infinity": "image",
}
#: folders that hold the same NMF model (BPix1 occupancy, 20 ladders x 16 modules)
NMF_FOLDERS = (
    "sklearn_nmf_plain",
    "sklearn_nmf_numpy2",
    "handler_imports_uproot",
    "handler_needs_py311",
    "pickle_os_system",
    "pickle_walk_breaker",
    "class_from_main",
    "memory_limit_250m",
    "trusting_handler_nmf",
    "codec_outputs_declared",
    "codec_outputs_undeclared",
    "handler_caches_beside_itself",
    "handler_import_writes_home",
    "handler_pool_in_load",
    "handler_pool_in_server_process",
    "handler_opens_parameters_uri",
    "handler_metric_at_import",
    "handler_exports_metrics_port",
    "handler_binds_port_in_load",
    "handler_name_escape_sequences",
    "normalising_handler_nmf",
    "normalising_handler_guarded",
    "metric_overflows_to_infinity",
)
#: folders that ship a reference batch beside template.yaml
BATCH_FOLDERS = (
    "sklearn_nmf_plain",
    "sklearn_nmf_numpy2",
    "cv2_pandas_flat",
    "oms_metadata_filter",
    "handler_caches_beside_itself",
    "handler_import_writes_home",
    "handler_pool_in_load",
    "handler_pool_in_server_process",
    "metric_overflows_to_infinity",
)

OS_SYSTEM_MARKER = "/tmp/dialsgate-corpus-os-system-ran"
WALK_BREAKER_MARKER = "/tmp/dialsgate-corpus-walk-breaker-ran"
SEED = 20261128
ANOMALIES = ("dead_block", "dead_row", "hot_column", "noisy_bin")


# --------------------------------------------------------------------------- synthetic data


def expected_fractions(rng: np.random.Generator, n: int, rows: int, cols: int) -> np.ndarray:
    """Expected occupancy fractions (n, rows, cols) of normal lumisections.

    More hits near the middle of the module axis (|z| small), a mild modulation along the
    ladder axis, and a per-LS jitter of both (pileup changes the |z| profile a little).
    """
    r = np.arange(rows)[None, :, None]
    c = np.arange(cols)[None, None, :]
    phase = 0.3 * rng.standard_normal(n)[:, None, None]
    steepness = (1.0 + 0.08 * rng.standard_normal(n))[:, None, None]
    row_profile = 1.0 + 0.25 * np.cos(2 * np.pi * (r + phase) / rows)
    col_profile = 1.6 - 0.9 * steepness * np.abs(c - (cols - 1) / 2) / (cols / 2)
    shape = row_profile * col_profile
    return shape / shape.sum(axis=(1, 2), keepdims=True)


def normal_maps(rng: np.random.Generator, n: int, rows: int, cols: int) -> np.ndarray:
    entries = rng.uniform(40_000, 150_000, size=n)[:, None, None]
    return rng.poisson(expected_fractions(rng, n, rows, cols) * entries).astype(np.int32)


def anomalous_maps(rng: np.random.Generator, kind: str, n: int, rows: int, cols: int) -> np.ndarray:
    maps = normal_maps(rng, n, rows, cols)
    for m in maps:
        if kind == "dead_block":  # a 4 x 4 group of modules off (a power group)
            i, j = rng.integers(0, rows - 4), rng.integers(0, cols - 4)
            m[i : i + 4, j : j + 4] = 0
        elif kind == "dead_row":  # one whole ladder off
            m[rng.integers(0, rows), :] = 0
        elif kind == "hot_column":  # one module ring four times too busy
            m[:, rng.integers(0, cols)] *= 4
        elif kind == "noisy_bin":  # one noisy module, twenty times its occupancy
            m[rng.integers(0, rows), rng.integers(0, cols)] *= 20
        else:
            raise ValueError(kind)
    return maps


def labelled_batch(rng: np.random.Generator, rows: int, cols: int, n_normal: int = 12) -> tuple[np.ndarray, np.ndarray]:
    kinds = ["normal"] * n_normal + list(ANOMALIES)
    maps = np.concatenate(
        [normal_maps(rng, 1, rows, cols) if k == "normal" else anomalous_maps(rng, k, 1, rows, cols) for k in kinds]
    )
    order = rng.permutation(len(kinds))
    return maps[order], np.array(kinds)[order]


# --------------------------------------------------------------------------- loading a handler module


def handler_module(folder: str):
    """The folder's app.py (and its flat modules), imported from its server folder only."""
    import importlib

    sys.dont_write_bytecode = True  # nothing may be left in the server folder

    server = str(HERE / folder / SERVER_FOLDER)
    flat = {p.stem for p in Path(server).glob("*.py")}
    for name in list(sys.modules):
        if name.split(".")[0] in flat:
            del sys.modules[name]
    sys.path.insert(0, server)
    try:
        return importlib.import_module("app")
    finally:
        sys.path.remove(server)


def check_separation(
    folder: str, normal_scores: np.ndarray, anomaly_scores: dict[str, np.ndarray], threshold: float, margin: float = 0.2
) -> None:
    worst_normal = float(np.max(normal_scores))
    print(f"  {folder}: threshold {threshold:g}; normal LS max {worst_normal:.4g} (median {np.median(normal_scores):.4g})")
    problems = []
    if worst_normal >= (1 - margin) * threshold:
        problems.append(f"normal LS reach {worst_normal:.4g}, too close to the threshold {threshold:g}")
    for kind, scores in anomaly_scores.items():
        print(f"    {kind:<12} min {np.min(scores):.4g}")
        if np.min(scores) <= (1 + margin) * threshold:
            problems.append(f"{kind} LS score down to {np.min(scores):.4g}, too close to the threshold {threshold:g}")
    if problems:
        raise SystemExit(f"{folder}: the threshold in app.py does not separate the synthetic data: " + "; ".join(problems))


def check_classifier(folder: str, score, cut: float, rng: np.random.Generator, rows: int, cols: int) -> None:
    """A classifier, not a threshold on a loss: judged by its error rates on fresh maps, not by a margin."""
    validation = normal_maps(rng, 3000, rows, cols)
    anomalies = {kind: anomalous_maps(rng, kind, 200, rows, cols) for kind in ANOMALIES}
    normal_wrong = float(np.mean(score(validation) > cut))
    missed = {kind: float(np.mean(score(maps) <= cut)) for kind, maps in anomalies.items()}
    print(f"  {folder}: normal LS flagged {normal_wrong:.2%}; anomalies missed {missed}")
    if normal_wrong > 0.005 or max(missed.values()) > 0.02:
        raise SystemExit(f"{folder}: the classifier does not separate the synthetic data")


def write_joblib(obj, path: Path) -> None:
    import joblib

    joblib.dump(obj, path)  # uncompressed, the default
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"  wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes, sha256 {digest}...)")


def write_batch(folder: str, arrays: dict[str, np.ndarray]) -> None:
    path = HERE / folder / "reference_batch.npz"
    np.savez(path, **arrays)
    print(f"  wrote {path.relative_to(HERE)} ({', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in arrays.items())})")


# --------------------------------------------------------------------------- the models


def nmf_folders(folders: list[str]) -> None:
    """sklearn.decomposition.NMF on flattened, unit-mean 20 x 16 BPix1 occupancy maps."""
    from sklearn.decomposition import NMF

    rows, cols = 20, 16
    rng = np.random.default_rng(SEED)
    train = normal_maps(rng, 2000, rows, cols).reshape(2000, -1).astype(np.float64)
    train /= train.mean(axis=1, keepdims=True)
    model = NMF(n_components=4, init="nndsvda", max_iter=2000, tol=1e-4, random_state=0).fit(train)
    validation = normal_maps(rng, 3000, rows, cols)
    anomalies = {kind: anomalous_maps(rng, kind, 200, rows, cols) for kind in ANOMALIES}
    batch, kinds = labelled_batch(rng, rows, cols)
    # The NMF folders share the scoring code and threshold of sklearn_nmf_plain's app.py (some of
    # their handlers cannot even be imported here: uproot, tomllib); check that they still do.
    app = handler_module("sklearn_nmf_numpy2" if "sklearn_nmf_numpy2" in folders else "sklearn_nmf_plain")
    threshold_line = f"LOSS_THRESHOLD = {app.LOSS_THRESHOLD!r}"
    for folder in folders:
        if threshold_line not in (HERE / folder / SERVER_FOLDER / "app.py").read_text():
            raise SystemExit(f"{folder}/app.py does not say {threshold_line!r} like the other NMF folders")

    def score(maps):
        return app.reconstruction_loss(model, maps)

    check_separation("NMF folders", score(validation), {k: score(v) for k, v in anomalies.items()}, app.LOSS_THRESHOLD)
    for folder in folders:
        target = HERE / folder / SERVER_FOLDER / "nmf_bpix1.joblib"
        if folder == "pickle_os_system":
            write_joblib({"model": model, "provenance": RunsOsSystem(f"touch {OS_SYSTEM_MARKER}")}, target)
        elif folder == "pickle_walk_breaker":
            # A working NMF carrying, in an attribute of its own, an object that stops a stub
            # walk (set of a deque) followed by the payload: the estimator still works when loaded.
            import copy

            carrier = copy.deepcopy(model)
            carrier.training_provenance_ = (BreaksStubWalk(), RunsOsSystem(f"touch {WALK_BREAKER_MARKER}"))
            write_joblib(carrier, target)
        elif folder == "class_from_main":
            # As a notebook does: a small wrapper class defined in __main__, pickled by reference.
            write_joblib(OccupancyScorer(model.components_, app.LOSS_THRESHOLD), target)
        else:
            write_joblib(model, target)
        if folder in BATCH_FOLDERS:
            flags = score(batch) > app.LOSS_THRESHOLD
            assert np.array_equal(flags, kinds != "normal"), (folder, flags, kinds)
            write_batch(folder, {app.INPUT_NAME: batch, "kind": kinds, "expected_flag": flags})


class RunsOsSystem:
    """Pickles as a call of os.system: what a malicious (or careless) model file can do on load."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class OccupancyScorer:
    """The NMF's components and threshold in a class of the training session: run as a script
    (or a notebook cell), its module is ``__main__``, which is how pickle records it."""

    def __init__(self, components, threshold: float):
        self.components_ = components
        self.threshold = threshold


class BreaksStubWalk:
    """Pickles as ``set(collections.deque([...]))``: real containers, but a walk that replaces
    deque by an inert stub cannot build the set and stops there."""

    def __reduce__(self):
        import collections

        return (set, (collections.deque(["run 396598", "era 2025F"]),))


def cv2_pandas_folder() -> None:
    """Scaled PCA on features from cv2 (blur, downsample) and pandas (per-blade table)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    folder = "cv2_pandas_flat"
    rows, cols = 24, 32
    app = handler_module(folder)
    rng = np.random.default_rng(SEED + 1)
    train = app.features_of(normal_maps(rng, 2000, rows, cols))
    model = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=4, svd_solver="full"))]).fit(train)

    def score(maps):
        return app.anomaly_score(model, maps)

    validation = normal_maps(rng, 3000, rows, cols)
    anomalies = {kind: anomalous_maps(rng, kind, 200, rows, cols) for kind in ANOMALIES}
    check_separation(folder, score(validation), {k: score(v) for k, v in anomalies.items()}, app.SCORE_THRESHOLD)
    write_joblib(model, HERE / folder / SERVER_FOLDER / "feature_pca.joblib")
    batch, kinds = labelled_batch(rng, rows, cols)
    flags = score(batch) > app.SCORE_THRESHOLD
    assert np.array_equal(flags, kinds != "normal"), (flags, kinds)
    write_batch(folder, {app.INPUT_NAME: batch, "kind": kinds, "expected_flag": flags})


def oms_folder() -> None:
    """PCA reconstruction of 28 x 8 BPix2 maps; flags filtered by OMS lumisection metadata."""
    from sklearn.decomposition import PCA

    folder = "oms_metadata_filter"
    rows, cols = 28, 8
    app = handler_module(folder)
    rng = np.random.default_rng(SEED + 2)
    train = app.normalised(normal_maps(rng, 2000, rows, cols))
    model = PCA(n_components=4, svd_solver="full").fit(train)
    validation = normal_maps(rng, 3000, rows, cols)
    anomalies = {kind: anomalous_maps(rng, kind, 200, rows, cols) for kind in ANOMALIES}

    def score(maps):
        return app.reconstruction_loss(model, maps)

    check_separation(folder, score(validation), {k: score(v) for k, v in anomalies.items()}, app.LOSS_THRESHOLD)
    write_joblib(model, HERE / folder / SERVER_FOLDER / "pca_bpix2.joblib")
    batch, kinds = labelled_batch(rng, rows, cols)
    n = len(kinds)
    meta = {
        "run_number": np.full(n, 386_924, dtype=np.int32),
        "lumisection_number": np.arange(101, 101 + n, dtype=np.int32),
        "pileup": rng.uniform(52, 64, size=n).astype(np.float32),
        "bpix_ready": np.ones(n, dtype=bool),
    }
    flags = app.filtered_flags(score(batch), meta["bpix_ready"], meta["pileup"])
    assert np.array_equal(flags, kinds != "normal"), (flags, kinds)
    write_batch(
        folder,
        {app.INPUT_NAME: batch, **{f"{app.METADATA}__{k}": v for k, v in meta.items()}, "kind": kinds, "expected_flag": flags},
    )


# --------------------------------------------------------------------------- main


def onnx_folder() -> None:
    """sklearn PCA of unit-mean 20 x 16 maps, written as an ONNX graph with onnx.helper (needs onnx
    and onnxruntime at the image's versions beside the image's core: onnx 1.15.0, onnxruntime 1.17.1)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.decomposition import PCA

    rows, cols = 20, 16
    rng = np.random.default_rng(SEED + 3)
    train = normal_maps(rng, 2000, rows, cols).reshape(2000, -1).astype(np.float64)
    train /= train.mean(axis=1, keepdims=True)
    pca = PCA(n_components=6, random_state=0).fit(train)
    mean = pca.mean_.astype(np.float32)
    components = pca.components_.astype(np.float32)  # (6, 320), orthonormal rows
    nodes = [
        helper.make_node("Sub", ["maps", "mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "to_scores"], ["scores"]),
        helper.make_node("MatMul", ["scores", "from_scores"], ["offsets"]),
        helper.make_node("Add", ["offsets", "mean"], ["reconstruction"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pca_bpix1",
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [None, rows * cols])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, [None, rows * cols])],
        initializer=[
            numpy_helper.from_array(mean, "mean"),
            numpy_helper.from_array(np.ascontiguousarray(components.T), "to_scores"),
            numpy_helper.from_array(components, "from_scores"),
        ],
    )
    model = helper.make_model(graph, producer_name="dialsgate-corpus", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.17 reads
    onnx.checker.check_model(model)
    target = HERE / "onnx_pca_runtime" / SERVER_FOLDER / "pca_bpix1.onnx"
    target.write_bytes(model.SerializeToString())
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    app = handler_module("onnx_pca_runtime")

    def score(maps):
        flat = maps.reshape(len(maps), -1).astype(np.float32)
        scaled = flat / flat.mean(axis=1, keepdims=True)
        return ((scaled - session.run(None, {"maps": scaled})[0]) ** 2).mean(axis=1)

    validation = normal_maps(rng, 3000, rows, cols)
    anomalies = {kind: anomalous_maps(rng, kind, 200, rows, cols) for kind in ANOMALIES}
    check_separation("onnx_pca_runtime", score(validation), {k: score(v) for k, v in anomalies.items()}, app.LOSS_THRESHOLD)
    print(f"  wrote {target.relative_to(HERE)} ({target.stat().st_size} bytes)")


def xgboost_folder() -> None:
    """A binary XGBoost classifier (normal vs anomalous unit-mean 20 x 16 maps) saved in XGBoost's
    own JSON format (needs xgboost at the image's version beside the image's core: xgboost 2.0.3)."""
    import xgboost as xgb

    rows, cols = 20, 16
    rng = np.random.default_rng(SEED + 4)

    app = handler_module("xgboost_booster_json")

    def features(maps):  # the handler's own features
        return app.features(maps.astype(np.float32))

    normal = normal_maps(rng, 6000, rows, cols)
    anomalous = np.concatenate([anomalous_maps(rng, kind, 1000, rows, cols) for kind in ANOMALIES])
    x = np.concatenate([features(normal), features(anomalous)])
    y = np.concatenate([np.zeros(len(normal)), np.ones(len(anomalous))])
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=120)
    target = HERE / "xgboost_booster_json" / SERVER_FOLDER / "anomaly_bdt.json"
    booster.save_model(str(target))
    loaded = xgb.Booster()
    loaded.load_model(str(target))

    def score(maps):
        return loaded.predict(xgb.DMatrix(features(maps)))

    check_classifier("xgboost_booster_json", score, app.PROBABILITY_CUT, rng, rows, cols)
    print(f"  wrote {target.relative_to(HERE)} ({target.stat().st_size} bytes)")


def lightgbm_folder() -> None:
    """lightgbm's scikit-learn classifier (normal vs anomalous 44 x 8 BPix3 maps) in a joblib, as
    its authors save it (needs lightgbm at the image's version beside the image's core: 4.3.0)."""
    from lightgbm import LGBMClassifier

    rows, cols = 44, 8
    rng = np.random.default_rng(SEED + 5)
    app = handler_module("lightgbm_classifier_joblib")

    normal = normal_maps(rng, 6000, rows, cols)
    anomalous = np.concatenate([anomalous_maps(rng, kind, 1000, rows, cols) for kind in ANOMALIES])
    x = np.concatenate([app.features(normal), app.features(anomalous)])
    y = np.concatenate([np.zeros(len(normal), dtype=int), np.ones(len(anomalous), dtype=int)])
    # One thread and lightgbm's deterministic mode: the same file on every run of this script.
    model = LGBMClassifier(n_estimators=150, num_leaves=15, learning_rate=0.1, n_jobs=1, random_state=0,
                           deterministic=True, force_row_wise=True, verbose=-1)  # fmt: skip
    model.fit(x, y)

    def score(maps):
        return model.predict_proba(app.features(maps))[:, 1]

    check_classifier("lightgbm_classifier_joblib", score, app.PROBABILITY_CUT, rng, rows, cols)
    write_joblib(model, HERE / "lightgbm_classifier_joblib" / SERVER_FOLDER / "lgbm_bpix3.joblib")


def running_versions() -> dict[str, str]:
    import joblib
    import sklearn

    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(FOLDERS), help="build only this folder (repeatable)")
    args = parser.parse_args(argv)
    running = running_versions()
    environment = next(
        (name for name, wanted in (("image", IMAGE_VERSIONS), ("numpy2", NUMPY2_VERSIONS)) if running == wanted), None
    )
    if environment is None:
        parser.error(f"running {running}; build under {IMAGE_VERSIONS} (image) or {NUMPY2_VERSIONS} (numpy2), see the docstring")
    folders = args.only or [f for f, env in FOLDERS.items() if env == environment]
    wrong = [f for f in folders if FOLDERS[f] != environment]
    if wrong:
        parser.error(f"{wrong} must be built in the {FOLDERS[wrong[0]]} environment, this is {environment} ({running})")
    print(f"building {folders} with {running}")
    if any(f in NMF_FOLDERS for f in folders):
        nmf_folders([f for f in folders if f in NMF_FOLDERS])
    if "cv2_pandas_flat" in folders:
        cv2_pandas_folder()
    if "oms_metadata_filter" in folders:
        oms_folder()
    if "onnx_pca_runtime" in folders:
        onnx_folder()
    if "xgboost_booster_json" in folders:
        xgboost_folder()
    if "lightgbm_classifier_joblib" in folders:
        lightgbm_folder()
    return 0


if __name__ == "__main__":
    sys.exit(main())
