"""The one result type every view, export and benchmark reads.

Scores are LOO errors in nats: ``log p(response | kept context) - log p(response | without span)``,
summed over the attributed response tokens. Positive means the span supports the response.
``None`` means "not scored" (e.g. a sentence of a paragraph that hierarchical attribution pruned),
which is different from a score of 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from .validate import ResultFileError, check_result_dict

__all__ = ["AttributionResult", "SpanScore", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
Level = Literal["sentence", "paragraph"]


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
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

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

    @property
    def total_forward_passes(self) -> int:
        return sum(self.forward_passes.values())

    def to_dataframe(self, level: Level = "sentence"):
        """A pandas table, one row per span, with its rank (ranks are 1-based, NaN if not scored)."""
        import pandas as pd

        ranks = self.rank_of(level)
        rows = [{**asdict(s), "rank": ranks.get(s.index)} for s in self.spans(level)]
        df = pd.DataFrame(rows, columns=[f.name for f in fields(SpanScore)] + ["rank"])
        return df.drop(columns=["paragraph"]) if level == "paragraph" else df

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for level in ("paragraphs", "sentences"):
            for s in d[level]:
                if level == "paragraphs":
                    s.pop("paragraph")
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttributionResult:
        check_result_dict(d)  # types, offsets, sizes: a damaged file fails here, naming the field
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["paragraphs"] = tuple(SpanScore(**{"paragraph": None, **s}) for s in d.get("paragraphs", []))
        d["sentences"] = tuple(SpanScore(**s) for s in d["sentences"])
        if d.get("response_span") is not None:
            d["response_span"] = tuple(d["response_span"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> AttributionResult:
        try:
            data = json.loads(text)
        except RecursionError:
            raise ResultFileError("Not an attribution result: the JSON is nested too deeply.") from None
        return cls.from_dict(data)

    def with_extra(self, **extra: Any) -> AttributionResult:
        return replace(self, extra={**self.extra, **extra})
