"""The learned one-pass estimator: head weights that turn attention-mass features into LOO scores in nats.

A span's estimate is ``bias + sum_f w_f * sqrt(a_f(span))``, where ``a_f`` is the attention mass of
layer/head ``f`` from the response rows to the span's tokens, averaged over the attributed response
tokens (:mod:`attribot_core.features`). The weights are fitted to the studio's own exact LOO: ``attribot
estimator train`` reads ``loo`` runs of one model from a run database, recomputes each row's features
in one pass, and fits a ridge regression (closed form) *within examples* (:func:`fit_estimator`).

Why this feature and objective. Version 2 (the mass itself, least squares on LOO in nats) was chosen on
38 SmolLM2 examples over summed mass, global fits, ranks, sign-log or standardised targets, log mass,
per-layer sums and gradient boosting, each tried alone. Tried *together*, two of them help. Nested
cross-validation (6 folds over examples, 3 shuffles, alpha chosen inside each fold; mean per-example
Spearman against exact LOO, bootstrap intervals over examples): on the 36 Qwen2.5-Coder-0.5B training
examples, 0.136 for version 2 (the attention baseline: 0.149), 0.204 for the standardised sign-log
target alone, 0.221 for the square root with a plain sign-log target, and **0.256** for both: +0.120
over version 2 (+0.036..+0.203), +0.107 over attention (+0.026..+0.194); on the 80 SmolLM2-135M
training examples, 0.257 for version 2, 0.267 for the target alone, 0.249 for the square root alone,
and **0.274** for both: +0.017 over version 2 (-0.023..+0.058: no worse), +0.077 over attention (0.197;
+0.019..+0.134). (``bench/train_estimator.py`` prints the held-out figures of each shipped file.) Why
they help: LOO is heavy-tailed (one sentence tens of nats, most near zero), so a least-squares fit on it
spends itself on the outliers and orders the rest at random; the sign-log, standardised within each
example, weighs every example's ordering alike. The mass is heavy-tailed too (a few sentences draw most
of a head's attention); its square root spreads the small masses, where the ordering of the many weak
sentences is decided.

Centring features and targets within each example (AT2's idea: only how the sentences of one context
differ is fitted, not each example's level, which attention cannot know) makes the fit what a ranking
and the estimate-then-exact view use. The fitted values are then put back in nats by one least-squares
scale against the exact LOO (a positive scale: it changes no ranking and no per-example Pearson), so
the estimate is shown beside exact LOO in the same unit; the bias, which centring leaves open, is the
mean residual. Features are standardised before the fit so that one penalty suits heads of any scale,
and ``alpha`` is chosen by cross-validation over whole examples (by mean per-example Spearman, ties
broken by the within-example squared error); the weights are then fitted on every training example and
measured on held-out examples that neither the fit nor alpha saw.

Depth. The weights may read only the first ``depth`` layers (format 4): then the estimate's own pass
stops after them (:mod:`attribot_core.features`). Measured by nested cross-validation on the training
examples (``bench/estimator_cv.py``, its depth table), the first 20 layers rank no worse than all of
them on both shipped models (SmolLM2-135M: 20 of 30; Qwen2.5-Coder-0.5B: 20 of 24), fewer weights
overfit less, and the pass costs 20/30 of a full one on SmolLM2; the shipped weights read 20 layers.
``attribot estimator train --depth N`` chooses it; the default reads every layer.

A weights file is small JSON, versioned (``format`` / ``version``), and names the model it was trained
for (model id, tokenizer id, layers x heads): loading it for another model is refused with one line.
Version 3 files (every layer, the same feature) still load, as ``depth = layers``.
Shipped weights live in ``attribot_core/estimators/`` (package data); weights trained here are found
too when their folder is named in ``ATTRIBOT_ESTIMATORS`` (:func:`weight_dirs`), so the app offers the
estimate for every model that has weights, and :func:`has_weights` is the one rule for "has it".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import pearson, spearman

__all__ = [
    "ALPHAS",
    "FORMAT",
    "FORMAT_VERSION",
    "EstimatorError",
    "EstimatorWeights",
    "Fit",
    "choose_alpha",
    "feature_values",
    "fit_estimator",
    "fit_ridge",
    "fit_weights",
    "found_weights",
    "has_weights",
    "ranking_quality",
    "sentence_attention",
    "sentence_features",
    "shipped_weights",
    "sign_log_within",
    "weight_dirs",
]

FORMAT = "attribot-estimator"
FORMAT_VERSION = 4
_READABLE = (3, FORMAT_VERSION)
"""Versions read: 3 is 4 without ``depth`` (every layer read)."""
FEATURE = ("square root of the attention mass from the response rows to the span, per layer and head, averaged "
           "over the attributed response tokens")
_OLD_FEATURES = {1: "features summed over the response tokens",
                 2: "the attention mass itself, not its square root"}
"""What older format versions' weights multiplied: named when such a file is refused."""
SHIPPED_DIR = Path(__file__).resolve().parent / "estimators"
ENV_DIRS = "ATTRIBOT_ESTIMATORS"
"""Environment variable: folders (``os.pathsep``-separated) of trained weights files, searched before the package's."""
ALPHAS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
"""Ridge penalties tried, per row, on standardised features (``(X'X / n + alpha I) w = X'y / n``)."""


