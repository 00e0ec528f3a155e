"""Running one request: validate, load models, generate if needed, attribute, and report as it goes.

This is the one place a run's work happens, whatever executes it (the app's background worker, the
batch command, a Ray actor). It writes nothing itself: it reports to a :class:`RunReport`, which the
caller turns into store writes, so only the store module ever writes the database.

Estimate first (``execute(..., estimate_first=True)``, on in the app): a method that scores spans by
ablation first gets a preview of every sentence before its first ablation pass, so a live view is
coloured at once; the exact scores then arrive as without it (:func:`previews`). On a model with
estimator weights the preview is the one-pass learned estimate (partial level :data:`ESTIMATE_LEVEL`,
free where it rides on the method's base pass). A method whose base pass keeps the full context's keys and
values (:data:`AFTER_CONTEXT_METHODS`) then gets first-order LOO through the rows after the context (level
:data:`FIRST_ORDER_QR_LEVEL`): on the base pass's keys only the question's and the answer's rows run,
forward and backward, a small part of a pass, and it needs no weights, so every model gets it; it ranks
the sentences closer to exact LOO than the learned estimate does (README, *Methods*). A long run of a
method whose every pass reads the whole context (:data:`FIRST_ORDER_METHODS`,
:data:`FIRST_ORDER_MIN_PASSES` planned passes or more) then gets first-order LOO through every row (level
:data:`FIRST_ORDER_LEVEL`): about three passes' work, closer still (Spearman 0.47 / 0.48 against the
learned estimate's 0.17 / 0.16 on the evaluation set, README). The previews shown are kept in the result's
``extra["estimate"]`` (the last one) beside their agreement with the exact scores; the scores themselves
are the exact method's, unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..api import InputError, attribute, check_inputs
from ..estimator import has_weights
from ..generate import generate_response
from ..kv import KeptPass
from ..methods import get_method
from ..methods.base import reporting_partial
from ..methods.estimate import estimate
from ..methods.first_order import first_order
from ..metrics import spearman, top_k_overlap
from ..models import LoadedModel, ModelError, load_model, needs_preparing
from ..prompt import Response
from ..result import AttributionResult
from ..scoring import ContextTooLong, LocalScorer
from ..segment import Document
from .request import RunRequest

__all__ = ["AFTER_CONTEXT_METHODS", "ESTIMATED_METHODS", "ESTIMATE_LEVEL", "FIRST_ORDER_LEVEL", "FIRST_ORDER_METHODS",
           "FIRST_ORDER_MIN_PASSES", "FIRST_ORDER_QR_LEVEL", "MODEL_LOCK", "PREVIEW_LEVELS", "USER_ERRORS",
           "Cancelled", "ModelCache", "Passes", "RunReport", "check_request", "eta_seconds", "execute", "previews"]

log = logging.getLogger("attribot.runs")

MODEL_LOCK = threading.Lock()
"""Held around every model call of this process: a forward pass is not safe to interleave with another
on the same model, and two at once would only split the CPU cores."""

USER_ERRORS = (InputError, ModelError, ContextTooLong, ValueError, OSError)
"""Errors whose message is written for the user; anything else is a bug (logged, stored with its type)."""

ESTIMATED_METHODS = frozenset({"loo", "loo-naive", "hierarchical", "tree", "pruning", "proxy"})
"""Methods that score spans by ablation, one or more passes per span: the ones whose wait the one-pass
estimate fills (``estimate``, ``attention`` and ``surrogate`` have no per-span passes to wait for)."""

FULL_BASE_METHODS = frozenset({"loo", "loo-naive", "hierarchical", "tree"})
"""Of those, the methods whose first pass on the target is the full context's base pass: the estimate rides on
it. ``pruning`` and ``proxy`` never score the full context with the target, so the estimate's pass is its own,
stopped after the layers its weights read."""

AFTER_CONTEXT_METHODS = frozenset(m for m in FULL_BASE_METHODS if get_method(m).reuse_prefix)
"""Of those, the methods whose base pass keeps its keys and values for the passes after it (the registry's
prefix reuse): ``loo``, ``hierarchical``, ``tree``. On them first-order LOO through the rows after the context
runs those rows only. Not ``loo-naive``, which keeps none (it is the baseline without that reuse)."""

ESTIMATE_LEVEL = "estimate"
"""The partial level of the learned one-pass estimate: ``{sentence index: estimated LOO in nats}``."""

FIRST_ORDER_QR_LEVEL = "first-order-qr"
"""The partial level of first-order LOO through the rows after the context (``rows="question and response"``):
``{sentence index: nats}``."""

FIRST_ORDER_LEVEL = "first-order"
"""The partial level of the first-order preview: ``{sentence index: first-order LOO in nats}``."""

PREVIEW_LEVELS = (ESTIMATE_LEVEL, FIRST_ORDER_QR_LEVEL, FIRST_ORDER_LEVEL)
"""The partial levels that preview exact scores, in the order a run reports them (each closer to exact
than the one before): a live view draws the last one it has."""

FIRST_ORDER_METHODS = frozenset({"loo", "loo-naive", "hierarchical"})
"""The methods whose long runs get the first-order preview: every pass of theirs reads the whole context,
as first-order's does. Not ``tree``, whose passes read ever smaller parts of a long document: first-order
over all of it would cost most of the run (83 s on the 200-paragraph document, 3,601 tokens, the 0.5B on
this CPU, ``bench/long_doc.py``), nor ``pruning`` and ``proxy``, which never score the full context with
the target."""

FIRST_ORDER_MIN_PASSES = 30
"""A run planned at this many forward passes or more gets the first-order preview. Its forward and backward
pass cost about three of such a run's passes (2.0 s against 6.5 s for the 9 passes of ``loo`` on a built-in
example, 8.9 s against 107 s per evaluation row of 35, the 0.5B on this CPU; more on long contexts: 15.5 s
against 93 s on the 1,600-1,800-token ones), so from 30 passes on it delays the exact scores by about a
tenth; below, exact LOO itself comes soon enough."""

TOP_K_AGREEMENT = 3
"""The estimate's summary against exact: overlap of the top this-many sentences (and Spearman)."""


