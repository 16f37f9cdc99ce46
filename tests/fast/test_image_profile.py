"""Image profiles and what a folder needs from the image (no environment is built here)."""

from __future__ import annotations

import textwrap

import pytest

from dialsgate.environment.profiles import UnsupportedImage, profile_for_image
from dialsgate.environment.serving import ImportSite, folder_needs

IMAGE = "registry.cern.ch/docker.io/seldonio/mlserver:1.5.0"


@pytest.fixture(scope="module")
def profile():
    return profile_for_image(IMAGE)


def test_profile_knows_the_image(profile):
    assert profile.python.startswith("3.10.")
    assert profile.core["mlserver"] == "1.5.0"
    assert profile.packages["scikit-learn"] == "1.4.1.post1"
    assert profile.packages["torch"] == "2.2.1"  # every runtime of the image, not only the core
    assert profile_for_image("seldonio/mlserver:1.5.0") is profile


def test_unknown_image_is_an_error_naming_the_supported_ones():
    with pytest.raises(UnsupportedImage, match=r"seldonio/mlserver:1\.6\.0.*supported: .*seldonio/mlserver:1\.5\.0"):
        profile_for_image("seldonio/mlserver:1.6.0")


@pytest.mark.parametrize(
    ("module", "distribution"),
    [("cv2", "opencv-python-headless"), ("sklearn.decomposition", "scikit-learn"), ("pandas", "pandas"), ("xgboost", "xgboost"),
     ("google.protobuf.message", "protobuf"), ("yaml", "pyyaml"), ("PIL.Image", "pillow"), ("uproot", None), ("awkward", None)],
)  # fmt: skip
def test_import_names_map_onto_image_distributions(profile, module, distribution):
    assert profile.distribution_of(module) == distribution


def test_mlservers_own_runtimes_are_the_images(tmp_path, profile):
    """The image installs every MLServer runtime but mllib from its own wheels (its lock file pins
    only their dependencies): a handler subclassing the stock XGBoost runtime was "not in the image"."""
    (tmp_path / "app.py").write_text("from mlserver_xgboost import XGBoostModel\nimport mlserver_lightgbm\n")
    needs = folder_needs(tmp_path, profile)
    assert needs.missing == {}
    assert needs.extras == {"mlserver-xgboost": "1.5.0", "mlserver-lightgbm": "1.5.0"}
    runtimes = ("mlflow", "huggingface", "alibi_detect", "alibi_explain")
    assert [profile.distribution_of(f"mlserver_{name}") for name in runtimes] == [
        f"mlserver-{name.replace('_', '-')}" for name in runtimes
    ]
    assert profile.distribution_of("mlserver_mllib") is None  # the image's Dockerfile leaves it out


def _folder(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def test_folder_needs_only_the_image_packages_it_imports(tmp_path, profile):
    folder = _folder(
        tmp_path,
        **{
            "app.py": "import json\nimport numpy as np\nfrom mlserver import MLModel\nfrom features import blur\nimport table\n",
            "features.py": "import cv2\n\ndef blur(x):\n    return cv2.GaussianBlur(x, (3, 3), 0)\n",
            "table.py": "def summary(x):\n    import pandas as pd\n    return pd.DataFrame(x).mean()\n",
        },
    )
    needs = folder_needs(folder, profile)
    assert needs.extras == {"opencv-python-headless": "4.9.0.80"}  # pandas and numpy are in the core
    assert needs.missing == {}


def test_modules_outside_folder_and_image_are_named_with_their_line(tmp_path, profile):
    folder = _folder(tmp_path, **{"app.py": "import numpy\nimport uproot\n", "helper.py": "from awkward import Array\n"})
    needs = folder_needs(folder, profile)
    assert needs.missing == {"uproot": ["app.py:2"], "awkward": ["helper.py:1"]}


def test_newer_standard_library_is_not_the_images(tmp_path, profile):
    needs = folder_needs(_folder(tmp_path, **{"app.py": "import tomllib\n"}), profile)
    assert needs.newer_stdlib == {"tomllib": ["app.py:1"]}


def test_model_file_globals_count_as_imports(tmp_path, profile):
    folder = _folder(tmp_path, **{"app.py": "import joblib\n"})
    needs = folder_needs(folder, profile, [ImportSite("xgboost.sklearn", "model.joblib (global xgboost.sklearn.XGBClassifier)")])
    assert needs.extras == {"xgboost": "2.0.3"}


def test_optional_imports_are_not_required(tmp_path, profile):
    folder = _folder(
        tmp_path,
        **{
            "app.py": """
                from typing import TYPE_CHECKING
                try:
                    import uproot
                except ImportError:
                    uproot = None
                if TYPE_CHECKING:
                    import awkward
                import pyarrow_missing_for_real
            """,
        },
    )
    needs = folder_needs(folder, profile)
    assert needs.missing == {"pyarrow_missing_for_real": ["app.py:9"]}


def test_optional_imports_the_image_has_are_installed(tmp_path, profile):
    """The image has numba, so `try: import numba` succeeds there and DIALS runs that branch:
    the serving environment must have it too, or the checks would judge the other branch."""
    folder = _folder(
        tmp_path,
        **{
            "app.py": """
                try:
                    import numba
                except ImportError:
                    numba = None
                try:
                    from .accelerated import kernel
                except ImportError:
                    kernel = None
            """,
        },
    )
    needs = folder_needs(folder, profile)
    assert needs.extras == {"numba": "0.58.1"}
    assert needs.missing == needs.missing_in_folder == needs.newer_stdlib == {}


def test_the_standard_library_is_the_images_without_a_host_interpreter(profile):
    # Recorded from the image's Python 3.10 (stdlib.txt): tomllib is 3.11's, distutils still 3.10's.
    assert {"asyncio", "json", "distutils", "sqlite3"} <= profile.stdlib
    assert "tomllib" not in profile.stdlib


def test_wheels_are_fetched_for_the_images_c_library(profile):
    platforms = profile.wheel_platforms()
    assert platforms[0] == "manylinux_2_34_x86_64"  # the real image's glibc (UBI 9); never newer
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert not any(tag.startswith(("manylinux_2_35", "manylinux_2_36")) for tag in platforms)
