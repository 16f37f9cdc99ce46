"""Run this repository's MLServer handler inside this interpreter, as MLServer would load it.

Development code (the report pictures and the serving benchmark); the gate itself never runs a
folder's code in its own interpreter.

The handler module and the helper packages beside it are imported from the model folder only:
while a handler is loaded, the folder is first on ``sys.path`` and any module of the same name
imported earlier (e.g. the repository's own copy of the package) is set aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from pathlib import Path

from dialsgate.contract.template import Contract
from dialsgate.environment.serving import folder_module_names
from dialsgate.transports.outcome import Outcome


@contextlib.contextmanager
def isolated_imports(folder: Path):
    """Import from ``folder`` first; restore sys.path and sys.modules afterwards."""
    names = folder_module_names(folder)
    saved_path = list(sys.path)
    # Importing must not leave __pycache__ in the folder: dismcli package would ship it.
    saved_bytecode_flag = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    shadowed = {key: module for key, module in sys.modules.items() if key.split(".")[0] in names}
    for key in shadowed:
        del sys.modules[key]
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for key in [key for key in sys.modules if key.split(".")[0] in names]:
            del sys.modules[key]
        sys.modules.update(shadowed)
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode_flag


def _model_settings(contract: Contract, handler_class):
    from mlserver.settings import ModelParameters, ModelSettings

    return ModelSettings(
        name=contract.name,
        implementation=handler_class,
        parameters=ModelParameters(uri=str(contract.model_file), version="0.1.0"),
    )


def _parse(model_type, body: dict):
    validate = getattr(model_type, "model_validate", None) or model_type.parse_obj
    return validate(body)


def _dump(response) -> dict:
    dump = getattr(response, "model_dump", None) or response.dict
    return dump(exclude_none=True)


class InProcessHandler:
    """The handler of ``contract`` loaded from its folder; ``predict(body)`` takes a V2 JSON dict."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self._loop = asyncio.new_event_loop()
        with isolated_imports(contract.code_dir):
            module = importlib.import_module(contract.handler_module)
            handler_class = getattr(module, contract.handler_class)
            self.model = handler_class(_model_settings(contract, handler_class))
            self._loop.run_until_complete(self.model.load())
            # Keep the folder's modules for later calls (lazy imports inside predict).
            self._modules = {
                key: mod for key, mod in sys.modules.items() if key.split(".")[0] in folder_module_names(contract.code_dir)
            }

    def predict(self, body: dict) -> Outcome:
        from mlserver.errors import MLServerError
        from mlserver.types import InferenceRequest

        try:
            request = _parse(InferenceRequest, body)
        except Exception as error:  # a body MLServer itself would refuse with 422/400
            return Outcome(status=422, error=f"invalid V2 request: {error}")
        with isolated_imports(self.contract.code_dir):
            sys.modules.update(self._modules)
            try:
                response = self._loop.run_until_complete(self.model.predict(request))
            except MLServerError as error:
                return Outcome(status=error.status_code, error=str(error))
            except Exception as error:  # MLServer answers 500 for anything that is not an MLServerError
                return Outcome(status=500, error=f"{type(error).__name__}: {error}")
        return Outcome(response=_dump(response))

    def close(self) -> None:
        self._loop.close()