class EstimatorError(ValueError):
    """No usable weights: none for this model, a file for another model, or a damaged file (one line)."""


def _train_hint(model_id: str) -> str:
    return (f"train them on exact LOO runs of that model: attribot batch FILE --method loo --model {model_id} "
            f"--name NAME --db DB, then attribot estimator train --db DB --batch NAME --model {model_id} "
            "--out WEIGHTS.json, and pass the file as the method's weights parameter (or put it in a folder "
            f"named in {ENV_DIRS}: the app then offers the estimate for that model)")


@dataclass(frozen=True)
class EstimatorWeights:
    """One model's head weights. ``layers`` x ``heads`` is the model's shape; ``weights`` has ``depth * heads``
    values (layer-major) for its first ``depth`` layers (``None``: all), in nats per unit of
    :func:`feature_values` (the square root of the averaged mass)."""

    model_id: str
    tokenizer_id: str
    layers: int
    heads: int
    weights: tuple[float, ...]
    bias: float = 0.0
    trained: dict[str, Any] = field(default_factory=dict)  # how: rows, examples, alpha, held-out figures
    depth: int | None = None

    def __post_init__(self) -> None:
        if self.depth is None:
            object.__setattr__(self, "depth", self.layers)
        if not 1 <= self.depth <= self.layers:
            raise EstimatorError(f"Estimator weights: depth {self.depth} for a model of {self.layers} layers.")
        if len(self.weights) != self.depth * self.heads:
            raise EstimatorError(f"Estimator weights: {len(self.weights)} weights for {self.depth} layers x "
                                 f"{self.heads} heads (need {self.depth * self.heads}).")

    # -- scoring -----------------------------------------------------------------------------------
    def read(self, mass: np.ndarray) -> np.ndarray:
        """The features these weights multiply: ``mass``'s columns (last axis) of the first ``depth`` layers.

        A pass that recorded more layers (the scorer's full base pass) gives more columns; they are unused.
        """
        return mass[..., : self.depth * self.heads]

    def score(self, mass: np.ndarray) -> np.ndarray:
        """Estimated LOO (nats) of each row of ``mass`` (spans x layers*heads, averaged attention mass)."""
        return feature_values(self.read(mass)) @ np.asarray(self.weights) + self.bias

    def token_values(self, mass: np.ndarray, attributed: np.ndarray) -> np.ndarray:
        """(tokens, spans): each response row's share of each span's estimate, the bias left out.

        ``mass``: (tokens, spans, layers*heads), one response row's attention mass per span and head;
        ``attributed``: which rows are attributed (the average is over them). Row ``t`` gets
        ``sum_f w_f * m_tf / (n * sqrt(a_f))``, so the attributed rows' shares add up to
        ``sum_f w_f * sqrt(a_f)``, the estimate without its bias, exactly: a row's share is in proportion
        to its part of the mass, as it would be if the feature were the mass itself.
        """
        rows = np.asarray(attributed, dtype=bool)
        n = max(int(rows.sum()), 1)
        mass = self.read(mass)
        averaged = mass[rows].sum(axis=0) / n
        root = feature_values(averaged)
        per_unit = np.divide(np.asarray(self.weights)[None, :], root, out=np.zeros_like(root), where=root > 0)
        return np.einsum("tsf,sf->ts", mass, per_unit) / n

    def check_model(self, model_id: str, tokenizer_id: str, shape: tuple[int, int]) -> None:
        """Refuse weights trained for another model, in one line."""
        mine = (self.model_id, self.tokenizer_id, (self.layers, self.heads))
        if mine != (model_id, tokenizer_id, tuple(shape)):
            raise EstimatorError(
                f"These estimator weights were trained for {self.model_id} (tokenizer {self.tokenizer_id}, "
                f"{self.layers}x{self.heads} heads), not for {model_id} (tokenizer {tokenizer_id}, "
                f"{shape[0]}x{shape[1]} heads); {_train_hint(model_id)}.")

    def check_for(self, lm) -> None:
        """:meth:`check_model` for a :class:`~attribot_core.models.LoadedModel`."""
        from .features import model_shape

        self.check_model(lm.model_id, lm.tokenizer_id, model_shape(lm.model))

    # -- files -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "feature": FEATURE, **asdict(self),
                "weights": [float(w) for w in self.weights], "bias": float(self.bias)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EstimatorWeights:
        """Read a weights file; a file that is not one (or of a newer version) is refused in one line."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"Cannot read estimator weights {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EstimatorError(f"{path} is not an AttriBoT estimator weights file (no format '{FORMAT}').")
        version = data.get("version")
        if version not in _READABLE:
            was = f" ({_OLD_FEATURES[version]})" if version in _OLD_FEATURES else ""
            raise EstimatorError(f"{path} is estimator format version {version!r}{was}; this version of AttriBoT "
                                 f"reads version {FORMAT_VERSION} ({FEATURE}): train the weights again with "
                                 "attribot estimator train.")
        try:
            depth = data.get("depth") if version >= 4 else None
            return cls(str(data["model_id"]), str(data["tokenizer_id"]), int(data["layers"]), int(data["heads"]),
                       tuple(float(w) for w in data["weights"]), float(data.get("bias", 0.0)),
                       dict(data.get("trained") or {}), None if depth is None else int(depth))
        except (KeyError, TypeError, ValueError) as exc:
            raise EstimatorError(f"{path} is a damaged estimator weights file ({exc!r}).") from None


def feature_values(mass: np.ndarray) -> np.ndarray:
    """What the weights multiply: the square root of the averaged attention mass (see the module's why)."""
    return np.sqrt(np.clip(np.asarray(mass, dtype=np.float64), 0.0, None))


def weight_dirs() -> list[Path]:
    """Where weights files are looked for: the folders in ``ATTRIBOT_ESTIMATORS`` first, then the package's.

    Read at each call (not at import), so a deployment, a test or a user who just trained weights sets it
    without restarting anything.
    """
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p.strip()]
    return [*extra, SHIPPED_DIR]


