"""Rewrite the model files of this folder with the serving image's versions (Python 3.10, numpy
1.26.4, scikit-learn 1.4.1.post1, joblib 1.3.2, pandas, scipy, xgboost, lightgbm), as an author
writes them. The pickle audit must pass every one (tests/fast/test_pickle_audit.py).

    /path/to/python3.10-with-the-image-pins tests/fast/data/pickles/write_pickles.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def models() -> dict:
    import datetime
    import pathlib

    import numpy as np
    import pandas as pd
    import scipy.sparse
    from sklearn.cluster import KMeans
    from sklearn.decomposition import NMF, PCA, MiniBatchNMF
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.neighbors import KDTree, NearestNeighbors
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.RandomState(0)
    x = rng.random_sample((40, 6))
    y = (x[:, 0] > 0.5).astype(int)
    found = {
        "pipeline_isolation_forest": Pipeline(
            [("scale", StandardScaler()), ("pca", PCA(3)), ("forest", IsolationForest(n_estimators=5, random_state=rng))]
        ).fit(x),
        "random_forest": RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(1)).fit(x, y),
        "nmf": NMF(2, max_iter=50, random_state=0).fit(x),
        "minibatch_nmf": MiniBatchNMF(2, max_iter=5, random_state=0).fit(x),
        "kmeans": KMeans(3, n_init=2, random_state=0).fit(x),
        "kdtree": KDTree(x),
        "nearest_neighbors": NearestNeighbors(n_neighbors=2).fit(x),
        "function_transformer_log1p": FunctionTransformer(np.log1p).fit(x),
        "pandas_objects": {
            "frame": pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "c": pd.Categorical(["p", "q"])}),
            "series": pd.Series([1, 2, 3], name="s"),
            "dates": pd.date_range("2024-01-01", periods=3, freq="D"),
            "stamp": pd.Timestamp("2024-05-01 12:00"),
            "delta": pd.Timedelta("1h"),
            "categorical": pd.Categorical(["a", "b", "a"]),
        },
        "scipy_sparse": {"csr_matrix": scipy.sparse.csr_matrix(np.eye(4)), "csr_array": scipy.sparse.csr_array(np.eye(3))},
        "numpy_values": {
            "scalars": [np.float64(1.5), np.int32(3), np.bool_(True), np.float32(2.0)],
            "structured": np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8"), ("c", "U3")]),
            "objects": np.array([{"k": 1}, "text", (1, 2), None], dtype=object),
            "strings": np.array(["ab", "cde"]),
            "generator": np.random.default_rng(5),
            "random_state": np.random.RandomState(4),
            "datetimes": np.array(["2024-01-01"], dtype="M8[ns]"),
            "fortran": np.asfortranarray(rng.random_sample((3, 4))),
        },
    }
    found.update(estimators_with_private_parts(x, y))
    # scipy's fitted objects an author keeps for a threshold or a calibration curve.
    import scipy
    from scipy.interpolate import interp1d
    from scipy.stats import gaussian_kde

    grid = np.linspace(0.0, 1.0, 12)
    found["scipy_fitted"] = {
        "density": gaussian_kde(x[:, 0]),
        "calibration": [interp1d(grid, grid**2, kind=kind) for kind in ("linear", "nearest", "previous")],
    }
    if scipy.__version__ == "1.12.0":  # the image's; a newer one's spline keeps a function of scipy._lib (excluded)
        found["scipy_fitted"]["calibration"].append(interp1d(grid, grid**2, kind="cubic"))
    found["training_metadata"] = {
        "model": StandardScaler().fit(x),
        "trained_at": datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.timezone.utc),
        "source": pathlib.PurePosixPath("/eos/cms/store/group/dpg_tracker_pixel/training.parquet"),
        "runs": [386000, 386001],
    }
    try:
        from lightgbm import LGBMClassifier
        from xgboost import XGBClassifier, XGBRegressor
        from xgboost.callback import EarlyStopping

        found["xgb_classifier"] = XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
        found["xgb_regressor"] = XGBRegressor(n_estimators=3, max_depth=2).fit(x, x[:, 1])
        # Early stopping as xgboost 2 documents it: the callback is kept among the estimator's parameters.
        found["xgb_early_stopping_callback"] = XGBClassifier(
            n_estimators=20, max_depth=2, callbacks=[EarlyStopping(rounds=2)]
        ).fit(x[:30], y[:30], eval_set=[(x[30:], y[30:])], verbose=False)
        found["lgbm_classifier"] = LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y)
    except ImportError:
        pass
    return found


def estimators_with_private_parts(x, y) -> dict:
    """Common estimators whose pickles name private classes and functions of scikit-learn (each an
    exact allowlist entry), or a Bunch filled by SETITEMS: refused as unknown until listed."""
    import numpy as np
    import pandas as pd
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.cluster import Birch
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, StackingClassifier, VotingClassifier
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDOneClassSVM, SGDRegressor
    from sklearn.model_selection import GridSearchCV
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.RandomState(2)
    oms = pd.DataFrame({"pileup": rng.random_sample(len(y)) * 60, "rate": rng.random_sample(len(y)),
                        "beam": rng.choice(["stable", "adjust"], len(y))})  # fmt: skip
    columns = ColumnTransformer(
        [("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["pileup", "rate"]), ("beam", OneHotEncoder(), ["beam"])]
    )
    return {
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y),
        "calibrated_sigmoid": CalibratedClassifierCV(LogisticRegression(), cv=2).fit(x, y),
        # A search keeps its fit times (cv_results_): its two files differ on every run of this script.
        "grid_search_roc_auc": GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, scoring="roc_auc").fit(x, y),
        "grid_search_default_score": GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2).fit(x, y),
        "sgd_losses": [SGDClassifier(max_iter=5, tol=None, random_state=0).fit(x, y), SGDClassifier(loss="modified_huber", max_iter=5, tol=None, random_state=0).fit(x, y),
                       SGDRegressor(loss="epsilon_insensitive", max_iter=5, tol=None, random_state=0).fit(x, x[:, 0]), SGDOneClassSVM(max_iter=5, tol=None, random_state=0).fit(x)],
        "birch": Birch(n_clusters=2).fit(x),
        "stacking_voting": [StackingClassifier([("lr", LogisticRegression()), ("nb", GaussianNB())], cv=2).fit(x, y),
                            VotingClassifier([("lr", LogisticRegression()), ("nb", GaussianNB())], voting="soft").fit(x, y)],
        "select_k_best": make_pipeline(SelectKBest(f_classif, k=3), LogisticRegression()).fit(x, y),
        "oms_frame_pipeline": Pipeline([("columns", columns), ("classifier", GradientBoostingClassifier(n_estimators=3, random_state=0))]).fit(oms, y),
        "mlp_autoencoder": MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(x, x),
    }  # fmt: skip


def main() -> int:
    if sys.version_info[:2] != (3, 10):
        print("write_pickles.py writes the image's files: run it with the image's Python 3.10", file=sys.stderr)
        return 2
    import joblib

    written = []
    for name, model in models().items():
        path = HERE / f"{name}.joblib"
        joblib.dump(model, path)
        written.append(path)
    nmf = models()["nmf"]
    for compress, suffix in ((3, "zlib"), (("gzip", 3), "gzip"), (("lzma", 3), "lzma"), (("bz2", 3), "bz2"), (("xz", 3), "xz")):
        path = HERE / f"nmf_{suffix}.joblib"
        joblib.dump(nmf, path, compress=compress)
        written.append(path)
    for path in written:
        print(f"{path.name}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
