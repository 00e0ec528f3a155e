"""What every method shares: its output, and LOO over groups of sentences on one scorer.

Per-token data: when the scorer can give per-response-token log-probs (:class:`TokenScorer`),
:func:`loo_round` returns :class:`~attribot_core.pertoken.Scored` floats, each carrying its span's
per-token deltas over that scorer's response tokens (and the base log-prob carries the base's
per-token log-probs). :class:`MethodOutput` keeps those vectors when scores are set, so a method
that passes ``loo_round``'s scores on gets per-token data without code of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..pertoken import RULE_SUM, Scored, TokenValues, tokens_of
from ..result import top_with_ties  # the one top-k rule; re-exported for the methods
from ..scoring import ProgressFn, Scorer, TokenScorer
from ..segment import Document

__all__ = ["Followed", "MethodOutput", "PartialFn", "loo_round", "replan", "reporting_partial", "top_with_ties"]

PartialFn = Callable[[str, dict[int, float]], None]
"""Called as ``partial(level, {span index: score})`` as soon as those scores are known."""

_PARTIAL: ContextVar[PartialFn | None] = ContextVar("attribot_partial", default=None)


@contextmanager
def reporting_partial(fn: PartialFn) -> Iterator[None]:
    """Within this block, every LOO round reports its span scores as they are computed.

    A context variable rather than one more parameter of every method: live results are a concern of
    whoever runs the method (the run layer), not of the method's strategy. Scores reported here are
    provisional: a later round (pruning's target pass) may replace a span's score.
    """
    token = _PARTIAL.set(fn)
    try:
        yield
    finally:
        _PARTIAL.reset(token)


@dataclass
class MethodOutput:
    """Scores per paragraph and per sentence (``None`` = not scored) and who scored each.

    ``log_prob_full`` is the target's ``log p(response | full context)``, or ``None`` when the method
    never runs the target on the full context (proxy, pruning): that one pass would cost as much as
    everything else those methods do on a long context, and none of their scores need it; nor when
    its pass stops before the logits (``estimate`` with weights of the first layers).

    ``sentence_tokens`` / ``paragraph_tokens`` hold each scored span's per-token deltas (over the
    response tokens of the model that scored it; ``None`` when not scored or not available) and
    ``full_tokens`` the per-token ``log p(token | full context)`` of the first base. ``span_rule``
    says how a span's score for part of the response follows from them (see
    :mod:`attribot_core.pertoken`): ``"sum"``, ``"kept-paragraphs"``, or ``None`` (then
    ``span_note`` says why a re-run is needed). The default ``None`` is the safe one for a new method.
    """

    log_prob_full: float | None
    paragraph_scores: list[float | None]
    paragraph_by: list[str | None]
    sentence_scores: list[float | None]
    sentence_by: list[str | None]
    extra: dict[str, Any] = field(default_factory=dict)
    sentence_tokens: list[TokenValues | None] = field(default_factory=list)
    paragraph_tokens: list[TokenValues | None] = field(default_factory=list)
    full_tokens: TokenValues | None = None
    span_rule: str | None = None
    span_note: str = "This method did not say how its scores split over response tokens."

    def __post_init__(self) -> None:
        self.sentence_tokens = self.sentence_tokens or [None] * len(self.sentence_scores)
        self.paragraph_tokens = self.paragraph_tokens or [None] * len(self.paragraph_scores)
        if self.full_tokens is None:
            self.full_tokens = tokens_of(self.log_prob_full)
        self.log_prob_full = _plain(self.log_prob_full)

    @classmethod
    def empty(cls, doc: Document, log_prob_full: float | None) -> MethodOutput:
        n_p, n_s = len(doc.paragraphs), len(doc.sentences)
        return cls(log_prob_full, [None] * n_p, [None] * n_p, [None] * n_s, [None] * n_s)

    def set_sentences(self, indices: Iterable[int], scores: Sequence[float], by: str) -> None:
        for i, score in zip(indices, scores, strict=True):
            self.sentence_scores[i] = _plain(score)
            self.sentence_by[i] = by
            self.sentence_tokens[i] = tokens_of(score)

    def set_paragraphs(self, indices: Iterable[int], scores: Sequence[float], by: str) -> None:
        for i, score in zip(indices, scores, strict=True):
            self.paragraph_scores[i] = _plain(score)
            self.paragraph_by[i] = by
            self.paragraph_tokens[i] = tokens_of(score)

    def sums_over_tokens(self, note: str = "") -> None:
        """Declare that every score is the sum of its per-token deltas over the attributed tokens."""
        self.span_rule, self.span_note = RULE_SUM, note


def _plain(x: float | None) -> float | None:
    return None if x is None else float(x)


def loo_round(
    scorer: Scorer,
    doc: Document,
    groups: Sequence[Iterable[int]],
    *,
    dropped: Iterable[int] = (),
    progress: ProgressFn | None = None,
    spans: Sequence[tuple[str, int]] | None = None,
) -> tuple[float, list[float]]:
    """LOO of each group of sentences, relative to the context without ``dropped`` sentences.

    Returns ``log p(response | base)`` and, per group, ``log p(response | base) - log p(response |
    base without the group)`` in nats. With a :class:`TokenScorer` these are :class:`Scored` floats
    carrying per-token vectors over all of the scorer's response tokens (each score is their sum over
    the attributed tokens, computed exactly as :meth:`Scorer.log_probs` sums them). A scorer whose
    ``keep_token_values`` is False gets the plain path (``attribute(..., per_token=False)``).
    ``spans`` names each group's span (``("sentence", i)`` or ``("paragraph", j)``) so that, inside
    :func:`reporting_partial`, scores are reported as they arrive.

    ``progress`` hears the round in forward passes: ``(0, n)`` first (a new round), then the base pass
    when it is run (a base the scorer already knows costs none), then the ablations, ending at ``(n, n)``.
    """
    dropped = set(dropped)
    groups = [list(g) for g in groups]
    base = doc.without(dropped)
    variants = [doc.without(dropped | set(g)) for g in groups]
    tokens = isinstance(scorer, TokenScorer) and getattr(scorer, "keep_token_values", True)
    counted = _Round(progress, len(variants))
    counted.start(scorer)
    base_lp = _scored(scorer, base, [], None, tokens)[0]
    counted.based(scorer)
    report = _PARTIAL.get()
    if report is None or spans is None:
        _, scores = _scored(scorer, base, variants, counted, tokens)
        counted.end(scorer.model_id)
        return base_lp, scores
    # Ask in chunks of the scorer's rows per pass, the cheapest ablation first and alone so that a first
    # score shows at once; the scorer's memo keeps the base from being run again.
    rows = getattr(scorer, "rows_per_pass", None)
    found: dict[int, float] = {}
    for chunk_at in _report_order(groups, max(1, int(rows() if rows else 1))):
        counted.offset = len(found)
        _, chunk = _scored(scorer, base, [variants[i] for i in chunk_at], counted, tokens)
        found.update(zip(chunk_at, chunk, strict=True))
        by_level: dict[str, dict[int, float]] = {}
        for i, score in zip(chunk_at, chunk, strict=True):
            level, index = spans[i]
            by_level.setdefault(level, {})[index] = float(score)
        for level, values in by_level.items():
            report(level, values)
    counted.end(scorer.model_id)
    return base_lp, [found[i] for i in range(len(variants))]


def _report_order(groups: Sequence[Sequence[int]], step: int) -> list[list[int]]:
    """The order in which a reported round asks for its ablations: chunks of ``step`` group indices, the
    first one alone, and that one the group whose earliest sentence comes last in the context.

    With prefix reuse an ablation recomputes the prompt from its first removed sentence on, so removing
    the last sentence costs a short pass and removing the first nearly a full one: asking for the
    cheapest first puts the first exact score on screen sooner (on the 0.5B's built-in examples the first
    ablation took 0.52 s when it was the first sentence's), and the round's total is the same in any order.
    """
    if not groups:
        return []
    first = max(range(len(groups)), key=lambda i: (min(groups[i], default=-1), -len(groups[i])))
    rest = [i for i in range(len(groups)) if i != first]
    return [[first], *(rest[at:at + step] for at in range(0, len(rest), step))]


def _scored(scorer: Scorer, base: str, variants: Sequence[str], progress: ProgressFn | None,
            tokens: bool) -> tuple[float, list[float]]:
    """``log p(response | base)`` and each variant's LOO score, as :class:`Scored` when ``tokens``."""
    if not tokens:
        base_lp, lps = scorer.log_probs(base, variants, progress)
        return base_lp, [base_lp - lp for lp in lps]
    base_tok, variant_toks = scorer.token_log_probs(base, variants, progress)
    base_lp = scorer.masked_sum(base_tok)
    scores: list[float] = [
        Scored(base_lp - scorer.masked_sum(v), TokenValues.delta(scorer.model_id, base_tok, v)) for v in variant_toks
    ]
    return Scored(base_lp, TokenValues.of(scorer.model_id, base_tok)), scores


class _Round:
    """One LOO round's progress in forward passes: its base (when run) plus its ablations.

    The scorer reports ablations of one call (a chunk); ``offset`` places the chunk in the round. Whether
    the base cost a pass is read from the scorer's own count (a base it has memoised costs none), so a
    round's total only grows, by its base. An ablation equal to one already scored (a one-sentence
    paragraph's) counts as done, as the scorer counts it. Repeated values are not reported again.
    """

    def __init__(self, progress: ProgressFn | None, n_variants: int) -> None:
        self.progress, self.n, self.offset, self.base = progress, n_variants, 0, 0
        self.last: tuple[int, int] | None = None
        self._passes_before = 0

    def _say(self, done: int, what: str) -> None:
        now = (done, self.base + self.n)
        if self.progress is not None and now != self.last:
            self.last = now
            self.progress(done, self.base + self.n, what)

    def start(self, scorer: Scorer) -> None:
        self._passes_before = scorer.stats.forward_passes
        self._say(0, scorer.model_id)

    def based(self, scorer: Scorer) -> None:
        self.base = min(1, scorer.stats.forward_passes - self._passes_before)
        self._say(self.base, scorer.model_id)

    def end(self, what: str) -> None:
        self._say(self.base + self.n, what)

    def __call__(self, done: int, total: int, what: str) -> None:
        self._say(self.base + self.offset + done, what)


def replan(progress: ProgressFn | None, rest: int) -> None:
    """Tell ``progress`` that the method's remaining rounds take ``rest`` forward passes (all models).

    A method with rounds calls it when a round has decided what the next ones score (hierarchical after
    its paragraph round, tree after each level, pruning after its proxy stage), so a progress bar's total
    follows what the method will do instead of a plan made before any score was known. A callback that
    does not listen (no ``replan`` attribute, e.g. a plain function) is left alone.
    """
    listener = getattr(progress, "replan", None)
    if listener is not None:
        listener(max(0, int(rest)))


class Followed:
    """``progress`` for a stage after which its caller has ``later`` more passes (pruning's proxy stage).

    The stage's own :func:`replan` counts only its rounds; this adds the caller's, so a re-planned total
    still includes the target's rescoring.
    """

    def __init__(self, progress: ProgressFn | None, later: int) -> None:
        self.progress, self.later = progress, later

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.progress is not None:
            self.progress(done, total, what)

    def replan(self, rest: int) -> None:
        replan(self.progress, rest + self.later)


def paragraph_groups(doc: Document) -> list[list[int]]:
    return [[s.index for s in doc.sentences_of(p.index)] for p in doc.paragraphs]


