"""Built-in examples: small multi-paragraph contexts with a question, for demos, teaching and tests.

The facts are fictional on purpose: a model cannot answer from memory, so the answer has to come from
the context and attribution has something clear to find. Each example names the sentences that hold
the answer (``evidence``) and, where there is one, the sentence built to mislead (``distractors``),
verbatim as they appear in the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .gold import gold_sentences

if TYPE_CHECKING:
    from .result import AttributionResult

__all__ = ["EXAMPLES", "Example", "Known", "get_example", "known_for"]

Kind = Literal["single", "two-hop", "distractor"]


@dataclass(frozen=True)
class Example:
    """One context and question; ``evidence`` are the sentences a faithful attribution should rank high."""

    key: str
    title: str
    kind: Kind
    context: str
    question: str
    evidence: tuple[str, ...]
    distractors: tuple[str, ...] = ()
    note: str = ""
    answers: tuple[str, ...] = ()  # accepted answers: a response containing none of them is wrong


EXAMPLES: tuple[Example, ...] = (
    Example(
        key="lighthouse",
        title="The Varn lighthouse (answer in one sentence)",
        kind="single",
        context=(
            "The Varn lighthouse stands on a granite spur at the northern tip of Keld Island. "
            "Its white tower is forty-two metres tall.\n\n"
            "Construction began in 1869 under the engineer Tobias Renn. "
            "The lamp was first lit on 3 March 1874. "
            "For a century it burned paraffin.\n\n"
            "Today the lighthouse is automatic. "
            "A small museum in the old keeper's cottage is open in summer."
        ),
        question="When was the Varn lighthouse first lit?",
        evidence=("The lamp was first lit on 3 March 1874.",),
        note="One sentence holds the date; the construction year nearby is a weaker competitor.",
        answers=("1874",),
    ),
    Example(
        key="quillfeather",
        title="The Quillfeather pen (needs two sentences)",
        kind="two-hop",
        context=(
            "The Quillfeather is a fountain pen with a glass nib. "
            "It is popular with calligraphers in the town of Ebberly.\n\n"
            "Quillfeather pens are made by the workshop Orrin & Daughters. "
            "The workshop employs nine glassblowers.\n\n"
            "Orrin & Daughters was founded by Mira Orrin in 1921. "
            "She had trained as a lens grinder before opening the workshop.\n\n"
            "Each pen takes two days to make. "
            "The nibs are polished by hand."
        ),
        question="Who founded the company that makes the Quillfeather pen?",
        evidence=(
            "Quillfeather pens are made by the workshop Orrin & Daughters.",
            "Orrin & Daughters was founded by Mira Orrin in 1921.",
        ),
        note=("The answer links two sentences in different paragraphs: the maker, then its founder. Small models "
              "often answer from the first paragraph instead; the heatmap then shows where that answer came from."),
        answers=("Mira Orrin",),
    ),
    Example(
        key="tessaly",
        title="The capital of Tessaly (with a distractor)",
        kind="distractor",
        context=(
            "Tessaly is a small island in the Morrow Sea. "
            "About forty thousand people live there.\n\n"
            "Portmere is the largest town on Tessaly and its only ferry port. "
            "Many visitors assume that Portmere is the capital.\n\n"
            "In fact, the capital of Tessaly is Caldor, a quiet inland town. "
            "The island's parliament has met in Caldor since 1802.\n\n"
            "The island is known for its salt marshes. "
            "Its flag shows a white heron on a green field."
        ),
        question="What is the capital of Tessaly?",
        evidence=("In fact, the capital of Tessaly is Caldor, a quiet inland town.",),
        distractors=("Many visitors assume that Portmere is the capital.",),
        note="A sentence suggests the wrong town; see whether it helps or hurts the answer.",
        answers=("Caldor",),
    ),
)


def get_example(key: str) -> Example:
    """The example called ``key`` (see ``EXAMPLES``)."""
    for example in EXAMPLES:
        if example.key == key:
            return example
    raise KeyError(f"No example '{key}'. Choose one of: {', '.join(e.key for e in EXAMPLES)}.")


@dataclass(frozen=True)
class Known:
    """What is known about a result's input: its gold evidence sentences (indices) and accepted answers."""

    evidence: tuple[int, ...]
    answers: tuple[str, ...]
    source: str  # where it comes from, for the view ("built-in example ...", "gold labels in the result")
    note: str = ""

    def response_has_answer(self, response: str) -> bool:
        """Whether the response contains one of the accepted answers (case and spacing ignored)."""
        text = " ".join(response.casefold().split())
        return any(" ".join(a.casefold().split()) in text for a in self.answers)


def _indices(result: AttributionResult, sentences: tuple[str, ...] | list[str]) -> tuple[int, ...]:
    return tuple(sorted(gold_sentences(result, list(sentences))))


def known_for(result: AttributionResult) -> Known | None:
    """Gold labels for ``result``: ``extra["gold_evidence"]`` (sentence texts) and ``extra["gold_answers"]``
    when the result carries them (e.g. an evaluation example), else the built-in example with the same
    context, else None."""
    gold = result.extra.get("gold_evidence")
    if isinstance(gold, list | tuple) and all(isinstance(g, str) for g in gold):
        answers = result.extra.get("gold_answers") or ()
        answers = tuple(a for a in answers if isinstance(a, str)) if isinstance(answers, list | tuple) else ()
        return Known(_indices(result, gold), answers, "gold labels in the result")
    for example in EXAMPLES:
        if example.context == result.context:
            return Known(_indices(result, example.evidence), example.answers,
                         f"built-in example “{example.title}”", example.note)
    return None