class Cancelled(Exception):
    """The run was stopped (between two forward passes, or during generation)."""


class ModelCache:
    """Models loaded once per process and shared by every run (LRU, thread-safe)."""

    def __init__(self, max_models: int = 3, loader: Callable[[str], LoadedModel] = load_model) -> None:
        self.max_models = max_models
        self.loader = loader
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str) -> LoadedModel:
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            lm = self.loader(spec)
            self._models[spec] = lm
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return lm

    def loaded(self, spec: str) -> LoadedModel | None:
        """The model for ``spec`` when it is loaded already; never loads one."""
        with self._lock:
            return self._models.get(spec)


class RunReport:
    """What a run tells its executor as it goes; every method may raise :class:`Cancelled` to stop it."""

    def phase(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int, eta_s: float | None = None) -> None:
        """``done`` of ``total`` forward passes; ``eta_s``: seconds left at the measured pace (None: not yet)."""

    def partial(self, level: str, scores: dict[int, float]) -> None:
        pass

    def partial_response(self, text: str) -> None:
        """The response text generated so far (throttled by :func:`~attribot_core.generate.generate_response`),
        so a page can show it streaming before the run has any score."""

    def generated(self, response: Response) -> None:
        pass

    def known_response(self, request: RunRequest) -> Response | None:
        """A previously generated response for this request (generate) or with its text (exact ids)."""
        return None


def check_request(request: RunRequest) -> None:
    """Reject a request no run can compute, before any model loads.

    The inputs are checked by :func:`~attribot_core.api.check_inputs`, the one rule for them (so a
    run, a batch row and ``attribute`` accept the same contexts); a run adds only that it needs a model.
    """
    if not request.model.strip():
        raise InputError("Choose a model, or type a Hugging Face id, a model folder or a .gguf path.")
    check_inputs(request.source, request.question, method=request.method,
                 has_proxy=bool((request.proxy_model or "").strip()), response=request.response or None,
                 response_span=request.response_span, max_new_tokens=request.max_new_tokens,
                 **request.passage_args(), **dict(request.params))


