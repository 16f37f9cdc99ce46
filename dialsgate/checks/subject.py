"""What the checks look at: one model folder, its contract, and things derived from it once.

Model code (the handler, the joblib) only ever runs in the folder's ``runtime``: the worker
container of the serving image (``container.worker``), reached through worker processes
(``transports.worker``); on the host only when asked (``--no-container``), and that verdict
cannot pass. A model file whose pickle names a dangerous global is never loaded at all.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
from dism_core import Template

from dialsgate.checks.base import CheckFailed, CheckNotRun
from dialsgate.checks.findings import exception_name
from dialsgate.checks.folder import subject_problems
from dialsgate.container.engine import ServingError, engine_answers
from dialsgate.container.image import ensure_image
from dialsgate.container.serve import Served, prepared_model_folder, serve_model_folder, wait_until_model_ready
from dialsgate.container.worker import WorkerContainer
from dialsgate.contract.build import build
from dialsgate.contract.server_settings import parallel_workers
from dialsgate.contract.template import Contract
from dialsgate.environment.profiles import UnsupportedImage, profile_for_image
from dialsgate.environment.runtime import HostRuntime, ModelRuntime, no_container_requested
from dialsgate.environment.serving import ImportSite, ServingEnvironmentError, clean_spec, ensure_environment, folder_needs
from dialsgate.limits import limit
from dialsgate.modelfile.pickle_audit import audit_model_file
from dialsgate.protocol import v2
from dialsgate.settings import given_batch_problem, reference_batch_beside
from dialsgate.transports.http import HttpEndpoint
from dialsgate.transports.triton import TritonEndpoint
from dialsgate.transports.worker import Worker, WorkerFailed, WorkerHandler


def readable_temp_folder(prefix: str) -> Path:
    """A fresh folder with mode 0755: the serving container runs as uid 1000, not as us."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


#: The root named by every model-code row when no container engine answers.
ENGINE_ROOT = "container_engine"
#: The root named by every server-layer row when the model could not be served.
SERVED_ROOT = "check_model_is_served"
#: Seconds before a server row starts from which its container log is kept as evidence.
LOG_MARK_MARGIN = 0.2
#: The clients of the served model, by transport (the ids of their rows end in @<transport>).
ENDPOINTS = {"http": HttpEndpoint, "tritonclient": TritonEndpoint}


@dataclass(frozen=True)
class Question:
    """One message to a fresh worker process of the runtime (nothing of the handler imported in
    it): ``args`` its mode (``("--clean",)``: the clean-interpreter round trip), ``what`` its name
    in a failure."""

    message: dict
    what: str
    args: tuple[str, ...] = ()

    def key(self) -> str:
        return json.dumps([self.args, self.message], sort_keys=True, default=str)


@dataclass(frozen=True)
class HandlerWork:
    """Work a check will do on the loaded handler (the exploration's requests), done early
    (``ask_early``) once the handler has loaded, in the handler's thread: ``run(subject)`` calls
    ``subject.worked_once(...)`` as the check does, which so finds it done or waits for it.
    ``seconds``: the longest it may take once the handler has loaded (what a check waits for it)."""

    run: Callable[[Subject], object]
    seconds: float


