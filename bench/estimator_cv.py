"""Which estimator recipe, measured: nested cross-validation of feature and target recipes on stored exact LOO.

The shipped recipe (``attribot_core/estimator.py``: ridge on the square root of the attention mass averaged
over the response tokens, against sign-log LOO standardised within each example) was chosen among others.
This script measures them side by side on a training database of ``bench/train_estimator.py`` (generated
examples, never the evaluation set), so the choice can be checked and revisited:

1. Every row's attention mass is computed once, in one pass of the model (per response token, sentence and
   head), and aggregated over the response tokens four ways: mean (shipped), max, mean of the top 3, and
   weighted by the token's probability. The aggregates are cached beside the database (``--cache``).
2. Each recipe (aggregate, transform, fitted target) is scored by nested cross-validation: ``--folds`` outer
   folds over examples, ``--reps`` shufflings; ridge alpha chosen inside each outer training part
   (:func:`attribot_core.estimator.choose_alpha`); per held-out example Spearman, top-1 and top-3 overlap
   against exact LOO, averaged over the shufflings, then over examples; its difference to the ``attention``
   baseline (mass averaged over every head) with a 95 % bootstrap interval over examples.
3. A learning curve: the shipped recipe trained on fewer examples in the same outer folds, which says
   whether more generated training examples would help.
4. A depth table: the shipped recipe on the first L layers' heads only (an estimator whose pass stops after
   layer L, :mod:`attribot_core.features`), against the same recipe on every layer, with intervals: how
   much of the pass the estimate needs.
5. Beyond attention: three features a sentence has without any pass (its length, its place in the context,
   the share of its words the response also uses), alone and added to the shipped recipe at the shipped
   depth: whether what attention misses is something this simple.
6. The loss: the shipped features at the shipped depth fitted by AT2's within-example correlation loss and
   by a pairwise rank loss instead of the ridge's squared error (issue 19 left the choice open, measured).
7. Weights over first-order LOO: each sentence's first-order LOO through the rows after the context
   (``first-order`` with ``rows="question and response"``, one pass, no weights) kept per head, and ridge
   weights fitted over it per head, per layer, and beside the shipped features, against its plain sum: whether
   learning what attention's weights learn helps there too. Its features need the model once (float32),
   cached beside the aggregates.

    python bench/estimator_cv.py                                  # SmolLM2, its training database
    python bench/estimator_cv.py --model qwen2.5-coder-0.5b \\
        --db bench/results/estimator/qwen2.5-coder-0.5b-train.sqlite --batch estimator-train-qwen0.5b
    python bench/estimator_cv.py --tables loss                    # one table (6.) alone: cv-MODEL-loss.md
    python bench/estimator_cv.py --tables first-order             # (7.): cv-MODEL-first-order.md

The report goes to ``--out`` (Markdown) and stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from readme_block import write_report  # noqa: E402  (bench/readme_block.py)

from attribot_core.estimator import (  # noqa: E402
    choose_alpha,
    fit_weights,
    sign_log_within,
)
from attribot_core.metrics import bootstrap_ci, spearman, top_k_overlap  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "estimator"
AGGREGATES = ("mean", "max", "top3", "confident")
MODEL = "smollm2-135m"  # the model the defaults (--db, --batch) are for; the app's default model is another


def aggregates(per_token: np.ndarray, token_log_probs: np.ndarray) -> dict[str, np.ndarray]:
    """(spans, heads) aggregates of one row's mass ``per_token`` (tokens, spans, heads) over its response tokens:
    the mean (what the shipped estimator weighs), the max, the mean of the 3 largest, and the mean weighted
    by each token's probability under the full context (tokens the model is sure of, often copied ones)."""
    p = np.exp(np.asarray(token_log_probs, dtype=np.float64))
    weights = p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p))
    top = np.sort(per_token, axis=0)[-3:]
    return {"mean": per_token.mean(axis=0), "max": per_token.max(axis=0), "top3": top.mean(axis=0),
            "confident": np.einsum("t,tsh->sh", weights, per_token)}


