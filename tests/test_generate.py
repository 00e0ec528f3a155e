"""Generating the response: greedy ids, and the text reported while it is generated."""

from __future__ import annotations

import itertools

from attribot_core import generate_response


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
