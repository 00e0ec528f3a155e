"""First-order LOO against exact LOO on generated examples (never the evaluation set), beside `attention`, and
whether head weights learned on top of it would help (nested cross-validation).

Reads a training database of ``bench/train_estimator.py`` (exact LOO of generated examples) and, per example,
computes each sentence's first-order LOO per layer and head from one forward and one backward pass
(:mod:`attribot_core.first_order`), and the attention mass from one more pass (the ``attention`` baseline:
the mass averaged over every layer and head). Per example Spearman, top-1 and top-3 overlap against exact
LOO; means over examples with 95 % bootstrap intervals of the differences:

1. ``first-order`` as shipped: the sum over every layer and head, nothing fitted;
2. the ``attention`` baseline;
3. head weights fitted on top, by nested cross-validation (``--folds`` outer folds x ``--reps`` shufflings,
   the penalty chosen inside each outer training part): ridge toward zero on the estimator's target
   (sign-log LOO standardised within examples, :func:`attribot_core.estimator.sign_log_within`), and ridge
   toward the plain sum (weights = c + delta, c the within-example least-squares scale of the sum, only
   delta penalised: a large penalty gives the shipped method back).

    python bench/first_order_generated.py                                   # SmolLM2, its training database
    python bench/first_order_generated.py --model qwen2.5-coder-0.5b \\
        --db bench/results/estimator/qwen2.5-coder-0.5b-train.sqlite --batch estimator-train-qwen0.5b

The per-head effects are cached beside the report (``--cache``); the report goes to ``--out`` and stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from estimator_cv import example_scores, nested_cv  # noqa: E402  (bench/estimator_cv.py)
from readme_block import write_report  # noqa: E402

from attribot_core.estimator import ALPHAS, _centred, fit_weights, ranking_quality, sign_log_within  # noqa: E402
from attribot_core.metrics import bootstrap_ci  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "estimator"


def load_rows(db: Path, batch: str, model: str, cache: Path) -> dict[str, np.ndarray]:
    """Per sentence of every finished exact-LOO run of ``batch``: per-head first-order LOO, attention mass averaged
    over every head, exact LOO and example id; and per example the seconds of the first-order passes."""
    if cache.exists():
        with np.load(cache) as stored:
            return dict(stored)
    from attribot_core.estimator import sentence_attention
    from attribot_core.first_order import first_order_effects
    from attribot_core.methods.baselines import sentence_token_map
    from attribot_core.models import load_model
    from attribot_core.prompt import DEFAULT_TEMPLATE, PromptBuilder
    from attribot_core.runs.estimator_train import training_runs
    from attribot_core.runs.store import RunStore
    from attribot_core.segment import segment

    store, lm = RunStore(db), load_model(model)
    parts: dict[str, list] = {name: [] for name in ("per_head", "attention", "y", "groups", "seconds")}
    for record, response in training_runs(store, store.list(batch=batch, statuses=["done"], limit=1_000_000),
                                          lm.model_id):
        result = record.result
        doc = segment(result.context)
        keep = [i for i, s in enumerate(result.sentences) if s.score is not None]
        if len(result.sentences) != len(doc.sentences) or len(keep) < 2:
            continue
        builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, result.template or DEFAULT_TEMPLATE)
        prompt, owners = sentence_token_map(builder, doc, result.question)
        response_ids = builder.response_ids(response)
        start = time.perf_counter()
        effects = first_order_effects(lm, prompt, response_ids, owners, len(doc.sentences), [True] * len(response_ids))
        parts["seconds"].append(time.perf_counter() - start)
        _, feats = sentence_attention(lm, result.context, result.question, response, result.template)
        parts["per_head"].append(effects.per_head[keep])
        parts["attention"].append(feats.averaged().mean(axis=1)[keep])
        parts["y"].append([result.sentences[i].score for i in keep])
        parts["groups"].append([record.row_id or record.id] * len(keep))
    if not parts["y"]:
        sys.exit(f"No finished exact-LOO runs in batch {batch!r} of {db}.")
    data = {"per_head": np.vstack(parts["per_head"]), "seconds": np.array(parts["seconds"])}
    data |= {name: np.concatenate(parts[name]) for name in ("attention", "y", "groups")}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


def ranking(score: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per example (sorted ids): (Spearman, top-1, top-3) of ranking by ``score`` (one value per sentence)."""
    return np.array([example_scores(score[groups == n], y[groups == n]) for n in np.unique(groups)])