def load_rows(db: Path, batch: str, model: str, cache: Path, *, first_order: bool = False) -> dict[str, np.ndarray]:
    """Aggregates, exact LOO and example id of every sentence of the finished exact-LOO runs of ``batch``;
    with ``first_order``, each sentence's first-order LOO per head too (:func:`first_order_features`)."""
    if cache.exists():
        with np.load(cache) as stored:
            data = dict(stored)
        lacking = "text" not in data or (first_order and "first_order" not in data)
        if lacking:  # a cache written before these features: add them
            from attribot_core.runs.store import RunStore

            store = RunStore(db)
            if "text" not in data:  # no model needed
                data["text"] = text_features(store, batch, data["groups"], data["y"])
            if first_order and "first_order" not in data:
                data["first_order"] = first_order_features(store, batch, model, data["groups"], data["y"])
            np.savez_compressed(cache, **data)
        return data
    from attribot_core.estimator import sentence_attention
    from attribot_core.features import model_shape
    from attribot_core.models import load_model
    from attribot_core.runs.estimator_train import training_runs
    from attribot_core.runs.store import RunStore

    store, lm = RunStore(db), load_model(model)
    parts: dict[str, list] = {name: [] for name in (*AGGREGATES, "y", "groups")}
    start = time.perf_counter()
    records = store.list(batch=batch, statuses=["done"], limit=1_000_000)
    for record, response in training_runs(store, records, lm.model_id):
        result = record.result
        _, feats = sentence_attention(lm, result.context, result.question, response, result.template)
        agg = aggregates(feats.per_token, feats.token_log_probs)
        keep = [i for i, s in enumerate(result.sentences) if s.score is not None]
        if len(result.sentences) != feats.per_token.shape[1] or len(keep) < 2:
            continue
        for name in AGGREGATES:
            parts[name].append(agg[name][keep])
        parts["y"].append([result.sentences[i].score for i in keep])
        parts["groups"].append([record.row_id or record.id] * len(keep))
    if not parts["y"]:
        sys.exit(f"No finished exact-LOO runs in batch {batch!r} of {db}.")
    data = {name: np.vstack(parts[name]) for name in AGGREGATES}
    data |= {"y": np.concatenate(parts["y"]), "groups": np.concatenate(parts["groups"])}
    data["feature_seconds"] = np.array(time.perf_counter() - start)
    data["layers"], data["heads"] = map(np.array, model_shape(lm.model))
    data["text"] = text_features(store, batch, data["groups"], data["y"])
    if first_order:
        data["first_order"] = first_order_features(store, batch, lm, data["groups"], data["y"])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


TEXT_FEATURES = ("log length", "position", "word overlap")


def _words(text: str) -> set[str]:
    return {w.strip(".,;:!?\"'()").lower() for w in text.split()} - {""}


