"""The local executor: background runs, stored results across restarts, Stop, failures, the model lock."""

from __future__ import annotations

import functools
import itertools
import threading
import time

import pytest

from attribot_core import attribute, load_model
from attribot_core.examples import get_example
from attribot_core.generate import prefill
from attribot_core.kv import common_prefix
from attribot_core.prompt import PromptBuilder
from attribot_core.runs import MODEL_LOCK, LocalExecutor, ModelCache, RunRecord, RunRequest, RunStore, app_queue

EXAMPLE = get_example("lighthouse")


@pytest.fixture
def request_(tiny_model_dir) -> RunRequest:
    return RunRequest(EXAMPLE.context, EXAMPLE.question, str(tiny_model_dir), "loo", (("paragraphs", True),),
                      response="It was first lit on 3 March 1874.")


@pytest.fixture
def executor(tmp_path) -> LocalExecutor:
    return LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache())


def wait(ex: LocalExecutor, run_id: str, timeout: float = 120) -> RunRecord:
    deadline = time.monotonic() + timeout
    while (record := ex.store.get(run_id)).active:
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.05)
    return record


def test_a_run_happens_in_the_background_and_stores_its_result(executor, request_, tiny_lm):
    submitted = executor.submit(request_)
    assert submitted.status == "queued"
    done = wait(executor, submitted.id)
    assert done.status == "done" and done.done == done.total > 0
    direct = attribute(request_.context, request_.question, model=tiny_lm, response=request_.response)
    assert done.result.scores() == pytest.approx(direct.scores(), abs=1e-6)
    assert done.partial["sentence"] == pytest.approx(dict(enumerate(direct.scores())), abs=1e-6)


def test_identical_requests_return_the_stored_result_even_after_a_restart(executor, request_, tmp_path):
    first = wait(executor, executor.submit(request_).id)
    assert executor.submit(request_).id == first.id
    restarted = LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache())
    again = restarted.submit(request_)
    assert again.id == first.id and again.status == "done" and again.result == first.result
    forced = restarted.submit(request_, force=True)
    assert forced.id != first.id and wait(restarted, forced.id).result.scores() == pytest.approx(first.result.scores())


