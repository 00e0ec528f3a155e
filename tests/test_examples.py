"""The built-in examples: well-formed data the app, teaching page and tests can rely on."""

from __future__ import annotations

import dataclasses

import pytest

from attribot_core import segment
from attribot_core.examples import EXAMPLES, Example, get_example


def test_there_are_three_or_four_examples_with_unique_keys():
    assert 3 <= len(EXAMPLES) <= 4
    assert len({e.key for e in EXAMPLES}) == len(EXAMPLES)


def test_examples_cover_single_two_hop_and_distractor_cases():
    assert {"single", "two-hop", "distractor"} <= {e.kind for e in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.key)
def test_example_has_three_to_five_paragraphs_of_several_sentences(example: Example):
    doc = segment(example.context)
    assert 3 <= len(doc.paragraphs) <= 5
    assert all(len(doc.sentences_of(p.index)) >= 2 for p in doc.paragraphs)
    assert example.question.strip().endswith("?")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.key)
def test_evidence_and_distractors_are_whole_sentences_of_the_context(example: Example):
    sentences = {s.text for s in segment(example.context).sentences}
    assert example.evidence
    for text in example.evidence + example.distractors:
        assert text in sentences


def test_two_hop_example_needs_sentences_from_two_paragraphs():
    example = next(e for e in EXAMPLES if e.kind == "two-hop")
    doc = segment(example.context)
    parents = {s.parent for s in doc.sentences if s.text in example.evidence}
    assert len(example.evidence) == 2 and len(parents) == 2


def test_distractor_example_names_a_distractor():
    assert next(e for e in EXAMPLES if e.kind == "distractor").distractors


def test_examples_are_frozen_and_found_by_key():
    example = get_example(EXAMPLES[0].key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.question = "changed?"  # type: ignore[misc]
    with pytest.raises(KeyError, match="Choose one of"):
        get_example("no-such-example")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.key)
def test_examples_fit_the_tiny_test_model_window(example: Example, tiny_lm):
    from attribot_core import PromptBuilder

    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    assert len(builder.prompt_ids(example.context, example.question)) + 64 < tiny_lm.max_positions
