"""The benchmark harness: faithfulness and speed of attribution configurations against the target's exact LOO.

It lives next to the benchmarks (``bench/eval.py`` drives it), not in the engine: the metrics it
records are the engine's (:mod:`attribot_core.metrics`), so the app's Compare page and this harness
score a configuration the same way.

One example is evaluated like this: the target generates the response (greedy; timed, that is the
"generation" cost), the target's exact cached ``loo`` over sentences is the reference, and every
other configuration attributes the *same* response tokens. Per configuration we record:

* faithfulness to the reference: Pearson and Spearman correlation over sentences both scored, top-k
  overlap (k = 1, 3), recall of the reference's outlier sentences (:func:`attribot_core.metrics.outliers`: exact LOO
  >= mean + 2 std; recovered = inside the configuration's top-|outliers|), and gold-evidence
  recall@1/@3 of its own ranking (recall normalised by min(k, |gold|));
* cost: forward passes per model, *target-equivalent* passes (a proxy pass counts as the ratio of
  the proxy's parameter count to the target's, a proxy for its FLOPs), wall seconds, peak RSS, and
  the speed-up against the target's naive LOO of the same example: measured when ``loo-naive`` ran
  on that example, otherwise estimated as one timed full forward pass x the summed token lengths of
  the naive ablations over the full prompt's length (flagged ``naive_measured = False``);
* ``gen_over_attr``: generation seconds / attribution seconds (> 1 = attribution is faster).

Rows are plain dicts (JSON-ready) so that a benchmark can stream them to disk and rebuild its tables
and plot from them; :func:`aggregate` averages them over examples.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from attribot_core.gold import gold_sentences
from attribot_core.metrics import FAITHFULNESS, faithfulness, outliers

__all__ = [
    "Config",
    "ExampleSetup",
    "aggregate",
    "evaluate_example",
    "match_gold",
    "prepare_example",
    "quick_configs",
    "run_config",
    "score_row",
    "setup_dict",
    "standard_configs",
]

REFERENCE = "loo"


@dataclass(frozen=True)
class Config:
    """One configuration to evaluate: a registered method, its parameters and (maybe) a proxy.

    ``family`` groups points in tables and plots: ``exact`` (LOO), ``attribot`` (AttriBoT's
    approximations) or ``baseline`` (surrogate, attention).
    """

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    proxy: str | None = None
    family: str = "attribot"


def standard_configs(proxies: Mapping[str, str]) -> list[Config]:
    """The issue's configuration set; ``proxies`` maps a short label to a loaded-proxy key.

    Sentence-level LOO only (``paragraphs=False``) for the exact methods: that is the cost a user
    pays for sentence attributions and the reference the approximations are compared with.
    """
    configs = [
        Config("loo", "loo", {"paragraphs": False}, family="exact"),
        Config("loo-naive", "loo-naive", {"paragraphs": False}, family="exact"),
        *(Config(f"hierarchical k={k}", "hierarchical", {"keep_paragraphs": k}) for k in (1, 2, 3)),
        *(Config(f"proxy ({label})", "proxy", {"paragraphs": False}, key) for label, key in proxies.items()),
    ]
    for label, key in proxies.items():
        configs += [Config(f"pruning m={m} ({label})", "pruning", {"keep_sentences": m}, key) for m in (3, 5)]
    for label, key in proxies.items():
        configs += [Config(f"full stack k=2 m={m} ({label})", "pruning", {"keep_sentences": m, "keep_paragraphs": 2},
                           key) for m in (3, 5)]
    configs += [Config(f"surrogate N={n}", "surrogate", {"n_ablations": n}, family="baseline") for n in (16, 32, 64)]
    configs.append(Config("attention", "attention", family="baseline"))
    return configs


def quick_configs(proxy_key: str) -> list[Config]:
    """A small set for smoke runs on one model (the proxy may be the target itself)."""
    return [
        Config("loo", "loo", {"paragraphs": False}, family="exact"),
        Config("loo-naive", "loo-naive", {"paragraphs": False}, family="exact"),
        Config("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
        Config("pruning m=3 (self)", "pruning", {"keep_sentences": 3}, proxy_key),
        Config("full stack k=2 m=3 (self)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2}, proxy_key),
        Config("surrogate N=16", "surrogate", {"n_ablations": 16}, family="baseline"),
        Config("attention", "attention", family="baseline"),
    ]


# -- metrics -----------------------------------------------------------------------------------------
def match_gold(doc, gold: Sequence[str]) -> list[int]:
    """Indices of the sentences of ``doc`` that are gold evidence, by the engine's one rule."""
    return sorted(gold_sentences(doc, gold))


