"""The baselines: a ContextCite-style surrogate (Lasso on random ablations) and attention mass."""

from __future__ import annotations

import numpy as np
import pytest

from attribot_core import METHODS, attribute, segment
from attribot_core.methods.baselines import ablation_masks, attention, sentence_token_map, surrogate
from attribot_core.scoring import LocalScorer, ScorerStats
from tests.conftest import CONTEXT


class PlantedScorer:
    """log p = bias + sum of planted weights of the sentences present: an exactly linear world."""

    model_id = "planted"

    def __init__(self, doc, weights, bias=-20.0):
        self.doc, self.weights, self.bias = doc, weights, bias
        self.stats = ScorerStats()
        self.calls: list[int] = []

    def check_fits(self, context: str) -> None:
        pass

    def _lp(self, text: str) -> float:
        self.stats.forward_passes += 1
        return self.bias + sum(w for s, w in zip(self.doc.sentences, self.weights, strict=True) if s.text in text)

    def log_prob(self, context: str) -> float:
        return self._lp(context)

    def log_probs(self, base, variants, progress=None):
        self.calls.append(len(variants))
        return self._lp(base), [self._lp(v) for v in variants]


@pytest.fixture
def doc():
    return segment(CONTEXT)


def planted(doc):
    w = np.zeros(len(doc.sentences))
    w[2], w[5] = 3.0, 1.5
    return w


def test_surrogate_recovers_a_planted_linear_effect(doc):
    w = planted(doc)
    out = surrogate(doc, PlantedScorer(doc, w), n_ablations=64, seed=0, alpha=0.01)
    scores = np.array(out.sentence_scores)
    assert list(np.argsort(-scores)[:2]) == [2, 5]
    assert np.allclose(scores, w, atol=0.1)
    assert out.extra["surrogate_r2"] > 0.99


def test_surrogate_scores_every_sentence_and_sums_paragraphs(doc):
    out = surrogate(doc, PlantedScorer(doc, planted(doc)), n_ablations=16)
    assert len(out.sentence_scores) == len(doc.sentences)
    assert all(s is not None for s in out.sentence_scores)
    for p in doc.paragraphs:
        expected = sum(out.sentence_scores[s.index] for s in doc.sentences_of(p.index))
        assert out.paragraph_scores[p.index] == pytest.approx(expected)


def test_surrogate_is_deterministic_by_seed(doc):
    w = planted(doc)
    a = surrogate(doc, PlantedScorer(doc, w), n_ablations=8, seed=3, alpha=0.5).sentence_scores
    b = surrogate(doc, PlantedScorer(doc, w), n_ablations=8, seed=3, alpha=0.5).sentence_scores
    assert a == b
    assert (ablation_masks(10, 8, 3, 0.5) == ablation_masks(10, 8, 3, 0.5)).all()
    assert not (ablation_masks(10, 8, 3, 0.5) == ablation_masks(10, 8, 4, 0.5)).all()


def test_surrogate_asks_the_scorer_for_n_ablations_in_one_call(doc):
    scorer = PlantedScorer(doc, planted(doc))
    surrogate(doc, scorer, n_ablations=16)
    assert scorer.calls == [16]
    assert scorer.stats.forward_passes == 17  # the full context is one more sample


def test_surrogate_masks_keep_about_half(doc):
    masks = ablation_masks(40, 200, 0, 0.5)
    assert masks.shape == (200, 40)
    assert 0.45 < masks.mean() < 0.55
    with pytest.raises(ValueError):
        ablation_masks(4, 4, 0, 1.0)


def test_surrogate_on_the_tiny_model_costs_at_most_n_plus_one_passes(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="surrogate", response="Babbage.", n_ablations=8)
    assert len(r.scores()) == len(segment(context).sentences)
    assert 1 < r.total_forward_passes <= 9  # repeated masks are memoised by the scorer
    assert r.settings["n_ablations"] == 8


def test_attention_returns_one_non_negative_share_per_sentence(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="attention", response="Babbage.")
    scores = r.scores()
    assert len(scores) == len(segment(context).sentences)
    assert all(s is not None and s >= 0 for s in scores)
    assert 0 < sum(scores) <= 1 + 1e-6
    assert r.total_forward_passes == 1
    par = r.scores("paragraph")
    assert sum(par) == pytest.approx(sum(scores))


def test_attention_restores_the_attention_implementation(tiny_lm, context, question):
    before = tiny_lm.model.config._attn_implementation
    attribute(context, question, model=tiny_lm, method="attention", response="Babbage.")
    assert tiny_lm.model.config._attn_implementation == before


def test_attention_log_prob_matches_the_scorer(tiny_lm, context, question):
    from attribot_core.prompt import Response

    doc = segment(context)
    scorer = LocalScorer(tiny_lm, question, Response("Babbage."))
    out = attention(doc, scorer)
    assert out.log_prob_full == pytest.approx(scorer.log_prob(context), abs=1e-3)


def test_sentence_token_map_points_tokens_into_their_sentences(tiny_lm, context, question):
    from attribot_core.prompt import PromptBuilder

    doc = segment(context)
    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    ids, owners = sentence_token_map(builder, doc, question)
    assert ids == builder.prompt_ids(context, question)
    assert len(owners) == len(ids)
    for s in doc.sentences:
        tokens = [t for t, o in zip(ids, owners, strict=True) if o == s.index]
        assert tokens, f"sentence {s.index} got no token"
        assert tiny_lm.tokenizer.decode(tokens).strip() in s.text or s.text in tiny_lm.tokenizer.decode(tokens)


def test_baselines_are_registered_for_the_cli_and_app():
    assert {"surrogate", "attention"} <= set(METHODS)
    assert METHODS["surrogate"].params["n_ablations"] == 32
    assert METHODS["surrogate"].params["keep_prob"] == 0.5
    assert not METHODS["attention"].needs_proxy