def text_features(store, batch: str, groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(sentences, 3), aligned with ``groups``: the log of each sentence's characters, its place among its
    example's scored sentences (0 first, 1 last), and the share of its words that the response also uses.

    Read from the stored runs (no model), for sentences in the order :func:`load_rows` keeps them."""
    records = {record.row_id or record.id: record.result
               for record in store.list(batch=batch, statuses=["done"], limit=1_000_000)}
    out = np.zeros((len(groups), len(TEXT_FEATURES)))
    for name in dict.fromkeys(groups):
        on = np.flatnonzero(groups == name)
        result = records[name]
        kept = [s for s in result.sentences if s.score is not None]
        if len(kept) != len(on) or not np.allclose([s.score for s in kept], y[on]):
            sys.exit(f"The aggregates cache does not match run {name!r} of {batch!r}; delete the cache and rerun.")
        response = _words(result.response)
        out[on, 0] = np.log([max(len(s.text), 1) for s in kept])
        out[on, 1] = np.arange(len(kept)) / max(len(kept) - 1, 1)
        out[on, 2] = [len(words & response) / max(len(words), 1) for words in (_words(s.text) for s in kept)]
    return out


def first_order_features(store, batch: str, model, groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(sentences, layers * heads), aligned with ``groups``: each sentence's first-order LOO through each head
    (nats, layer-major), summed over the rows after the context only, as ``first-order`` with ``rows="question
    and response"`` computes it (:func:`attribot_core.first_order.first_order_effects`, float32, every response
    token attributed as in the training runs). ``model``: a loaded model or its name."""
    from attribot_core.first_order import first_order_effects
    from attribot_core.methods.baselines import sentence_token_map
    from attribot_core.models import LoadedModel, load_model
    from attribot_core.prompt import DEFAULT_TEMPLATE, PromptBuilder
    from attribot_core.runs.estimator_train import training_runs
    from attribot_core.segment import segment

    lm = model if isinstance(model, LoadedModel) else load_model(model)
    records = store.list(batch=batch, statuses=["done"], limit=1_000_000)
    by_name = {record.row_id or record.id: (record, response)
               for record, response in training_runs(store, records, lm.model_id)}
    parts = []
    for name in dict.fromkeys(groups):
        result = by_name[name][0].result if name in by_name else None
        keep = [i for i, s in enumerate(result.sentences) if s.score is not None] if result else []
        cached = y[groups == name]
        if len(keep) != len(cached) or not np.allclose([result.sentences[i].score for i in keep], cached):
            sys.exit(f"The aggregates cache does not match run {name!r} of {batch!r}; delete the cache and rerun.")
        response = by_name[name][1]
        builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, result.template or DEFAULT_TEMPLATE)
        doc = segment(result.context)
        prompt, owners = sentence_token_map(builder, doc, result.question)
        response_ids = builder.response_ids(response)
        effects = first_order_effects(lm, prompt, response_ids, owners, len(doc.sentences),
                                      [True] * len(response_ids), rows="question and response")
        parts.append(effects.per_head[keep])
    return np.vstack(parts)


@dataclass(frozen=True)
class Recipe:
    """What the ridge weighs (aggregates, transformed) and what it is fitted to (``target(y, groups)`` or nats)."""

    name: str
    aggregates: tuple[str, ...]
    transform: Callable[[np.ndarray], np.ndarray]
    target: Callable[[np.ndarray, np.ndarray], np.ndarray] | None


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 0) + 1e-6)


RECIPES = (
    Recipe("mass, LOO in nats (format 2)", ("mean",), lambda x: x, None),
    Recipe("√mass, LOO in nats", ("mean",), np.sqrt, None),
    Recipe("√mass, sign-log LOO within example (shipped recipe)", ("mean",), np.sqrt, sign_log_within),
    Recipe("log mass, sign-log LOO within example", ("mean",), _log, sign_log_within),
    Recipe("√max over response tokens, sign-log", ("max",), np.sqrt, sign_log_within),
    Recipe("√mean of the top-3 tokens, sign-log", ("top3",), np.sqrt, sign_log_within),
    Recipe("√probability-weighted mass, sign-log", ("confident",), np.sqrt, sign_log_within),
    Recipe("√mass and √max (2x the weights), sign-log", ("mean", "max"), np.sqrt, sign_log_within),
)
SHIPPED = RECIPES[2]


def example_scores(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(Spearman, top-1 agreement, top-3 overlap) of one example's predictions against its exact LOO."""
    return (spearman(pred.tolist(), y.tolist()), float(np.argmax(pred) == np.argmax(y)),
            top_k_overlap(pred.tolist(), y.tolist(), 3))


Fit = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list], tuple[np.ndarray, float]]
"""``fit(x, fitted, y, groups, order) -> (weights, bias)`` on one training part (``order``: its example ids)."""


