"""The checks' fresh-process questions asked early (``Subject.ask_early``): each answered once, by
the process the check would have asked, and a dead worker costs only its own question."""

from __future__ import annotations

import contextlib
import json
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.findings import judge
from dialsgate.checks.roundtrip import check_clean_interpreter_round_trip
from dialsgate.checks.subject import HandlerWork, Question, Subject
from dialsgate.environment.runtime import ModelRuntime
from dialsgate.transports.worker import Worker, WorkerFailed, WorkerHandler

#: Answers each line with its op and this process's id; "die" exits at once. Every start is logged.
SCRIPT = """
import json, os, sys
open(sys.argv[1], "a").write(f"{os.getpid()} {sys.argv[2:-1]}\\n")
for line in sys.stdin:
    message = json.loads(line)
    if message.get("op") == "die":
        sys.exit(3)
    print(json.dumps({"op": message.get("op"), "pid": os.getpid(), "args": sys.argv[2:-1]}), flush=True)
"""


class LoggingRuntime(ModelRuntime):
    kind = "host"

    def __init__(self, log: Path):
        self.log = log

    def worker_command(self, args):
        return [sys.executable, "-c", textwrap.dedent(SCRIPT), str(self.log), *args]

    @contextlib.contextmanager
    def alone(self):
        yield "", ""

    def describe(self):
        return "a test script"


@pytest.fixture
def subject(tmp_path):
    made = Subject(SimpleNamespace(), {})
    made._runtime = LoggingRuntime(tmp_path / "starts.log")
    yield made
    made.close()


def starts(subject) -> list[str]:
    return subject._runtime.log.read_text().splitlines()


def test_plain_questions_share_one_process_and_each_answer_is_used_once(subject):
    asked = [Question({"op": "installed"}, "installed"), Question({"op": "resolve", "globals": []}, "resolve")]
    clean = Question({"folder": "/x"}, "the clean-interpreter round trip", ("--clean",))
    subject.ask_early(lambda _: [*asked, clean], load_handler=False)
    answers = [subject.ask_fresh(question) for question in [*asked, clean]]
    assert [answer.get("op") for answer in answers] == ["installed", "resolve", None]
    assert answers[0]["pid"] == answers[1]["pid"] != answers[2]["pid"]
    assert answers[2]["args"] == ["--clean"]
    assert len(starts(subject)) == 2
    again = subject.ask_fresh(asked[0])  # not asked early any more: a process of its own
    assert again["op"] == "installed" and again["pid"] not in {answers[0]["pid"], answers[2]["pid"]}
    assert len(starts(subject)) == 3


def test_a_question_not_asked_early_gets_its_own_process(subject):
    subject.ask_early(lambda _: [Question({"op": "installed"}, "installed")], load_handler=False)
    answer = subject.ask_fresh(Question({"op": "metadata"}, "metadata"))
    assert answer["op"] == "metadata"
    subject.close()
    assert len(starts(subject)) == 2


def test_a_worker_that_dies_fails_its_own_question_only(subject):
    dies, after = Question({"op": "die"}, "load_model_strictly"), Question({"op": "resolve"}, "resolve")
    subject.ask_early(lambda _: [dies, after], load_handler=False)
    with pytest.raises(WorkerFailed, match="died during 'load_model_strictly'"):
        subject.ask_fresh(dies)
    assert subject.ask_fresh(after)["op"] == "resolve"
    assert len(starts(subject)) == 2


def test_questions_that_cannot_be_built_leave_the_checks_to_say_why(subject):
    def broken(_):
        raise RuntimeError("no")

    subject.ask_early(broken, load_handler=False)
    assert subject.ask_fresh(Question({"op": "installed"}, "installed"))["op"] == "installed"
    assert len(starts(subject)) == 1


def test_question_keys_tell_modes_and_messages_apart():
    keys = {
        Question({"op": "a", "x": [1]}, "a").key(),
        Question({"x": [1], "op": "a"}, "other name").key(),
        Question({"op": "a", "x": [1]}, "a", ("--clean",)).key(),
        Question({"op": "a", "x": [2]}, "a").key(),
    }
    assert len(keys) == 3
    assert json.loads(Question({"op": "a"}, "a").key()) == [[], {"op": "a"}]


def test_work_on_the_handler_starts_once_it_has_loaded_and_a_check_then_finds_it_done(subject):
    loaded, runs = [], []

    def slow_load():
        time.sleep(0.05)  # work started beside the load would begin within it
        loaded.append(time.perf_counter())
        return None, "not loaded here"

    def explore_like(made):
        return made.worked_once("explore", lambda: runs.append(time.perf_counter()) or "explored")

    subject._load_handler = slow_load
    clean = Question({"folder": "/x"}, "the clean-interpreter round trip", ("--clean",))
    subject.ask_early(lambda _: [clean, HandlerWork(explore_like, 10)])
    subject.wait_early()
    assert loaded and runs and runs[0] >= loaded[0]  # after the load, in the background
    assert subject.worked_once("explore", lambda: "again") == "explored"  # the check's call: not worked again
    assert len(runs) == 1
    assert subject.ask_fresh(clean)["args"] == ["--clean"]  # the clean round trip still asked, beside it


