"""What the checks look at: one model folder, its contract, and things derived from it once."""

from __future__ import annotations

import shutil
import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np

from . import v2
from .contract import Contract

REPOSITORY = Path(__file__).resolve().parent.parent
#: The serving image's Python package set (pip freeze format).
DEFAULT_PINS = REPOSITORY / "serving" / "pins.txt"


def readable_temp_folder(prefix: str) -> Path:
    """A fresh folder with mode 0755: the serving container runs as uid 1000, not as us."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


class Subject:
    """The model folder under test. Expensive things (handler, build folder) are made once."""

    def __init__(self, contract: Contract, reference_arrays: dict[str, np.ndarray], pins_file: Path = DEFAULT_PINS):
        self.contract = contract
        self.reference_arrays = reference_arrays
        self.pins_file = pins_file
        self._temp_folders: list[Path] = []

    @cached_property
    def handler(self):
        """The handler loaded in this interpreter from the model folder (see inprocess.py)."""
        from .checks import CheckFailed
        from .inprocess import InProcessHandler

        try:
            return InProcessHandler(self.contract)
        except Exception as error:
            raise CheckFailed(f"the handler {self.contract.handler} did not load from {self.contract.code_dir}: {type(error).__name__}: {error}") from error

    @cached_property
    def reference_body(self) -> dict:
        return v2.request_body(self.contract, self.reference_arrays, flatten=True, request_id="dialsgate-reference")

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