def found_weights() -> list[EstimatorWeights]:
    """Every readable weights file in :func:`weight_dirs`, in search order; other JSON files there are skipped
    (a folder of trained weights may hold notes or a damaged copy: they are no model's weights)."""
    found = []
    for folder in weight_dirs():
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                found.append(EstimatorWeights.load(path))
            except EstimatorError:
                continue
    return found


def has_weights(model_id: str) -> bool:
    """Whether weights for ``model_id`` (a model spec as loaded: preset name, folder, HF id) can be found.

    The one rule for "can this model be estimated": the app offers the ``estimate`` method and the
    ``estimate`` ranking stage only where it holds, and a run adds its estimate-first stage only then.
    Cheap (reads a few small JSON files, loads no model), so it is called on every page draw. The
    tokenizer and shape are checked when the weights are loaded for the model (:func:`shipped_weights`).
    """
    model_id = (model_id or "").strip()
    return bool(model_id) and any(w.model_id == model_id for w in found_weights())


def shipped_weights(lm) -> EstimatorWeights:
    """The weights found for this model (:func:`weight_dirs`), or :class:`EstimatorError` saying how to train them."""
    from .features import model_shape

    mine = (lm.model_id, lm.tokenizer_id, model_shape(lm.model))
    for weights in found_weights():
        if (weights.model_id, weights.tokenizer_id, (weights.layers, weights.heads)) == mine:
            return weights
    raise EstimatorError(f"No estimator weights ship for {lm.model_id}; {_train_hint(lm.model_id)}.")


