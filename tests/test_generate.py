"""Generating the response: greedy ids, and the text reported while it is generated."""

from __future__ import annotations

import itertools

import torch

from attribot_core import generate_response
from attribot_core.generate import prefill
from attribot_core.kv import common_prefix
from attribot_core.prompt import PromptBuilder


def test_the_text_so_far_grows_token_by_token_and_watching_changes_no_generated_id(tiny_lm, context, question):
    plain = generate_response(tiny_lm, context, question, max_new_tokens=24)
    seen: list[str] = []
    watched = generate_response(tiny_lm, context, question, max_new_tokens=24, on_text=seen.append, text_every_s=0)
    assert watched.token_ids == plain.token_ids and watched.text == plain.text
    assert len(seen) >= 2 and seen[-1] == plain.text
    assert all(later.startswith(earlier) and later != earlier for earlier, later in itertools.pairwise(seen))


def test_the_text_so_far_is_throttled_but_the_first_token_and_the_end_are_always_told(tiny_lm, context, question):
    seen: list[str] = []
    response = generate_response(tiny_lm, context, question, max_new_tokens=24, on_text=seen.append,
                                 text_every_s=3600)
    assert len(response.token_ids) >= 3, "the tiny model must say more than two tokens for this test"
    assert len(seen) == 2 and response.text.startswith(seen[0]) and seen[-1] == response.text


def test_should_stop_ends_generation_after_the_token_it_was_asked_on(tiny_lm, context, question):
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) >= 3

    seen: list[str] = []
    response = generate_response(tiny_lm, context, question, max_new_tokens=24, should_stop=stop_after_three,
                                 on_text=seen.append, text_every_s=0)
    assert len(response.token_ids) == 3 and not response.complete and seen[-1] == response.text


def _counting_forward(lm, monkeypatch) -> list[int]:
    """The input length of every forward pass of ``lm`` from now on."""
    lengths: list[int] = []
    forward = lm.model.forward
    monkeypatch.setattr(lm.model, "forward",
                        lambda *a, **kw: (lengths.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    return lengths


def test_generation_after_a_prefill_starts_at_the_last_prompt_token_and_says_the_same(
        tiny_lm, context, question, monkeypatch):
    plain = generate_response(tiny_lm, context, question, max_new_tokens=12)
    ahead = prefill(tiny_lm, context, question, chunk=16)
    prompt = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).prompt_ids(context, question)
    assert ahead.ids == tuple(prompt[:-1]) and ahead.cache.get_seq_length() == len(prompt) - 1
    lengths = _counting_forward(tiny_lm, monkeypatch)
    kept = []
    started = generate_response(tiny_lm, context, question, max_new_tokens=12, start=ahead, on_pass=kept.append)
    assert started.token_ids == plain.token_ids
    assert lengths[0] == 1 and set(lengths) == {1}  # no prompt pass: the last prompt token, then a step per token
    assert kept[0].ids == tuple(prompt) + plain.token_ids[:-1]  # the kept pass covers the prefilled part too
    again = generate_response(tiny_lm, context, question, max_new_tokens=12, start=ahead)
    assert again.token_ids == plain.token_ids  # the prefill is only read: it serves the next run as well


def test_a_stopped_prefill_keeps_its_chunks_and_generation_computes_the_rest(tiny_lm, context, question, monkeypatch):
    plain = generate_response(tiny_lm, context, question, max_new_tokens=12)
    asked = []
    part = prefill(tiny_lm, context, question, chunk=8, should_stop=lambda: (asked.append(1), len(asked) > 2)[1])
    assert len(part.ids) == 8 + 16  # two chunks, the second twice the first
    assert prefill(tiny_lm, context, question, should_stop=lambda: True) is None
    assert len(prefill(tiny_lm, context, question, chunk=8, max_tokens=20).ids) == 20
    lengths = _counting_forward(tiny_lm, monkeypatch)
    started = generate_response(tiny_lm, context, question, max_new_tokens=12, start=part)
    prompt = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).prompt_ids(context, question)
    assert started.token_ids == plain.token_ids and lengths[0] == len(prompt) - 24


def test_prefill_chunks_double_up_to_the_longest_and_cover_the_prompt_but_its_last_token(
        tiny_lm, context, question, monkeypatch):
    prompt = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).prompt_ids(context, question)
    assert len(prompt) > 8 + 16 + 32 + 32, "the prompt must be long enough to reach the longest chunk twice"
    lengths = _counting_forward(tiny_lm, monkeypatch)
    prefill(tiny_lm, context, question, chunk=8, max_chunk=32)
    assert lengths[:4] == [8, 16, 32, 32] and set(lengths[3:-1]) == {32} and sum(lengths) == len(prompt) - 1


def _keys(kept) -> torch.Tensor:
    return torch.cat([layer.keys for layer in kept.cache.layers])


def test_with_no_question_yet_a_prefill_computes_the_context_and_the_question_then_adds_only_its_own_tokens(
        tiny_lm, context, question, monkeypatch):
    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    ahead = prefill(tiny_lm, context, "")
    assert list(ahead.ids) == builder.ids_before_question(context)
    prompt = builder.prompt_ids(context, question)
    lengths = _counting_forward(tiny_lm, monkeypatch)
    asked = prefill(tiny_lm, context, question, start=ahead)
    monkeypatch.undo()
    assert sum(lengths) == len(prompt) - 1 - common_prefix(prompt, ahead.ids) <= len(prompt) - len(ahead.ids)
    assert torch.allclose(_keys(asked), _keys(prefill(tiny_lm, context, question)), atol=1e-5)
    assert generate_response(tiny_lm, context, question, max_new_tokens=12, start=ahead).token_ids == \
        generate_response(tiny_lm, context, question, max_new_tokens=12).token_ids


def test_a_prefill_goes_on_from_an_earlier_one_where_their_prompts_agree(tiny_lm, context, question, monkeypatch):
    plain = generate_response(tiny_lm, context, question, max_new_tokens=12)
    prompt = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).prompt_ids(context, question)
    whole = prefill(tiny_lm, context, question)
    stopped = prefill(tiny_lm, context, question, chunk=8, should_stop=iter([False, True]).__next__)
    other = prefill(tiny_lm, context, "Who else was there?")
    shared = common_prefix(other.ids, whole.ids)
    assert len(stopped.ids) == 8 and 8 < shared < len(whole.ids)
    for earlier, reused in ((stopped, 8), (other, shared), (whole, len(whole.ids))):
        lengths = _counting_forward(tiny_lm, monkeypatch)
        resumed = prefill(tiny_lm, context, question, start=earlier)
        monkeypatch.undo()
        assert sum(lengths) == len(prompt) - 1 - reused  # only what the earlier prefill lacks is computed
        assert resumed.ids == whole.ids
        assert torch.allclose(_keys(resumed), _keys(whole), atol=1e-5)
        assert generate_response(tiny_lm, context, question, max_new_tokens=12, start=resumed).token_ids == \
            plain.token_ids
    assert _keys(stopped).shape[2] == 8  # the earlier prefill is only read


def test_a_prefill_of_another_question_lends_the_prompt_they_share(tiny_lm, context, question, monkeypatch):
    plain = generate_response(tiny_lm, context, question, max_new_tokens=12)
    other = prefill(tiny_lm, context, "Who else was there?")
    lengths = _counting_forward(tiny_lm, monkeypatch)
    started = generate_response(tiny_lm, context, question, max_new_tokens=12, start=other)
    prompt = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).prompt_ids(context, question)
    assert started.token_ids == plain.token_ids and 1 < lengths[0] < len(prompt)