def previews(request: RunRequest, planned: int) -> tuple[str, ...]:
    """The previews (:data:`PREVIEW_LEVELS`) a run of ``request`` planned at ``planned`` forward passes shows
    before its exact scores, when asked for: none for a method that does not score by ablation
    (:data:`ESTIMATED_METHODS`); the learned estimate where the target has estimator weights
    (:func:`~attribot_core.estimator.has_weights`, the one rule for that); first-order LOO through the rows
    after the context for a method of :data:`AFTER_CONTEXT_METHODS` (any model: it needs no weights, and
    its context is the base pass's); first-order LOO through every row after those for a method of
    :data:`FIRST_ORDER_METHODS` on a run of :data:`FIRST_ORDER_MIN_PASSES` or more."""
    if request.method not in ESTIMATED_METHODS:
        return ()
    learned = (ESTIMATE_LEVEL,) if has_weights(request.model) else ()
    after_context = (FIRST_ORDER_QR_LEVEL,) if request.method in AFTER_CONTEXT_METHODS else ()
    long_run = request.method in FIRST_ORDER_METHODS and planned >= FIRST_ORDER_MIN_PASSES
    return learned + after_context + ((FIRST_ORDER_LEVEL,) if long_run else ())


_PREVIEW_PHASES = {ESTIMATE_LEVEL: "Estimating every sentence in one pass …",
                   FIRST_ORDER_QR_LEVEL: "Estimating every sentence: first-order LOO through the question and answer …",
                   FIRST_ORDER_LEVEL: "Refining the estimate: first-order LOO (a forward and a backward pass) …"}


class _PreviewStage:
    """The previews of every sentence (``levels``, of :data:`PREVIEW_LEVELS`), each reported as its partial
    level before the first ablation pass; ``found`` keeps those that were had, in order, for the result.

    Called by :func:`~attribot_core.api.attribute` on the target's scorer before the method
    (``before_method``). For a method of :data:`FULL_BASE_METHODS` (``share_base_pass``) the learned
    estimate's pass is the method's base pass: exact LOO then starts with it done, and it adds no forward
    pass; for the others it is a pass of its own, stopped after the layers the weights read. First-order
    LOO through the rows after the context starts from the keys at hand (generation's or a prefill's, else
    the base pass's, which it runs first where the estimate did not); through every row it is a forward and
    a backward pass of its own. Each is a preview: any failure (weights refused for
    this model, a model neither can read) is logged and the run goes on exactly as without it.
    """

    def __init__(self, report: RunReport, levels: tuple[str, ...], next_phase: str, share_base_pass: bool,
                 stop: Callable[[], None]) -> None:
        self.report, self.levels, self.next_phase = report, levels, next_phase
        self.share_base_pass, self.stop = share_base_pass, stop
        self.found: list[dict[str, Any]] = []

    def __call__(self, doc: Document, scorer: LocalScorer) -> None:
        steps = {ESTIMATE_LEVEL: (0, lambda: estimate(doc, scorer, share_base_pass=self.share_base_pass)),
                 FIRST_ORDER_QR_LEVEL: (1, lambda: first_order(doc, scorer, rows="question and response")),
                 FIRST_ORDER_LEVEL: (1, lambda: first_order(doc, scorer))}
        for level in self.levels:
            backward, run = steps[level]
            self.stop()
            self.report.phase(_PREVIEW_PHASES[level])
            start = time.perf_counter()
            try:
                if level == FIRST_ORDER_QR_LEVEL and self.share_base_pass and scorer.keys_at_hand() is None:
                    scorer.log_prob(doc.text)  # the method's own base pass, now: its keys spare the context's
                    start = time.perf_counter()
                out = run() if level == ESTIMATE_LEVEL else _not_counted(scorer, run)
            except Exception:  # a preview must never stop the run it previews
                log.warning("%s preview skipped for %s", level, scorer.model_id, exc_info=True)
                continue
            sentences = list(out.sentence_scores)
            self.report.partial(level, {i: x for i, x in enumerate(sentences) if x is not None})
            self.found.append({"by": level, "sentences": sentences, "paragraphs": list(out.paragraph_scores),
                               "seconds": time.perf_counter() - start, "passes": 1, "backward_passes": backward,
                               "model": scorer.model_id})
        self.report.phase(self.next_phase)


