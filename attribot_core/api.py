"""``attribute()``: the one call that turns (context, question[, response]) into a result."""

from __future__ import annotations

import time
from typing import Any

from .generate import generate_response
from .methods import PARAM_CHOICES, get_method
from .methods.base import MethodOutput
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .pertoken import PerToken
from .prompt import DEFAULT_TEMPLATE, Response
from .result import AttributionResult, SpanScore
from .scoring import LocalScorer, ProgressFn, check_batch_size
from .segment import is_blank, segment

__all__ = ["InputError", "attribute", "check_inputs"]


class InputError(ValueError):
    """The user's input cannot be attributed; the message says why."""


# Parameter checks beyond "same type as the default": (test, what a valid value is).
_PARAM_RULES: dict[str, tuple[Any, str]] = {
    "keep_prob": (lambda x: 0 < x <= 1, "a probability above 0 and at most 1"),
    "alpha": (lambda x: x >= 0, "a number ≥ 0"),
    "seed": (lambda x: x >= 0, "a whole number ≥ 0"),
    "branching": (lambda x: x >= 2, "a whole number ≥ 2"),
}


def _check_param(method: str, name: str, value: Any, default: Any) -> None:
    where = f"Method '{method}': {name}"
    if value is None and default is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false (got {value!r}).")
        return
    if isinstance(default, str):
        choices = PARAM_CHOICES.get(name)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise InputError(f"{where} must be one of {', '.join(choices or ())} (got {value!r}).")
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        if not (is_int or isinstance(value, float)) or value != value:
            raise InputError(f"{where} must be a number (got {value!r}).")
    elif not is_int:
        raise InputError(f"{where} must be a whole number (got {value!r}).")
    test, what = _PARAM_RULES.get(name, (lambda x: x >= 1, "a whole number ≥ 1"))
    if not test(value):
        raise InputError(f"{where} must be {what} (got {value!r}).")


def check_inputs(
    context: Any,
    question: Any,
    *,
    method: str = "loo",
    has_proxy: bool = False,
    response: str | Response | None = None,
    response_span: Any = None,
    template: str = DEFAULT_TEMPLATE,
    max_new_tokens: Any = 64,
    **params: Any,
) -> None:
    """Raise :class:`InputError` (or ``ValueError`` for an unknown method) for input that cannot be attributed.

    Cheap: no model is loaded, so the CLI and the app refuse bad input at once. ``attribute`` calls it
    first; callers that load models themselves (the CLI) call it before loading.
    """
    spec = get_method(method)
    unknown = set(params) - set(spec.params)
    if unknown:
        raise InputError(f"Method '{method}' has no parameter(s) {sorted(unknown)}; it takes {sorted(spec.params)}.")
    for name, value in params.items():
        _check_param(method, name, value, spec.params[name])
    if not isinstance(context, str) or not segment(context).sentences:
        raise InputError("The context is empty: paste some text to attribute.")
    if not isinstance(question, str) or is_blank(question):
        raise InputError("The question is empty: ask something the context can answer.")
    if spec.needs_proxy and not has_proxy:
        raise InputError(f"Method '{method}' needs a proxy model.")
    if "{context}" not in template or "{question}" not in template:
        raise InputError("The prompt template must contain {context} and {question}.")
    if not (isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool) and max_new_tokens >= 1):
        raise InputError(f"max_new_tokens must be a whole number ≥ 1 (got {max_new_tokens!r}).")
    if response is not None and not isinstance(response, str | Response):
        raise InputError(f"The response must be text (got {type(response).__name__}).")
    if response_span is not None:
        ok = (isinstance(response_span, list | tuple) and len(response_span) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in response_span))
        text = response.text if isinstance(response, Response) else response
        end = len(text) if text and text.strip() else None  # a response still to generate has no length yet
        if not ok or not 0 <= response_span[0] < response_span[1] <= (end if end is not None else response_span[1]):
            raise InputError(f"The response range {response_span!r} is not a START:END range inside the response"
                             + (f" (0:{end})." if end is not None else "."))


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
    per_token: bool = True,
    batch_size: int | str = "auto",
    **params: Any,
) -> AttributionResult:
    """Attribute a response to the sentences and paragraphs of ``context``.

    ``response`` is generated greedily by the target when not given. ``response_span`` restricts the
    attribution to the response tokens overlapping that character range. ``params`` are the method's
    own (e.g. ``keep_paragraphs``); unknown ones are an error. ``per_token`` keeps every scored
    span's per-token deltas in the result (``result.per_token``; off: a schema-1-sized result).
    ``batch_size`` is the number of ablations per forward pass (default ``"auto"``: see
    :class:`LocalScorer`); it changes speed, not scores.
    """
    check_inputs(context, question, method=method, has_proxy=proxy_model is not None, response=response,
                 response_span=response_span, template=template, max_new_tokens=max_new_tokens, **params)
    spec = get_method(method)
    settings = {**spec.params, **params}
    try:
        batch_size = check_batch_size(batch_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    doc = segment(context)
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
        s.keep_token_values = per_token
        s.check_fits(context)
        return s

    target_scorer = scorer(target)
    proxy_scorer = scorer(proxy) if proxy is not None else None
    t = time.perf_counter()
    out = spec.run(doc, target_scorer, proxy_scorer, progress=progress, **settings)
    timings["attribute_s"] = time.perf_counter() - t
    kept = _per_token(out, [target_scorer, proxy_scorer]) if per_token else None
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
            "rows_per_pass": target_scorer.rows_per_pass(),
            "model_calls": target_scorer.stats.model_calls,
        },
        per_token=kept,
    )


def _per_token(out: MethodOutput, scorers: list[LocalScorer | None]) -> PerToken | None:
    """The method's per-token vectors with the token axes of the scorers that made them (None: none kept)."""
    if not any(v is not None for v in (*out.sentence_tokens, *out.paragraph_tokens)):
        return None
    axes = {s.model_id: s.response_axis() for s in scorers if s is not None}
    return PerToken(axes, tuple(out.sentence_tokens), tuple(out.paragraph_tokens), out.full_tokens,
                    out.span_rule, out.span_note)
