"""What the checks look at: one model folder, its contract, and things derived from it once.

Model code (the handler, the joblib) only ever runs in the folder's serving environment: the
image's Python and packages (``serving_env``), reached through a worker process (``endpoint``).
A model file whose pickle names a dangerous global is never loaded at all.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np

from . import v2
from .contract import Contract


def readable_temp_folder(prefix: str) -> Path:
    """A fresh folder with mode 0755: the serving container runs as uid 1000, not as us."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


class Subject:
    """The model folder under test. Expensive things (environment, handler, build) are made once."""

    def __init__(self, contract: Contract, reference_arrays: dict[str, np.ndarray]):
        self.contract = contract
        self.reference_arrays = reference_arrays
        self._temp_folders: list[Path] = []

    # ------------------------------------------------------------------ the image and its packages

    @cached_property
    def profile(self):
        """The image profile of the template's Image (UnsupportedImage -> CheckFailed)."""
        from .checks import CheckFailed
        from .profiles import UnsupportedImage, profile_for_image

        try:
            return profile_for_image(self.contract.image)
        except UnsupportedImage as error:
            raise CheckFailed(str(error)) from None

    @cached_property
    def pickle_audit(self):
        """Every global of the model file, found without running any of them."""
        from .pickle_audit import audit_joblib

        return audit_joblib(self.contract.model_file)

    @cached_property
    def needs(self):
        """The image packages the folder needs (imports + model-file globals), and what it lacks."""
        from .serving_env import ImportSite, folder_needs

        model = self.contract.model_file
        globals_ = self.pickle_audit.to_resolve() if model.is_file() else []
        pickled = [ImportSite(module, f"{model.name} (global {module}.{name})") for module, name in globals_]
        return folder_needs(self.contract.code_dir, self.profile, self._serving_python(), pickled)

    def _serving_python(self) -> str:
        from .checks import CheckFailed
        from .serving_env import ServingEnvironmentError, find_python

        try:
            return find_python(self.profile.python_minor)
        except ServingEnvironmentError as error:
            raise CheckFailed(str(error)) from None

    @property
    def environment(self):
        """The serving environment for this folder (cached between runs and projects).

        Built at most once per session: a failure is kept and reported by every check that needs it.
        """
        from .checks import CheckFailed
        from .serving_env import ServingEnvironmentError, ensure_environment

        if "_environment" not in self.__dict__:
            try:
                self._environment = ensure_environment(self.profile, self.needs.requirements(self.profile))
            except (ServingEnvironmentError, CheckFailed) as error:
                self._environment = CheckFailed(str(error))
        if isinstance(self._environment, CheckFailed):
            raise CheckFailed(str(self._environment))
        return self._environment

    def require_safe_model_file(self) -> None:
        """Refuse to load a model file that names a dangerous global (nothing of it may run)."""
        from .checks import CheckFailed

        dangerous = self.pickle_audit.dangerous()
        if dangerous:
            listed = ", ".join(f"{module}.{name}" for module, name, _ in dangerous)
            raise CheckFailed(
                f"not loaded: {self.contract.model_file.name} references dangerous globals ({listed}); see check_pickle_globals_safe"
            )

    # ------------------------------------------------------------------ the handler

    @cached_property
    def handler(self):
        """The handler loaded from the folder in its serving environment (see endpoint.py)."""
        from .checks import CheckFailed
        from .endpoint import WorkerFailed, WorkerHandler

        self.require_safe_model_file()
        environment = self.environment
        try:
            return WorkerHandler(self.contract, environment)
        except WorkerFailed as error:
            raise CheckFailed(
                f"the handler {self.contract.handler} did not load from {self.contract.code_dir} "
                f"under the image's packages (Python {self.profile.python}): {error}"
            ) from None

    def over(self, endpoint) -> Subject:
        """The same folder and batch, its requests sent through ``endpoint`` (HTTP, tritonclient)."""
        other = Subject(self.contract, self.reference_arrays)
        other.__dict__["handler"] = endpoint  # takes the place of the cached in-process handler
        return other

    @cached_property
    def reference_body(self) -> dict:
        return v2.request_body(self.contract, self.reference_arrays, flatten=True, request_id="dialsgate-reference")

    @cached_property
    def small_arrays(self) -> dict[str, np.ndarray]:
        """The first two lumisections of the reference batch: enough for every malformed request."""
        return {name: array[:2] for name, array in self.reference_arrays.items()}

    @cached_property
    def small_body(self) -> dict:
        return v2.request_body(self.contract, self.small_arrays, flatten=True)

    @cached_property
    def reference_outcome(self):
        return self.handler.predict(self.reference_body)

    @cached_property
    def package_folder(self) -> Path:
        """The folder dismcli package would zip: the build dir itself, or an offline build of it."""
        if self.contract.built:
            return self.contract.code_dir
        from .build import build

        root = self.temp_folder("dialsgate-build-")
        build(self.contract.template_path, root / "build")
        return root / "build" / self.contract.resource_key

    def temp_folder(self, prefix: str) -> Path:
        folder = readable_temp_folder(prefix)
        self._temp_folders.append(folder)
        return folder

    def close(self) -> None:
        if "handler" in self.__dict__:
            self.handler.close()
        for folder in self._temp_folders:
            shutil.rmtree(folder, ignore_errors=True)
