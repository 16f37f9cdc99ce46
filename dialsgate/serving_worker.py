"""Runs inside a serving environment (the image's Python and packages): model code lives here.

Started by ``dialsgate.endpoint.WorkerHandler`` as ``<env>/bin/python -I serving_worker.py``; it
imports nothing of dialsgate and nothing of the caller's environment. Requests arrive one JSON
object per line on stdin, answers leave one JSON object per line on the original stdout; anything
the model prints goes to stderr so it cannot corrupt the answers.

Operations:
  {"op": "load", "folder", "handler", "name", "model_file"}  import the handler as MLServer does, load()
  {"op": "predict", "body"}                                   -> {"status", "response" | "error"}
  {"op": "metadata"}                                          -> {"metadata": model metadata as MLServer serves it}
  {"op": "resolve", "folder", "globals": [[module, name]]}    -> {"unresolved": {"module.name": reason}}
  {"op": "load_model_strictly", "model_file", "folder"}       -> {"problems": [...], "versions": {...}}
"""

import asyncio
import importlib
import json
import os
import sys
import traceback
import warnings


def _answer_channel():
    # Keep a private copy of stdout for answers; fd 1 then points at stderr, so prints of the
    # model (Python or C level) never interleave with the protocol.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class Worker:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.model = None
        self.folder = None

    def _use_folder(self, folder):
        # MLServer puts the model folder first on sys.path before importing the handler.
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
        importlib.invalidate_caches()

    def load(self, request):
        from mlserver.settings import ModelParameters, ModelSettings

        self._use_folder(request["folder"])
        module_name, class_name = request["handler"].rsplit(".", 1)
        handler_class = getattr(importlib.import_module(module_name), class_name)
        settings = ModelSettings(
            name=request["name"],
            implementation=handler_class,
            parameters=ModelParameters(uri=request["model_file"], version="0.1.0"),
        )
        self.model = handler_class(settings)
        self.loop.run_until_complete(self.model.load())
        return {"loaded": True, "python": sys.version.split()[0]}

    def predict(self, request):
        from mlserver.errors import MLServerError
        from mlserver.types import InferenceRequest

        try:
            parsed = InferenceRequest.parse_obj(request["body"])
        except Exception as error:  # MLServer itself refuses such a body (422) before the handler
            return {"status": 422, "error": f"invalid V2 request: {error}"}
        try:
            response = self.loop.run_until_complete(self.model.predict(parsed))
        except MLServerError as error:
            return {"status": error.status_code, "error": str(error)}
        except Exception as error:  # MLServer answers 500 for anything that is not an MLServerError
            return {"status": 500, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:]}
        return {"status": 200, "response": response.dict(exclude_none=True)}

    def metadata(self, request):
        """What MLServer answers at /v2/models/<name> (the handler's advertised signature)."""
        return {"metadata": self.loop.run_until_complete(self.model.metadata()).dict(exclude_none=True)}

    def resolve(self, request):
        self._use_folder(request["folder"])
        unresolved = {}
        for module, name in request["globals"]:
            try:
                target = importlib.import_module(module)
                for part in name.split("."):
                    target = getattr(target, part)
            except BaseException as error:  # ImportError, AttributeError, or the module failing at import
                unresolved[f"{module}.{name}"] = f"{type(error).__name__}: {error}"
        return {"unresolved": unresolved}

    def load_model_strictly(self, request):
        """joblib.load with every warning recorded; numpy-2 pickles are read again to find more."""
        import joblib
        import numpy

        self._use_folder(request["folder"])
        versions = {"numpy": numpy.__version__, "joblib": joblib.__version__}
        try:
            import sklearn

            versions["scikit-learn"] = sklearn.__version__
        except ImportError:
            pass
        problems = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                joblib.load(request["model_file"])
            except ModuleNotFoundError as error:
                if not str(error.name or "").startswith("numpy._core"):
                    raise
                problems.append(
                    f"written with numpy >= 2.0 (it references {error.name}, which numpy {numpy.__version__} of the image does not have)"
                )
                _load_with_numpy2_names(request["model_file"])  # to hear what else was written elsewhere
        for warning in caught:
            category = warning.category.__name__
            if category in ("InconsistentVersionWarning", "DeprecationWarning", "UserWarning", "FutureWarning"):
                text = f"{category}: {warning.message}"
                if text not in problems:
                    problems.append(text)
        return {"problems": problems, "versions": versions}


def _load_with_numpy2_names(model_file):
    from joblib import numpy_pickle

    original = numpy_pickle.NumpyUnpickler.find_class

    def find_class(self, module, name):
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
        return original(self, module, name)

    numpy_pickle.NumpyUnpickler.find_class = find_class
    try:
        numpy_pickle.load(model_file)
    except Exception:
        pass  # only the warnings matter here
    finally:
        numpy_pickle.NumpyUnpickler.find_class = original


def main():
    channel = _answer_channel()
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = getattr(worker, request["op"])(request)
        except BaseException as error:  # reported to the caller, which names it in a check
            answer = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:], "failed": True}
        # NaN travels as JSON NaN (json's default on both sides).
        channel.write(json.dumps(answer, default=_jsonable) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