# -- fitting -------------------------------------------------------------------------------------------
def ranking_quality(pred: np.ndarray, target: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean over examples (``groups``) of Spearman and Pearson of ``pred`` vs ``target``, and top-1 agreement.

    Per example, because the estimate ranks the sentences *of one context*; top-1 = the estimate's best
    sentence is the exact best. Examples with fewer than 2 sentences are left out.
    """
    rho, r, top1 = [], [], []
    for g in np.unique(groups):
        on = groups == g
        if on.sum() < 2:
            continue
        p, t = pred[on], target[on]
        rho.append(spearman(p.tolist(), t.tolist()))
        r.append(pearson(p.tolist(), t.tolist()))
        top1.append(float(np.argmax(p) == np.argmax(t)))
    mean = lambda xs: float(np.nanmean(xs)) if xs else float("nan")  # noqa: E731
    return {"spearman": mean(rho), "pearson": mean(r), "top1": mean(top1), "examples": len(rho)}


@dataclass(frozen=True)
class Fit:
    """A ridge fit: raw-feature weights and bias (nats), the alpha chosen, and the figures behind the choice."""

    weights: np.ndarray
    bias: float
    alpha: float
    validation: dict[float, dict[str, float]]
    heldout: dict[str, float]
    split: dict[str, int]


def _centred(a: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``a`` with each example's (``groups``) mean row subtracted: what is left is how its sentences differ."""
    out = np.array(a, dtype=np.float64)
    for g in np.unique(groups):
        on = groups == g
        out[on] -= out[on].mean(axis=0)
    return out


def _ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge on per-example centred, standardised columns; weights and bias for the *raw* columns.

    Centring x and y within each example fits only how the sentences of one context differ, which is
    all a ranking (and the step from estimate to exact) uses; the bias, which centring leaves open, is
    then the mean residual, so that the estimate's level is LOO's on average.
    """
    xc, yc = _centred(x, groups), _centred(y, groups)
    sd = xc.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = xc / sd
    n = len(y)
    gram = z.T @ z / n + alpha * np.eye(z.shape[1])
    w = np.linalg.lstsq(gram, z.T @ yc / n, rcond=None)[0] / sd
    return w, float(np.mean(y - x @ w))


def sign_log_within(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``sign(y) * log(1 + |y|)``, standardised within each example (``groups``): the estimator's fitted target.

    Monotone within an example, so every ranking is LOO's own; it tames LOO's heavy tail (see the
    module's why) and gives every example the same weight in the fit, whatever its spread in nats.
    """
    y, groups = np.asarray(y, dtype=np.float64), np.asarray(groups)
    out = np.sign(y) * np.log1p(np.abs(y))
    for g in np.unique(groups):
        on = groups == g
        spread = out[on].std()
        out[on] = (out[on] - out[on].mean()) / (spread if spread > 0 else 1.0)
    return out


def _in_units_of(x: np.ndarray, w: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, float]:
    """``w`` rescaled so that ``x @ w + bias`` is in ``y``'s units: the least-squares scale of the within-example
    differences (kept positive, so that no ranking turns around), and the bias as the mean residual."""
    pred, target = _centred(x @ w, groups), _centred(y, groups)
    power = float(pred @ pred)
    scale = float(pred @ target) / power if power > 0 else 1.0
    w = w * max(scale, 1e-12)
    return w, float(np.mean(y - x @ w))


def _fold_count(folds: int, examples: int) -> int:
    """Folds actually used over ``examples`` examples: ``folds``, but at least 2 and at most one per example."""
    return max(2, min(folds, examples))


def choose_alpha(x: np.ndarray, fitted: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
                 alphas: Sequence[float] = ALPHAS, folds: int = 5,
                 order: Sequence[str] | None = None) -> tuple[float, dict[float, dict[str, float]]]:
    """The ridge alpha whose out-of-fold predictions of ``fitted`` rank ``y`` best, and every alpha's figures.

    ``folds``-fold cross-validation over examples (``groups``; dealt to folds in ``order``, by default
    sorted): every example is predicted by a fit that never saw it, steadier than one small validation
    split when there are few examples. Ties go to the lower within-example error of ``fitted``.
    """
    order = np.unique(groups) if order is None else np.asarray(order)
    k = _fold_count(folds, len(order))
    fold_of = {name: i % k for i, name in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    scores: dict[float, dict[str, float]] = {}
    for alpha in alphas:
        pred = np.zeros(len(y))
        for f in range(k):
            w, b = _ridge(x[fold != f], fitted[fold != f], groups[fold != f], alpha)
            pred[fold == f] = x[fold == f] @ w + b
        # the error of what is fitted: how sentences differ within an example (each example's level is not)
        error = _centred(pred - fitted, groups)
        scores[alpha] = {**ranking_quality(pred, y, groups), "mse": float(np.mean(error ** 2))}
    best = max(alphas, key=lambda a: (round(np.nan_to_num(scores[a]["spearman"], nan=-2.0), 6), -scores[a]["mse"]))
    return float(best), scores


def fit_weights(x: np.ndarray, fitted: np.ndarray, y: np.ndarray, groups: np.ndarray, alpha: float, *,
                rescale: bool) -> tuple[np.ndarray, float]:
    """Ridge weights and bias of ``fitted`` on ``x`` (:func:`_ridge`); with ``rescale``, put in ``y``'s units
    (:func:`_in_units_of`: ``fitted`` is a transform of ``y`` that keeps each example's ranking)."""
    w, b = _ridge(x, fitted, groups, alpha)
    return _in_units_of(x, w, y, groups) if rescale else (w, b)


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *, alphas: Sequence[float] = ALPHAS,
              heldout: float = 0.2, folds: int = 5, seed: int = 0,
              target: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
              baseline: np.ndarray | None = None) -> Fit:
    """Fit ``y ~ x @ w + b`` by ridge within examples (:func:`_ridge`), alpha by cross-validation, then held out.

    Every split is by example (``groups``: one id per row), never by row, so the figures are for contexts
    the fit never saw. A fraction ``heldout`` of the examples is set aside first; alpha is chosen by
    ``folds``-fold cross-validation over the rest (out-of-fold predictions of every training example:
    steadier than one small validation split when there are few examples), then the weights are fitted
    on all of the rest and measured once on the held-out examples.

    ``target``: fit ``target(y, groups)`` instead of ``y`` (a transform that keeps each example's
    ranking, such as :func:`sign_log_within`), then rescale the weights to ``y``'s units
    (:func:`_in_units_of`); rankings and held-out figures are always against ``y`` itself.
    ``baseline``: one score per row that the held-out figures name as the one to beat
    (``attention_spearman``); by default ``x``'s mean over its columns.
    """
    x, y, groups = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(groups)
    names = np.unique(groups)
    if len(names) < 3:
        raise ValueError(f"Need at least 3 examples to train, cross-validate and hold out; got {len(names)}.")
    fitted = y if target is None else target(y, groups)
    base = x.mean(axis=1) if baseline is None else np.asarray(baseline, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(names)
    n_test = max(1, round(heldout * len(names)))
    test = np.isin(groups, order[:n_test])
    train = ~test
    best, scores = choose_alpha(x[train], fitted[train], y[train], groups[train], alphas=alphas, folds=folds,
                                order=order[n_test:])
    w, b = fit_weights(x[train], fitted[train], y[train], groups[train], best, rescale=target is not None)
    pred = x[test] @ w + b
    held = {**ranking_quality(pred, y[test], groups[test]), "mse": float(np.mean((pred - y[test]) ** 2)),
            "rows": int(test.sum()),
            # the attention baseline ranks by the mass averaged over every head: the figure to beat
            "attention_spearman": ranking_quality(base[test], y[test], groups[test])["spearman"]}
    split = {"train_examples": len(names) - n_test, "folds": _fold_count(folds, len(names) - n_test),
             "heldout_examples": n_test, "rows": len(y)}
    return Fit(w, b, float(best), scores, held, split)


def fit_estimator(mass: np.ndarray, y: np.ndarray, groups: Sequence[str], *, seed: int = 0,
                  columns: int | None = None) -> Fit:
    """The estimator's recipe (the module's why): ridge on :func:`feature_values` of the averaged ``mass``
    (sentences x layers*heads) against :func:`sign_log_within` of exact LOO ``y``, put back in nats.

    ``columns``: fit on the first ``columns`` features only (``depth * heads``: an estimator of the first
    layers); the attention baseline it is compared with stays the mass averaged over every head.
    """
    mass = np.asarray(mass, dtype=np.float64)
    return fit_ridge(feature_values(mass[:, :columns]), y, groups, seed=seed, target=sign_log_within,
                     baseline=mass.mean(axis=1))  # the attention baseline: mass averaged over every head


def sentence_attention(lm, context: str, question: str, response, template: str | None = None):
    """(document, :class:`~attribot_core.features.AttentionFeatures` of one pass with one span per sentence).

    The prompt is built exactly as :class:`~attribot_core.scoring.LocalScorer` builds it; ``response``
    is a :class:`~attribot_core.prompt.Response` (its token ids are used when they are this model's).
    """
    from .features import attention_features
    from .methods.baselines import sentence_token_map
    from .prompt import DEFAULT_TEMPLATE, PromptBuilder
    from .segment import segment

    builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, template or DEFAULT_TEMPLATE)
    doc = segment(context)
    prompt, owners = sentence_token_map(builder, doc, question)
    response_ids = builder.response_ids(response)
    return doc, attention_features(lm, prompt, response_ids, owners, len(doc.sentences))


def sentence_features(lm, context: str, question: str, response, template: str | None = None):
    """(document, features per sentence (sentences x layers*heads), log p(response | full context)).

    The features are the estimator's: attention mass averaged over the response tokens
    (:func:`sentence_attention`'s pass).
    """
    doc, feats = sentence_attention(lm, context, question, response, template)
    return doc, feats.averaged(), float(feats.token_log_probs.sum())