def test_a_thread_asking_for_work_in_progress_waits_for_it_and_gets_its_failure_too(subject):
    started, results = threading.Event(), []

    def slow_failure():
        started.set()
        time.sleep(0.1)  # still in progress when the other thread asks
        raise RuntimeError("the handler is gone")

    def ask():
        try:
            subject.worked_once("work", lambda: results.append("worked twice"))
        except RuntimeError as error:
            results.append(str(error))

    first = threading.Thread(target=lambda: results.append(_raised(lambda: subject.worked_once("work", slow_failure))))
    first.start()
    started.wait(5)
    ask()  # meanwhile, as a check would
    first.join(5)
    assert sorted(results) == ["the handler is gone", "the handler is gone"]


def _raised(call) -> str:
    try:
        call()
    except RuntimeError as error:
        return str(error)
    return "nothing raised"


#: Logs each request's op on arrival, answers "slow" only after a while.
ORDERED_SCRIPT = """
import json, sys, time
for line in sys.stdin:
    message = json.loads(line)
    open(sys.argv[1], "a").write(message["op"] + "\\n")
    if message["op"] == "first":
        time.sleep(0.15)
    print(json.dumps({"op": message["op"]}), flush=True)
"""


def test_a_check_that_runs_model_code_waits_for_the_early_work_and_a_static_one_does_not(tmp_path):
    # A request of the early work that reaches a limit stops the worker: which rows behind it
    # fail must not depend on which thread was first.
    log = tmp_path / "arrivals.log"

    class OrderedRuntime(LoggingRuntime):
        folder, model_file = "/x", "/x/model.joblib"

        def worker_command(self, args):
            return [sys.executable, "-c", textwrap.dedent(ORDERED_SCRIPT), str(log), *args]

    runtime = OrderedRuntime(log)
    made = Subject(SimpleNamespace(handler="app.Model", name="m"), {})
    made._runtime = runtime
    made._load_handler = lambda: (WorkerHandler(made.contract, runtime), None)
    static_saw = []

    def work(subject):
        worker = subject.handler.worker

        def requests():
            first = worker.call("first")["op"]
            time.sleep(0.1)  # judging the answer, making the next request
            return [first, worker.call("again")["op"]]

        return subject.worked_once("work", requests)

    @check(kind="failure", concern="packaging", runs_model_code=True)
    def check_sends_other(subject):
        subject.handler.worker.call("other")

    @check(kind="failure", concern="packaging", runs_model_code=False)
    def check_reads_files(subject):
        static_saw.append(log.read_text().split())

    try:
        made.ask_early(lambda _: [HandlerWork(work, 10)])
        deadline = time.monotonic() + 10
        while not (log.exists() and "first" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert judge(case(check_reads_files), made, layer="fast").passed
        assert judge(case(check_sends_other), made, layer="fast").passed
        assert made.worked_once("work", lambda: None) == ["first", "again"]
    finally:
        made.close()
    assert static_saw == [["load", "first"]]  # judged while the work was under way
    assert log.read_text().split() == ["load", "first", "again", "other"]


def test_a_call_waits_for_anothers_hold_of_the_worker_only_so_long(tmp_path):
    worker = Worker(LoggingRuntime(tmp_path / "starts.log"))
    worker.turn_wait = 0.1
    held, release = threading.Event(), threading.Event()

    def hold():
        with worker.turn:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(WorkerFailed, match="'installed' was not sent: another caller held the worker for 0.1 s"):
            worker.call("installed")
    finally:
        release.set()
        holder.join(5)
    assert worker.call("installed")["op"] == "installed"
    worker.close()


def test_serving_starts_once_the_handler_has_loaded_not_after_the_early_work(subject):
    events = []
    subject._load_handler = lambda: (events.append("loaded") or SimpleNamespace(close=lambda: None), None)
    subject.serve_in_background = lambda: events.append("serving")
    subject.serve_when_loaded = True

    def slow_work(made):
        events.append("work starts")
        events.append("work ends")

    subject.ask_early(lambda _: [HandlerWork(slow_work, 10)])
    subject.wait_early()
    assert events == ["loaded", "serving", "work starts", "work ends"]


def test_the_round_trip_fails_when_the_handlers_worker_said_nothing_of_what_it_saw():
    # In the worker container the round trip passes only on the facts the handler's worker
    # recorded before it loaded; an answer without them is no evidence.
    made = SimpleNamespace(
        contract=SimpleNamespace(code_dir="mlserver-model", model_file=Path("model.joblib")),
        require_safe_model_file=lambda: None,
        reference_outcome=SimpleNamespace(status=200, error=None),
        runtime=SimpleNamespace(kind="container", folder="/mnt/Model"),
        handler=SimpleNamespace(clean_facts=None),
    )
    with pytest.raises(CheckFailed, match="did not say what it saw"):
        check_clean_interpreter_round_trip(made)
    made.handler.clean_facts = {"importable_forbidden": [], "origins": {"app": "/mnt/Model/app.py"}}
    check_clean_interpreter_round_trip(made)  # what it saw is clean: passes


def test_a_check_waits_for_the_early_work_as_long_as_the_work_may_take(subject, monkeypatch):
    # The work's own limits (the exploration's time, its last requests) exceed one load's: a
    # check must not give up on work that is still within them.
    monkeypatch.setenv("DIALSGATE_WORKER_LOAD_TIMEOUT", "0.1")
    subject._load_handler = lambda: (SimpleNamespace(close=lambda: None), None)
    started = threading.Event()

    def slow(made):
        return made.worked_once("work", lambda: started.set() or time.sleep(0.3) or "done")

    subject.ask_early(lambda _: [HandlerWork(slow, 5)])
    started.wait(5)
    subject.wait_for_handler_work()
    assert subject.worked_once("work", lambda: "again") == "done"
