"""Shared fixtures: tiny in-process models (no download) and the real default model (slow tests)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from attribot_core.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-a"))


@pytest.fixture(scope="session")
def tiny_model_dir_b(tmp_path_factory):
    """A second tiny model whose tokenizer differs from the first."""
    from attribot_core.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-b"), seed=1, vocab_size=350, variant="b")


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    from attribot_core import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_lm_b(tiny_model_dir_b):
    from attribot_core import load_model

    return load_model(str(tiny_model_dir_b))


@pytest.fixture(scope="session")
def smollm2_lm():
    """SmolLM2-135M, the smallest real model setup installs: the slow tests' real model (the default,
    Qwen2.5-Coder-0.5B, is about three times slower per pass and has a test of its own)."""
    from attribot_core import load_model

    return load_model("smollm2-135m")


CONTEXT = (
    "Ada Lovelace was born in London in 1815. She was the daughter of Lord Byron.\n\n"
    "She worked with Charles Babbage on the Analytical Engine. Her notes include the first algorithm. "
    "Babbage called her the Enchantress of Numbers.\n\n"
    "Dr. Smith visited the U.S. in Jan. 1900. He wrote about the Engine.\n\n"
    "The river runs through the old town. Nobody remembers who built the bridge."
)
QUESTION = "Who did Ada work with?"


def sentence_inputs(lm, context: str, question: str, response: str = "She worked with Charles Babbage."):
    """(document, prompt ids, sentence of each prompt token, response ids) as the one-pass methods build them."""
    from attribot_core.methods.baselines import sentence_token_map
    from attribot_core.prompt import PromptBuilder, Response
    from attribot_core.segment import segment

    builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id)
    doc = segment(context)
    prompt, owners = sentence_token_map(builder, doc, question)
    return doc, prompt, owners, builder.response_ids(Response(response))


@pytest.fixture
def context() -> str:
    return CONTEXT


@pytest.fixture
def question() -> str:
    return QUESTION


@pytest.fixture(scope="session")
def tiny_qwen_lm(tmp_path_factory):
    """A tiny Qwen2-shaped model (biased q/k/v projections), same tokenizer recipe as ``tiny_lm``."""
    from attribot_core import load_model
    from attribot_core.tiny import build_tiny_model

    return load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), seed=2, arch="qwen2")))
