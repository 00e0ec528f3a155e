"""The local backend computes rows in this process and writes nothing; ``choose_backend`` picks a backend."""

from __future__ import annotations

import pytest

from attribot_core import attribute
from attribot_core.api import InputError
from attribot_core.examples import EXAMPLES
from attribot_core.models import ModelError
from attribot_core.runs import ModelCache, RunRequest
from attribot_core.runs.backends import LocalBackend, RayBackend, attempt, choose_backend


@pytest.fixture
def backend(tiny_lm) -> LocalBackend:
    return LocalBackend(ModelCache(loader=lambda spec: tiny_lm))


def request(i: int = 0, **changes) -> RunRequest:
    e = EXAMPLES[i]
    return RunRequest.for_method(e.context, e.question, "tiny", "loo", response="In 1874.").but(**changes)


def test_rows_are_computed_in_order_and_equal_a_direct_attribute_call(backend, tiny_lm):
    started: list[str] = []
    items = [(f"run-{i}", request(i), None) for i in range(len(EXAMPLES))]
    outcomes = list(backend.run(items, started.append))
    assert [run_id for run_id, _ in outcomes] == started == [f"run-{i}" for i in range(len(EXAMPLES))]
    for (_, outcome), e in zip(outcomes, EXAMPLES, strict=True):
        direct = attribute(e.context, e.question, model=tiny_lm, response="In 1874.")
        assert outcome.error is None and outcome.generated is None
        assert outcome.result.scores() == pytest.approx(direct.scores(), abs=1e-5)


def test_a_row_that_cannot_run_is_an_outcome_with_its_message_and_the_next_row_still_runs(backend):
    items = [("bad", request(question="   "), None), ("good", request(), None)]
    (bad_id, bad), (good_id, good) = backend.run(items, lambda run_id: None)
    assert (bad_id, good_id) == ("bad", "good")
    assert bad.result is None and "question is empty" in bad.error
    assert good.error is None and good.result is not None


def test_a_generated_response_comes_back_with_the_outcome(backend):
    (_, outcome), = backend.run([("gen", request(response="", max_new_tokens=6), None)], lambda run_id: None)
    assert outcome.error is None and outcome.generated is not None
    assert outcome.generated.text == outcome.result.response and outcome.generated.token_ids


def test_a_bug_in_a_row_is_a_message_with_its_type_never_an_exception(tiny_lm):
    def broken(spec):
        raise RuntimeError("boom")

    outcome = attempt(request(), ModelCache(loader=broken))
    assert outcome.result is None and outcome.error == "Something went wrong (RuntimeError): boom"


def test_prepare_loads_every_model_before_the_first_row_so_a_bad_one_fails_once(tiny_lm):
    loaded: list[str] = []

    def loader(spec: str):
        if spec == "missing":
            raise ModelError("Model 'missing' not found.")
        loaded.append(spec)
        return tiny_lm

    backend = LocalBackend(ModelCache(loader=loader))
    backend.prepare(["target", "proxy"])
    assert loaded == ["target", "proxy"]
    with pytest.raises(ModelError, match="not found"):
        backend.prepare(["missing"])


def test_choose_backend_runs_locally_unless_ray_is_asked_for():
    with choose_backend(None, threads=3) as local:
        assert isinstance(local, LocalBackend) and local.threads == 3 and local.workers == 1
    remote = choose_backend(True, workers=2)  # not entered: nothing starts
    assert isinstance(remote, RayBackend) and remote.address is None and remote.threads == 1
    assert choose_backend("local").address is None
    assert choose_backend("10.0.0.5:6379", threads=2).address == "10.0.0.5:6379"


def test_choose_backend_refuses_workers_without_ray_rather_than_ignoring_them():
    with pytest.raises(InputError, match="--workers needs --ray"):
        choose_backend(None, workers=2)
