"""``attribute()``: the one call that turns (context, question[, response]) into a result."""

from __future__ import annotations

import time
from typing import Any

from .generate import generate_response
from .methods import get_method
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .prompt import DEFAULT_TEMPLATE, Response
from .result import AttributionResult, SpanScore
from .scoring import CPU_BATCH_SIZE, LocalScorer, ProgressFn, check_batch_size
from .segment import segment

__all__ = ["InputError", "attribute"]


class InputError(ValueError):
    """The user's input cannot be attributed; the message says why."""


def _loaded(model: LoadedModel | str | None) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model or DEFAULT_MODEL)


def attribute(
    context: str,
    question: str,
    *,
    model: LoadedModel | str | None = None,
    method: str = "loo",
    proxy_model: LoadedModel | str | None = None,
    response: str | Response | None = None,
    response_span: tuple[int, int] | None = None,
    template: str = DEFAULT_TEMPLATE,
    max_new_tokens: int = 64,
    progress: ProgressFn | None = None,
    batch_size: int | str = CPU_BATCH_SIZE,
    **params: Any,
) -> AttributionResult:
    """Attribute a response to the sentences and paragraphs of ``context``.

    ``response`` is generated greedily by the target when not given. ``response_span`` restricts the
    attribution to the response tokens overlapping that character range. ``params`` are the method's
    own (e.g. ``keep_paragraphs``); unknown ones are an error. ``batch_size`` is the number of
    ablations per forward pass (or ``"auto"``); it changes speed, not scores.
    """
    spec = get_method(method)
    unknown = set(params) - set(spec.params)
    if unknown:
        raise InputError(f"Method '{method}' has no parameter(s) {sorted(unknown)}; it takes {sorted(spec.params)}.")
    settings = {**spec.params, **params}
    try:
        batch_size = check_batch_size(batch_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    doc = segment(context)
    if not doc.sentences:
        raise InputError("The context is empty: paste some text to attribute.")
    if spec.needs_proxy and proxy_model is None:
        raise InputError(f"Method '{method}' needs a proxy model.")
    start = time.perf_counter()
    target = _loaded(model)
    proxy = _loaded(proxy_model) if spec.needs_proxy else None
    timings: dict[str, float] = {}
    if response is None or (isinstance(response, str) and not response.strip()):
        t = time.perf_counter()
        response = generate_response(target, context, question, template=template, max_new_tokens=max_new_tokens)
        timings["generate_s"] = time.perf_counter() - t
    elif isinstance(response, str):
        response = Response(response)
    if not response.text.strip() and not response.token_ids:
        raise InputError("The response is empty: there is nothing to attribute.")
    if response_span is not None:
        a, b = response_span
        if not 0 <= a < b <= len(response.text):
            raise InputError(f"The response range {a}:{b} is not inside the response (0:{len(response.text)}).")

    def scorer(lm: LoadedModel) -> LocalScorer:
        s = LocalScorer(lm, question, response, template=template, response_chars=response_span,
                        reuse_prefix=spec.reuse_prefix, batch_size=batch_size)
        s.check_fits(context)
        return s

    target_scorer = scorer(target)
    proxy_scorer = scorer(proxy) if proxy is not None else None
    t = time.perf_counter()
    out = spec.run(doc, target_scorer, proxy_scorer, progress=progress, **settings)
    timings["attribute_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    passes: dict[str, int] = {}
    for s in (target_scorer, proxy_scorer):
        if s is not None:
            passes[s.model_id] = passes.get(s.model_id, 0) + s.stats.forward_passes
            timings[f"scoring_s[{s.model_id}]"] = s.stats.seconds
    return AttributionResult(
        context=context,
        question=question,
        response=response.text,
        method=method,
        model=target.model_id,
        proxy_model=proxy.model_id if proxy else None,
        settings=settings,
        log_prob_full=out.log_prob_full,
        paragraphs=tuple(
            SpanScore(p.index, p.start, p.end, p.text, out.paragraph_scores[p.index], out.paragraph_by[p.index])
            for p in doc.paragraphs
        ),
        sentences=tuple(
            SpanScore(s.index, s.start, s.end, s.text, out.sentence_scores[s.index], out.sentence_by[s.index], s.parent)
            for s in doc.sentences
        ),
        forward_passes=passes,
        timings=timings,
        response_span=response_span,
        response_tokens=int(sum(target_scorer.mask)),
        template=template,
        extra={
            **out.extra,
            "tokens_computed": target_scorer.stats.tokens_computed,
            "tokens_reused": target_scorer.stats.tokens_reused,
            "response_complete": response.complete,
            "device": str(target.device),
            "dtype": str(target.dtype).replace("torch.", ""),
            "batch_size": batch_size,
        },
    )
