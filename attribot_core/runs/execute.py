"""Running one request: validate, load models, generate if needed, attribute, and report as it goes.

This is the one place a run's work happens, whatever executes it (the app's background worker, the
batch command, a Ray actor). It writes nothing itself: it reports to a :class:`RunReport`, which the
caller turns into store writes, so only the store module ever writes the database.

Estimate first (``execute(..., estimate_first=True)``, on in the app): a method that scores spans by
ablation on a model with estimator weights first gets the one-pass learned estimate of every sentence,
reported as the partial level :data:`ESTIMATE_LEVEL` before the first ablation pass, so a live view is
coloured after one pass; the exact scores then arrive as without it. The estimate is kept in the
result's ``extra["estimate"]`` beside its agreement with the exact scores; the scores themselves are
the exact method's, unchanged.
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
from ..methods import get_method
from ..methods.base import reporting_partial
from ..methods.estimate import estimate
from ..metrics import spearman, top_k_overlap
from ..models import LoadedModel, ModelError, load_model, needs_preparing
from ..prompt import Response
from ..result import AttributionResult
from ..scoring import ContextTooLong, LocalScorer
from ..segment import Document
from .request import RunRequest

__all__ = ["ESTIMATED_METHODS", "ESTIMATE_LEVEL", "MODEL_LOCK", "USER_ERRORS", "Cancelled", "ModelCache", "Passes",
           "RunReport", "check_request", "estimates_first", "eta_seconds", "execute"]

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

ESTIMATE_LEVEL = "estimate"
"""The partial level of the estimate-first stage: ``{sentence index: estimated LOO in nats}``."""

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


def estimates_first(request: RunRequest) -> bool:
    """Whether a run of ``request`` gets the estimate-first stage (when asked for): a method that scores by
    ablation (:data:`ESTIMATED_METHODS`) on a target model with estimator weights
    (:func:`~attribot_core.estimator.has_weights`, the one rule for that)."""
    return request.method in ESTIMATED_METHODS and has_weights(request.model)


class _EstimateStage:
    """The one-pass estimate of every sentence, reported as :data:`ESTIMATE_LEVEL` before the first ablation
    pass; ``found`` keeps it for the result, or stays None when it could not be had.

    Called by :func:`~attribot_core.api.attribute` on the target's scorer before the method
    (``before_method``). For a method of :data:`FULL_BASE_METHODS` (``share_base_pass``) the estimate's
    pass is the method's base pass: exact LOO then starts with it done, and the stage adds no forward
    pass; for the others it is a pass of its own, stopped after the layers the weights read. It is a
    preview: any failure (weights refused for this model, a model the estimator cannot read) is logged
    and the run goes on exactly as without it.
    """

    def __init__(self, report: RunReport, next_phase: str, share_base_pass: bool) -> None:
        self.report, self.next_phase, self.share_base_pass = report, next_phase, share_base_pass
        self.found: dict[str, Any] | None = None

    def __call__(self, doc: Document, scorer: LocalScorer) -> None:
        start = time.perf_counter()
        try:
            out = estimate(doc, scorer, share_base_pass=self.share_base_pass)
        except Exception:  # a preview must never stop the run it previews
            log.warning("estimate-first stage skipped for %s", scorer.model_id, exc_info=True)
            return
        finally:
            self.report.phase(self.next_phase)
        sentences = list(out.sentence_scores)
        self.report.partial(ESTIMATE_LEVEL, {i: x for i, x in enumerate(sentences) if x is not None})
        self.found = {"sentences": sentences, "paragraphs": list(out.paragraph_scores),
                      "seconds": time.perf_counter() - start, "passes": 1, "model": scorer.model_id}


def _with_estimate(result: AttributionResult, found: dict[str, Any]) -> AttributionResult:
    """``result`` with the estimate and its agreement with the exact sentence scores (``extra["estimate"]``).

    Agreement over the sentences the method scored (a pruned one has no exact score): Spearman and the
    overlap of the top :data:`TOP_K_AGREEMENT`, by the metrics module's rules; NaN is stored as None.
    """
    exact = list(result.scores("sentence"))
    rho = spearman(found["sentences"], exact)
    top = top_k_overlap(found["sentences"], exact, TOP_K_AGREEMENT)
    clean = lambda x: None if x != x else float(x)  # noqa: E731  (NaN -> None: JSON has no NaN)
    return result.with_extra(estimate={**found, "spearman": clean(rho), f"top{TOP_K_AGREEMENT}": clean(top)})


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
) -> AttributionResult:
    """Compute the result of ``request``. Raises :class:`Cancelled` when ``cancel`` is set.

    ``estimate_first``: report the one-pass estimate before the first ablation pass where it applies
    (:func:`estimates_first`); off by default (the CLI and batches), on in the app, which shows it live.
    It changes no score, and costs no forward pass of its own where the method starts from the full
    context's base pass (``loo``, ``loo-naive``, ``hierarchical``, ``tree``): the estimate's pass is that
    base pass (:class:`_EstimateStage`); one pass where it does not (``pruning``, ``proxy``).
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
        generate_s = None
        response = report.known_response(request)
        if response is None and request.generates:
            report.phase(f"Generating the response (up to {request.max_new_tokens} tokens) …")
            t = time.perf_counter()
            response = generate_response(target, request.context, request.question,
                                         max_new_tokens=request.max_new_tokens,
                                         should_stop=lambda: cancel is not None and cancel.is_set(),
                                         on_text=report.partial_response)
            stop()
            generate_s = time.perf_counter() - t
            report.generated(response)
        stop()
        doc = request.document()
        passes = Passes(report, planned_passes(request, len(doc.sentences), len(doc.paragraphs)), stop)
        attributing = f"Attributing with {spec.title} …"
        stage = (_EstimateStage(report, attributing, request.method in FULL_BASE_METHODS)
                 if estimate_first and estimates_first(request) else None)
        report.phase("Estimating every sentence in one pass …" if stage else attributing)
        report.progress(0, passes.total)
        with reporting_partial(lambda level, scores: (stop(), report.partial(level, scores))):
            result = attribute(
                request.source, request.question, model=target, method=request.method, proxy_model=proxy,
                response=response if response is not None else request.response,
                response_span=request.response_span, progress=passes, before_method=stage,
                max_new_tokens=request.max_new_tokens, **request.passage_args(), **dict(request.params),
            )
        passes.finish()
    finally:
        lock.release()
    if generate_s is not None:
        result = replace(result, timings={**result.timings, "generate_s": generate_s})
    if stage is not None and stage.found is not None:
        result = _with_estimate(result, stage.found)
    return result