def fit_toward_sum(x: np.ndarray, fitted: np.ndarray, groups: np.ndarray, alpha: float) -> np.ndarray:
    """Head weights ``c + delta``: ``c`` scales the plain sum to ``fitted`` (least squares within examples), ridge
    on the rest penalises only ``delta`` (standardised columns), so a large ``alpha`` gives the sum back."""
    total, target = _centred(x.sum(axis=1), groups), _centred(fitted, groups)
    c = float(total @ target / (total @ total)) if total @ total > 0 else 1.0
    rest = fitted - c * x.sum(axis=1)
    delta, _ = fit_weights(x, rest, rest, groups, alpha, rescale=False)  # the estimator's ridge
    return c + delta


def nested_toward_sum(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int, reps: int,
                      seed: int = 100) -> np.ndarray:
    """Per example (sorted ids): held-out (Spearman, top-1, top-3) of :func:`fit_toward_sum`, alpha chosen by
    cross-validation inside each outer training part; the same outer folds as ``estimator_cv.nested_cv``."""
    fitted = sign_log_within(y, groups)
    names = np.unique(groups)
    scores: dict[str, list] = {name: [] for name in names}
    alphas = (*ALPHAS, 1e4, 1e5, 1e6)
    for rep in range(reps):
        order = np.random.default_rng(seed + rep).permutation(names)
        fold_of = {name: i % folds for i, name in enumerate(order)}
        fold = np.array([fold_of[g] for g in groups])
        for f in range(folds):
            train = fold != f
            inner = np.array([fold_of[g] % (folds - 1) for g in groups[train]])  # folds of the training part

            def inner_spearman(alpha: float, train=train, inner=inner) -> float:
                pred = np.zeros(int(train.sum()))
                for k in np.unique(inner):
                    w = fit_toward_sum(x[train][inner != k], fitted[train][inner != k], groups[train][inner != k],
                                       alpha)
                    pred[inner == k] = x[train][inner == k] @ w
                return ranking_quality(pred, y[train], groups[train])["spearman"]

            best = max(alphas, key=inner_spearman)
            w = fit_toward_sum(x[train], fitted[train], groups[train], best)
            for name in np.unique(groups[~train]):
                on = groups == name
                scores[name].append(example_scores(x[on] @ w, y[on]))
    return np.array([np.nanmean(scores[n], axis=0) for n in names])


def report(data: dict[str, np.ndarray], model: str, *, folds: int, reps: int) -> str:
    y, groups, per_head = data["y"].astype(np.float64), data["groups"], data["per_head"]
    base = ranking(data["attention"], y, groups)
    rows = [("`first-order` (the sum over every head; nothing fitted)", ranking(per_head.sum(axis=1), y, groups)),
            ("head weights, ridge toward zero, sign-log target (nested CV)",
             nested_cv(per_head, y, groups, sign_log_within, folds=folds, reps=reps)["scores"]),
            ("head weights, ridge toward the sum, sign-log target (nested CV)",
             nested_toward_sum(per_head, y, groups, folds=folds, reps=reps))]
    first = rows[0][1]
    lines = [f"Model {model}: {len(np.unique(groups))} generated examples, {len(y)} sentences with exact LOO; "
             f"first-order passes (forward + backward) median {np.median(data['seconds']):.2f} s, "
             f"range {data['seconds'].min():.2f}-{data['seconds'].max():.2f} s. Means over examples; "
             "differences with 95 % bootstrap intervals over examples.", "",
             "| ranking | Spearman | − attention | − first-order | top-1 | top-3 |", "|---|---:|---|---|---:|---:|",
             f"| `attention` baseline (mass averaged over every head) | {np.nanmean(base[:, 0]):.3f} | | | "
             f"{np.nanmean(base[:, 1]):.2f} | {np.nanmean(base[:, 2]):.2f} |"]
    for name, scores in rows:
        vs_base, vs_first = bootstrap_ci(scores[:, 0] - base[:, 0]), bootstrap_ci(scores[:, 0] - first[:, 0])
        second = "" if scores is first else f"{vs_first.mean:+.3f} [{vs_first.lo:+.3f}, {vs_first.hi:+.3f}]"
        lines.append(f"| {name} | {np.nanmean(scores[:, 0]):.3f} | {vs_base.mean:+.3f} [{vs_base.lo:+.3f}, "
                     f"{vs_base.hi:+.3f}] | {second} | {np.nanmean(scores[:, 1]):.2f} | "
                     f"{np.nanmean(scores[:, 2]):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=RESULTS / "smollm2-135m-train.sqlite")
    ap.add_argument("--batch", default="estimator-train")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--cache", type=Path, default=None, help="per-head effects cache (default: /tmp)")
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown report (default: bench/results/estimator/first-order-MODEL.md)")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    cache = args.cache or Path("/tmp") / f"first-order-{args.model}.npz"
    out = args.out or RESULTS / f"first-order-{args.model}.md"
    text = report(load_rows(args.db, args.batch, args.model, cache), args.model, folds=args.folds, reps=args.reps)
    write_report(out, "bench/first_order_generated.py", argv, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
