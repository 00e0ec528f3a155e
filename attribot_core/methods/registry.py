"""The list of attribution methods: name -> how to run it, what it needs, its parameters, its cost.

Everything else is built from this list: the CLI's flags, the app's parameter widgets and their help,
the input checks (:func:`attribot_core.api.check_params`), progress totals and the time estimate. A new
method is its own file plus one :func:`register` call with its :class:`ParamSpec`\\ s and pass estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..features import PRECISIONS
from ..scoring import Scorer
from ..segment import Document
from .base import MethodOutput
from .baselines import attention, surrogate
from .estimate import estimate
from .first_order import LAYERS, ROWS, first_order
from .hierarchical import hierarchical
from .loo import exact_loo
from .proxy import proxy_loo
from .pruning import PROXY_STAGES, pruning
from .tree import TREE_STAGES, tree, tree_depth

__all__ = ["METHODS", "MethodSpec", "ParamSpec", "PassEstimate", "get_method", "register", "unregister"]

Runner = Callable[..., MethodOutput]
PassEstimate = Callable[[int, int, Mapping[str, Any]], int]
"""``(n_paragraphs, n_sentences, params) -> forward passes`` a run is expected to take (all models,
base passes included); ``params`` holds every parameter of the method (defaults filled in)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a method: its default, what a valid value is, and how a person sets it.

    ``kind`` is the type a value must have (``bool``, ``int``, ``float`` or ``str``; an ``int`` is
    accepted where a ``float`` is asked). ``minimum``/``maximum`` bound numbers (inclusive) and are the
    app's widget limits too; ``check`` is any further rule, and ``valid`` says in words what passes
    (derived from the kind and bounds when empty). ``optional``: ``None`` means "off".
    """

    name: str
    default: Any
    label: str
    help: str
    kind: type = int
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], bool] | None = None
    valid: str = ""
    optional: bool = False

    @property
    def requirement(self) -> str:
        """What a valid value is, in words ("a whole number ≥ 1")."""
        if self.valid:
            return self.valid
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return f"one of {', '.join(self.choices)}" if self.choices else "text"
        words = "a whole number" if self.kind is int else "a number"
        bounds = [f"≥ {_number(self.minimum)}"] if self.minimum is not None else []
        bounds += [f"≤ {_number(self.maximum)}"] if self.maximum is not None else []
        return f"{words} {' and '.join(bounds)}".strip()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid ("must be ... (got ...)."), or None when it is."""
        if value is None and self.optional:
            return None
        if self.kind is bool:
            return None if isinstance(value, bool) else f"must be true or false (got {value!r})."
        if self.kind is str:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
            return None if ok else f"must be {self.requirement} (got {value!r})."
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if self.kind is float and (not (is_int or isinstance(value, float)) or value != value):
            return f"must be a number (got {value!r})."
        if self.kind is int and not is_int:
            return f"must be a whole number (got {value!r})."
        inside = ((self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
                  and (self.check is None or self.check(value)))
        return None if inside else f"must be {self.requirement} (got {value!r})."


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _one_pass(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    return 1


def _forward_and_backward(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    # forward, backward and every row's edges in bfloat16: 1.8-2.5x one forward pass's time over every layer,
    # 1.3-1.6x over the upper half (bench/first_order_variants.py); pruning's first-order stage takes every layer.
    # The rows after the context alone: the context's forward pass, and a few rows forward and backward
    if params.get("rows") == "question and response":
        return 1
    return 2 if params.get("layers") == "upper half" else 3


@dataclass(frozen=True)
class MethodSpec:
    """A registered method. ``run(doc, target, proxy, progress=..., **params)`` returns its output."""

    name: str
    title: str
    summary: str
    run: Runner
    parameters: tuple[ParamSpec, ...] = ()
    passes: PassEstimate = _one_pass
    needs_proxy: bool = False
    reuse_prefix: bool = True  # the target/proxy scorers reuse cached prefixes
    exact: bool = False  # equals the target's exact LOO by construction

    @property
    def params(self) -> dict[str, Any]:
        """Parameter name -> default, in the order of ``parameters``."""
        return {p.name: p.default for p in self.parameters}

    def param(self, name: str) -> ParamSpec:
        return next(p for p in self.parameters if p.name == name)

    def param_problem(self, params: Mapping[str, Any]) -> str | None:
        """The first reason ``params`` cannot be used with this method, as a sentence; None when they can."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            return f"Method '{self.name}' has no parameter(s) {unknown}; it takes {sorted(self.params)}."
        for p in self.parameters:
            problem = p.problem(params[p.name]) if p.name in params else None
            if problem:
                return f"Method '{self.name}': {p.name} {problem}"
        return None

    def planned_passes(self, n_paragraphs: int, n_sentences: int, params: Mapping[str, Any] | None = None) -> int:
        """Forward passes a run over a context of this shape is expected to take (an estimate for rounds
        that depend on scores: hierarchical, tree and pruning keep the best spans of a round)."""
        return max(1, int(self.passes(n_paragraphs, n_sentences, {**self.params, **(params or {})})))


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method: from now on it is in the CLI, the app, the checks and the benchmarks."""
    METHODS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (a plug-in's or a test's); unknown names are ignored."""
    METHODS.pop(name, None)


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method '{name}'. Choose one of: {', '.join(METHODS)}.") from None


def _target_only(fn: Callable[..., MethodOutput]) -> Runner:
    def run(doc: Document, target: Scorer, proxy: Scorer | None, **kw: Any) -> MethodOutput:
        return fn(doc, target, **kw)

    return run


def _with_proxy(fn: Callable[..., MethodOutput]) -> Runner:
    def run(doc: Document, target: Scorer, proxy: Scorer | None, **kw: Any) -> MethodOutput:
        return fn(doc, target, proxy, **kw)

    return run


# -- parameters (shared by several methods) -----------------------------------------------------------
PARAGRAPHS = ParamSpec("paragraphs", True, "Also score whole paragraphs",
                       "One extra ablation per paragraph (for the drill-down).", kind=bool)
KEEP_PARAGRAPHS = ParamSpec("keep_paragraphs", 2, "k: paragraphs to keep",
                            "Score paragraphs first; score sentences only inside the k best paragraphs.",
                            minimum=1)
PRECISION = ParamSpec("precision", "auto", "Precision of the method's pass",
                      "auto: bfloat16 matrix products where that is faster (a float32 model on a CPU with native "
                      "bfloat16; numbers a little apart, see the README); model: the model's own dtype, the same "
                      "numbers everywhere.", kind=str, choices=PRECISIONS)
BRANCHING = ParamSpec("branching", 4, "Branching: children per block",
                      "Tree: paragraphs are grouped into blocks of this many, scored block by block; the best "
                      "blocks are opened, down to paragraphs and sentences.", minimum=2)


# -- pass estimates -------------------------------------------------------------------------------------
def _loo_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    return 1 + n_sentences + (n_paragraphs if params["paragraphs"] else 0)


def _inside(n_paragraphs: int, n_sentences: int, keep: int) -> int:
    """Sentences inside ``keep`` average paragraphs (ties can keep more)."""
    return min(n_sentences, math.ceil(keep * n_sentences / max(n_paragraphs, 1)))


def _hierarchical_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    keep = params["keep_paragraphs"] or 2
    # the sentence round's base is a new context only when a paragraph was pruned (else it is memoised)
    return (1 + n_paragraphs) + (keep < n_paragraphs) + _inside(n_paragraphs, n_sentences, keep)


def _tree_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    keep, branching = params["keep_paragraphs"] or 2, params["branching"]
    depth = tree_depth(n_paragraphs, branching)
    passes = 1 + (min(branching, n_paragraphs) if depth else n_paragraphs)  # the first round
    for _ in range(max(depth - 1, 0)):  # every later round opens the kept blocks
        passes += 1 + min(keep * branching, n_paragraphs)
    return passes + (keep < n_paragraphs) + _inside(n_paragraphs, n_sentences, keep)


def _tree_or_estimate_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    if params["proxy_stage"] != "estimate":
        return _tree_passes(n_paragraphs, n_sentences, params)
    keep = params["keep_paragraphs"] or 2
    return 1 + 1 + _inside(n_paragraphs, n_sentences, keep)  # the estimate, the kept paragraphs' base, sentences


def _pruning_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    stage = params["proxy_stage"]
    if stage == "auto":
        stage = "loo" if params["keep_paragraphs"] is None else "hierarchical"
    proxy = {"loo": lambda: 1 + n_sentences,
             "hierarchical": lambda: _hierarchical_passes(n_paragraphs, n_sentences, params),
             "tree": lambda: _tree_passes(n_paragraphs, n_sentences, params),
             "estimate": lambda: 1,
             "first-order": lambda: _forward_and_backward(n_paragraphs, n_sentences, params)}[stage]()
    return proxy + 1 + min(params["keep_sentences"], n_sentences)


def _surrogate_passes(n_paragraphs: int, n_sentences: int, params: Mapping[str, Any]) -> int:
    return 1 + params["n_ablations"]


# -- the methods ------------------------------------------------------------------------------------------
register(MethodSpec(
    "loo", "Exact LOO (KV-cache reuse)",
    "Leave each sentence out; reuse the cached keys/values of the unchanged prefix. Exact.",
    _target_only(exact_loo), (PARAGRAPHS,), _loo_passes, exact=True))
register(MethodSpec(
    "loo-naive", "Exact LOO (naive)",
    "Leave each sentence out and rerun the whole prompt from scratch: the slow reference.",
    _target_only(exact_loo), (PARAGRAPHS,), _loo_passes, reuse_prefix=False, exact=True))
register(MethodSpec(
    "hierarchical", "Hierarchical LOO",
    "LOO over paragraphs, keep the top-k, then LOO over sentences inside them only.",
    _target_only(hierarchical), (KEEP_PARAGRAPHS,), _hierarchical_passes))
register(MethodSpec(
    "tree", "Tree LOO (recursive hierarchical)",
    "Blocks of paragraphs -> paragraphs -> sentences: LOO over the nodes of a round, keep the top-k, "
    "descend. Cost grows with log(paragraphs); for documents of hundreds of paragraphs.",
    _target_only(tree),
    (BRANCHING, KEEP_PARAGRAPHS,
     ParamSpec("proxy_stage", "loo", "How paragraphs are ranked",
               "loo: LOO rounds over blocks and paragraphs; estimate: the learned one-pass estimate ranks every "
               "paragraph, exact LOO only for the sentences of the top k.", kind=str, choices=TREE_STAGES)),
    _tree_or_estimate_passes))
register(MethodSpec(
    "proxy", "Proxy-model LOO",
    "A smaller proxy model computes LOO on the target's response.",
    _with_proxy(proxy_loo), (PARAGRAPHS,), _loo_passes, needs_proxy=True))
register(MethodSpec(
    "pruning", "Proxy pruning",
    "The proxy ranks the sentences (exact LOO, hierarchical, tree, its one-pass learned estimate or its "
    "first-order LOO: proxy_stage); the target rescores its top-m within the pruned context.",
    _with_proxy(pruning),
    (ParamSpec("keep_sentences", 5, "m: sentences the target rescores",
               "The proxy ranks every sentence; the target rescores only its top m.", minimum=1),
     replace(KEEP_PARAGRAPHS, default=None, optional=True,
             help="Optional: the proxy scores paragraphs first and ranks sentences only inside the k best."),
     ParamSpec("proxy_stage", "auto", "How the proxy ranks sentences",
               "auto: LOO over all sentences, or hierarchical when k is set; tree for documents of hundreds "
               "of paragraphs; estimate: one pass of the proxy's learned estimator (needs shipped or trained "
               "weights for the proxy); first-order: one forward and one backward pass of the proxy "
               "(first-order LOO, no weights needed).", kind=str, choices=PROXY_STAGES),
     BRANCHING),
    _pruning_passes, needs_proxy=True))

register(MethodSpec(
    "estimate", "Learned one-pass estimate",
    "One forward pass: the attention mass from the response to each sentence, per layer and head; its square "
    "roots weighted by head weights fitted to this model's exact LOO. Estimated nats, not measured; needs "
    "weights for the model (shipped for the default model, or attribot estimator train).",
    _target_only(estimate),
    (ParamSpec("weights", "", "Estimator weights file",
               "A weights JSON written by attribot estimator train; empty: the weights shipped for the model.",
               kind=str, valid="a file path, or empty for the shipped weights"),
     PRECISION),
    _one_pass))

register(MethodSpec(
    "first-order", "First-order LOO (forward + backward pass)",
    "One forward and one backward pass: each sentence's LOO to first order, the change in log p(response) "
    "as every head's attention from the later tokens (context, question, response) to the sentence is taken "
    "away, through the gradient. "
    "Predicted nats, not measured; needs no trained weights (any local model).",
    _target_only(first_order),
    (PRECISION,
     ParamSpec("layers", "all", "Layers whose effects are summed",
               "all: every layer; upper half: the upper half only, so the backward pass stops half-way down "
               "(cheaper; how far apart: see the README).", kind=str, choices=LAYERS),
     ParamSpec("rows", "all", "Tokens whose attention is followed",
               "all: every token after a sentence (the later context, the question, the response); question and "
               "response: the tokens after the context only, so the context needs no backward pass (about one "
               "forward pass; how far apart: see the README).", kind=str, choices=ROWS)),
    _forward_and_backward))

# -- baselines: what AttriBoT is compared against ------------------------------------------------------
register(MethodSpec(
    "surrogate", "ContextCite-style surrogate",
    "Score N random half-context ablations, fit a sparse linear model (Lasso); a sentence's score is "
    "its weight in nats. A baseline: cost N+1 forward passes.",
    _target_only(surrogate),
    (ParamSpec("n_ablations", 32, "N: random ablations",
               "Forward passes on random subsets of sentences (a baseline).", minimum=1),
     ParamSpec("seed", 0, "Random seed", "Same seed, same ablations.", minimum=0),
     ParamSpec("keep_prob", 0.5, "Probability of keeping a sentence", "In each random ablation.", kind=float,
               minimum=0.0, maximum=1.0, check=lambda x: x > 0, valid="a probability above 0 and at most 1"),
     ParamSpec("alpha", 0.01, "Lasso alpha (sparsity)", "Larger values give fewer non-zero sentence weights.",
               kind=float, minimum=0.0)),
    _surrogate_passes))
register(MethodSpec(
    "attention", "Attention baseline",
    "Attention mass from the response to each sentence, averaged over heads and layers, in one "
    "forward pass. A baseline: a fraction of attention, not nats.",
    _target_only(attention)))