def test_a_generated_response_is_reused_with_its_token_ids_by_later_runs(executor, request_):
    generated = wait(executor, executor.submit(request_.but(response="")).id)
    assert "generate_s" in generated.result.timings
    written_out = executor.submit(request_.but(response=generated.result.response))
    assert written_out.id == generated.id  # the same run, asked with its response written out
    other = wait(executor, executor.submit(request_.but(response="", method="hierarchical",
                                                        params=(("keep_paragraphs", 1),))).id)
    assert "generate_s" not in other.result.timings and other.result.response == generated.result.response
    part = request_.but(response=generated.result.response, response_span=(0, len(generated.result.response) // 2))
    assert 0 < wait(executor, executor.submit(part).id).result.response_tokens <= generated.result.response_tokens


def test_a_generating_run_stores_its_response_as_it_grows(executor, request_):
    store, streamed = executor.store, []
    write = store.set_partial_response
    store.set_partial_response = lambda run_id, text: (streamed.append(text), write(run_id, text))
    record = wait(executor, executor.submit(request_.but(response="")).id)
    assert record.status == "done" and record.partial_response == record.result.response == streamed[-1]
    assert len(streamed) >= 2 and all(b.startswith(a) for a, b in itertools.pairwise(streamed))


def test_stop_cancels_between_forward_passes_and_is_stored_as_cancelled(executor, request_):
    with MODEL_LOCK:  # hold the model so the run is still waiting when Stop comes
        run = executor.submit(request_)
        time.sleep(0.3)
        executor.cancel(run.id)
    record = wait(executor, run.id)
    assert record.status == "cancelled" and record.result is None and not MODEL_LOCK.locked()
    assert executor.store.find_done(request_) is None


def test_a_queued_run_can_be_stopped_before_it_starts_and_says_its_place_in_the_queue(executor, request_):
    with MODEL_LOCK:
        first = executor.submit(request_)
        second = executor.submit(request_.but(question="And when was it automated?"))
        time.sleep(0.3)
        assert executor.queue_position(first.id) == 0 and executor.queue_position(second.id) == 1
        executor.cancel(second.id)
        assert executor.store.get(second.id).status == "cancelled"
    assert wait(executor, first.id).status == "done"


def test_stop_during_generation_ends_it_early(tmp_path, tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    calls = []
    ex = LocalExecutor(RunStore(tmp_path / "r.db"), ModelCache(loader=lambda spec: lm))
    original = lm.model.generate

    def slow_generate(*args, **kwargs):
        calls.append(kwargs["stopping_criteria"])
        ex.cancel(run.id)  # Stop pressed while tokens are being generated
        return original(*args, **kwargs)

    lm.model.generate = slow_generate
    try:
        run = ex.submit(RunRequest(EXAMPLE.context, EXAMPLE.question, "tiny", max_new_tokens=200))
        record = wait(ex, run.id)
    finally:
        del lm.model.generate
    assert record.status == "cancelled" and calls and calls[0] is not None


def test_a_failed_run_is_stored_with_its_message_and_the_worker_goes_on(executor, request_):
    bad = executor.submit(request_.but(model="/no/such/model"))
    failed = wait(executor, bad.id)
    assert failed.status == "failed" and failed.error and "Traceback" not in failed.error
    empty = wait(executor, executor.submit(request_.but(question="  ")).id)
    assert empty.status == "failed" and "question is empty" in empty.error
    assert wait(executor, executor.submit(request_).id).status == "done"


def test_two_executors_of_one_process_take_turns_on_the_model(tmp_path, request_, tiny_lm):
    inside, most, guard = [0], [0], threading.Lock()
    forward = tiny_lm.model.forward

    def counting(*a, **k):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.002)
        try:
            return forward(*a, **k)
        finally:
            with guard:
                inside[0] -= 1

    tiny_lm.model.forward = counting
    try:
        models = ModelCache(loader=lambda spec: tiny_lm)
        executors = [LocalExecutor(RunStore(tmp_path / "shared.db"), models) for _ in range(2)]
        ids = [(ex, ex.submit(request_.but(question=f"Question {i}?")).id) for i, ex in enumerate(executors * 2)]
        records = [wait(ex, i) for ex, i in ids]
    finally:
        del tiny_lm.model.forward
    assert most[0] == 1
    assert [r.result.question for r in records] == [f"Question {i}?" for i in range(4)]


def test_the_inputs_a_page_shows_are_prefilled_when_idle_and_a_run_of_them_starts_its_answer_at_once(
        tmp_path, request_, tiny_lm, monkeypatch):
    ex = LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache(loader=lambda spec: tiny_lm))
    generating = request_.but(response="")
    wait(ex, ex.submit(request_).id)  # loads the model
    ex.prepare(generating.but(question="What colour is the tower?"))
    ex.prepare(generating)  # only the latest inputs are prefilled
    _prefilled(ex, generating, 1)
    assert ex.prefilled(generating.model, generating.context, "What colour is the tower?") is None
    lengths = []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward",
                        lambda *a, **kw: (lengths.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    started = wait(ex, ex.submit(generating).id)
    assert lengths[0] == 1  # the last prompt token: the rest came from the prefill
    monkeypatch.undo()
    plain = attribute(generating.context, generating.question, model=tiny_lm, max_new_tokens=generating.max_new_tokens,
                      **dict(generating.params))  # generated from the whole prompt
    assert started.result.response == plain.response
    # its base pass, too, starts from the prefill: the same scores within float rounding (relative 1e-6)
    assert started.result.scores() == pytest.approx(plain.scores(), rel=1e-6, abs=1e-6)


def _prefilled(ex: LocalExecutor, request: RunRequest, tokens: int):
    """The executor's prefill of ``request``'s inputs once it covers ``tokens`` tokens. Asked again while
    waiting, as a page does at every rerun: a prefill that found the model busy (``MODEL_LOCK``, held here
    by another test's executor finishing a run, as a batch would in the app) is skipped, not queued."""
    deadline = time.monotonic() + 60
    while (kept := ex.prefilled(request.model, request.context, request.question)) is None or len(kept.ids) < tokens:
        assert time.monotonic() < deadline, "the idle worker did not prefill"
        time.sleep(0.02)
        ex.prepare(request)
    return kept


def test_a_prefill_stopped_by_a_run_goes_on_where_it_stopped_and_another_question_reuses_the_context(
        tmp_path, request_, tiny_lm, monkeypatch):
    monkeypatch.setattr(app_queue, "prefill", functools.partial(prefill, chunk=8, max_chunk=8))  # many chunks
    ex = LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache(loader=lambda spec: tiny_lm))
    wait(ex, ex.submit(request_).id)  # loads the model
    generating = request_.but(response="")
    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    prompt = builder.prompt_ids(generating.context, generating.question)
    lengths, in_chunk, go_on = [], threading.Event(), threading.Event()
    forward = tiny_lm.model.forward

    def gated(*args, **kwargs):
        lengths.append(kwargs["input_ids"].shape[1])
        if not go_on.is_set():
            in_chunk.set()
            go_on.wait(30)
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_lm.model, "forward", gated)
    ex.prepare(generating)
    assert in_chunk.wait(30), "the idle worker did not start the prefill"
    other = ex.submit(request_.but(question="Who kept the light?"))  # stops the prefill after its chunk
    go_on.set()
    wait(ex, other.id)
    assert len(ex.prefilled(generating.model, generating.context, generating.question).ids) == 8
    lengths.clear()
    ex.prepare(generating)  # the page asks again
    _prefilled(ex, generating, len(prompt) - 1)
    assert sum(lengths) == len(prompt) - 1 - 8  # it went on from the 8 tokens it had
    edited = generating.but(question="What colour is the tower?")
    edited_prompt = builder.prompt_ids(edited.context, edited.question)
    shared = common_prefix(prompt, edited_prompt)
    lengths.clear()
    ex.prepare(edited)
    _prefilled(ex, edited, len(edited_prompt) - 1)
    assert 0 < sum(lengths) == len(edited_prompt) - 1 - shared  # the context's keys came from the prefill before
    lengths.clear()
    ex.prepare(edited)  # asked again: a whole prefill is not computed twice
    time.sleep(0.3)
    assert lengths == []
    third = generating.but(question="Who built it?")
    third_prompt = builder.prompt_ids(third.context, third.question)
    wait(ex, ex.submit(third).id)
    # a Run of yet another question generates from the context's keys the prefill has
    assert lengths[0] == len(third_prompt) - common_prefix(third_prompt, edited_prompt) < len(third_prompt)


