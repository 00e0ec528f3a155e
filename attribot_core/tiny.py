"""Tiny randomly initialised chat models built in-process, for tests and offline demos.

They go through exactly the same loading path as real models (saved to a folder, loaded with
``load_model``), so tests exercise the shipped code, only faster. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_model", "build_tiny_tokenizer"]

_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = (
    "Ada Lovelace was born in London. She worked with Charles Babbage on the Analytical Engine. "
    "The river runs through the old town. Who invented the engine? The answer is in the context. "
    "Paragraphs, sentences, questions and answers: attribution explains which text mattered. "
    "0123456789 <script>alert('x')</script> Dr. Smith went to the U.S. in Jan. 1900. "
)


def build_tiny_model(
    folder: str | Path, *, seed: int = 0, vocab_size: int = 400, variant: str = "a", arch: str = "llama"
) -> Path:
    """Train a small byte-level BPE tokenizer, build a 2-layer model with random weights, save both.

    ``variant`` changes the tokenizer's training text so two tiny models can have different
    tokenizers (for cross-tokenizer proxy tests). ``arch`` is ``llama`` (SmolLM2's shape) or
    ``qwen2`` (the Qwen presets' shape: biased q/k/v projections).
    """
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"Unknown tiny architecture '{arch}'; use llama or qwen2.")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    corpus = _CORPUS * 20 if variant == "a" else _CORPUS.upper() * 20 + _CORPUS[::-1] * 5
    hf_tok = build_tiny_tokenizer(corpus, vocab_size)
    torch.manual_seed(seed)
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = model_cls(config)
    with torch.no_grad():  # larger weights than the default init, so ablations visibly move log-probs
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    model.save_pretrained(folder)
    hf_tok.save_pretrained(folder)
    return folder


def build_tiny_tokenizer(corpus: str, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on ``corpus`` in-process, with ChatML specials and chat template.

    Any text round-trips (byte-level), so it can stand in for a real tokenizer wherever only token
    counts and ids matter (tests, and ``bench/gpu.py``'s models built from a config).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([corpus], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=_CHATML,
    )