def _not_counted(scorer: LocalScorer, run: Callable[[], Any]) -> Any:
    """``run()``, its passes left out of the scorer's figures: a first-order preview's work is its own
    (``extra["estimate"]`` keeps its passes and seconds), and the method's figures stay the method's, so that
    pages comparing methods by their passes compare the same thing with the previews on or off. (The learned
    estimate's pass, where it is the method's base pass, is the method's.)"""
    kept = replace(scorer.stats)
    try:
        return run()
    finally:
        for name, value in vars(kept).items():
            setattr(scorer.stats, name, value)


def _with_estimate(result: AttributionResult, found: list[dict[str, Any]]) -> AttributionResult:
    """``result`` with its previews' agreement with the exact sentence scores: the last preview whole in
    ``extra["estimate"]`` (what the heatmap's tooltips compare), the ones before it as figures in its
    ``"before"``.

    Agreement over the sentences the method scored (a pruned one has no exact score): Spearman and the
    overlap of the top :data:`TOP_K_AGREEMENT`, by the metrics module's rules; NaN is stored as None.
    """
    exact = list(result.scores("sentence"))
    clean = lambda x: None if x != x else float(x)  # noqa: E731  (NaN -> None: JSON has no NaN)
    agreed = [{**f, "spearman": clean(spearman(f["sentences"], exact)),
               f"top{TOP_K_AGREEMENT}": clean(top_k_overlap(f["sentences"], exact, TOP_K_AGREEMENT))} for f in found]
    before = [{k: f[k] for k in ("by", "seconds", "spearman", f"top{TOP_K_AGREEMENT}")} for f in agreed[:-1]]
    return result.with_extra(estimate={**agreed[-1], **({"before": before} if before else {})})


def eta_seconds(first: tuple[float, int] | None, now: tuple[float, int], total: int) -> float | None:
    """Seconds left at the pace measured since the first pass ended: ``(seconds, passes done)`` then and now.

    The first pass is left out of the pace because it carries one-time costs (building the prefix cache,
    warming up the model's kernels), which made early estimates jump. None until a pass after the first
    has been measured; 0 when nothing is left.
    """
    if first is None or now[1] <= first[1] or now[0] < first[0]:
        return None
    per_pass = (now[0] - first[0]) / (now[1] - first[1])
    return max(0, total - now[1]) * per_pass