# -- running -----------------------------------------------------------------------------------------
@dataclass
class ExampleSetup:
    """One example ready to attribute: its segmentation, the target's response and timing anchors."""

    id: str
    context: str
    question: str
    response: Any  # prompt.Response (kept untyped to keep this module import-light)
    gold: list[int]
    long: bool
    n_sentences: int
    n_paragraphs: int
    prompt_tokens: int
    response_tokens: int
    generate_s: float
    full_pass_s: float
    naive_estimate_s: float


def prepare_example(example: Mapping[str, Any], target, *, max_new_tokens: int = 64,
                    response=None, generate_s: float | None = None) -> ExampleSetup:
    """Generate (or take) the target's response and time one full forward pass of the target.

    The naive-LOO time is estimated from that pass: every naive ablation reruns the whole prompt, so
    its cost is the full pass scaled by the ablated prompt's token count.
    """
    from attribot_core.generate import generate_response
    from attribot_core.scoring import LocalScorer
    from attribot_core.segment import segment

    doc = segment(example["context"])
    question = example["question"]
    if response is None:
        t = time.perf_counter()
        response = generate_response(target, example["context"], question, max_new_tokens=max_new_tokens)
        generate_s = time.perf_counter() - t
    scorer = LocalScorer(target, question, response, reuse_prefix=False)
    t = time.perf_counter()
    scorer.log_prob(doc.text)
    full_s = time.perf_counter() - t
    full_len = len(scorer.prompt_ids(doc.text)) + len(scorer.response_ids)
    variant_lens = [len(scorer.prompt_ids(doc.without([s.index]))) + len(scorer.response_ids) for s in doc.sentences]
    return ExampleSetup(
        id=str(example.get("id", "")),
        context=example["context"],
        question=question,
        response=response,
        gold=match_gold(doc, example.get("gold_sentences", [])),
        long=bool(example.get("long", False)),
        n_sentences=len(doc.sentences),
        n_paragraphs=len(doc.paragraphs),
        prompt_tokens=full_len - len(scorer.response_ids),
        response_tokens=len(scorer.response_ids),
        generate_s=float(generate_s or float("nan")),
        full_pass_s=full_s,
        naive_estimate_s=full_s * (1 + sum(variant_lens) / full_len),
    )


class _PeakRSS:
    """Samples this process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, every_s: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self._every = every_s
        self.start_rss = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _n_params(lm) -> int:
    if "n_params" not in lm.info:
        lm.info["n_params"] = int(sum(p.numel() for p in lm.model.parameters()))
    return lm.info["n_params"]


def run_config(setup: ExampleSetup, config: Config, target, proxies: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute one example with one configuration; a row with its scores and cost (no metrics yet)."""
    from attribot_core.api import attribute

    row: dict[str, Any] = {"example": setup.id, "config": config.name, "method": config.method,
                           "family": config.family, "params": config.params, "proxy": config.proxy,
                           "long": setup.long}
    proxy = proxies.get(config.proxy) if config.proxy else None
    try:
        with _PeakRSS() as mem:
            t = time.perf_counter()
            result = attribute(setup.context, setup.question, model=target, method=config.method,
                               proxy_model=proxy, response=setup.response, **config.params)
            wall = time.perf_counter() - t
    except Exception as exc:  # one failing configuration must not sink the whole evaluation
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    passes_target = result.forward_passes.get(target.model_id, 0)
    passes_proxy = sum(v for k, v in result.forward_passes.items() if k != target.model_id)
    if proxy is not None and proxy.model_id == target.model_id:  # a model proxying for itself
        passes_proxy, passes_target = 0, result.total_forward_passes
    ratio = _n_params(proxy) / _n_params(target) if proxy is not None else 0.0
    row.update({
        "scores": result.scores("sentence"),
        "scored_by_target": [s.scored_by == target.model_id for s in result.sentences],
        "passes_target": passes_target,
        "passes_proxy": passes_proxy,
        "target_equiv_passes": passes_target + ratio * passes_proxy,
        "wall_s": wall,
        "peak_rss_gb": mem.peak / 1e9,
        "peak_extra_mb": (mem.peak - mem.start_rss) / 1e6,
    })
    return row


