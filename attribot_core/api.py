"""``attribute()``: the one call that turns (context, question[, response]) into a result."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .generate import generate_response
from .kv import KeptPass
from .methods import get_method
from .methods.base import MethodOutput
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .pertoken import PerToken
from .prompt import DEFAULT_PASSAGE_TEMPLATE, DEFAULT_TEMPLATE, PromptBuilder, Response, check_passage_template
from .result import AttributionResult, SpanScore
from .scoring import ContextTooLong, LocalScorer, ProgressFn, check_batch_size
from .segment import Document, Passage, is_blank, segment_context

Context = str | Sequence[Passage | Mapping[str, Any] | str]
"""A context: one string (split at blank lines), or a list of retrieved passages (see :mod:`.segment`)."""

__all__ = [
    "MANY_PARAGRAPHS", "Context", "InputError", "attribute", "check_inputs", "check_params", "context_document",
    "estimate_seconds", "plan_line",
]


class InputError(ValueError):
    """The user's input cannot be attributed; the message says why."""


def check_params(method: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` unless ``params`` are parameters of ``method`` with valid values.

    The one parameter check: the rules are the method's registered :class:`~attribot_core.methods.ParamSpec`\\ s,
    so ``attribute``, the app, the CLI and batch settings refuse the same values with the same words.
    """
    problem = get_method(method).param_problem(params)
    if problem:
        raise InputError(problem)


def context_document(context: Any, passage_template: str = DEFAULT_PASSAGE_TEMPLATE) -> Document:
    """``context`` split into its spans, or :class:`InputError` saying why it cannot be a context.

    A string is split as always; a list is read as passages, shown through ``passage_template``.
    """
    if not isinstance(context, str):
        try:
            check_passage_template(passage_template)
            return segment_context(context, passage_template)
        except ValueError as exc:  # a PassageError, or a passage template without {text}
            raise InputError(str(exc)) from None
    return segment_context(context)


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
    passage_template: str = DEFAULT_PASSAGE_TEMPLATE,
    **params: Any,
) -> None:
    """Raise :class:`InputError` (or ``ValueError`` for an unknown method) for input that cannot be attributed.

    Cheap: no model is loaded, so the CLI and the app refuse bad input at once. ``attribute`` calls it
    first; callers that load models themselves (the CLI) call it before loading.
    """
    spec = get_method(method)
    check_params(method, params)
    if not isinstance(context, str | Sequence | Mapping):  # a list (or a mistaken dict) is read as passages
        raise InputError("The context is empty: paste some text to attribute.")
    if not context_document(context, passage_template).sentences:
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


MANY_PARAGRAPHS = 30
"""Above this many paragraphs, exact LOO and hierarchical cost a pass per paragraph: the plan suggests tree."""

_SUGGEST_TREE = ("loo", "loo-naive", "hierarchical")
_CPU_FLOPS_PER_THREAD = 15e9  # sustained fp32 FLOP/s of one core in a forward pass (batch 1): a rough figure
_GPU_FLOPS = 2e13  # what small models reach on a data-centre GPU (far from peak: they are latency-bound)
_PASS_OVERHEAD_S = 0.01  # per forward pass, whatever its size (Python, kernel launches)


def estimate_seconds(passes: int, n_params: int, n_tokens: int, device: str = "cpu", *,
                     reuse_prefix: bool = True) -> float:
    """A rough time for ``passes`` forward passes of a model of ``n_params`` parameters over ``n_tokens``.

    Not a measurement: a forward pass costs about ``2 * n_params`` FLOPs per token computed, at a fixed
    rate per CPU thread (``torch.get_num_threads()``) or per GPU. With prefix reuse an LOO pass
    recomputes only the tokens after the removed span, half of the prompt on average.
    """
    import torch

    rate = _GPU_FLOPS if not device.startswith("cpu") else _CPU_FLOPS_PER_THREAD * max(1, torch.get_num_threads())
    tokens = n_tokens * (0.5 if reuse_prefix else 1.0)
    return passes * (_PASS_OVERHEAD_S + 2 * n_params * tokens / rate)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _millions(n: int) -> str:
    return f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n / 1e6:.2g}M"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("s") else "s")


def _model_size(model: LoadedModel | str | None, text: str) -> tuple[int | None, int, str]:
    """(parameters, prompt tokens, device) of a loaded model. Before loading they are estimated: a
    preset or ``.gguf`` from its size (~0.8 bytes per parameter, quantised), a model folder from its
    weight files (4 bytes per parameter, 2 when its config says 16-bit), tokens as ~4 characters each;
    parameters None for a model that cannot be sized (a Hugging Face id)."""
    if isinstance(model, LoadedModel):
        n_params = sum(p.numel() for p in model.model.parameters())
        return n_params, len(model.tokenizer(text)["input_ids"]), str(model.device)
    from pathlib import Path

    from .models import PRESETS, resolve_device

    name = model or DEFAULT_MODEL
    path = Path(name).expanduser()
    n_params: int | None = None
    if name in PRESETS:
        n_params = int(PRESETS[name].size_mb * 1.25e6)
    elif path.is_file() and path.suffix == ".gguf":
        n_params = int(path.stat().st_size * 1.25)
    elif path.is_dir():
        weights = sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(
            f.stat().st_size for f in path.glob("*.bin"))
        config = path / "config.json"
        half = config.is_file() and any(t in config.read_text(encoding="utf-8", errors="replace")
                                        for t in ('"bfloat16"', '"float16"'))
        n_params = int(weights / (2 if half else 4)) or None
    return n_params, max(1, len(text) // 4), str(resolve_device()[0])


def plan_line(context: Context, question: str = "", *, method: str = "loo",
              model: LoadedModel | str | None = None, response: str = "",
              passage_template: str = DEFAULT_PASSAGE_TEMPLATE, **params: Any) -> str:
    """One sentence saying what a run will cost before it starts: forward passes and an estimated time.

    The CLI prints it before the first pass and the Attribute page shows it at Run, so a run of hundreds
    of passes never starts without a word. ``model`` is a loaded model (its parameters are counted and the
    prompt tokenized) or a name (a preset's size is known before loading; other models get no time). For
    a context of more than :data:`MANY_PARAGRAPHS` paragraphs with LOO or hierarchical, it suggests
    ``tree``. Pruning's passes are partly the proxy's: its time is estimated as if all were the target's.
    """
    spec = get_method(method)
    doc = context_document(context, passage_template)
    n_par, n_sent = len(doc.paragraphs), len(doc.sentences)
    known = {k: v for k, v in params.items() if k in spec.params and v is not None}
    passes = spec.planned_passes(n_par, n_sent, known)
    shape = f"{method} over {_n(n_par, 'passage' if doc.passages else 'paragraph')}, {_n(n_sent, 'sentence')}"
    line = f"Plan: about {_n(passes, 'forward pass')} ({shape})"
    n_params, n_tokens, device = _model_size(model, f"{doc.text}\n{question}\n{response}")
    if n_params:
        seconds = estimate_seconds(passes, n_params, n_tokens, device, reuse_prefix=spec.reuse_prefix)
        line += (f"; estimated time about {_duration(seconds)} on {device} (an estimate from the model size, "
                 f"{_millions(n_params)} parameters, and about {n_tokens} prompt tokens; not measured).")
    else:
        line += "; no time estimate before this model is loaded."
    if n_par > MANY_PARAGRAPHS and method in _SUGGEST_TREE:
        tree_passes = get_method("tree").planned_passes(n_par, n_sent)
        line += f" With {n_par} paragraphs, consider method tree: about {_n(tree_passes, 'forward pass')}."
    return line


def _loaded(model: LoadedModel | str | None) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model or DEFAULT_MODEL)


def attribute(
    context: Context,
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
    passage_template: str = DEFAULT_PASSAGE_TEMPLATE,
    before_method: Callable[[Document, LocalScorer], None] | None = None,
    kept_pass: KeptPass | None = None,
    **params: Any,
) -> AttributionResult:
    """Attribute a response to the sentences and paragraphs of ``context``.

    ``context`` is one string, or a list of retrieved passages (``{"id", "title"?, "text"}`` dicts or
    strings): then each passage is a top-level span that keeps its id and title in the result
    (``result.passages``), and the prompt shows the passages through ``passage_template``
    (:data:`~attribot_core.prompt.DEFAULT_PASSAGE_TEMPLATE`: ``[1] Title`` then the text). A chat history
    is given the same way: each earlier turn a passage titled by its role.

    ``response`` is generated greedily by the target when not given. ``response_span`` restricts the
    attribution to the response tokens overlapping that character range. ``params`` are the method's
    own (e.g. ``keep_paragraphs``); unknown ones are an error. ``per_token`` keeps every scored
    span's per-token deltas in the result (``result.per_token``; off: a schema-1-sized result).
    ``batch_size`` is the number of ablations per forward pass (default ``"auto"``: see
    :class:`LocalScorer`); it changes speed, not scores. ``before_method(doc, target_scorer)`` runs on the
    target's scorer just before the method (timed with it): the app's estimate-first stage runs the one-pass
    estimate there, so that its pass is the base pass exact LOO then starts from. ``kept_pass``: the keys and
    values the target left generating ``response`` (:func:`~attribot_core.generate.generate_response`'s
    ``on_pass``); the one-pass estimate then computes only the response rows. When this call generates the
    response itself, it keeps them so (the scorer lets them go at its first scoring pass).
    """
    check_inputs(context, question, method=method, has_proxy=proxy_model is not None, response=response,
                 response_span=response_span, template=template, max_new_tokens=max_new_tokens,
                 passage_template=passage_template, **params)
    spec = get_method(method)
    settings = {**spec.params, **params}
    try:
        batch_size = check_batch_size(batch_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    doc = context_document(context, passage_template)
    context = doc.text  # what {context} shows the model: the string itself, or the rendered passages
    start = time.perf_counter()
    target = _loaded(model)
    proxy = _loaded(proxy_model) if spec.needs_proxy else None
    for lm in (target, proxy):  # a prompt too long for either window is refused before generating
        if lm is not None:
            _check_prompt_fits(lm, context, question, template)
    timings: dict[str, float] = {}
    if response is None or (isinstance(response, str) and not response.strip()):
        t = time.perf_counter()
        kept: list[KeptPass] = []
        response = generate_response(target, context, question, template=template, max_new_tokens=max_new_tokens,
                                     on_pass=kept.append)
        kept_pass = kept.pop() if kept else None
        timings["generate_s"] = time.perf_counter() - t
    elif isinstance(response, str):
        response = Response(response)
    if not response.text.strip() and not response.token_ids:
        raise InputError("The response is empty: there is nothing to attribute.")
    if response_span is not None:
        a, b = response_span
        if not 0 <= a < b <= len(response.text):
            raise InputError(f"The response range {a}:{b} is not inside the response (0:{len(response.text)}).")

    def scorer(lm: LoadedModel, kept: KeptPass | None = None) -> LocalScorer:
        s = LocalScorer(lm, question, response, template=template, response_chars=response_span,
                        reuse_prefix=spec.reuse_prefix, batch_size=batch_size, kept_pass=kept)
        s.keep_token_values = per_token
        s.check_fits(context)
        return s

    target_scorer = scorer(target, kept_pass)
    proxy_scorer = scorer(proxy) if proxy is not None else None
    t = time.perf_counter()
    if before_method is not None:
        before_method(doc, target_scorer)
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
        passages=doc.passages,
        passage_template=passage_template if doc.passages else "",
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


def _check_prompt_fits(lm: LoadedModel, context: str, question: str, template: str) -> None:
    """Raise :class:`ContextTooLong` when the prompt alone (no response yet) overflows ``lm``'s window.

    Each scorer checks prompt + response later (:meth:`LocalScorer.check_fits`); this earlier check
    exists so that a proxy with a shorter window than the target refuses before the target has spent a
    long generation on the document, naming both numbers.
    """
    n = len(PromptBuilder(lm.tokenizer, lm.tokenizer_id, template).prompt_ids(context, question))
    if n >= lm.max_positions:  # the response needs at least one more position
        raise ContextTooLong(
            f"The prompt takes {n} tokens, more than the {lm.max_positions}-token window of {lm.model_id} "
            "(with the response still to come). Shorten the context or use a model with a longer window."
        )


def _per_token(out: MethodOutput, scorers: list[LocalScorer | None]) -> PerToken | None:
    """The method's per-token vectors with the token axes of the scorers that made them (None: none kept)."""
    if not any(v is not None for v in (*out.sentence_tokens, *out.paragraph_tokens)):
        return None
    axes = {s.model_id: s.response_axis() for s in scorers if s is not None}
    return PerToken(axes, tuple(out.sentence_tokens), tuple(out.paragraph_tokens), out.full_tokens,
                    out.span_rule, out.span_note)
