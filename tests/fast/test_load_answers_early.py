"""The load check's expected answers (the handler's own, one request per size of its mix) are
asked of the handler once: early, as handler work after the exploration, when the server layer
and that check are selected; the check then finds them."""

from __future__ import annotations

import numpy as np

from dialsgate.checks import early_questions, explore, server
from dialsgate.checks.subject import HandlerWork
from tests.fast.test_contract_explored import NMF, subject_with

LOAD_CHECK = server.check_concurrent_clients_get_handler_answers.__name__


def test_the_load_answers_are_asked_early_after_the_exploration_only_when_the_load_check_runs():
    subject, _ = subject_with(NMF, lambda maps, _: maps.mean(axis=1))
    every = early_questions(subject, ("fast", "server"))
    assert all(isinstance(item, HandlerWork) for item in every[-2:])
    assert every[-1].run.__name__ == "load_answers" and every[-2].seconds == explore.early_exploration(subject).seconds
    assert not [item for item in early_questions(subject, ("fast",)) if getattr(item, "run", None) is server.load_answers]
    others = early_questions(subject, ("server",), {"check_model_is_served"})
    assert not [item for item in others if getattr(item, "run", None) is server.load_answers]
    assert [item.run for item in early_questions(subject, ("server",), {LOAD_CHECK})] == [server.load_answers]


def test_the_load_answers_are_worked_out_once_one_request_per_size():
    subject, handler = subject_with(NMF, lambda maps, _: maps.mean(axis=1))
    early = server.early_load_answers(subject).run(subject)
    asked = [body["id"] for body in handler.bodies]
    assert asked == [f"dialsgate-load-{size}" for size in sorted(server.MIX)]
    again = server.load_answers(subject)
    assert again is early and len(handler.bodies) == len(asked)
    # Each answer is the handler's to its own body: as many lumisections as the size asked.
    assert {size: len(outputs["Loss"]) for size, outputs in again.items()} == {size: size for size in server.MIX}
    assert all(np.array_equal(outputs["Flag"], outputs["Loss"] > 1) for outputs in again.values())