def score_row(row: dict[str, Any], reference: Sequence[float | None], setup: ExampleSetup,
              naive_s: float | None) -> dict[str, Any]:
    """Add faithfulness and speed metrics to a row, given the example's reference scores."""
    if "scores" not in row:
        return row
    row.update(faithfulness(row["scores"], reference, setup.gold))
    row["n_outliers"] = len(outliers(reference))
    naive = naive_s if naive_s is not None else setup.naive_estimate_s
    row["naive_measured"] = naive_s is not None
    row["naive_s"] = naive
    row["speedup"] = naive / row["wall_s"] if row["wall_s"] > 0 else float("nan")
    row["generate_s"] = setup.generate_s
    row["gen_over_attr"] = setup.generate_s / row["wall_s"] if row["wall_s"] > 0 else float("nan")
    return row


def evaluate_example(
    example: Mapping[str, Any],
    target,
    proxies: Mapping[str, Any],
    configs: Sequence[Config],
    *,
    naive: bool = True,
    max_new_tokens: int = 64,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[ExampleSetup, list[dict[str, Any]]]:
    """Run every configuration on one example and score each against the target's exact LOO.

    ``loo`` runs first (it is the reference); ``loo-naive`` runs last and only when ``naive`` is on.
    Without it the speed-ups use the estimated naive time (``naive_measured = False``).
    """
    setup = prepare_example(example, target, max_new_tokens=max_new_tokens)
    by_name = {c.name: c for c in configs}
    ref_cfg = by_name.get(REFERENCE, Config(REFERENCE, "loo", {"paragraphs": False}, family="exact"))
    order = [ref_cfg] + [c for c in configs if c.name not in (REFERENCE, "loo-naive")]
    if naive and "loo-naive" in by_name:
        order.append(by_name["loo-naive"])
    rows = []
    for config in order:
        rows.append(run_config(setup, config, target, proxies))
        if on_row:
            on_row(rows[-1])
    reference = rows[0].get("scores")
    if reference is None:
        raise RuntimeError(f"The reference LOO failed on {setup.id}: {rows[0].get('error')}")
    naive_row = next((r for r in rows if r["config"] == "loo-naive" and "wall_s" in r), None)
    naive_s = naive_row["wall_s"] if naive_row else None
    for row in rows:
        score_row(row, reference, setup, naive_s)
    return setup, rows


# -- aggregation -------------------------------------------------------------------------------------
def _mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan"), 0
    return statistics.fmean(v), (statistics.pstdev(v) if len(v) > 1 else 0.0), len(v)


def aggregate(rows: Sequence[Mapping[str, Any]], *, where: Callable[[Mapping[str, Any]], bool] | None = None
              ) -> list[dict[str, Any]]:
    """Mean and std over examples, per configuration (in first-seen order).

    Faithfulness metrics are averaged skipping NaN (``n_<metric>`` says over how many examples);
    the speed-up is a geometric mean (ratios), with its geometric std factor.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if "scores" in r and (where is None or where(r)):
            groups.setdefault(r["config"], []).append(r)
    out = []
    for name, rs in groups.items():
        agg: dict[str, Any] = {"config": name, "family": rs[0]["family"], "method": rs[0]["method"],
                               "n_examples": len(rs)}
        for key in (*FAITHFULNESS, "target_equiv_passes", "passes_target", "passes_proxy", "wall_s",
                    "peak_rss_gb", "peak_extra_mb", "gen_over_attr"):
            mean, std, n = _mean_std(r.get(key) for r in rs)
            agg[key], agg[f"{key}_std"] = mean, std
            if key in FAITHFULNESS:
                agg[f"n_{key}"] = n
        logs = [math.log(r["speedup"]) for r in rs if r.get("speedup", 0) > 0]
        agg["speedup"] = math.exp(statistics.fmean(logs)) if logs else float("nan")
        agg["speedup_std_factor"] = math.exp(statistics.pstdev(logs)) if len(logs) > 1 else 1.0
        agg["naive_measured"] = sum(bool(r.get("naive_measured")) for r in rs)
        out.append(agg)
    return out



def setup_dict(setup: ExampleSetup) -> dict[str, Any]:
    """An :class:`ExampleSetup` as JSON-ready data (the response as text, ids and tokenizer id)."""
    d = asdict(setup)
    resp = setup.response
    d["response"] = {"text": resp.text, "token_ids": list(resp.token_ids or []),
                     "tokenizer_id": resp.tokenizer_id, "complete": resp.complete}
    d.pop("context")
    return d
