"""Run inside ``python -I``: load a copied server folder with nothing of the repository around.

Usage (by checks.roundtrip, never by hand):
    python -I clean_interpreter.py SPEC.json

SPEC: folder, model_file, handler, name, request (file), result (file), forbidden (names that
must not be importable: the repository's own packages), provided (names the folder provides).
Writes RESULT: {"response": ..., "origins": {...}, "sys_path": [...]} or {"error": ...}.
"""

import asyncio
import importlib
import importlib.util
import json
import os
import sys
import traceback
import warnings


def _isolate(folder: str, repository: str) -> None:
    # Keep the standard library and this environment's site-packages (which may live inside the
    # repository, e.g. .tox/parity); drop every other entry inside the repository.
    own = tuple(os.path.abspath(prefix) + os.sep for prefix in {sys.prefix, sys.base_prefix})

    def kept(entry: str) -> bool:
        path = os.path.abspath(entry) + os.sep
        return path.startswith(own) or not path.startswith(repository + os.sep)

    sys.path[:] = [folder] + [entry for entry in sys.path if entry and kept(entry)]
    # Editable installs put finders on sys.meta_path instead of path entries.
    sys.meta_path[:] = [finder for finder in sys.meta_path if "__editable__" not in type(finder).__module__]
    importlib.invalidate_caches()


def _load_model_strictly(model_file: str) -> None:
    """joblib.load with numpy DeprecationWarnings and sklearn version warnings as errors."""
    import joblib

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            from sklearn.exceptions import InconsistentVersionWarning

            warnings.simplefilter("error", InconsistentVersionWarning)
        except ImportError:
            pass
        joblib.load(model_file)


def _predict(spec: dict) -> dict:
    from mlserver.settings import ModelParameters, ModelSettings
    from mlserver.types import InferenceRequest

    module_name, class_name = spec["handler"].rsplit(".", 1)
    handler_class = getattr(importlib.import_module(module_name), class_name)
    settings = ModelSettings(
        name=spec["name"], implementation=handler_class, parameters=ModelParameters(uri=spec["model_file"], version="0.1.0")
    )
    model = handler_class(settings)
    with open(spec["request"]) as stream:
        body = json.load(stream)
    parse = getattr(InferenceRequest, "model_validate", None) or InferenceRequest.parse_obj
    loop = asyncio.new_event_loop()
    loop.run_until_complete(model.load())
    response = loop.run_until_complete(model.predict(parse(body)))
    dump = getattr(response, "model_dump", None) or response.dict
    return dump(exclude_none=True)


def main() -> int:
    with open(sys.argv[1]) as stream:
        spec = json.load(stream)
    result = {}
    try:
        _isolate(spec["folder"], spec["repository"])
        result["sys_path"] = list(sys.path)
        result["importable_forbidden"] = [name for name in spec["forbidden"] if importlib.util.find_spec(name) is not None]
        result["origins"] = {name: getattr(importlib.util.find_spec(name), "origin", None) for name in spec["provided"]}
        if spec.get("load_as_pickle", True):
            _load_model_strictly(spec["model_file"])
        result["response"] = _predict(spec)
    except BaseException as error:  # reported to the check, which names it
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
    with open(spec["result"], "w") as stream:
        json.dump(result, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