class Passes:
    """A run's progress in forward passes over all rounds of its method, for one bar and its ETA.

    ``total`` starts as the registry's plan (:func:`planned_passes`) and follows the method: a round
    that prunes re-plans the rest (:func:`~attribot_core.methods.base.replan`), and a round larger than
    planned raises it. Rounds arrive as ``(0, n) ... (n, n)`` (:func:`~attribot_core.methods.base.loo_round`),
    so a ``done`` lower than the last one starts a new round. ``finish`` reports the end: done = total.
    """

    def __init__(self, report: RunReport, total: int, stop: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.report, self.total, self.stop, self.clock = report, total, stop, clock
        self.before, self.last, self.round_total = 0, 0, 0
        self.first: tuple[float, int] | None = None  # (time, passes) when the first pass had ended

    @property
    def done(self) -> int:
        return self.before + self.last

    def __call__(self, done: int, total: int, what: str) -> None:
        self.stop()
        if done < self.last:  # a new round (hierarchical, tree and pruning have several)
            self.before += self.last
        self.last, self.round_total = done, total
        self.total = max(self.total, self.before + total)
        self._tell()

    def replan(self, rest: int) -> None:
        """The method's remaining rounds take ``rest`` passes after the current round."""
        self.total = self.before + max(self.last, self.round_total) + rest
        self._tell()

    def finish(self) -> None:
        self.total = self.done
        self._tell()

    def _tell(self) -> None:
        now = (self.clock(), self.done)
        if self.first is None and self.done >= 1:
            self.first = now
        self.report.progress(self.done, self.total, eta_seconds(self.first, now, self.total))


def planned_passes(request: RunRequest, n_sentences: int, n_paragraphs: int) -> int:
    """A first estimate of the run's forward passes, from the method's registered estimate (methods with
    rounds refine the progress total as they go)."""
    return get_method(request.method).planned_passes(n_paragraphs, n_sentences, dict(request.params))


def execute(
    request: RunRequest,
    models: ModelCache,
    report: RunReport | None = None,
    cancel: threading.Event | None = None,
    *,
    lock: threading.Lock = MODEL_LOCK,
    on_wait: Callable[[float], None] | None = None,
    estimate_first: bool = False,
    prefilled: KeptPass | None = None,
) -> AttributionResult:
    """Compute the result of ``request``. Raises :class:`Cancelled` when ``cancel`` is set.

    ``estimate_first``: report previews of the exact scores before the first ablation pass where they apply
    (:func:`previews`); off by default (the CLI and batches), on in the app, which shows them live.
    They change no score. The learned estimate costs no forward pass of its own where the method starts
    from the full context's base pass (``loo``, ``loo-naive``, ``hierarchical``, ``tree``): its pass is
    that base pass (:class:`_PreviewStage`); one pass where it does not (``pruning``, ``proxy``). The
    first-order preview of a long run is a forward and a backward pass of its own.

    ``prefilled``: the keys and values of the prompt computed ahead (:func:`~attribot_core.generate.prefill`,
    the app's executor does it while a page shows the inputs): generation starts from them, and so does the
    estimate of a given response. Exact scores never use them.
    """
    report = report or RunReport()

    def stop(*_: Any) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped.")

    check_request(request)
    spec = get_method(request.method)
    first = needs_preparing(request.model)  # assembled and dequantised once after installing, or meanwhile
    report.phase(f"Loading model {request.model} …" + (" (its first load after installing prepares its weights: "
                                                       "about a minute; later loads take a second)" if first else ""))
    target = models.get(request.model.strip())
    proxy = models.get(request.proxy_model.strip()) if spec.needs_proxy and request.proxy_model else None
    stop()
    waited = time.perf_counter()
    while not lock.acquire(timeout=0.25):
        stop()
        if on_wait is not None:
            on_wait(time.perf_counter() - waited)
    try:
        doc = request.document()
        passes = Passes(report, planned_passes(request, len(doc.sentences), len(doc.paragraphs)), stop)
        shown = previews(request, passes.total) if estimate_first else ()
        prefilled = prefilled if prefilled is not None and prefilled.model_id == target.model_id else None
        generate_s, kept = None, [prefilled] if prefilled is not None else []
        response = report.known_response(request)
        if response is None and request.generates:
            report.phase(f"Generating the response (up to {request.max_new_tokens} tokens) …")
            t = time.perf_counter()
            response = generate_response(target, request.context, request.question,
                                         max_new_tokens=request.max_new_tokens,
                                         should_stop=lambda: cancel is not None and cancel.is_set(),
                                         on_text=report.partial_response, start=prefilled,
                                         on_pass=kept.append)  # where the estimate starts
            stop()
            generate_s = time.perf_counter() - t
            report.generated(response)
        stop()
        attributing = f"Attributing with {spec.title} …"
        stage = (_PreviewStage(report, shown, attributing, request.method in FULL_BASE_METHODS, stop)
                 if shown else None)
        report.phase(_PREVIEW_PHASES[shown[0]] if stage else attributing)
        report.progress(0, passes.total)
        with reporting_partial(lambda level, scores: (stop(), report.partial(level, scores))):
            result = attribute(
                request.source, request.question, model=target, method=request.method, proxy_model=proxy,
                response=response if response is not None else request.response,
                response_span=request.response_span, progress=passes, before_method=stage,
                kept_pass=kept[-1] if kept else None,
                max_new_tokens=request.max_new_tokens, **request.passage_args(), **dict(request.params),
            )
        passes.finish()
    finally:
        lock.release()
    if generate_s is not None:
        result = replace(result, timings={**result.timings, "generate_s": generate_s})
    if stage is not None and stage.found:
        result = _with_estimate(result, stage.found)
    return result