def ridge_fit(rescale: bool) -> Fit:
    """The shipped fit: ridge, alpha chosen by cross-validation inside the training part."""
    def fit(x, fitted, y, groups, order):
        alpha, _ = choose_alpha(x, fitted, y, groups, order=order)
        return fit_weights(x, fitted, y, groups, alpha, rescale=rescale)
    return fit


def nested_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, target, *, folds: int = 6, reps: int = 2,
              train_examples: int | None = None, seed: int = 100, fit: Fit | None = None) -> dict[str, np.ndarray]:
    """Per example (sorted ids): its (Spearman, top-1, top-3) when held out, averaged over ``reps`` shufflings.

    Outer folds over examples; inside each outer training part alpha is chosen by cross-validation and the
    weights fitted on it (``train_examples``: only that many of its examples, for a learning curve), so no
    figure comes from a fit that saw its example. ``fit``: another fit than the shipped ridge (same folds).
    """
    fit = fit or ridge_fit(rescale=target is not None)
    fitted = y if target is None else target(y, groups)
    names = np.unique(groups)
    scores: dict[str, list] = {name: [] for name in names}
    for rep in range(reps):
        order = np.random.default_rng(seed + rep).permutation(names)
        fold_of = {name: i % folds for i, name in enumerate(order)}
        fold = np.array([fold_of[g] for g in groups])
        for f in range(folds):
            train_names = [n for n in order if fold_of[n] != f][:train_examples]
            train = np.isin(groups, train_names)
            w, b = fit(x[train], fitted[train], y[train], groups[train], train_names)
            for name in np.unique(groups[fold == f]):
                on = groups == name
                scores[name].append(example_scores(x[on] @ w + b, y[on]))
    return {"examples": names, "scores": np.array([np.nanmean(scores[n], axis=0) for n in names])}


LOSSES = {"pearson": "AT2's loss: minus the Pearson correlation within each example",
          "pairwise": "pairwise rank loss: logistic on every pair of one example's sentences"}
PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def loss_weights(x: np.ndarray, fitted: np.ndarray, groups: np.ndarray, penalty: float,
                 loss: str) -> tuple[np.ndarray, float]:
    """Weights and bias that minimise a ranking loss instead of the ridge's squared error (:data:`LOSSES`).

    ``pearson`` is what AT2 trains with: minus the correlation of prediction and target within each example,
    averaged over examples. ``pairwise`` (RankNet): for every pair of sentences of one example whose targets
    differ, the logistic loss of the prediction ordering them the other way. Both see only how one example's
    sentences differ (columns centred within examples and standardised, as the ridge's); the penalty is on
    the standardised weights, divided for the scale-free correlation by the predictions' spread (so it
    shrinks the direction, not merely the scale). L-BFGS from the ridge's weights; the bias is the mean residual.
    """
    import torch

    from attribot_core.estimator import _centred

    xc = _centred(x, groups)
    sd = np.where(xc.std(axis=0) > 0, xc.std(axis=0), 1.0)
    z, t = torch.tensor(xc / sd), torch.tensor(_centred(fitted, groups))
    _, index = np.unique(groups, return_inverse=True)
    g = torch.tensor(index)
    count = torch.bincount(g).double()

    def within(v: torch.Tensor) -> torch.Tensor:  # per example sums of v
        return torch.zeros(len(count), dtype=v.dtype).index_add_(0, g, v)

    if loss == "pairwise":  # (higher, lower) row pairs within each example
        higher, lower = [], []
        for e in range(len(count)):
            rows = np.flatnonzero(index == e)
            a, b = np.nonzero(fitted[rows][:, None] > fitted[rows][None, :])
            higher.append(rows[a])
            lower.append(rows[b])
        first, second = torch.tensor(np.concatenate(higher)), torch.tensor(np.concatenate(lower))
        pair_weight = 1.0 / count[g[first]] ** 2  # every example weighs about the same, whatever its size
    start = np.linalg.lstsq(z.T @ z / len(z) + np.eye(z.shape[1]), (z.T @ t / len(z)).numpy(), rcond=None)[0]
    w = torch.tensor(start, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        pred = z @ w
        if loss == "pearson":
            spread = within(pred ** 2)
            value = -(within(pred * t) / torch.sqrt(spread * within(t ** 2) + 1e-12)).mean()
            value = value + penalty * (w @ w) / (spread.sum() / len(z) + 1e-12)
        else:
            value = (torch.nn.functional.softplus(pred[second] - pred[first]) * pair_weight).sum() / len(count)
            value = value + penalty * (w @ w)
        value.backward()
        return value

    opt.step(objective)
    weights = w.detach().numpy() / sd
    return weights, float(np.mean(fitted - x @ weights))


def loss_fit(loss: str) -> Fit:
    """:func:`loss_weights`, the penalty chosen by 5-fold cross-validation inside the training part (best
    out-of-fold Spearman against LOO), as the ridge's alpha is."""
    def fit(x, fitted, y, groups, order):
        k = min(5, len(order))
        fold_of = {name: i % k for i, name in enumerate(order)}
        fold = np.array([fold_of[n] for n in groups])
        best = None
        for penalty in PENALTIES:
            pred = np.zeros(len(y))
            for f in range(k):
                w, b = loss_weights(x[fold != f], fitted[fold != f], groups[fold != f], penalty, loss)
                pred[fold == f] = x[fold == f] @ w + b
            quality = np.nanmean([example_scores(pred[groups == n], y[groups == n])[0] for n in order])
            best = max(best or (quality, penalty), (quality, penalty))
        return loss_weights(x, fitted, groups, best[1], loss)
    return fit


def loss_table(data: dict[str, np.ndarray], x: np.ndarray, mine: np.ndarray, depth: int, *, folds: int,
               reps: int) -> list[str]:
    """The shipped features at ``depth`` layers fitted by each ranking loss of :data:`LOSSES` beside the shipped
    ridge (``mine``: its per-example scores on the same folds), with intervals over examples."""
    y, groups = data["y"].astype(np.float64), data["groups"]
    lines = [f"Loss: the shipped features on {depth} layers (√mass, against sign-log LOO within each example) "
             "fitted by ranking losses instead of the ridge's squared error, the penalty chosen inside each fold "
             "as the ridge's alpha is; same folds, differences to the shipped ridge with 95 % bootstrap "
             "intervals over examples.", "",
             "| fit | Spearman | − shipped ridge | top-1 | top-3 |", "|---|---:|---|---:|---:|",
             f"| ridge (shipped) | {np.nanmean(mine[:, 0]):.3f} | | {np.nanmean(mine[:, 1]):.2f} "
             f"| {np.nanmean(mine[:, 2]):.2f} |"]
    for loss, name in LOSSES.items():
        scores = nested_cv(x, y, groups, SHIPPED.target, folds=folds, reps=reps, fit=loss_fit(loss))["scores"]
        diff = bootstrap_ci(scores[:, 0] - mine[:, 0])
        lines.append(f"| {name} | {np.nanmean(scores[:, 0]):.3f} | {diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}] "
                     f"| {np.nanmean(scores[:, 1]):.2f} | {np.nanmean(scores[:, 2]):.2f} |")
        print(lines[-1], flush=True)
    return lines


def first_order_table(data: dict[str, np.ndarray], x: np.ndarray, mine: np.ndarray, depth: int, *, folds: int,
                      reps: int) -> list[str]:
    """Ridge weights over first-order LOO through the question and answer (``data["first_order"]``: per head,
    layer-major), per head, per layer and beside the shipped features (``x``: √mass on ``depth`` layers,
    ``mine``: their per-example scores), against the plain sum over every head, with intervals over examples."""
    y, groups = data["y"].astype(np.float64), data["groups"]
    layers, heads = int(data["layers"]), int(data["heads"])
    per_head = data["first_order"]
    per_layer = per_head.reshape(len(per_head), layers, heads).sum(axis=2)
    total = per_head.sum(axis=1, keepdims=True)
    names = np.unique(groups)
    plain = np.array([example_scores(total[groups == n, 0], y[groups == n]) for n in names])
    base = baseline_scores(data["mean"], y, groups)
    lines = ["First-order: each sentence's first-order LOO through the rows after the context (`first-order`, "
             "`rows=\"question and response\"`: one pass, no weights), its plain sum over every head against ridge "
             f"weights fitted over it (against sign-log LOO within each example, as the shipped recipe), alone and "
             f"beside the shipped features (√mass on {depth} layers); same folds, differences with 95 % bootstrap "
             "intervals over examples.", "",
             "| features | Spearman | − plain sum | − attention | top-1 | top-3 |", "|---|---:|---|---|---:|---:|"]

    def row(name: str, scores: np.ndarray) -> None:
        cells = []
        for other in (plain, base):
            diff = bootstrap_ci(scores[:, 0] - other[:, 0])
            cells.append(f"{diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}]")
        lines.append(f"| {name} | {np.nanmean(scores[:, 0]):.3f} | {cells[0]} | {cells[1]} "
                     f"| {np.nanmean(scores[:, 1]):.2f} | {np.nanmean(scores[:, 2]):.2f} |")
        print(lines[-1], flush=True)

    def fitted(features: np.ndarray) -> np.ndarray:
        return nested_cv(features, y, groups, SHIPPED.target, folds=folds, reps=reps)["scores"]

    row("plain sum over every head (no weights: what the app shows)", plain)
    row(f"shipped recipe (√mass, {depth} layers)", mine)
    row("ridge over the heads' first-order LOO", fitted(per_head))
    row("ridge over the layers' first-order LOO", fitted(per_layer))
    row("ridge over the sum and the shipped features", fitted(np.hstack([total, x])))
    row("ridge over the layers' first-order LOO and the shipped features", fitted(np.hstack([per_layer, x])))
    return lines


def baseline_scores(mean_mass: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per example (sorted ids): the ``attention`` baseline's (Spearman, top-1, top-3): mass averaged over heads."""
    return np.array([example_scores(mean_mass[groups == n].mean(axis=1), y[groups == n])
                     for n in np.unique(groups)])


def features(data: dict[str, np.ndarray], recipe: Recipe) -> np.ndarray:
    return np.hstack([recipe.transform(np.maximum(data[a], 0)) for a in recipe.aggregates])


TABLES = ("recipes", "curve", "depth", "beyond", "loss", "first-order")


def report(data: dict[str, np.ndarray], model: str, *, folds: int, reps: int,
           tables: tuple[str, ...] = TABLES) -> str:
    """The Markdown report: the ``tables`` asked for (:data:`TABLES`, in that order), each from one nested
    cross-validation per row on the same folds."""
    y, groups = data["y"].astype(np.float64), data["groups"]
    n_examples = len(np.unique(groups))
    layers, heads = int(data["layers"]), int(data["heads"])
    base = baseline_scores(data["mean"], y, groups)
    lines = [f"Model {model}: {n_examples} generated examples, {len(y)} sentences with exact LOO; "
             f"{folds} outer folds x {reps} shufflings, alpha chosen inside each fold; means over examples, "
             "differences with 95 % bootstrap intervals over examples "
             f"(features {float(data['feature_seconds']):.0f} s when computed)."]
    shipped = None
    if "recipes" in tables:
        lines += ["", "| recipe | Spearman | − attention | top-1 | top-3 |", "|---|---:|---|---:|---:|",
                  f"| `attention` baseline (mass averaged over heads) | {np.nanmean(base[:, 0]):.3f} | | "
                  f"{np.nanmean(base[:, 1]):.2f} | {np.nanmean(base[:, 2]):.2f} |"]
        for recipe in RECIPES:
            cv = nested_cv(features(data, recipe), y, groups, recipe.target, folds=folds, reps=reps)["scores"]
            shipped = cv if recipe is SHIPPED else shipped
            diff = bootstrap_ci(cv[:, 0] - base[:, 0])
            lines.append(f"| {recipe.name} | {np.nanmean(cv[:, 0]):.3f} | {diff.mean:+.3f} [{diff.lo:+.3f}, "
                         f"{diff.hi:+.3f}] | {np.nanmean(cv[:, 1]):.2f} | {np.nanmean(cv[:, 2]):.2f} |")
            print(lines[-1], flush=True)
    x = features(data, SHIPPED)
    if "curve" in tables:
        most = n_examples - -(-n_examples // folds)  # the examples of an outer training part
        sizes = sorted({n for n in (10, 20, 40, 60, most) if n <= most})
        curve = [(n, np.nanmean(nested_cv(x, y, groups, SHIPPED.target, folds=folds, reps=reps,
                                          train_examples=n)["scores"][:, 0])) for n in sizes]
        lines += ["", "Learning curve of the shipped recipe (Spearman on held-out examples against the number of "
                  "training examples): " + ", ".join(f"{n}: {s:.3f}" for n, s in curve) + "."]
    by_depth: dict[int, np.ndarray] = {}
    if "depth" in tables:
        depth_lines, by_depth = depth_table(data, x, folds=folds, reps=reps, every_layer=shipped)
        lines += ["", *depth_lines]
    depth = min(shipped_depth(model) or layers, layers)
    if {"beyond", "loss", "first-order"} & set(tables) and depth not in by_depth:
        by_depth[depth] = nested_cv(x[:, :depth * heads], y, groups, SHIPPED.target, folds=folds, reps=reps)["scores"]
    if "beyond" in tables and "text" in data:
        lines += ["", *beyond_attention(data, x, by_depth, depth, folds=folds, reps=reps)]
    if "loss" in tables:
        lines += ["", *loss_table(data, x[:, :depth * heads], by_depth[depth], depth, folds=folds, reps=reps)]
    if "first-order" in tables:
        lines += ["", *first_order_table(data, x[:, :depth * heads], by_depth[depth], depth, folds=folds, reps=reps)]
    return "\n".join(lines)


def shipped_depth(model: str) -> int | None:
    """How many layers the weights found for ``model`` read (None: no weights for it)."""
    from attribot_core.estimator import found_weights

    return next((w.depth for w in found_weights() if w.model_id == model), None)


def beyond_attention(data: dict[str, np.ndarray], x: np.ndarray, by_depth: dict[int, np.ndarray],
                     depth: int, *, folds: int, reps: int) -> list[str]:
    """The text features alone (as rankings, no fit) and added to the shipped recipe at ``depth`` layers
    (``by_depth[depth]``: that recipe's per-example scores on the same folds)."""
    y, groups, text = data["y"].astype(np.float64), data["groups"], data["text"]
    attention = x[:, :depth * int(data["heads"])]
    mine = by_depth[depth]
    lines = [f"Beyond attention: three features of a sentence that need no pass (the log of its length in "
             f"characters, its place in the context from 0 to 1, the share of its words the response also uses), "
             f"alone as a ranking and added to the shipped recipe on its {depth} layers (same folds; differences "
             "to that recipe with 95 % bootstrap intervals over examples).", "",
             "| features | Spearman | − shipped recipe | top-1 | top-3 |", "|---|---:|---|---:|---:|",
             f"| shipped recipe, {depth} layers | {np.nanmean(mine[:, 0]):.3f} | | {np.nanmean(mine[:, 1]):.2f} "
             f"| {np.nanmean(mine[:, 2]):.2f} |"]

    def row(name: str, scores: np.ndarray) -> None:
        diff = bootstrap_ci(scores[:, 0] - mine[:, 0])
        lines.append(f"| {name} | {np.nanmean(scores[:, 0]):.3f} | {diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}] "
                     f"| {np.nanmean(scores[:, 1]):.2f} | {np.nanmean(scores[:, 2]):.2f} |")
        print(lines[-1], flush=True)

    for i, name in enumerate(TEXT_FEATURES):
        row(f"{name} alone", np.array([example_scores(text[groups == n, i], y[groups == n])
                                       for n in np.unique(groups)]))
    for cols, name in [((i,), f"shipped + {n}") for i, n in enumerate(TEXT_FEATURES)] + [
            (tuple(range(len(TEXT_FEATURES))), "shipped + all three")]:
        row(name, nested_cv(np.hstack([attention, text[:, cols]]), y, groups, SHIPPED.target,
                            folds=folds, reps=reps)["scores"])
    return lines


def depth_table(data: dict[str, np.ndarray], x: np.ndarray, *, folds: int, reps: int,
                every_layer: np.ndarray | None = None) -> tuple[list[str], dict[int, np.ndarray]]:
    """The shipped recipe on the heads of the first L layers only (``x``'s first ``L * heads`` columns: features
    are layer-major), every second L, against every layer and against ``attention``, with intervals.
    ``every_layer``: :func:`nested_cv`'s scores of ``x`` itself, when the recipes table already has them.
    Returns the table's lines and each depth's per-example scores."""
    y, groups = data["y"].astype(np.float64), data["groups"]
    layers, heads = int(data["layers"]), int(data["heads"])
    base = baseline_scores(data["mean"], y, groups)[:, 0]
    cv = {depth: nested_cv(x[:, :depth * heads], y, groups, SHIPPED.target, folds=folds, reps=reps)["scores"]
          for depth in range(layers % 2 or 2, layers, 2)}
    cv[layers] = every_layer if every_layer is not None else nested_cv(
        x, y, groups, SHIPPED.target, folds=folds, reps=reps)["scores"]
    lines = [f"Depth: the shipped recipe on the heads of the first L of {layers} layers (its pass can stop after "
             "layer L: about L / layers of a full pass); same folds, differences with 95 % bootstrap intervals "
             "over examples.", "",
             "| layers read | share of the pass | Spearman | − every layer | − attention | top-1 | top-3 |",
             "|---:|---:|---:|---|---|---:|---:|"]
    for depth, scores in cv.items():
        cells = []
        for other in (cv[layers][:, 0], base):
            diff = bootstrap_ci(scores[:, 0] - other)
            cells.append(f"{diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}]")
        lines.append(f"| {depth} | {depth / layers:.0%} | {np.nanmean(scores[:, 0]):.3f} | {cells[0]} | {cells[1]} "
                     f"| {np.nanmean(scores[:, 1]):.2f} | {np.nanmean(scores[:, 2]):.2f} |")
        print(lines[-1], flush=True)
    return lines, cv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=RESULTS / f"{MODEL}-train.sqlite")
    ap.add_argument("--batch", default="estimator-train")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--cache", type=Path, default=None, help="aggregates cache (default: beside the report)")
    ap.add_argument("--out", type=Path, default=None, help="Markdown report (default: results/estimator/cv-MODEL.md)")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tables", default=",".join(TABLES),
                    help=f"comma-separated, of {', '.join(TABLES)} (default: all; a part goes to cv-MODEL-PART.md)")
    args = ap.parse_args(argv)
    tables = tuple(t for t in TABLES if t in args.tables.split(","))
    unknown = set(args.tables.split(",")) - set(TABLES)
    if unknown or not tables:
        ap.error(f"--tables: choose among {', '.join(TABLES)}, not {', '.join(sorted(unknown)) or 'none'}.")
    cache = args.cache or RESULTS / f"{args.model}-aggregates.npz"
    part = "" if tables == TABLES else "-" + "-".join(tables)
    out = args.out or RESULTS / f"cv-{args.model}{part}.md"
    data = load_rows(args.db, args.batch, args.model, cache, first_order="first-order" in tables)
    text = report(data, args.model, folds=args.folds, reps=args.reps, tables=tables)
    write_report(out, "bench/estimator_cv.py", argv, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
