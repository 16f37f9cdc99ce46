"""The worker script loads a handler as MLServer 1.5.0 loads it in its inference-pool worker: the
handler's module imported then reloaded (``ModelSettings.implementation``), multiprocessing's
start method spawn (``configure_inference_pool``), ``parameters.uri`` the model file's bare name
resolved against its folder by ``get_model_uri`` only, the coroutines on uvloop. The first three
are corpus folders that MLServer refused while the worker loaded them (``handler_metric_at_import``,
``handler_pool_in_load``, ``handler_opens_parameters_uri``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from dialsgate.environment.runtime import WORKER_SCRIPT

pytest.importorskip("mlserver")

#: A handler whose load() reports what it sees, as the message of the error it raises.
REPORTING_HANDLER = textwrap.dedent(
    """
    import asyncio
    import builtins
    import json
    import multiprocessing

    from mlserver import MLModel
    from mlserver.utils import get_model_uri

    builtins.top_level_runs = getattr(builtins, "top_level_runs", 0) + 1


    class Model(MLModel):
        async def load(self) -> bool:
            seen = {
                "top_level_runs": builtins.top_level_runs,
                "start_method": multiprocessing.get_start_method(),
                "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                "uri": self.settings.parameters.uri,
                "resolved": await get_model_uri(self.settings),
            }
            raise RuntimeError("SEEN" + json.dumps(seen))
    """
)


#: A handler that loads without reading its model file.
PLAIN_HANDLER = textwrap.dedent(
    """
    from mlserver import MLModel


    class Model(MLModel):
        async def load(self) -> bool:
            return True
    """
)


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """What the handler saw, loaded with a model file and then (another module, the same worker)
    without one; first, what a worker that is the clean round trip's process saw (its own module)."""
    root = tmp_path_factory.mktemp("worker")
    for made in ("model", "with", "without", "scratch", "clean", "in_server"):
        (root / made).mkdir()
    (root / "model" / "nmf.joblib").write_bytes(b"not read")
    (root / "with" / "app.py").write_text(REPORTING_HANDLER)
    (root / "without" / "app_without.py").write_text(REPORTING_HANDLER)
    (root / "in_server" / "app_in_server.py").write_text(REPORTING_HANDLER)
    (root / "clean" / "app_clean.py").write_text(PLAIN_HANDLER)
    (root / "clean" / "json.py").write_text("")  # a module of the folder that the interpreter has already
    (root / "clean" / "model.joblib").write_bytes(b"not a pickle")
    clean = {"repository": str(root / "repository"), "forbidden": ["email", "no_such_module"], "provided": ["app_clean", "json"],
             "load_as_pickle": True}  # fmt: skip
    loads = [
        {"op": "load", "folder": str(root / "clean"), "handler": "app_clean.Model", "name": "m",
         "model_file": str(root / "clean" / "model.joblib"), "clean": clean},
        {"op": "load", "folder": str(root / "with"), "handler": "app.Model", "name": "m", "model_file": str(root / "model" / "nmf.joblib")},
        {"op": "load", "folder": str(root / "without"), "handler": "app_without.Model", "name": "m", "model_file": ""},
        # parallel_workers 0 in the folder's settings.json: loaded in MLServer's own process.
        {"op": "load", "folder": str(root / "in_server"), "handler": "app_in_server.Model", "name": "m",
         "model_file": str(root / "model" / "nmf.joblib"), "spawn": False},
    ]  # fmt: skip
    stderr = root / "stderr.txt"
    with stderr.open("w") as errors:
        worker = subprocess.Popen(
            [sys.executable, "-I", "-B", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=root / "scratch",  # not the folder: as in the worker container and in MLServer
        )
    watchdog = threading.Timer(120, worker.kill)  # a worker that never answers ends the read
    watchdog.start()
    try:
        worker.stdin.write("".join(json.dumps(load) + "\n" for load in loads))
        worker.stdin.flush()
        # One answer per load; then the worker is stopped, as the gate stops it (its shutdown is not waited for).
        lines = [line for line in (worker.stdout.readline() for _ in loads) if line]
    finally:
        watchdog.cancel()
        worker.kill()
        worker.wait(timeout=30)
    answers = [json.loads(lines[0]) if lines else {"the worker answered": stderr.read_text()[-2000:]}]
    for line in lines[1:4]:
        error = str(json.loads(line).get("error", ""))
        answers.append(json.loads(error.split("SEEN", 1)[1]) if "SEEN" in error else {"the worker answered": line})
    return root, answers


def test_a_handler_sees_what_it_would_see_in_mlserver(seen):
    root, answers = seen
    assert answers[1] == {
        "top_level_runs": 2,  # imported, then reloaded
        "start_method": "spawn",
        "loop": "uvloop",
        "uri": "nmf.joblib",  # as model-settings.json holds it: opened as is, it is not found
        "resolved": str(root / "model" / "nmf.joblib"),
    }


def test_a_model_served_without_parallel_workers_loads_under_the_platforms_start_method(seen):
    _, answers = seen
    fresh = subprocess.run(
        [sys.executable, "-I", "-c", "import multiprocessing; print(multiprocessing.get_start_method())"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert answers[3]["start_method"] == fresh.stdout.strip() != "spawn"
    assert answers[3]["loop"] == "uvloop"  # the server's own loop, as the pool worker's


def test_without_a_model_file_the_uri_is_the_models_folder(seen):
    root, answers = seen
    assert answers[2]["uri"] == answers[2]["resolved"] == str(root / "without")


def test_the_handlers_worker_is_the_clean_round_trips_process_and_loads_whatever_it_saw(seen):
    """In the worker container the handler's worker is the clean-interpreter round trip's fresh
    process: isolated and looked at before it loads, the model file loaded strictly, and the
    handler loaded all the same (its other rows must not depend on what the round trip saw)."""
    root, answers = seen
    answer = answers[0]
    assert answer.get("loaded") is True, answer
    saw = answer["clean"]
    assert saw["sys_path"][0] == str(root / "clean")
    assert saw["importable_forbidden"] == ["email"]
    assert saw["origins"]["app_clean"] == str(root / "clean" / "app_clean.py")
    assert not str(saw["origins"]["json"]).startswith(str(root / "clean"))  # the standard library's, loaded first
    assert saw["error"] == "KeyError: 110" and "traceback" in saw  # pickle's reading of b"not a pickle"