class Subject:
    """The model folder under test. Expensive things (runtime, handler, build) are made once."""

    def __init__(
        self,
        contract: Contract,
        reference_arrays: dict[str, np.ndarray],
        reference_is_sample: bool = False,
        no_container: bool | None = None,
    ):
        self.contract = contract
        self.reference_arrays = reference_arrays
        #: True when no reference batch was given: the arrays are the gate's sample data.
        self.reference_is_sample = reference_is_sample
        #: Model code on the host (--no-container), not in the serving image: never a pass.
        self.no_container = no_container_requested() if no_container is None else no_container
        #: A running server to check instead of serving the folder (``--server-url``).
        self.server_url: str | None = None
        self._temp_folders: list[Path] = []
        self._served_stack = contextlib.ExitStack()
        self._serving: threading.Thread | None = None
        #: Serialises making the runtime (the early questions' thread makes it too).
        self._runtime_lock = threading.RLock()
        self._build_lock = threading.Lock()
        self._handler_lock = threading.Lock()
        #: {question key: its answer}, asked before the checks that need them (``ask_early``).
        self._early: dict[str, Future] = {}
        self._asking: list[threading.Thread] = []
        #: {work key: its result}, worked out once by whichever thread asks first (``worked_once``).
        self._worked: dict[str, Future] = {}
        self._worked_lock = threading.Lock()
        #: Start serving as soon as the early thread has loaded the handler (the server layer follows).
        self.serve_when_loaded = False
        #: Set while no early work on the handler is pending (``wait_for_handler_work``).
        self._handler_work_done = threading.Event()
        self._handler_work_done.set()

    # ------------------------------------------------------------------ the image and its packages

    @cached_property
    def profile(self):
        """The image profile of the template's Image (UnsupportedImage -> CheckFailed)."""

        try:
            return profile_for_image(self.contract.image)
        except UnsupportedImage as error:
            raise CheckFailed(str(error)) from None

    @cached_property
    def model_file_audit(self):
        """The static audit of the model file, whatever its format (None: there is no model file)."""

        if not self.contract.model_file.is_file():
            return None
        return audit_model_file(self.contract.model_file, self.contract.code_dir)

    @cached_property
    def model_format(self):
        """The model file's format when it is positively not a pickle (ONNX, XGBoost, ...) and no
        pickle either (a polyglot is audited as the pickle it also is), else None."""

        audit = self.model_file_audit
        return audit.format if audit is not None and audit.polyglot is None else None

    @cached_property
    def pickle_audit(self):
        """Every global of the model file, found without running any of them (None: not a pickle)."""

        if self.model_format is not None:
            return None
        return self.model_file_audit

    @cached_property
    def needs(self):
        """The image packages the folder needs (imports + model-file globals), and what it lacks."""

        model = self.contract.model_file
        globals_ = self.pickle_audit.to_resolve() if self.pickle_audit is not None else []
        # __main__ is no module to install: check_pickle_globals_resolvable names that class and the remedy.
        pickled = [
            ImportSite(module, f"{model.name} (global {module}.{name})") for module, name in globals_ if module != "__main__"
        ]
        return folder_needs(self.contract.code_dir, self.profile, pickled)

    @property
    def runtime(self) -> ModelRuntime:
        """Where this folder's model code runs: the worker container of the serving image, made
        once per session (a failure is kept and reported by every check that needs it)."""

        with self._runtime_lock:
            if "_runtime" not in self.__dict__:
                try:
                    self._runtime = self._make_runtime()
                except (ServingError, ServingEnvironmentError, CheckFailed) as error:
                    self._runtime = CheckFailed(f"model code cannot run: {error}")
                except CheckNotRun as error:
                    self._runtime = error
        if isinstance(self._runtime, Exception):
            raise self._runtime
        return self._runtime

    def _make_runtime(self) -> ModelRuntime:
        self.require_plain_folder()  # nothing behind a link, FIFO or device is copied anywhere
        self.require_safe_model_file()  # a refused model file reaches no worker either
        requirements = self.needs.requirements(self.profile)
        if self.no_container:
            environment = ensure_environment(self.profile, requirements)
            return HostRuntime(environment, self.contract.code_dir, self.contract.model_file)
        why = engine_answers()
        if why:
            raise CheckNotRun(
                ENGINE_ROOT,
                f"{why}. Model code runs only inside the serving image: start Docker or Podman "
                f"(or pass --no-container to judge it on this machine, a verdict that cannot pass)",
            )
        try:
            image = ensure_image(self.contract.image, log=_quiet, profile=self.profile, requirements=requirements)
        except ServingError:
            raise
        except Exception as error:  # the engine's API refused something: say what, in the row
            raise ServingError(
                f"the serving image {self.contract.image} could not be prepared: {type(error).__name__}: {error}"
            ) from None
        return WorkerContainer(self.contract, image)

    #: The reference batch named on the command line (set by the pytest plugin), if any.
    reference_batch: Path | None = None
    #: The reference batch file whose arrays are ``reference_arrays`` (None: sample data).
    reference_batch_used: Path | None = None

    def require_plain_folder(self) -> None:
        """Refuse to copy, serve or run a folder holding a link, a FIFO or a device, or whose
        CodeUri / ModelUri leaves the template's folder: no worker container is made."""
        problems = subject_problems(self)
        if problems:
            raise CheckNotRun("check_folder_plain_files", f"{problems[0]}: the folder is not made of plain files")

    def require_safe_model_file(self) -> None:
        """Refuse to load a model file that was not fully audited or names a global not known to be
        safe: nothing of it may run, in no check, worker, container or report hook."""

        audit = self.pickle_audit
        refusal = audit.refusal() if audit is not None else None
        if refusal:
            # A global whose module exists nowhere is a resolution defect, not a safety one.
            only_missing = not (audit.refused or audit.error or audit.polyglot)
            root = "check_pickle_globals_resolvable" if only_missing else "check_pickle_globals_safe"
            raise CheckNotRun(root, f"{refusal}: it is loaded nowhere")

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

    # ------------------------------------------------------------------ fresh-process questions

    def ask_fresh(self, question: Question) -> dict:
        """The answer of a fresh worker process to ``question``: the one asked early when the
        same question was (``ask_early``), else asked now in a process of its own. A worker that
        died or reached a limit raises as it would have here (``WorkerFailed``)."""
        future = self._early.pop(question.key(), None)
        if future is not None:
            return future.result(timeout=self._early_wait)
        worker = Worker(self.runtime, question.args)
        try:
            return worker.send(question.message, question.what)
        finally:
            worker.close()

    def worked_once(self, key: str, work: Callable[[], object]) -> object:
        """``work()``'s result, worked out once per subject by the first thread to ask (early work
        or a check); another thread asking meanwhile waits for it. An exception is kept too."""
        with self._worked_lock:
            future = self._worked.get(key)
            mine = future is None
            if mine:
                future = self._worked[key] = Future()
        if mine:
            try:
                future.set_result(work())
            except BaseException as error:  # noqa: BLE001  (raised again to every thread that asks)
                future.set_exception(error)
        return future.result(timeout=self._work_wait)

    def ask_early(self, questions: Callable[[Subject], list[Question | HandlerWork]], load_handler: bool = True) -> None:
        """Make the runtime and ask ``questions(self)`` in the background, while the checks that
        need neither run: the answers wait for the checks that ask the same (``ask_fresh``).
        Plain questions share one fresh process, asked in order (a new one after a worker
        died); a question with a mode gets its own. The handler loads in its own worker
        (``load_handler``), as ``check_handler_loads`` would, and ``HandlerWork`` runs on it once it
        has. Model code runs only where it would have: the questions are built by the checks' own
        rules, in the runtime."""
        if load_handler:
            self._handler_work_done.clear()  # set once the handler has loaded and its work ended
        thread = threading.Thread(target=self._ask_early, args=(questions, load_handler), name="dialsgate-early", daemon=True)
        self._asking.append(thread)
        thread.start()

    def _load_handler_quietly(self) -> None:
        try:
            self.handler_load  # noqa: B018  (kept: check_handler_loads reports it)
        except Exception:  # noqa: BLE001  (a cause before loading: the checks meet it and say it)
            pass

    def _ask_early(self, questions: Callable[[Subject], list[Question]], load_handler: bool = True) -> None:
        # Under the runtime's lock: a check that needs the runtime waits until the answers it
        # may ask for are registered, so nothing is asked twice.
        with self._runtime_lock:
            try:
                runtime = self.runtime
                wanted = questions(self)
            except Exception:  # noqa: BLE001  (the checks meet the same cause and report it)
                self._handler_work_done.set()
                return
            work = [item for item in wanted if isinstance(item, HandlerWork)]
            asked = [item for item in wanted if isinstance(item, Question) and item.key() not in self._early]
            self._early_wait = limit("worker_load_timeout") * (len(asked) + 1)
            self._work_wait = limit("worker_load_timeout") + sum(item.seconds for item in work)
            # The thread keeps its own hold of each answer: ask_fresh takes it out of _early.
            pending = [(question, self._early.setdefault(question.key(), Future())) for question in asked]
        for question, future in pending:
            if question.args:  # a question with a mode: a process of its own
                thread = threading.Thread(target=self._answer_in_order, args=(runtime, [(question, future)]), daemon=True)
                self._asking.append(thread)
                thread.start()
        if load_handler:
            thread = threading.Thread(target=self._load_then_work, args=(work,), name="dialsgate-handler", daemon=True)
            self._asking.append(thread)
            thread.start()
        self._answer_in_order(runtime, [(question, future) for question, future in pending if not question.args])

    def _load_then_work(self, work: list[HandlerWork]) -> None:
        try:
            self._load_handler_quietly()
            if self.serve_when_loaded:
                self.serve_in_background()  # the served model starts while the work runs
            for item in work:
                try:
                    item.run(self)
                except BaseException:  # noqa: BLE001  (kept by worked_once: the check that needs it raises it)
                    pass
        finally:
            self._handler_work_done.set()

    def wait_for_handler_work(self) -> None:
        """Wait until the early work on the handler has ended (``HandlerWork``; at once when none
        was asked for). A check that runs model code waits here first (``findings.judge``): the
        work's requests all come before any check's, so a request that reaches a limit and stops
        the worker is always the same one, whichever thread was quicker."""
        if threading.current_thread() not in self._asking:
            self._handler_work_done.wait(timeout=self._work_wait)

    def _answer_in_order(self, runtime: ModelRuntime, pending: list[tuple[Question, Future]]) -> None:
        worker = None
        try:
            for question, future in pending:
                try:
                    if worker is None:
                        worker = Worker(runtime, question.args)
                    future.set_result(worker.send(question.message, question.what))
                except BaseException as error:  # noqa: BLE001  (raised again where the answer is asked for)
                    future.set_exception(error)
                    if isinstance(error, WorkerFailed) and worker is not None:
                        worker.close()
                        worker = None  # the next question gets a fresh process
        finally:
            if worker is not None:
                worker.close()

    #: Seconds ``ask_fresh`` waits for an early answer (each question has its own worker limit).
    _early_wait: float = 600.0
    #: Seconds a thread waits for work on the handler (``worked_once``): its load, then the work's own limits.
    _work_wait: float = 600.0

    # ------------------------------------------------------------------ the handler

    @property
    def handler_load(self):
        """(handler, None) or (None, why it did not load): tried once per session, so one cause
        is one failure (``check_handler_loads``) and every row behind it is "not run". A cause
        that stops it before trying (``CheckNotRun``) is raised each time, never kept."""
        with self._handler_lock:
            if "handler_load" not in self.__dict__:
                self.__dict__["handler_load"] = self._load_handler()
            return self.__dict__["handler_load"]

    def _load_handler(self):
        self.require_safe_model_file()
        self.require_importable_folder()
        self.require_no_class_from_main()
        try:
            # In the worker container the handler's worker is the clean round trip's fresh process too.
            clean = self.clean_round_trip_spec() if self.runtime.kind == "container" else None
            return WorkerHandler(self.contract, self.runtime, clean=clean, spawn=self.served_with_workers), None
        except CheckFailed as error:  # the runtime could not be made
            return None, str(error)
        except WorkerFailed as error:
            return None, (
                f"the handler {self.contract.handler} did not load from {self.contract.code_dir} "
                f"under the image's packages (Python {self.profile.python}): "
                f"{explain_load_error(str(error), self.runtime.folder, self.contract.code_dir, self.contract.model_file.name)}"
            )

    def clean_round_trip_spec(self) -> dict:
        """What the clean-interpreter round trip's fresh process looks at before it loads
        (``checks.roundtrip``): the handler's own worker in the worker container, a process of
        its own on the host."""
        return clean_spec(self.contract.template_path, self.contract.code_dir, load_as_pickle=self.pickle_audit is not None)

    @cached_property
    def served_with_workers(self) -> bool:
        """MLServer serves this folder in inference-pool workers, which load under the spawn start
        method (its default); False for ``parallel_workers`` 0 in the folder's settings.json, when
        it loads the model in its own process (``contract.server_settings``)."""
        return parallel_workers(self.contract.code_dir) != 0

    @cached_property
    def handler(self):
        """The handler loaded from the folder where its model code runs (``transports.worker``)."""

        handler, failure = self.handler_load
        if handler is None:
            raise CheckNotRun("check_handler_loads", failure.splitlines()[0][:300])
        return handler

    # ------------------------------------------------------------------ the served model

    def serve_in_background(self) -> None:
        """Start serving the folder now, in a thread, while other checks run (MLServer takes
        seconds to become ready); ``served`` waits for it. Only once the handler has loaded apart
        (a handler that does not load is one failure, not a served container's); the thread
        builds the folder if no check has yet (one build, under its lock)."""
        if "_served" in self.__dict__ or self._serving is not None:
            return
        if self.__dict__.get("handler_load", (None, None))[0] is None:
            return
        self._serving = threading.Thread(target=self._start_serving, name="dialsgate-serve", daemon=True)
        self._serving.start()

    def _start_serving(self) -> None:
        try:
            self._served = self._serve()
        except CheckNotRun as error:
            self._served = error
        except (ServingError, AssertionError) as error:  # CheckFailed is an AssertionError
            self._served = CheckFailed(f"the server layer could not serve the folder: {error}")
        except Exception as error:  # kept for the server rows, never lost in the thread
            self._served = CheckFailed(f"the server layer could not serve the folder: {type(error).__name__}: {error}")

    @property
    def served(self) -> Served:
        """The folder served by MLServer in its image (or the ``server_url`` server), started once;
        a failure is kept: ``check_model_is_served`` reports it, every other server row is not run."""

        if self._serving is not None:
            self._serving.join()
        if "_served" not in self.__dict__:
            self._start_serving()
        if isinstance(self._served, Exception):
            if isinstance(self._served, CheckFailed):
                raise CheckNotRun(SERVED_ROOT, str(self._served).splitlines()[0][:300])
            raise self._served
        return self._served

    def serving_failure(self) -> str | None:
        """Why the model could not be served, in full (None: it is served)."""
        try:
            self.served  # noqa: B018
        except CheckNotRun:
            if isinstance(self.__dict__.get("_served"), CheckFailed):
                return str(self._served)
            raise
        return None

    def _serve(self) -> Served:
        contract = self.contract
        if self.server_url:
            url = self.server_url.rstrip("/")
            waited = wait_until_model_ready(url, contract.name)
            port = int(url.rsplit(":", 1)[1]) if url.rsplit(":", 1)[-1].isdigit() else 80
            return Served(url=url, http_port=port, grpc_port=None, model_name=contract.name, ready_seconds=waited,
                          network_mode="external")  # fmt: skip
        # Nothing is served that was not fully audited, and a handler that does not load apart is
        # one failure (check_handler_loads), not one per server row.
        self.require_plain_folder()
        self.require_safe_model_file()
        self.handler  # noqa: B018
        image = ensure_image(contract.image, log=_quiet, profile=self.profile, requirements=self.needs.requirements(self.profile))
        # The build the package checks judged (one build per run), copied for the container.
        folder = self._served_stack.enter_context(
            prepared_model_folder(contract, workdir=self.temp_folder("dialsgate-serve-"), built=self.package_folder)
        )
        return self._served_stack.enter_context(serve_model_folder(folder, contract, image=image))

    @cached_property
    def client(self) -> HttpEndpoint:
        """The one HTTP client of the served model's rows."""
        return HttpEndpoint(self.served.url, self.contract.name)

    def client_factory(self):
        """A new independent HTTP client (closed with the subject): concurrent clients."""
        made = HttpEndpoint(self.served.url, self.contract.name)
        self._served_stack.callback(made.close)
        return made

    def over_transport(self, transport: str) -> Subject:
        """The same folder and batch, its requests sent to the served model over ``transport``."""
        cache = self.__dict__.setdefault("_over", {})
        if transport not in cache:
            served = self.served
            cache[transport] = self.over(ENDPOINTS[transport](served.url, served.model_name))
        return cache[transport]

    def served_log_mark(self) -> str | None:
        """The time now, as the served container's log is read from (None: nothing served here).
        A time, not the log's length: reading the log before every row cost an engine call each."""
        served = self.__dict__.get("_served")
        if not isinstance(served, Served) or served.container is None:
            return None
        # A little earlier than now: the engine stamps lines with its own clock.
        return (datetime.now(timezone.utc) - timedelta(seconds=LOG_MARK_MARGIN)).isoformat(timespec="microseconds")

    def served_log_since(self, mark: str | None, tail: int) -> str:
        """What the served container logged since ``mark`` (its last ``tail`` lines)."""
        served = self.__dict__.get("_served")
        if mark is None or not isinstance(served, Served):
            return ""
        lines = served.logs(since=mark).splitlines()
        shown = lines[-tail:]
        return f"container log during this check (last {len(shown)} of {len(lines)} lines)\n" + (
            "\n".join(shown) or "(nothing logged)"
        )

    def over(self, endpoint) -> Subject:
        """The same folder and batch, its requests sent through ``endpoint`` (HTTP, tritonclient)."""
        other = Subject(self.contract, self.reference_arrays, self.reference_is_sample, self.no_container)
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

    @property
    def package_folder(self) -> Path:
        """The folder dismcli package would zip: the build dir itself, or an offline build of it
        (made once; the serving thread may ask for it first)."""
        with self._build_lock:
            if "_package_folder" not in self.__dict__:
                self._package_folder = self._build()
            return self._package_folder

    def _build(self) -> Path:
        if self.contract.built:
            return self.contract.code_dir

        root = self.temp_folder("dialsgate-build-")
        document = self.contract.document or None
        try:
            Template(**copy.deepcopy(document)) if document else None
        except Exception as error:  # nothing can be built: one failure names it, the rest wait on it
            raise CheckNotRun("check_template_schema", f"the folder cannot be built: {str(error).splitlines()[0]}") from None
        try:
            build(self.contract.template_path, root / "build", document=document)
        except (CheckNotRun, CheckFailed):
            raise
        except Exception as error:  # dism-core's validator refused the folder (a handler file, a path)
            raise CheckFailed(f"dismcli build would refuse the folder: {exception_name(error)}: {error}") from None
        return root / "build" / self.contract.resource_key

    def temp_folder(self, prefix: str) -> Path:
        folder = readable_temp_folder(prefix)
        self._temp_folders.append(folder)
        return folder

    def wait_early(self) -> None:
        """Wait until the work ``ask_early`` started has ended (each thread within the early
        wait): the questions, the handler's load and what they started."""
        joined = 0
        while joined < len(self._asking):  # a thread may add the ones it starts
            self._asking[joined].join(timeout=max(self._early_wait, self._work_wait))
            joined += 1

    def close(self) -> None:
        self.wait_early()
        for other in self.__dict__.get("_over", {}).values():
            other.close()
        if "client" in self.__dict__:
            self.client.close()
        if self._serving is not None:
            self._serving.join()
        self._served_stack.close()  # the served container and its folder, before the handler
        runtime = self.__dict__.get("_runtime")
        runtime = runtime if isinstance(runtime, ModelRuntime) else None
        if runtime is not None and runtime.kind == "container":
            # Removed first: its processes end with it, and no interpreter's shutdown (the
            # handler's worker: 0.8 s with numba and MLServer loaded) is waited for.
            runtime.close()
        if "handler" in self.__dict__:
            self.handler.close()
        elif self.__dict__.get("handler_load", (None, None))[0] is not None:
            self.handler_load[0].close()
        if runtime is not None and runtime.kind != "container":
            runtime.close()
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


