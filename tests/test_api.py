"""``attribot_core.api``: the input checks and the plan of a run (passes, estimated time) said before it starts."""

from __future__ import annotations

import re

import pytest

from attribot_core.api import MANY_PARAGRAPHS, InputError, check_inputs, estimate_seconds, plan_line
from tests.conftest import CONTEXT


def _paragraphs(n: int) -> str:
    return "\n\n".join(f"Paragraph {i} states a fact. It adds a second one." for i in range(n))


def test_check_inputs_refuses_a_bad_parameter_with_the_methods_words():
    with pytest.raises(InputError, match=r"Method 'tree': branching must be a whole number ≥ 2 \(got 1\)\."):
        check_inputs(CONTEXT, "Who?", method="tree", branching=1)
    with pytest.raises(InputError, match="has no parameter"):
        check_inputs(CONTEXT, "Who?", method="attention", seed=1)


def test_the_plan_says_passes_and_an_estimated_time_for_a_loaded_model(tiny_lm):
    line = plan_line(CONTEXT, "Who?", method="loo", model=tiny_lm, response="Babbage.")
    assert line.startswith("Plan: about 14 forward passes (loo over 4 paragraphs, 9 sentences); estimated time about")
    assert "an estimate from the model size" in line and "not measured" in line
    assert "tree" not in line  # a short context: nothing to suggest


def test_the_plan_follows_the_parameters():
    assert plan_line(CONTEXT, "Who?", method="loo", paragraphs=False).startswith("Plan: about 10 forward passes")
    assert plan_line(CONTEXT, "Who?", method="surrogate", n_ablations=5).startswith("Plan: about 6 forward passes")


def test_many_paragraphs_with_loo_or_hierarchical_suggest_tree():
    context = _paragraphs(200)
    for method in ("loo", "hierarchical"):
        line = plan_line(context, "q", method=method, model="smollm2-135m")
        assert "With 200 paragraphs, consider method tree: about 37 forward passes." in line, method
    assert "consider method tree" not in plan_line(context, "q", method="tree", model="smollm2-135m")
    assert "consider" not in plan_line(_paragraphs(MANY_PARAGRAPHS), "q", method="hierarchical")


def test_a_model_that_cannot_be_sized_before_loading_gets_passes_but_no_time():
    line = plan_line(CONTEXT, "Who?", model="some-org/not-a-local-model")
    assert line == ("Plan: about 14 forward passes (loo over 4 paragraphs, 9 sentences); "
                    "no time estimate before this model is loaded.")


def test_a_model_folder_is_sized_from_its_weights(tiny_model_dir, tiny_lm):
    by_folder = plan_line(CONTEXT, "Who?", model=str(tiny_model_dir))
    estimated = float(re.search(r"([0-9.]+)M parameters", by_folder).group(1)) * 1e6
    counted = sum(p.numel() for p in tiny_lm.model.parameters())
    assert estimated == pytest.approx(counted, rel=0.1)  # weight files hold a little more than the parameters


def test_estimated_time_grows_with_passes_model_size_and_tokens_and_is_less_with_prefix_reuse():
    base = estimate_seconds(10, 100_000_000, 500, "cpu")
    assert estimate_seconds(20, 100_000_000, 500, "cpu") == pytest.approx(2 * base)
    assert estimate_seconds(10, 200_000_000, 500, "cpu") > base
    assert estimate_seconds(10, 100_000_000, 1000, "cpu") > base
    assert estimate_seconds(10, 100_000_000, 500, "cpu", reuse_prefix=False) > base
    assert estimate_seconds(10, 100_000_000, 500, "cuda:0") < base


def test_a_prompt_too_long_for_the_proxy_is_refused_before_the_target_generates(tiny_model_dir, tiny_lm, monkeypatch):
    """A 32k target with an 8k proxy: a 16k document must not cost a generation before it is refused."""
    import attribot_core.api as api
    from attribot_core import ContextTooLong, attribute, load_model

    proxy = load_model(str(tiny_model_dir))
    proxy.model.config.max_position_embeddings = 120  # a proxy with a shorter window than the target's 1024
    monkeypatch.setattr(api, "generate_response", lambda *a, **k: pytest.fail("generated before refusing"))
    context = _paragraphs(12)
    n = len(tiny_lm.tokenizer(context)["input_ids"])
    assert 120 < n < 900  # fits the target, not the proxy
    with pytest.raises(ContextTooLong, match=r"takes \d+ tokens, more than the 120-token window of "):
        attribute(context, "Which one?", model=tiny_lm, proxy_model=proxy, method="pruning", keep_sentences=2)


def test_a_prompt_too_long_for_the_target_names_both_numbers_before_any_pass(tiny_lm, monkeypatch):
    from attribot_core import ContextTooLong, attribute
    from attribot_core.scoring import LocalScorer

    monkeypatch.setattr(LocalScorer, "_forward", lambda *a, **k: pytest.fail("a forward pass ran"))
    context = "The engine was built. " * 600
    for response in ("Yes.", None):
        with pytest.raises(ContextTooLong) as refused:
            attribute(context, "Was it built?", model=tiny_lm, method="loo", response=response)
        numbers = [int(x) for x in re.findall(r"\d+", str(refused.value))]
        assert 1024 in numbers and any(x > 1024 for x in numbers), str(refused.value)
