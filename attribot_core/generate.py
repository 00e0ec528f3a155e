"""Generate the response to explain, keeping the exact token ids the model produced."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .kv import KeptPass
from .models import LoadedModel
from .prompt import DEFAULT_TEMPLATE, PromptBuilder, Response

__all__ = ["generate_response", "prefill"]


def generate_response(
    lm: LoadedModel,
    context: str,
    question: str,
    *,
    template: str = DEFAULT_TEMPLATE,
    max_new_tokens: int = 64,
    should_stop: Callable[[], bool] | None = None,
    on_text: Callable[[str], None] | None = None,
    text_every_s: float = 0.2,
    on_pass: Callable[[KeptPass], None] | None = None,
    start: KeptPass | None = None,
) -> Response:
    """Greedy-decode a response (reproducible; sampling would make attributions differ run to run).

    The returned ids include the end-of-turn token when generation stopped on it, because that token
    is part of what the model said and is scored like the others. ``should_stop`` is asked after every
    new token; when it says yes, generation ends there (the caller decides what a stopped run means).

    ``on_text`` receives the response text decoded so far while it is generated (so a page can show it
    streaming): the first token at once, then at most every ``text_every_s`` seconds (decoding and
    storing it per token would cost more than the token), and the final text once at the end. Watching
    changes nothing that is generated: the ids are the same with or without it.

    ``on_pass`` receives the keys and values generation computed (the prompt and every response token but
    the last, :class:`~attribot_core.kv.KeptPass`), so the one-pass estimate can start from them instead of
    computing the whole prompt again. The same ids with or without it.

    ``start``: keys and values of the prompt computed ahead (:func:`prefill`); generation then computes
    only the prompt's tokens after them (the last one at least), so its first token comes after one step.
    """
    import torch

    builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, template)
    prompt = builder.prompt_ids(context, question)
    if len(prompt) + max_new_tokens > lm.max_positions:
        from .scoring import ContextTooLong

        raise ContextTooLong(
            f"The prompt takes {len(prompt)} tokens; with {max_new_tokens} new tokens it exceeds the "
            f"{lm.max_positions}-token window of {lm.model_id}."
        )
    stop = {builder.end_of_turn_id, lm.tokenizer.eos_token_id} - {None}
    criteria = None
    if should_stop is not None or on_text is not None:
        from transformers import StoppingCriteria, StoppingCriteriaList

        shown = [float("-inf"), ""]  # when and what on_text was last told

        def tell(ids: list[int]) -> None:
            if ids and ids[-1] in stop:  # the final text ends without it (see below)
                ids = ids[:-1]
            # a prefix may end inside a multi-byte character: its bytes come with the next token
            text = builder.decode(ids).rstrip("\ufffd")
            if text != shown[1]:
                shown[:] = [time.monotonic(), text]
                on_text(text)

        class _Watch(StoppingCriteria):
            """Asked after every new token: report the text so far (throttled), and whether to stop."""

            def __call__(self, input_ids, scores, **kwargs):
                if on_text is not None and time.monotonic() - shown[0] >= text_every_s:
                    tell(input_ids[0, len(prompt):].tolist())
                stop_now = should_stop is not None and bool(should_stop())
                return torch.full((input_ids.shape[0],), stop_now, dtype=torch.bool, device=input_ids.device)

        criteria = StoppingCriteriaList([_Watch()])
    _, past = _taken_from(start, lm, prompt, keep=1)
    with torch.inference_mode():
        out = lm.model.generate(
            torch.tensor([prompt], device=lm.device),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=lm.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(stop),
            pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
            stopping_criteria=criteria,
            return_dict_in_generate=on_pass is not None,
            past_key_values=past,
        )
    sequence = out.sequences[0] if on_pass is not None else out[0]
    if on_pass is not None:
        cached = sequence[: out.past_key_values.get_seq_length()].tolist()
        on_pass(KeptPass(lm.model_id, tuple(cached), out.past_key_values))
    ids = sequence[len(prompt) :].tolist()
    complete = bool(ids) and ids[-1] in stop
    if complete and ids[-1] != builder.end_of_turn_id:
        ids[-1] = builder.end_of_turn_id  # stopped on EOS: score the template's end-of-turn
    response = Response(builder.decode(ids), tuple(ids), lm.tokenizer_id, complete)
    if on_text is not None and response.text != shown[1]:
        on_text(response.text)
    return response


def _taken_from(kept: KeptPass | None, lm: LoadedModel, ids: list[int], *, keep: int) -> tuple[int, Any]:
    """``(tokens, cache)`` a pass of ``lm`` over ``ids`` takes from ``kept`` (:meth:`KeptPass.start`): nothing
    from none, or from another model's."""
    return kept.start(ids, keep=keep) if kept is not None and kept.model_id == lm.model_id else (0, None)