def test_before_a_question_is_typed_the_context_is_prefilled_and_a_run_then_computes_only_the_question(
        tmp_path, request_, tiny_lm, monkeypatch):
    ex = LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache(loader=lambda spec: tiny_lm))
    wait(ex, ex.submit(request_).id)  # loads the model
    generating = request_.but(response="")
    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    ex.prepare(generating.but(question=""))  # the context is pasted, the question not typed yet
    ahead = _prefilled(ex, generating.but(question=""), len(builder.ids_before_question(generating.context)))
    lengths = []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward",
                        lambda *a, **kw: (lengths.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    started = wait(ex, ex.submit(generating).id)
    prompt = builder.prompt_ids(generating.context, generating.question)
    assert lengths[0] == len(prompt) - common_prefix(prompt, ahead.ids) <= len(prompt) - len(ahead.ids) + 1
    monkeypatch.undo()
    plain = attribute(generating.context, generating.question, model=tiny_lm, max_new_tokens=generating.max_new_tokens,
                      **dict(generating.params))
    assert started.result.response == plain.response


def test_a_prefill_never_loads_a_model(tmp_path, request_):
    loads = []
    ex = LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache(loader=lambda spec: loads.append(spec)))
    ex.prepare(request_)
    time.sleep(0.3)
    assert loads == [] and ex.prefilled(request_.model, request_.context, request_.question) is None
    assert not ex.busy()
