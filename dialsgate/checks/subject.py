"""What the checks look at: one model folder, its contract, and things derived from it once.

Model code (the handler, the joblib) only ever runs in the folder's serving environment: the
image's Python and packages (``serving_env``), reached through a worker process (``endpoint``).
A model file whose pickle names a dangerous global is never loaded at all.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np

from dialsgate.checks.base import CheckFailed, CheckNotRun
from dialsgate.contract.build import build
from dialsgate.contract.template import Contract
from dialsgate.environment.profiles import UnsupportedImage, profile_for_image
from dialsgate.environment.serving import ImportSite, ServingEnvironmentError, ensure_environment, find_python, folder_needs
from dialsgate.modelfile.formats import recognise
from dialsgate.modelfile.pickle_audit import audit_joblib
from dialsgate.protocol import v2
from dialsgate.transports.worker import WorkerFailed, WorkerHandler


def readable_temp_folder(prefix: str) -> Path:
    """A fresh folder with mode 0755: the serving container runs as uid 1000, not as us."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


class Subject:
    """The model folder under test. Expensive things (environment, handler, build) are made once."""

    def __init__(self, contract: Contract, reference_arrays: dict[str, np.ndarray], reference_is_sample: bool = False):
        self.contract = contract
        self.reference_arrays = reference_arrays
        #: True when no reference batch was given: the arrays are the gate's sample data.
        self.reference_is_sample = reference_is_sample
        self._temp_folders: list[Path] = []

    # ------------------------------------------------------------------ the image and its packages

    @cached_property
    def profile(self):
        """The image profile of the template's Image (UnsupportedImage -> CheckFailed)."""

        try:
            return profile_for_image(self.contract.image)
        except UnsupportedImage as error:
            raise CheckFailed(str(error)) from None

    @cached_property
    def model_format(self):
        """The model file's format when it is positively not a pickle (ONNX, XGBoost, ...), else None."""

        return recognise(self.contract.model_file) if self.contract.model_file.is_file() else None

    @cached_property
    def pickle_audit(self):
        """Every global of the model file, found without running any of them (None: not a pickle)."""

        if self.model_format is not None or not self.contract.model_file.is_file():
            return None
        return audit_joblib(self.contract.model_file)

    @cached_property
    def needs(self):
        """The image packages the folder needs (imports + model-file globals), and what it lacks."""

        model = self.contract.model_file
        globals_ = self.pickle_audit.to_resolve() if self.pickle_audit is not None else []
        # __main__ is no module to install: check_pickle_globals_resolvable names that class and the remedy.
        pickled = [
            ImportSite(module, f"{model.name} (global {module}.{name})") for module, name in globals_ if module != "__main__"
        ]
        return folder_needs(self.contract.code_dir, self.profile, self._serving_python(), pickled)

    def _serving_python(self) -> str:

        try:
            return find_python(self.profile.python_minor)
        except ServingEnvironmentError as error:
            raise CheckFailed(str(error)) from None

    @property
    def environment(self):
        """The serving environment for this folder (cached between runs and projects).

        Built at most once per session: a failure is kept and reported by every check that needs it.
        """

        if "_environment" not in self.__dict__:
            try:
                self._environment = ensure_environment(self.profile, self.needs.requirements(self.profile))
            except (ServingEnvironmentError, CheckFailed) as error:
                self._environment = CheckFailed(str(error))
        if isinstance(self._environment, CheckFailed):
            raise CheckFailed(str(self._environment))
        return self._environment

    def require_safe_model_file(self) -> None:
        """Refuse to load a model file that was not fully audited or names a dangerous global:
        nothing of it may run, in no check, worker, container or report hook."""

        audit = self.pickle_audit
        refusal = audit.refusal() if audit is not None else None
        if refusal:
            raise CheckNotRun("check_pickle_globals_safe", f"{refusal}: it is loaded nowhere")

    # ------------------------------------------------------------------ root causes

    def require_no_class_from_main(self) -> None:
        """A model file naming ``__main__.X`` cannot load in MLServer: known before trying."""

        audit = self.pickle_audit
        names = sorted(name for module, name in (audit.to_resolve() if audit else []) if module == "__main__")
        if names:
            raise CheckNotRun("check_pickle_globals_resolvable", f"the model file needs __main__.{names[0]}, which no server has")

    def require_importable_folder(self) -> None:
        """The handler is not even tried when a module it imports is missing from the image."""

        needs = self.needs
        missing = sorted({*needs.missing, *needs.missing_in_folder, *needs.newer_stdlib})
        if missing:
            raise CheckNotRun(
                "check_imports_available_in_image", f"{', '.join(map(repr, missing))} cannot be imported in the image"
            )

    # ------------------------------------------------------------------ the handler

    @cached_property
    def handler_load(self):
        """(handler, None) or (None, why it did not load): tried once per session, so one cause
        is one failure (``check_handler_loads``) and every row behind it is "not run"."""

        self.require_safe_model_file()
        self.require_importable_folder()
        self.require_no_class_from_main()
        try:
            environment = self.environment
            return WorkerHandler(self.contract, environment), None
        except CheckFailed as error:  # the serving environment could not be built
            return None, str(error)
        except WorkerFailed as error:
            return None, (
                f"the handler {self.contract.handler} did not load from {self.contract.code_dir} "
                f"under the image's packages (Python {self.profile.python}): {explain_load_error(str(error))}"
            )

    @cached_property
    def handler(self):
        """The handler loaded from the folder in its serving environment (see endpoint.py)."""

        handler, failure = self.handler_load
        if handler is None:
            raise CheckNotRun("check_handler_loads", failure.splitlines()[0][:300])
        return handler

    def over(self, endpoint) -> Subject:
        """The same folder and batch, its requests sent through ``endpoint`` (HTTP, tritonclient)."""
        other = Subject(self.contract, self.reference_arrays, self.reference_is_sample)
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
        elif self.__dict__.get("handler_load", (None, None))[0] is not None:
            self.handler_load[0].close()
        for folder in self._temp_folders:
            shutil.rmtree(folder, ignore_errors=True)


#: A pickled class that lived in ``__main__`` (a notebook or a training script) is looked up in
#: whatever ``__main__`` is at load time: in MLServer, its own entry point.
_MAIN_ATTRIBUTE = re.compile(r"Can't get attribute '(?P<name>[^']+)' on <module '__main__'[^>]*>")


def main_module_remedy(name: str) -> str:
    return (
        f"the model file holds an instance of __main__.{name}, a class pickled from a notebook or a script; "
        f"MLServer's __main__ has no {name}. Move class {name} into a module of the server folder, "
        f"import it from there when training, and dump the model again"
    )


def explain_load_error(text: str) -> str:
    """The worker's error, with a pickled-from-__main__ class named as the cause with its remedy
    (and without the worker's own file, which is not the user's __main__)."""
    match = _MAIN_ATTRIBUTE.search(text)
    if match:
        return main_module_remedy(match["name"])
    return text