PREFILL_CHUNK = 128
"""Prompt tokens in :func:`prefill`'s first forward pass. Between two passes it asks whether to stop, and
each pass is twice as long as the one before, up to :data:`PREFILL_CHUNK_MAX`: a short first chunk is done
soon (a Run clicked at once waits for little), and longer ones later pay a pass's fixed cost (reading every
weight: ~0.25 s on the 0.5B on a 2-core CPU) less often: on the 0.5B's long prompts the prefill took 1.28x
the whole prompt's first text in chunks of 128 alone, and 1.04x growing (``bench/prefill.py``; README)."""

PREFILL_CHUNK_MAX = 512
"""The longest chunk of :func:`prefill`: a Run of *other* inputs waits for the chunk in progress, at most
about 3 s on the 0.5B on a 2-core CPU (a Run of the same inputs, or of the same context, uses its work)."""

PREFILL_MAX_TOKENS = 4096
"""The most prompt tokens :func:`prefill` computes: what an idle server keeps for the inputs on screen stays
small (the 0.5B's keys and values of 4,096 tokens: 100 MB in float32), and a longer prompt still gets its
first 4,096 from it."""


def prefill(lm: LoadedModel, context: str, question: str, *, template: str = DEFAULT_TEMPLATE,
            start: KeptPass | None = None, should_stop: Callable[[], bool] | None = None,
            chunk: int = PREFILL_CHUNK, max_chunk: int = PREFILL_CHUNK_MAX,
            max_tokens: int = PREFILL_MAX_TOKENS) -> KeptPass | None:
    """The keys and values of the prompt for ``context`` and ``question`` but its last token, computed ahead
    of a Run (the app does it while the inputs are on screen): :func:`generate_response` (``start``) then
    begins at the last prompt token, and the one-pass estimate of a given response at its rows. With no
    question yet (empty), the prompt's part before the question
    (:meth:`~attribot_core.prompt.PromptBuilder.ids_before_question`): the context is computed while the
    question is typed, and the question's prefill (``start``) or a Run then computes only the rest.

    ``start``: an earlier prefill (or any kept pass of this model): the tokens the two prompts share are
    taken from it, so an edited question after a long context, or a prefill stopped early and asked for
    again, computes only the rest.
    In chunks of ``chunk`` tokens, doubling up to ``max_chunk`` (:data:`PREFILL_CHUNK`), the first
    ``max_tokens`` at most; ``should_stop`` is asked before each, and a stopped prefill keeps the chunks it
    computed (a pass starting from it computes the rest). None when it has no token.
    Greedy generation from it gave the same token ids as without it on the 45 prompts of the built-in
    examples and the evaluation set, on SmolLM2-135M and the 0.5B (`bench/prefill.py`; README, *Computed ahead*).
    """
    import torch
    from transformers import DynamicCache

    builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, template)
    whole = builder.prompt_ids(context, question)[:-1] if question.strip() else builder.ids_before_question(context)
    prompt = whole[:max_tokens]
    done, cache = _taken_from(start, lm, prompt, keep=0)
    cache = cache if cache is not None else DynamicCache()
    with torch.inference_mode():
        while done < len(prompt) and not (should_stop is not None and should_stop()):
            ids = prompt[done:done + chunk]
            lm.model(input_ids=torch.tensor([ids], device=lm.device), past_key_values=cache, use_cache=True,
                     logits_to_keep=1)
            done += len(ids)
            chunk = min(2 * chunk, max_chunk)
    return KeptPass(lm.model_id, tuple(prompt[:done]), cache) if done else None
