"""Runs inside the serving image (its Python and packages): model code lives here, and only
here is a handler loaded as MLServer loads it (``Worker.load``).

Started by ``dialsgate.transports.worker.Worker`` in the worker container as
``python -I -B -c <this file's source>`` (``docker exec -i``), or, with ``--no-container`` only,
by a host environment's Python. It imports nothing of dialsgate and nothing of the caller's
environment. Requests arrive one JSON object per line on stdin, answers leave one JSON object per
line on the original stdout; anything the model prints goes to stderr so it cannot corrupt the
answers.

The clean-interpreter round trip (``checks.roundtrip``): a fresh process whose import path is
only the server folder, alone, plus site-packages, the repository's own packages proven
unimportable, the model file loaded strictly (numpy DeprecationWarnings and scikit-learn version
warnings as errors), then the same ``load`` and ``predict`` on one request. In the worker
container the handler's own worker is that process: its ``load`` with a ``clean`` field (forbidden,
provided, repository, load_as_pickle) first isolates it and records what it sees, then loads as
always, and the round trip's answer is its first request's. On the host (``--no-container``) it is
a process of its own, ``--clean``, on a copy of the folder: SPEC (one JSON object on stdin):
folder, repository, model_file, handler, name, request (the body), forbidden, provided,
load_as_pickle. RESULT (one JSON line on stdout): {"response", "origins", "importable_forbidden",
"sys_path"} or {"error", "traceback"}.

Operations:
  {"op": "load", "folder", "handler", "name", "model_file", "clean"?, "spawn"?}  import the handler as MLServer does, load()
                                                                    -> {"loaded", "python", "clean"?: what it saw}
  {"op": "predict", "body"}                                   -> {"status", "response" | "error"}
  {"op": "metadata"}                                          -> {"metadata": model metadata as MLServer serves it}
  {"op": "resolve", "folder", "globals": [[module, name]]}    -> {"unresolved": {"module.name": reason}}
  {"op": "load_model_strictly", "model_file", "folder"}       -> {"problems": [...], "versions": {...}}
  {"op": "installed"}                                         -> {"python", "installed": {distribution: version}}
"""

import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import sys
import traceback
import warnings

#: This script's own frames: its file when run by path, ``<string>`` as ``python -c`` (the worker
#: container). A traceback sent to the gate names the folder's code, not the worker's.
_OWN_FILES = {globals().get("__file__", "<string>"), "<string>"}


def _folder_traceback() -> str:
    """The exception being handled, its chain kept, without this script's own frames."""
    formatted = traceback.TracebackException(*sys.exc_info())
    pending, seen = [formatted], set()
    while pending:
        part = pending.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        part.stack = traceback.StackSummary.from_list([frame for frame in part.stack if frame.filename not in _OWN_FILES])
        pending += [part.__cause__, part.__context__]
    return "".join(formatted.format())


def _model_packages():
    """numpy, joblib and scikit-learn (None when the image lacks it), imported when a question
    needs them: a process that only lists the installed packages imports none of them. Imported
    before any warning is recorded, so what their own imports warn is never a model's problem."""
    # Late: a process that answers only "installed" never pays for these.
    import joblib
    import numpy

    try:  # a model file may be a scikit-learn estimator; a folder need not use it
        # Late: as above.
        import sklearn
        import sklearn.exceptions
    except ImportError:
        sklearn = None
    return numpy, joblib, sklearn