#: A write into the read-only server folder: ``[Errno 30] Read-only file system: '/mnt/Name/x'``.
_READ_ONLY = re.compile(r"\[Errno 30\] Read-only file system: '(?P<path>[^']+)'")
#: A file that is not there, named without a folder (opened from the working directory).
_MISSING_NAME = re.compile(r"\[Errno 2\] No such file or directory: '(?P<name>[^'/]+)'")
#: The handler's module failed while it was reloaded (as MLServer reads the handler class).
_IN_RELOAD = re.compile(r'importlib/__init__\.py", line \d+, in reload\n')


def _quiet(line: str) -> None:
    """Image preparation logs (the stand-in check, extra packages) are not a check's output."""


def explain_load_error(
    text: str, folder_inside: str | None = None, folder: Path | None = None, model_file_name: str | None = None
) -> str:
    """The worker's error, with its cause named and its remedy: a class pickled from __main__
    (without the worker's own file, which is not the user's __main__), the model file opened by
    its bare name (``parameters.uri``), top-level code that fails when MLServer reloads the
    handler's module, a write into the read-only server folder (the file named as it lies in
    the folder), a write elsewhere on the sandbox's read-only root."""
    match = _MAIN_ATTRIBUTE.search(text)
    if match:
        return main_module_remedy(match["name"])
    match = _MISSING_NAME.search(text)
    if match and model_file_name and match["name"] == model_file_name:
        return (
            f"the handler opens {model_file_name!r} from the working directory: in MLServer, parameters.uri is the "
            f"model file's name as model-settings.json holds it, resolved against the model's folder only by "
            f"mlserver.utils.get_model_uri. Load `await get_model_uri(self.settings)` instead. ({text.splitlines()[0][:300]})"
        )
    if _IN_RELOAD.search(text):
        return (
            "MLServer imports the handler's module and then reloads it (ModelSettings.implementation), so its "
            "top-level code runs twice in one process, and it failed the second time: make what it creates once "
            f"(a Prometheus metric, a registration, a file) in load(), or let it run twice. {text}"
        )
    match = _READ_ONLY.search(text)
    if match and folder_inside and (match["path"] + "/").startswith(folder_inside.rstrip("/") + "/"):
        relative = match["path"][len(folder_inside.rstrip("/")) + 1 :]
        where = f"{folder.name}/{relative}" if folder is not None else relative
        return (
            f"the handler writes {where} inside its server folder, which is read-only in DIALS (mounted read-only at "
            f"{folder_inside}, as here). Write caches and logs to a temporary directory (tempfile.gettempdir()) "
            f"or keep them in memory. ({text.splitlines()[0][:300]})"
        )
    if match:
        # Outside the folder: DIALS may let the pod write there, the gate's sandbox does not (its
        # root filesystem is read-only): say which, so the author knows what the row rests on.
        return (
            f"the handler writes {match['path']}, outside the places model code may write in the gate's sandbox "
            f"(/tmp, the home directory $HOME and the working directory, all in memory; the root filesystem is "
            f"read-only here, as the model and its folder are in DIALS). Write caches and logs under "
            f"tempfile.gettempdir() or keep them in memory. ({text.splitlines()[0][:300]})"
        )
    return text


def make_subject(contract: Contract, reference_batch: Path | None = None, server_url: str | None = None) -> Subject:
    """The Subject of one resource: its reference batch (``reference_batch`` when it is a plain
    file, else the one beside the template, else template-shaped sample data)."""
    given = Path(reference_batch) if reference_batch is not None else None
    batch = given if given is not None and not given_batch_problem(given) else None
    batch = batch or (None if given is not None else reference_batch_beside(contract))
    if contract.oversized_inputs():
        arrays = {}  # nothing is built beyond the elements cap: check_dims_within_limit names it
    else:
        arrays = v2.reference_arrays(batch, contract) if batch else v2.sample_inputs(contract, n_ls=4)
    made = Subject(contract, arrays, reference_is_sample=batch is None)
    made.reference_batch = given  # check_folder_plain_files judges it too
    made.reference_batch_used = batch
    made.server_url = server_url
    return made
