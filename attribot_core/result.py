"""The one result type every view, export and benchmark reads.

Scores are LOO errors in nats: ``log p(response | kept context) - log p(response | without span)``,
summed over the attributed response tokens. Positive means the span supports the response.
``None`` means "not scored" (e.g. a sentence of a paragraph that hierarchical attribution pruned),
which is different from a score of 0.

Schema 2 adds ``per_token`` (see :mod:`attribot_core.pertoken`): each scored span's per-token deltas
and the response tokens with their character offsets, so :meth:`AttributionResult.for_response_span`
explains any part of the response without a model. Schema-1 files still load (``per_token`` null).

Schema 3 adds ``passages``: when the context was a list of retrieved passages, ``passages[i]`` (its
``id``, ``title`` and ``text``) is paragraph ``i``, and ``passage_template`` says how the prompt showed
them; ``context`` is then the rendered text. Empty for a plain-string context and in older files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypedDict

from .pertoken import RULE_KEPT, PerToken, SpanNeedsRerun
from .segment import Passage
from .validate import SCHEMA_VERSION, ResultFileError, check_result_dict

__all__ = ["AttributionResult", "ResultExtra", "SCHEMA_VERSION", "SpanNeedsRerun", "SpanScore", "top_with_ties"]

Level = Literal["sentence", "paragraph"]


class ResultExtra(TypedDict, total=False):
    """The keys ``AttributionResult.extra`` may carry: every one is optional, each is written in one place.

    ``extra`` is kept a plain dict in the JSON (readers use ``extra.get``); this declaration is where a
    new key is added, with its meaning, so every writer and reader agrees on its name and unit.
    """

    # -- written by attribute() for every run (attribot_core.api) --------------------------------------
    tokens_computed: int  # prompt+response tokens the target model actually ran (all passes together)
    tokens_reused: int  # tokens the prefix cache let the target skip
    model_calls: int  # forward calls of the target model (a call may score several ablations)
    rows_per_pass: int  # ablations scored per forward call (the batch size in effect)
    batch_size: int | str  # the batch size asked for ("auto" or a number)
    response_complete: bool  # False: generation stopped at max_new_tokens, the response is cut off
    device: str  # where the target ran, e.g. "cpu", "cuda:0"
    dtype: str  # the target's weights, e.g. "float32"
    # -- written by methods (attribot_core.methods.*) -------------------------------------------------
    kept_paragraphs: list[int]  # hierarchical/tree/pruning: paragraph indices whose sentences were scored
    kept_sentences: list[int]  # pruning: sentence indices the target re-scored after the proxy's ranking
    proxy_log_prob_full: float | None  # proxy/pruning: log p(response | full context) on the proxy, nats
    log_prob_pruned: float  # pruning: the target's log p(response | kept sentences only), nats
    tree_rounds: list[dict[str, Any]]  # tree: per round, its blocks, their scores and the kept block indices
    tree_depth: int  # tree: levels of blocks above the paragraphs
    surrogate_intercept: float  # surrogate baseline: the linear model's intercept, nats
    surrogate_r2: float  # surrogate baseline: R² of the linear fit on its random ablations
    n_ablations: int  # surrogate baseline: random ablations it scored
    attention_layers: int  # attention baseline: layers whose attention was averaged
    estimate_matmuls: str  # estimate, first-order: its own pass's matrix products, "bfloat16" (precision=auto,
    # native-bfloat16 CPU) or the model's dtype, e.g. "float32"; absent when the estimate rode on a base pass
    backward_passes: int  # first-order: backward passes run (1), beside forward_passes in the stats
    # -- written by AttributionResult.for_response_chars (a part of the response, from stored values) -
    span_from_stored: bool  # True: scores are sums of stored per-token values, no model ran
    span_exact: bool  # False: a re-run would score other sentences (hierarchical chose other paragraphs)
    span_note: str  # one line saying how the part's scores were obtained and whether they are exact
    response_ranges: list[list[int]]  # the response character ranges [start, end) attributed
    response_end_token: bool  # True: the end-of-turn token was attributed too
    # -- written by attribot_core.faithfulness (opt-in measures: attribot batch --measures topk,lds) ---
    topk_drop: dict[str, float | None]  # str(k) -> log p(R|C) - log p(R|C without the top-k sentences), nats
    lds: float | None  # linear datamodeling score: Spearman over random masks of actual vs predicted log p
    lds_masks: int  # masks the LDS was computed over
    measures_passes: int  # forward passes the measures ran (masks cached by a sibling batch cost none)
    measures_seconds: float  # seconds the measures took
    # -- written by the run layer's estimate-first stage (attribot_core.runs.execute) -----------------
    estimate: dict[str, Any]  # the last preview: by ("estimate" or "first-order"), sentences/paragraphs (nats),
    # seconds, passes, backward_passes, spearman, top3 vs exact; "before": earlier previews' by/seconds/figures
    # -- written by the run store and the app ---------------------------------------------------------
    provisional: bool  # a running run's scores so far: a missing score means "not scored yet"
    gold_evidence: list[str]  # sentence texts marked as evidence (built-in examples, datasets)
    gold_answers: list[str]  # expected answer strings, used to find evidence when none is marked


def top_with_ties(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` largest scores, plus any tied with the k-th (in index order).

    The one "keep the top k" rule: methods use it to choose what to refine, and a result uses it to
    tell whether a part of the response would keep the same paragraphs.
    """
    if k <= 0 or not scores:
        return []
    if k >= len(scores):
        return list(range(len(scores)))
    cut = sorted(scores, reverse=True)[k - 1]
    return [i for i, s in enumerate(scores) if s >= cut]


