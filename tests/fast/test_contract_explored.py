"""check_contract_explored on stand-in handlers (plain Python objects of this test answering V2
bodies): what it sends, what it fails on, the words of its reason, and its replay seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialsgate.checks import CheckAdvice, CheckFailed, CheckNotRun, explore
from dialsgate.checks.explore import check_contract_explored, check_contract_explored_finite
from dialsgate.checks.subject import Subject
from dialsgate.contract.template import load_contract
from dialsgate.protocol import v2
from dialsgate.transports.outcome import Outcome

CORPUS = Path(__file__).resolve().parents[1] / "gate" / "corpus"
NMF = CORPUS / "normalising_handler_nmf" / "template.yaml"  # BuiltinThreshold true: Flag, Loss
OVERFLOW = CORPUS / "metric_overflows_to_infinity" / "template.yaml"  # BuiltinThreshold false: Score
OMS = CORPUS / "oms_metadata_filter" / "template.yaml"  # OMS metadata: run, lumisection, pileup, bpix_ready


class StandIn:
    """Answers every request with one value per lumisection computed by ``score`` from its maps."""

    def __init__(self, contract, score, status=None):
        self.contract, self.score, self.status = contract, score, status
        self.bodies: list[dict] = []

    def predict(self, body: dict) -> Outcome:
        self.bodies.append(body)
        arrays = {item["name"]: np.asarray(item["data"]).reshape(item["shape"]) for item in body["inputs"]}
        maps = arrays[self.contract.inputs[0].name]
        n = len(maps)
        refused = self.status(maps, arrays) if self.status else None
        if refused:
            return Outcome(status=500, error=refused)
        with np.errstate(over="ignore"):  # a score beyond FP32 is infinity, as in a handler
            values = np.asarray(self.score(maps.reshape(n, -1).astype(np.float64), arrays), dtype=np.float32)
        outputs = []
        for sig in self.contract.outputs:
            data = (values > 1).tolist() if sig.datatype == "BOOL" else values.tolist()
            outputs.append({"name": sig.name, "datatype": sig.datatype, "shape": [n], "data": data})
        return Outcome(response={"outputs": outputs})

    def close(self) -> None:
        pass


def subject_with(template: Path, score, status=None, n_ref: int = 4) -> tuple[Subject, StandIn]:
    contract = load_contract(template)
    arrays = v2.sample_inputs(contract, n_ls=n_ref)
    subject = Subject(contract, arrays, reference_is_sample=True, no_container=True)
    handler = StandIn(contract, score, status)
    subject.__dict__["handler"] = handler
    return subject, handler


def test_a_handler_dividing_by_the_total_fails_on_one_all_zero_lumisection():
    def refuses_nan(maps, arrays):
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = maps / maps.sum(axis=tuple(range(1, maps.ndim)), keepdims=True)
        return "ValueError: Input X contains NaN.\nmore lines" if np.isnan(normalised).any() else None

    subject, _ = subject_with(NMF, lambda flat, arrays: flat.mean(axis=1), status=refuses_nan)
    with pytest.raises(CheckFailed) as failed:
        check_contract_explored(subject, budget=10)
    reason = str(failed.value)
    assert reason.startswith("1 lumisection, OccupancyBPix1 all zeros: HTTP 500: ValueError: Input X contains NaN. ("), reason
    assert "more lines" not in reason
    assert "(one of the requests always sent; " in reason
    assert f"--dials-template {NMF} -k check_contract_explored --hypothesis-seed={explore.DEFAULT_SEED}" in reason


def test_infinity_in_the_metric_fails_only_when_dials_thresholds_it():
    def overflows(flat, arrays):
        with np.errstate(over="ignore"):
            return np.exp(flat.max(axis=1) / 10.0)  # FP32 overflows beyond about 890 counts

    subject, _ = subject_with(OVERFLOW, overflows)
    with pytest.raises(CheckFailed) as failed:
        check_contract_explored(subject, budget=20)
    reason = str(failed.value)
    assert "infinity in the MetricKey 'Score'" in reason and reason.startswith("1 lumisection, OccupancyBPix1 "), reason
    assert "(shrunk by hypothesis to the smallest failing request; " in reason
    # The same outputs with BuiltinThreshold true: not compared by DIALS, so advice, not failure.
    subject, _ = subject_with(NMF, overflows)
    check_contract_explored(subject, budget=20)
    with pytest.raises(CheckAdvice, match="NaN or infinity in output"):
        check_contract_explored_finite(subject, budget=20)


def test_a_handler_answering_alike_passes_and_gets_every_explicit_request_twice():
    subject, handler = subject_with(OMS, lambda flat, arrays: flat.mean(axis=1))
    check_contract_explored(subject, budget=5)
    check_contract_explored_finite(subject, budget=5)  # the same exploration, not run again
    assert handler.bodies[0] is subject.reference_body  # answered as declared first, else nothing is explored
    handler.bodies.pop(0)
    sizes = [body["inputs"][0]["shape"][0] for body in handler.bodies]
    explorer = explore.Explorer(subject)
    explicit = explorer.explicit_plans()
    # Each explicit request first, in order, each sent twice.
    assert sizes[: 2 * len(explicit)] == [n for plan in explicit for n in (plan.n_ls, plan.n_ls)]
    assert explicit[0].n_ls == 1 and dict(explicit[0].fills) == {"OccupancyBPix2": ("zeros",)}
    assert explicit[-1].n_ls == explore.LONG_RUN
    first = {item["name"]: item for item in handler.bodies[0]["inputs"]}
    assert set(first["OccupancyBPix2"]["data"]) == {0}
    flag_values = []
    for body in handler.bodies:
        flags = [item for item in body["inputs"] if item["datatype"] == "BOOL"]
        flag_values.append({value for item in flags for value in item["data"]})
    assert {False} in flag_values and {True} in flag_values  # every flag false, every flag true
    assert len(handler.bodies) == 2 * (len(explicit) + 5)  # budget 5 generated, every one sent twice


def test_over_http_the_long_run_is_not_sent_again():
    """The long run is sent once per gate run, in the worker; over HTTP the explicit requests
    are the others, in the same order."""
    subject, handler = subject_with(OMS, lambda flat, arrays: flat.mean(axis=1))
    check_contract_explored(subject, budget=5, transport="http")
    sizes = [body["inputs"][0]["shape"][0] for body in handler.bodies[1:]]
    explicit = explore.Explorer(subject).explicit_plans(long_run=False)
    assert sizes[: 2 * len(explicit)] == [n for plan in explicit for n in (plan.n_ls, plan.n_ls)]
    assert explore.LONG_RUN not in sizes and len(sizes) == 2 * (len(explicit) + 5)


def test_an_answer_that_changes_when_sent_again_fails():
    calls = iter(range(10**6))
    subject, _ = subject_with(NMF, lambda flat, arrays: flat.mean(axis=1) + next(calls))
    with pytest.raises(CheckFailed, match="sent twice"):
        check_contract_explored(subject, budget=5)


def test_requests_stay_inside_the_contract():
    contract = load_contract(OMS)
    subject = Subject(contract, v2.sample_inputs(contract, n_ls=3), reference_is_sample=True, no_container=True)
    explorer = explore.Explorer(subject)
    top = explorer.top("OccupancyBPix2", np.dtype(np.int32))
    assert top == 100 * float(subject.reference_arrays["OccupancyBPix2"].max())
    plan = explore.Plan(5, (("OccupancyBPix2", explore.FILLS),), (("oms_lumisection_info__lumisection_number", 10_000),))
    arrays = explorer.arrays(plan)
    assert v2.shape_mismatches(contract, arrays) == []
    assert arrays["OccupancyBPix2"].dtype == np.int32 and arrays["OccupancyBPix2"].min() >= 0
    assert arrays["OccupancyBPix2"][0].max() == 0 and arrays["OccupancyBPix2"][5 % 5].sum() == 0
    assert arrays["oms_lumisection_info__lumisection_number"].tolist() == list(range(10_000, 10_005))
    for sig in contract.metadata_inputs:
        assert arrays[sig.name].shape == (5,)
    # Integers stay within their type: 100 x a reference near INT32's maximum is clipped.
    subject.reference_arrays["OccupancyBPix2"] = np.full_like(subject.reference_arrays["OccupancyBPix2"], 2**31 - 2)
    assert explore.Explorer(subject).top("OccupancyBPix2", np.dtype(np.int32)) == 2**31 - 1


def test_the_long_run_is_bounded_by_the_values_of_one_request(monkeypatch):
    contract = load_contract(NMF)
    subject = Subject(contract, v2.sample_inputs(contract, n_ls=2), reference_is_sample=True, no_container=True)
    assert explore.Explorer(subject).long_run == 3000  # 320 values per lumisection
    monkeypatch.setenv("DIALSGATE_MAX_EXPLORE_ELEMENTS", "32000")
    assert explore.Explorer(subject).long_run == 100


def test_the_seed_given_on_the_command_line_is_the_default_seed_when_it_names_it():
    """pytest hands the option over as text: "22" must explore exactly as the default 22 does."""

    def runs(seed_value):
        explore.use_seed(seed_value)
        try:
            subject, handler = subject_with(OVERFLOW, lambda flat, arrays: np.exp(flat.max(axis=1) / 10.0))
            with pytest.raises(CheckFailed) as failed:
                check_contract_explored(subject, budget=15)
            return [body["inputs"][0]["shape"][0] for body in handler.bodies], str(failed.value)
        finally:
            explore.use_seed(None)

    assert runs(str(explore.DEFAULT_SEED)) == runs(None)


def test_the_replay_seed_is_the_one_given():
    try:
        explore.use_seed(7)
        assert explore.replay_command(load_contract(NMF), "http").endswith(
            "--dials-layers server -k check_contract_explored --hypothesis-seed=7"
        )
    finally:
        explore.use_seed(None)
    assert explore.replay_command(load_contract(NMF), "in-process").endswith(f"--hypothesis-seed={explore.DEFAULT_SEED}")


def test_a_plan_in_words():
    plan = explore.Plan(
        3,
        (("Hist", ("zeros", "reference x 10")),),
        (("m__bpix_ready", False), ("m__beams_stable", True), ("m__run_number", 1), ("m__pileup", 0.0)),
    )
    assert explore.describe(plan) == (
        "3 lumisections, Hist lumisections in turn: all zeros; the reference batch's lumisections x 10, "
        "false: m__bpix_ready; the other flags true, m__run_number 1, m__pileup 0"
    )


def test_a_request_that_reaches_a_limit_is_named_and_nothing_is_sent_after_it():
    class StopsOnLongRuns(StandIn):
        stopped = None

        def predict(self, body):
            if self.stopped:
                return Outcome(status=500, error=f"not sent: an earlier request reached a limit ({self.stopped})")
            if body["inputs"][0]["shape"][0] >= 1000:
                self.stopped = "did not answer within 60 s"
                return Outcome(status=500, error="WorkerLimitReached: did not answer within 60 s")
            return super().predict(body)

    subject, _ = subject_with(NMF, lambda flat, arrays: flat.mean(axis=1))
    handler = StopsOnLongRuns(subject.contract, lambda flat, arrays: flat.mean(axis=1))
    subject.__dict__["handler"] = handler
    with pytest.raises(CheckFailed) as failed:
        check_contract_explored(subject, budget=5)
    reason = str(failed.value)
    assert reason.startswith(
        "3,000 lumisections, OccupancyBPix1 the reference batch's lumisections: HTTP 500: WorkerLimitReached"
    )
    assert "(no later request was sent)" in reason
    assert len(handler.bodies) == 1 + 2 * (len(explore.Explorer(subject).explicit_plans()) - 1)  # the reference first


def test_nothing_is_explored_when_the_reference_request_is_not_answered_as_declared():
    """One cause, one failure: the signature row names outputs of shape [N, 1], not this one."""

    class AnswersWithAnAxisMore(StandIn):
        def predict(self, body):
            outcome = super().predict(body)
            for output in outcome.response["outputs"]:
                output["shape"] = [*output["shape"], 1]
            return outcome

    subject, _ = subject_with(NMF, lambda flat, arrays: flat.mean(axis=1))
    subject.__dict__["handler"] = handler = AnswersWithAnAxisMore(subject.contract, lambda flat, arrays: flat.mean(axis=1))
    with pytest.raises(CheckNotRun, match=r"\(see check_output_matches_signature\[Flag\]@http\)"):
        check_contract_explored(subject, budget=5, transport="http")
    assert len(handler.bodies) == 1


def test_a_failure_that_does_not_happen_again_is_still_named():
    class FailsOnce(StandIn):
        def predict(self, body):
            if len(self.bodies) == 1 + 2 * 4:  # the first generated request (after the reference and 4 explicit ones)
                self.bodies.append(body)
                return Outcome(status=500, error="RuntimeError: once")
            return super().predict(body)

    subject, _ = subject_with(NMF, lambda flat, arrays: flat.mean(axis=1))
    assert len(explore.Explorer(subject).explicit_plans()) == 4
    subject.__dict__["handler"] = FailsOnce(subject.contract, lambda flat, arrays: flat.mean(axis=1))
    with pytest.raises(
        CheckFailed, match=r"HTTP 500: RuntimeError: once \(the same request was answered otherwise when replayed"
    ):
        check_contract_explored(subject, budget=5)


def test_an_explorer_without_a_subject_draws_the_same_requests_with_the_sizes_given():
    """Explorer.for_contract (benchmarks/bench_generated_bodies.py): the subject's explorer, and
    plans(sizes) draws its numbers of lumisections from the strategy given, capped at the long run."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    contract = load_contract(OMS)
    reference = v2.sample_inputs(contract, n_ls=3)
    subject = Subject(contract, reference, reference_is_sample=True, no_container=True)
    alone, with_subject = explore.Explorer.for_contract(contract, reference), explore.Explorer(subject)
    assert alone.long_run == with_subject.long_run and alone.flags == with_subject.flags
    assert alone.explicit_plans() == with_subject.explicit_plans()
    plan = alone.explicit_plans()[1]
    for name, array in alone.arrays(plan).items():
        assert np.array_equal(array, with_subject.arrays(plan)[name])
    seen = set()

    @settings(max_examples=30, database=None, deadline=None)
    @given(plan=alone.plans(st.sampled_from((2, 10**9))))
    def sizes(plan):
        seen.add(plan.n_ls)

    sizes()
    assert seen <= {2, alone.long_run}
