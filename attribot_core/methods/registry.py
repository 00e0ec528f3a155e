"""The list of attribution methods: name -> how to run it, what it needs, its parameters.

The CLI, the app's pickers and the benchmarks read this list, so a new method appears everywhere
once it is registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..scoring import Scorer
from ..segment import Document
from .base import MethodOutput
from .baselines import attention, surrogate
from .hierarchical import hierarchical
from .loo import exact_loo
from .proxy import proxy_loo
from .pruning import PROXY_STAGES, pruning
from .tree import tree

__all__ = ["METHODS", "PARAM_CHOICES", "MethodSpec", "get_method", "register"]

Runner = Callable[..., MethodOutput]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method. ``run(doc, target, proxy, progress=..., **params)`` returns its output."""

    name: str
    title: str
    summary: str
    run: Runner
    params: dict[str, Any] = field(default_factory=dict)  # parameter -> default
    needs_proxy: bool = False
    reuse_prefix: bool = True  # the target/proxy scorers reuse cached prefixes
    exact: bool = False  # equals the target's exact LOO by construction


METHODS: dict[str, MethodSpec] = {}

PARAM_CHOICES: dict[str, tuple[str, ...]] = {"proxy_stage": PROXY_STAGES}
"""The allowed values of a method's text parameters (checked by ``check_inputs``, offered by the app)."""


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.name] = spec
    return spec


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


register(MethodSpec(
    "loo", "Exact LOO (KV-cache reuse)",
    "Leave each sentence out; reuse the cached keys/values of the unchanged prefix. Exact.",
    _target_only(exact_loo), {"paragraphs": True}, exact=True))
register(MethodSpec(
    "loo-naive", "Exact LOO (naive)",
    "Leave each sentence out and rerun the whole prompt from scratch: the slow reference.",
    _target_only(exact_loo), {"paragraphs": True}, reuse_prefix=False, exact=True))
register(MethodSpec(
    "hierarchical", "Hierarchical LOO",
    "LOO over paragraphs, keep the top-k, then LOO over sentences inside them only.",
    _target_only(hierarchical), {"keep_paragraphs": 2}))
register(MethodSpec(
    "tree", "Tree LOO (recursive hierarchical)",
    "Blocks of paragraphs -> paragraphs -> sentences: LOO over the nodes of a round, keep the top-k, "
    "descend. Cost grows with log(paragraphs); for documents of hundreds of paragraphs.",
    _target_only(tree), {"branching": 4, "keep_paragraphs": 2}))
register(MethodSpec(
    "proxy", "Proxy-model LOO",
    "A smaller proxy model computes LOO on the target's response.",
    _with_proxy(proxy_loo), {"paragraphs": True}, needs_proxy=True))
register(MethodSpec(
    "pruning", "Proxy pruning",
    "The proxy ranks the sentences (exact LOO, hierarchical or tree: proxy_stage); the target rescores "
    "its top-m within the pruned context.",
    _with_proxy(pruning), {"keep_sentences": 5, "keep_paragraphs": None, "proxy_stage": "auto", "branching": 4},
    needs_proxy=True))

# -- baselines: what AttriBoT is compared against ------------------------------------------------------
register(MethodSpec(
    "surrogate", "ContextCite-style surrogate",
    "Score N random half-context ablations, fit a sparse linear model (Lasso); a sentence's score is "
    "its weight in nats. A baseline: cost N+1 forward passes.",
    _target_only(surrogate), {"n_ablations": 32, "seed": 0, "keep_prob": 0.5, "alpha": 0.01}))
register(MethodSpec(
    "attention", "Attention baseline",
    "Attention mass from the response to each sentence, averaged over heads and layers, in one "
    "forward pass. A baseline: a fraction of attention, not nats.",
    _target_only(attention)))