@dataclass(frozen=True)
class SpanScore:
    """One paragraph or sentence: where it is, what it says, its score and who computed it."""

    index: int
    start: int
    end: int
    text: str
    score: float | None
    scored_by: str | None
    paragraph: int | None = None  # a sentence's paragraph; None for paragraphs


def _span(d: dict[str, Any]) -> SpanScore:
    """A validated span dict as a :class:`SpanScore` (a missing score means "not scored"; unknown keys are dropped)."""
    known = {f.name for f in fields(SpanScore)}
    return SpanScore(**{"score": None, "scored_by": None, "paragraph": None,
                        **{k: v for k, v in d.items() if k in known}})


@dataclass(frozen=True)
class AttributionResult:
    """Everything one attribution run produced, serialisable to JSON and back."""

    context: str
    question: str
    response: str
    method: str
    model: str
    settings: dict[str, Any]
    log_prob_full: float | None  # None: the method never ran the target on the full context
    paragraphs: tuple[SpanScore, ...]
    sentences: tuple[SpanScore, ...]
    forward_passes: dict[str, int]
    timings: dict[str, float]
    proxy_model: str | None = None
    response_span: tuple[int, int] | None = None
    response_tokens: int = 0
    template: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keys and meanings: ResultExtra
    schema_version: int = SCHEMA_VERSION
    per_token: PerToken | None = None  # per-token deltas of every scored span; None in schema-1 files
    passages: tuple[Passage, ...] = ()  # the retrieved passages, one per paragraph; () for a plain string
    passage_template: str = ""  # how the prompt showed each passage; "" for a plain string

    # -- views -------------------------------------------------------------------------------------
    def spans(self, level: Level = "sentence") -> tuple[SpanScore, ...]:
        return self.sentences if level == "sentence" else self.paragraphs

    def scores(self, level: Level = "sentence") -> list[float | None]:
        return [s.score for s in self.spans(level)]

    def top_k(self, k: int = 5, level: Level = "sentence") -> list[SpanScore]:
        """The ``k`` highest-scoring spans (not-scored spans never rank)."""
        scored = [s for s in self.spans(level) if s.score is not None]
        return sorted(scored, key=lambda s: s.score, reverse=True)[:k]

    def rank_of(self, level: Level = "sentence") -> dict[int, int]:
        """1-based rank of each scored span by score (highest first)."""
        return {s.index: r for r, s in enumerate(self.top_k(len(self.spans(level)), level), 1)}

    def source_label(self, paragraph: int) -> str:
        """What every view calls paragraph ``paragraph`` (0-based), as plain text for the view to escape.

        A passage is named by its number and title, ``source 3 · Harbour board minutes`` (its id when it
        has no title and the id is not just its number); a paragraph of a plain string is ``paragraph 3``.
        """
        if not self.passages:
            return f"paragraph {paragraph + 1}"
        p = self.passages[paragraph]
        name = p.title or (p.id if p.id != str(paragraph + 1) else "")
        return f"source {paragraph + 1} · {name}" if name else f"source {paragraph + 1}"

    @property
    def total_forward_passes(self) -> int:
        return sum(self.forward_passes.values())

    def to_dataframe(self, level: Level = "sentence"):
        """A pandas table, one row per span, with its rank and what was attributed.

        Ranks are 1-based whole numbers (missing if not scored), so a CSV says ``2``, not ``2.0``. Every row
        also names the question, the response and the method, so a table exported from a batch of runs
        still says which answer each score explains.
        For passages, ``source_id`` and ``source_title`` name the passage of each row.
        """
        import pandas as pd

        ranks = self.rank_of(level)
        rows = [{**asdict(s), "rank": ranks.get(s.index)} for s in self.spans(level)]
        df = pd.DataFrame(rows, columns=[f.name for f in fields(SpanScore)] + ["rank"])
        df["rank"] = df["rank"].astype("Int64")
        df["question"], df["response"], df["method"] = self.question, self.response, self.method
        if self.passages:  # each span names its passage: a passage itself, or the passage a sentence is in
            of = [s.index if level == "paragraph" else s.paragraph for s in self.spans(level)]
            df["source_id"] = [self.passages[p].id for p in of]
            df["source_title"] = [self.passages[p].title for p in of]
        return df.drop(columns=["paragraph"]) if level == "paragraph" else df

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, per_token=None))
        for level in ("paragraphs", "sentences"):
            for s in d[level]:
                if level == "paragraphs":
                    s.pop("paragraph")
        if self.per_token is not None:
            d["per_token"] = self.per_token.to_dict(self.response, *self._scored_by())
        else:
            d["per_token"] = None
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttributionResult:
        check_result_dict(d)  # types, offsets, sizes: a damaged file fails here, naming the field
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["paragraphs"] = tuple(_span(s) for s in d.get("paragraphs", []))
        d["sentences"] = tuple(_span(s) for s in d["sentences"])
        if d.get("response_span") is not None:
            d["response_span"] = tuple(d["response_span"])
        d["passages"] = tuple(Passage(p["id"], p["title"], p["text"]) for p in d.get("passages") or [])
        if d.get("per_token") is not None:
            by = [[s.scored_by if s.score is not None else None for s in d[k]] for k in ("sentences", "paragraphs")]
            try:
                d["per_token"] = PerToken.from_dict(d["per_token"], d["response"], *by)
            except ValueError as exc:
                raise ResultFileError(f"Not a valid attribution result: {exc}") from None
        return cls(**d)

    def _scored_by(self) -> tuple[list[str | None], list[str | None]]:
        return tuple([s.scored_by if s.score is not None else None for s in spans]  # type: ignore[return-value]
                     for spans in (self.sentences, self.paragraphs))

    @classmethod
    def from_json(cls, text: str) -> AttributionResult:
        """Parse and validate; anything that is not a valid result raises :class:`ResultFileError`."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ResultFileError("Not an attribution result: the JSON is nested too deeply.") from None
        except json.JSONDecodeError as exc:
            raise ResultFileError(f"Not an attribution result: not valid JSON ({exc}).") from None
        return cls.from_dict(data)

    def with_extra(self, **extra: Any) -> AttributionResult:
        return replace(self, extra={**self.extra, **extra})

    # -- parts of the response, from stored per-token values -----------------------------------------
    def for_response_span(self, start: int, end: int) -> AttributionResult:
        """A result attributing only the response characters ``[start, end)``, without a model.

        Scores are the stored per-token deltas summed over the tokens that range covers (per model,
        by its own token offsets, with the end-of-turn rule of ``response_span``). For ``loo``,
        ``loo-naive`` and ``proxy`` this equals ``attribute(..., response_span=(start, end))``; for
        ``hierarchical`` too while that part keeps the run's top-k paragraphs (else
        ``extra["span_exact"]`` is False and ``extra["span_note"]`` says why). Raises
        :class:`SpanNeedsRerun` for results without per-token values (schema-1 files, baselines) and
        for ``pruning``, whose mix of proxy and target scores a re-run would choose anew.
        """
        return self.for_response_chars([(start, end)])

    def for_response_chars(self, ranges: Sequence[tuple[int, int]], *, include_end: bool = False
                           ) -> AttributionResult:
        """Like :meth:`for_response_span` for the union of several character ranges (e.g. picked words).

        ``include_end`` also attributes the end-of-turn token. With one range this is
        :meth:`for_response_span`; with several, a score is the sum over every selected token.
        """
        pt = self._per_token_for_parts()
        ranges = [(int(a), int(b)) for a, b in ranges]
        n = len(self.response)
        for a, b in ranges:
            if not 0 <= a < b <= n:
                raise ValueError(f"The response range {a}:{b} is not inside the response (0:{n}).")
        if not ranges and not include_end:
            raise ValueError("Choose at least one part of the response.")
        masks = pt.masks(ranges, include_end)
        for model, mask in masks.items():
            if not any(mask):
                where = ", ".join(f"{a}:{b}" for a, b in ranges) or "the end"
                raise ValueError(f"The response range {where} covers no response token of {model}.")

        def rescored(spans: tuple[SpanScore, ...], level: str) -> tuple[SpanScore, ...]:
            out = []
            for span, values in zip(spans, pt.spans(level), strict=True):
                if span.score is not None and values is None:
                    raise SpanNeedsRerun(f"{level.capitalize()} {span.index + 1} was scored without per-token "
                                         "values: re-run for a part of the response.")
                out.append(replace(span, score=pt.sum_over(values, masks)))
            return tuple(out)

        paragraphs, sentences = rescored(self.paragraphs, "paragraph"), rescored(self.sentences, "sentence")
        exact, note = True, f"{self.method}: sums of the stored per-token LOO values"
        if pt.rule == RULE_KEPT:
            exact, note = self._same_kept_paragraphs(paragraphs)
        extra = {**self.extra, "span_from_stored": True, "span_exact": exact, "span_note": note,
                 "response_ranges": [list(r) for r in ranges], "response_end_token": include_end}
        full = pt.sum_over(pt.full, masks)
        if "proxy_log_prob_full" in extra and pt.full is not None and pt.full.model == self.proxy_model:
            extra["proxy_log_prob_full"] = full
        target_mask = masks.get(self.model)
        return replace(
            self, paragraphs=paragraphs, sentences=sentences, extra=extra,
            log_prob_full=full if self.log_prob_full is not None else None,
            response_span=ranges[0] if len(ranges) == 1 and not include_end else None,
            response_tokens=int(sum(target_mask)) if target_mask is not None else self.response_tokens,
        )

    def why_no_parts(self) -> str | None:
        """Why a part of the response cannot be explained from stored values (None: it can)."""
        try:
            self._per_token_for_parts()
        except SpanNeedsRerun as exc:
            return str(exc)
        return None

    def _per_token_for_parts(self) -> PerToken:
        pt = self.per_token
        if pt is None:
            why = ("it was saved with schema 1, before results kept per-token values" if self.schema_version < 2
                   else f"method '{self.method}' keeps no per-token values (its scores are not sums over tokens)")
            raise SpanNeedsRerun(f"This result cannot explain a part of the response without a re-run: {why}.")
        if pt.rule is None:
            raise SpanNeedsRerun(f"A part of the response needs a re-run with method '{self.method}': {pt.note}.")
        return pt

    def _same_kept_paragraphs(self, paragraphs: tuple[SpanScore, ...]) -> tuple[bool, str]:
        """Hierarchical: sentence sums equal a re-run only if this part keeps the run's top-k paragraphs."""
        kept = sorted(self.extra.get("kept_paragraphs", []))
        k = self.settings.get("keep_paragraphs")
        now = sorted(top_with_ties([p.score for p in paragraphs], int(k))) if isinstance(k, int) else None
        if now == kept:
            return True, (f"{self.method}: this part keeps the run's top-{k} paragraph(s) "
                          f"{', '.join(str(i + 1) for i in kept)}, so the sums of stored values are a re-run's")
        shown = ", ".join(str(i + 1) for i in now or [])
        return False, (f"{self.method}: paragraph scores are exact, but this part's top-{k} paragraphs would be "
                       f"{shown} (the run kept {', '.join(str(i + 1) for i in kept)}), so a re-run would "
                       "score other sentences; sentence scores shown are relative to the run's kept paragraphs")

    def to_token_dataframe(self):
        """One row per response token (of the model most sentences were scored on), one column per sentence.

        Columns: ``token`` (index), ``text``, ``start``/``end`` (characters of the response), ``model``,
        then ``sentence_<i>`` = that sentence's per-token LOO delta in nats (empty where the sentence was
        not scored on these tokens). Raises :class:`SpanNeedsRerun` without per-token values.
        """
        import pandas as pd

        if self.per_token is None:
            self._per_token_for_parts()
        axis = self.per_token.main_axis(prefer=self.model)
        offsets = axis.response_offsets(self.response)
        data: dict[str, Any] = {
            "token": list(range(len(axis))), "text": list(axis.labels),
            "start": [a for a, _ in offsets], "end": [b for _, b in offsets], "model": [axis.model] * len(axis),
        }
        for s, values in zip(self.sentences, self.per_token.sentences, strict=True):
            on_axis = values is not None and values.model == axis.model
            data[f"sentence_{s.index}"] = list(values.values) if on_axis else [float("nan")] * len(axis)
        return pd.DataFrame(data)
