"""Running the engine for the app: cached models, one lock around model calls, result caching.

The app adds nothing to the engine's numbers: a run is one ``attribot_core.attribute`` call. This
module only decides *when* to call it (not again for identical inputs), makes concurrent sessions take
turns on the models (one process-wide lock; a forward pass is not safe to interleave with another on
the same model, and two at once would only split 2 CPU cores), and lets a run be cancelled between
forward passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from attribot_core import (
    AttributionResult,
    ContextTooLong,
    InputError,
    LoadedModel,
    ModelError,
    Response,
    attribute,
    check_inputs,
    generate_response,
    get_method,
    load_model,
    segment,
)
from attribot_core.segment import is_blank

__all__ = [
    "MODEL_LOCK",
    "USER_ERRORS",
    "Cancelled",
    "RunCaches",
    "RunRequest",
    "check_request",
    "get_model",
    "model_lock",
    "run_attribution",
    "shared_caches",
]

log = logging.getLogger("attribot.studio")

MODEL_LOCK = threading.Lock()
"""Held around every model call (generation and scoring), across all sessions of this process."""


class Cancelled(Exception):
    """The user stopped the run; nothing was stored."""


USER_ERRORS = (InputError, ModelError, ContextTooLong, ValueError, OSError)
"""Errors whose message is written for the user; anything else is a bug and is logged."""


@dataclass(frozen=True)
class RunRequest:
    """Every input that determines a result: the key of the result cache.

    ``response`` empty means "generate it" (greedy, so it is deterministic for the other fields).
    """

    context: str
    question: str
    model: str
    method: str = "loo"
    params: tuple[tuple[str, Any], ...] = ()
    proxy_model: str | None = None
    response: str = ""
    response_span: tuple[int, int] | None = None
    max_new_tokens: int = 64

    def but(self, **changes: Any) -> RunRequest:
        return replace(self, **changes)

    @classmethod
    def from_result(cls, result: AttributionResult) -> RunRequest:
        """The request that reproduces ``result`` (its response fixed), e.g. for a loaded JSON file."""
        spec = get_method(result.method)
        params = tuple(sorted((k, v) for k, v in result.settings.items() if k in spec.params))
        return cls(result.context, result.question, result.model, result.method, params,
                   result.proxy_model, result.response, result.response_span)


@dataclass
class RunCaches:
    """Finished results by request, and generated responses (with their token ids); thread-safe.

    One instance serves the whole process: identical inputs give the stored result at once, in any
    session (a classroom clicking the same example computes it once). Only complete results are put.
    """

    results: OrderedDict[RunRequest, AttributionResult] = field(default_factory=OrderedDict)
    responses: OrderedDict[tuple[str, str, str, int], Response] = field(default_factory=OrderedDict)
    max_results: int = 128
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, request: RunRequest) -> AttributionResult | None:
        with self.lock:
            result = self.results.get(request)
            if result is not None:
                self.results.move_to_end(request)
            return result

    def put(self, request: RunRequest, result: AttributionResult) -> None:
        with self.lock:
            self.results[request] = result
            self.results.move_to_end(request)
            while len(self.results) > self.max_results:
                self.results.popitem(last=False)

    @staticmethod
    def _response_key(request: RunRequest) -> tuple[str, str, str, int]:
        return request.model, request.context, request.question, request.max_new_tokens

    def generated(self, request: RunRequest) -> Response | None:
        with self.lock:
            return self.responses.get(self._response_key(request))

    def put_generated(self, request: RunRequest, response: Response) -> None:
        with self.lock:
            self.responses[self._response_key(request)] = response
            while len(self.responses) > self.max_results:
                self.responses.popitem(last=False)

    def known_response(self, request: RunRequest) -> Response | str:
        """The generated ``Response`` (exact token ids) whose text is ``request.response``, if any.

        Re-encoding a generated text can split it into different tokens; reusing the ids keeps the
        attribution of a part of the response, or another method on it, about the same tokens.
        """
        with self.lock:
            for (_, context, question, _), response in self.responses.items():
                if (context, question, response.text) == (request.context, request.question, request.response):
                    return response
        return request.response


@st.cache_resource(show_spinner=False)
def shared_caches() -> RunCaches:
    """The process-wide result cache (see :class:`RunCaches`)."""
    return RunCaches()


@st.cache_resource(show_spinner=False, max_entries=4)
def get_model(spec: str) -> LoadedModel:
    """Load a model once per process (every session shares it; calls go through ``MODEL_LOCK``)."""
    return load_model(spec)


@contextmanager
def model_lock(on_wait: Callable[[float], None] | None = None, poll: float = 0.25) -> Iterator[None]:
    """Hold ``MODEL_LOCK``; while another session holds it, call ``on_wait(seconds waited)``.

    ``on_wait`` may raise (Stop, or Streamlit ending the script), which leaves without the lock.
    """
    start = time.perf_counter()
    while not MODEL_LOCK.acquire(timeout=poll):
        if on_wait is not None:
            on_wait(time.perf_counter() - start)
    try:
        yield
    finally:
        MODEL_LOCK.release()


def check_request(request: RunRequest) -> None:
    """Reject inputs that cannot give a meaningful attribution, with a message that says what to do."""
    if is_blank(request.context):
        raise InputError("The context is empty: paste some text, upload a .txt/.md file or load an example.")
    if is_blank(request.question):
        raise InputError("The question is empty: ask something the context can answer.")
    if not request.model.strip():
        raise InputError("Choose a model, or type a Hugging Face id, a model folder or a .gguf path.")
    spec = get_method(request.method)
    if len(segment(request.context).sentences) < 2:
        raise InputError(
            "The context is a single sentence. Attribution compares the sentences of a context, so give it "
            "at least two (paragraphs are separated by blank lines)."
        )
    if spec.needs_proxy and not (request.proxy_model or "").strip():
        raise InputError(f"Method '{request.method}' needs a proxy model: choose one below the method.")
    check_inputs(request.context, request.question, method=request.method, has_proxy=bool(request.proxy_model),
                 response=request.response or None, response_span=request.response_span,
                 max_new_tokens=request.max_new_tokens, **dict(request.params))


def _cached_with_generated_response(request: RunRequest, caches: RunCaches) -> AttributionResult | None:
    """A "generate" request whose response was generated before is the run with that response written out."""
    if request.response.strip():
        return None
    generated = caches.generated(request)
    return caches.get(request.but(response=generated.text)) if generated is not None else None


class Reporter:
    """What a run reports to its caller; the app shows it in ``st.status``, tests can record it."""

    def phase(self, text: str) -> None:  # e.g. "Loading model …"
        pass

    def waiting(self, seconds: float) -> None:  # another session holds the model lock
        pass

    def progress(self, done: int, total: int, what: str) -> None:  # engine's ProgressFn
        pass


def run_attribution(
    request: RunRequest,
    caches: RunCaches,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    *,
    use_cache: bool = True,
) -> tuple[AttributionResult, bool]:
    """The result for ``request`` and whether it came from the cache.

    ``use_cache=False`` computes it again (e.g. to time methods side by side) and stores the new result.
    Stores a result only once it is complete: a run stopped midway (``Cancelled``, or Streamlit ending
    the script) leaves the caches as they were, and ``with model_lock()`` always releases the lock.
    """
    reporter = reporter or Reporter()
    check_request(request)
    cached = (caches.get(request) or _cached_with_generated_response(request, caches)) if use_cache else None
    if cached is not None:
        return cached, True

    def check_cancel(*_: Any) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped.")

    def on_progress(done: int, total: int, what: str) -> None:
        check_cancel()
        reporter.progress(done, total, what)

    def on_wait(seconds: float) -> None:
        check_cancel()
        reporter.waiting(seconds)

    spec = get_method(request.method)
    reporter.phase(f"Loading model {request.model} …")
    target = get_model(request.model.strip())
    proxy = get_model(request.proxy_model.strip()) if spec.needs_proxy and request.proxy_model else None
    check_cancel()
    generate_s = None
    with model_lock(on_wait):
        if use_cache:  # another session may have finished the same run meanwhile
            cached = caches.get(request) or _cached_with_generated_response(request, caches)
        if cached is not None:
            return cached, True
        response: Response | str
        if request.response.strip():
            response = caches.known_response(request)
        else:
            response = caches.generated(request)
            if response is None:
                reporter.phase(f"Generating the response (up to {request.max_new_tokens} tokens) …")
                t = time.perf_counter()
                response = generate_response(target, request.context, request.question,
                                             max_new_tokens=request.max_new_tokens)
                generate_s = time.perf_counter() - t
                caches.put_generated(request, response)
            check_cancel()
        reporter.phase(f"Attributing with {spec.title} …")
        result = attribute(
            request.context, request.question, model=target, method=request.method, proxy_model=proxy,
            response=response, response_span=request.response_span, progress=on_progress,
            max_new_tokens=request.max_new_tokens, **dict(request.params),
        )
    if generate_s is not None:
        result = replace(result, timings={**result.timings, "generate_s": generate_s})
    caches.put(request, result)
    if not request.response.strip():  # the same run, asked again with its response written out
        caches.put(request.but(response=result.response), result)
    return result, False