def _answer_channel():
    # Keep a private copy of stdout for answers; fd 1 then points at stderr, so prints of the
    # model (Python or C level) never interleave with the protocol.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _request_reader():
    """How a request line is read: orjson where the image has it (MLServer depends on it; it reads a
    batch of millions of counts several times faster), else json. Where the two could read a line
    differently, json reads it: orjson refuses the NaN and Infinity tokens a bad request may hold
    (and 1e400, lone surrogates), and reads an integer beyond 64 bits as a float without a word,
    so a line with a run of 19 digits goes to json too (an integer of at most 18 digits is below
    2**63, which orjson reads exactly)."""
    try:
        # Late: only the request loop reads with it, and a host environment may lack it.
        import orjson
    except ImportError:
        return json.loads
    # Every ASCII digit made "0", then one search for 19 of them: a tenth of a regex's time over
    # a line of millions of counts (where a regex search cost as much as orjson's read itself).
    digits_alike = bytes.maketrans(b"0123456789", b"0" * 10)
    nineteen = b"0" * 19

    def loads(line: bytes):
        if nineteen in line.translate(digits_alike):
            return json.loads(line)
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return json.loads(line)

    return loads


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class Worker:
    def __init__(self):
        self.loop = None  # made by load(), with MLServer's event loop policy
        self.model = None
        self.folder = None

    def _use_folder(self, folder):
        # MLServer puts the model folder first on sys.path before importing the handler.
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
        importlib.invalidate_caches()

    def load(self, request):
        # Seen before anything else is imported here, as a fresh process sees it.
        clean = _clean_facts(request["folder"], request["model_file"], request["clean"]) if request.get("clean") else None

        # Late: MLServer's own types; the questions that load no handler go without them.
        from mlserver.settings import ModelParameters, ModelSettings
        from mlserver.utils import install_uvloop_event_loop

        # MLServer loads a model in an inference-pool worker (parallel_workers defaults to 1) and
        # forces multiprocessing's start method to spawn for it and for every process the model
        # starts (mlserver.parallel.utils.configure_inference_pool): a pool the handler starts
        # gets fresh interpreters, not forks holding what load() set. That worker runs the
        # model's coroutines on uvloop when it is installed (mlserver.parallel.worker). With
        # parallel_workers 0 (the folder's settings.json: "spawn" false) the model loads in the
        # server's own process, under the platform's start method, on its uvloop loop as well.
        multiprocessing.set_start_method("spawn" if request.get("spawn", True) else None, force=True)
        install_uvloop_event_loop()
        self.loop = asyncio.new_event_loop()
        _model_packages()  # imported before the handler, as they always were here
        self._use_folder(request["folder"])
        module_name, class_name = request["handler"].rsplit(".", 1)
        # MLServer reads the handler class through ModelSettings.implementation, which imports
        # its module and reloads it (mlserver.settings._reload_module): the module's top-level
        # code runs twice in the process that loads the model.
        module = importlib.reload(importlib.import_module(module_name))
        handler_class = getattr(module, class_name)
        # As MLServer reads the model-settings.json that dismcli build writes beside the model
        # file: parameters.uri is the file's name, resolved against that folder only by
        # mlserver.utils.get_model_uri (a handler opening parameters.uri itself finds nothing).
        model_file = request["model_file"]
        source = os.path.join(os.path.dirname(model_file) or request["folder"], "model-settings.json")
        settings = ModelSettings(
            name=request["name"],
            implementation=handler_class,
            # Without a model file, MLServer's uri is the model's folder (mlserver.repository.load).
            parameters=ModelParameters(uri=os.path.basename(model_file) or os.path.dirname(source), version="0.1.0"),
        )
        settings._source = source
        self.model = handler_class(settings)
        self.loop.run_until_complete(self.model.load())
        loaded = {"loaded": True, "python": sys.version.split()[0]}
        return {**loaded, "clean": clean} if clean is not None else loaded

    def predict(self, request):
        # Late: imported by load() already (see there).
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
            return {"status": 500, "error": f"{type(error).__name__}: {error}", "traceback": _folder_traceback()[-4000:]}
        return {"status": 200, "response": response.dict(exclude_none=True)}

    def metadata(self, request):
        """What MLServer answers at /v2/models/<name> (the handler's advertised signature)."""
        return {"metadata": self.loop.run_until_complete(self.model.metadata()).dict(exclude_none=True)}

    def installed(self, request):
        """This interpreter's version and every installed distribution (the parity check)."""
        found = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()}
        return {"python": sys.version.split()[0], "installed": found}

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

        numpy, joblib, sklearn = _model_packages()
        self._use_folder(request["folder"])
        versions = {"numpy": numpy.__version__, "joblib": joblib.__version__}
        if sklearn is not None:
            versions["scikit-learn"] = sklearn.__version__
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
    # Late: see _model_packages.
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
    _, joblib, sklearn = _model_packages()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        if sklearn is not None:
            warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
        joblib.load(model_file)


def _isolation_facts(spec) -> dict:
    """The import path and what it finds, once isolated (``_isolate``): the repository's modules
    that are importable (none should be) and where the folder's own modules come from."""
    return {
        "sys_path": list(sys.path),
        "importable_forbidden": [name for name in spec["forbidden"] if importlib.util.find_spec(name) is not None],
        "origins": {name: getattr(importlib.util.find_spec(name), "origin", None) for name in spec["provided"]},
    }


def _clean_facts(folder, model_file, spec) -> dict:
    """The clean round trip's facts in the handler's worker: isolated, then the model file loaded
    strictly (its failure recorded: the handler still loads, as MLServer loads it)."""
    _isolate(folder, spec["repository"])
    facts = _isolation_facts(spec)
    if spec.get("load_as_pickle", True):
        try:
            _load_model_strictly(model_file)
        except BaseException as error:  # reported by the round trip's check, which names it
            facts["error"] = f"{type(error).__name__}: {error}"
            facts["traceback"] = _folder_traceback()
    return facts


def clean_round_trip() -> int:
    """The --clean mode (see the module docstring)."""
    channel = _answer_channel()
    spec = json.loads(sys.stdin.readline())
    result = {}
    try:
        _isolate(spec["folder"], spec["repository"])
        result.update(_isolation_facts(spec))
        if spec.get("load_as_pickle", True):
            _load_model_strictly(spec["model_file"])
        worker = Worker()
        worker.load({key: spec[key] for key in ("folder", "handler", "name", "model_file", "spawn") if key in spec})
        answer = worker.predict({"body": spec["request"]})
        if answer["status"] == 200:
            result["response"] = answer["response"]
        else:
            result["error"] = f"HTTP {answer['status']}: {answer['error']}"
            result["traceback"] = answer.get("traceback", "")
    except BaseException as error:  # reported to the check, which names it
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = _folder_traceback()
    channel.write(json.dumps(result, default=_jsonable) + "\n")
    return 0


def main():
    if sys.argv[1:2] == ["--clean"]:
        return clean_round_trip()
    channel = _answer_channel()
    worker = Worker()
    loads = _request_reader()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = loads(line)
        try:
            answer = getattr(worker, request["op"])(request)
        except BaseException as error:  # reported to the caller, which names it in a check
            answer = {"error": f"{type(error).__name__}: {error}", "traceback": _folder_traceback()[-4000:], "failed": True}
        # NaN travels as JSON NaN (json's default on both sides).
        channel.write(json.dumps(answer, default=_jsonable) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
