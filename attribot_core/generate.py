"""Generate the response to explain, keeping the exact token ids the model produced."""

from __future__ import annotations

from collections.abc import Callable

from .models import LoadedModel
from .prompt import DEFAULT_TEMPLATE, PromptBuilder, Response

__all__ = ["generate_response"]


def generate_response(
    lm: LoadedModel,
    context: str,
    question: str,
    *,
    template: str = DEFAULT_TEMPLATE,
    max_new_tokens: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Response:
    """Greedy-decode a response (reproducible; sampling would make attributions differ run to run).

    The returned ids include the end-of-turn token when generation stopped on it, because that token
    is part of what the model said and is scored like the others. ``should_stop`` is asked after every
    new token; when it says yes, generation ends there (the caller decides what a stopped run means).
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
    if should_stop is not None:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Asked(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), bool(should_stop()), dtype=torch.bool,
                                  device=input_ids.device)

        criteria = StoppingCriteriaList([_Asked()])
    with torch.inference_mode():
        out = lm.model.generate(
            torch.tensor([prompt], device=lm.device),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=lm.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(stop),
            pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
            stopping_criteria=criteria,
        )
    ids = out[0, len(prompt) :].tolist()
    complete = bool(ids) and ids[-1] in stop
    if complete and ids[-1] != builder.end_of_turn_id:
        ids[-1] = builder.end_of_turn_id  # stopped on EOS: score the template's end-of-turn
    return Response(builder.decode(ids), tuple(ids), lm.tokenizer_id, complete)
