"""The context as an escaped HTML heatmap: one shaded span per sentence or paragraph, and its legend.

Text goes in with ``dir="auto"`` so right-to-left scripts read and align as they should; every piece of
user text is escaped with ``html.escape``. Known evidence sentences are outlined when the caller passes
what is known about the input (``examples.known_for``): the view looks nothing up itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..result import AttributionResult, SpanScore
from .colours import (
    DARK_TEXT,
    DEFAULT_SCALE,
    HATCH,
    LIGHT_TEXT,
    LOG_DECADES,
    NEGATIVE_RGB,
    POSITIVE_RGB,
    SCALES,
    Level,
    Scale,
    colour_at,
    in_nats,
    max_abs_score,
    scale_strengths,
    sign_of,
)
from .text import esc

if TYPE_CHECKING:
    from ..examples import Known

__all__ = ["CSS", "heatmap_html", "legend_html"]

CSS = """
.ab-root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.75;
  color: #1b1b1b; }
.ab-text { white-space: pre-wrap; font-size: 1.02rem; unicode-bidi: plaintext; text-align: start; }
.ab-span { border-radius: 3px; padding: 1px 1px; box-decoration-break: clone;
  -webkit-box-decoration-break: clone; }
.ab-span:hover { outline: 2px solid #555; }
.ab-none { background: @HATCH@; color: #555; border-bottom: 1px dashed #777; }
.ab-pending { color: #8a8a8a; outline: 1px dotted #b0b0b0; }
.ab-legend { font-size: 0.85rem; color: #333; margin: 0.2rem 0 0.7rem 0; }
.ab-scale { display: flex; flex-wrap: wrap; align-items: center; gap: 0.3rem 0.6rem; margin-bottom: 0.2rem; }
.ab-key { margin-left: 0.8rem; }
.ab-o { color: rgb(166, 70, 0); } .ab-b { color: @NEG@; }
.ab-bar { width: 180px; height: 12px; border: 1px solid #999; border-radius: 2px;
  background: linear-gradient(to right, @NEG@, #ffffff, @POS@); }
.ab-bar-pos { background: linear-gradient(to right, #ffffff, @POS@); }
.ab-swatch { display: inline-block; width: 22px; height: 12px; border: 1px solid #999;
  vertical-align: middle; border-radius: 2px; }
.ab-gold { outline: 2px dashed #1b1b1b; outline-offset: 1px; }
.ab-gold-key { display: inline-block; width: 22px; height: 12px; outline: 2px dashed #1b1b1b; vertical-align: middle; }
.ab-provisional { color: #6b4a00; margin: 0.1rem 0; }
.ab-warn { background: #fff4e5; border-left: 3px solid #b35c00; padding: 0.35rem 0.8rem; margin: 0.3rem 0;
  border-radius: 3px; font-size: 0.92rem; }
.ab-response { unicode-bidi: plaintext; white-space: pre-wrap; background: #f6f7f9; border-left: 3px solid #1f5fa6;
  padding: 0.5rem 0.8rem; border-radius: 3px; }
.ab-facts { border-collapse: collapse; font-size: 0.88rem; width: 100%; }
.ab-facts th, .ab-facts td { text-align: left; vertical-align: top; padding: 0.2rem 0.5rem;
  border-bottom: 1px solid #e4e4e4; }
.ab-facts th { font-weight: 600; color: #444; white-space: nowrap; }
.ab-part { background: #ffe9a8; border-bottom: 2px solid #b8860b; }
"""
CSS = CSS.replace("@HATCH@", HATCH).replace("@NEG@", f"rgb{NEGATIVE_RGB}").replace("@POS@", f"rgb{POSITIVE_RGB}")
"""The stylesheet of every HTML block of this package (inlined, so each block stands alone)."""


def _effect(score: float, nats: bool = True) -> str:
    """What a score means in words (sign convention: positive = the span supports the response)."""
    if not nats:
        return "share of the response's attention (not a change in log-probability)"
    if score > 0:
        return f"removing it lowers log p(answer) by {score:.3f} nats"
    if score < 0:
        return f"removing it raises log p(answer) by {-score:.3f} nats"
    return "removing it does not change log p(answer)"


def _who(result: AttributionResult, by: str | None) -> str:
    if by is None:
        return ""
    role = "target" if by == result.model else "proxy" if by == result.proxy_model else "model"
    return f"{by} ({role})"


def _where(result: AttributionResult, span: SpanScore, level: Level) -> str:
    """A span's name for its tooltip: ``Sentence 4 (source 2 · Harbour board minutes)``, ``Paragraph 2``
    (plain text; the caller escapes it)."""
    if level == "paragraph":
        label = result.source_label(span.index)
        return label[:1].upper() + label[1:]
    where = f"Sentence {span.index + 1}"
    return where + (f" ({result.source_label(span.paragraph)})" if span.paragraph is not None else "")


def _tooltip(result: AttributionResult, span: SpanScore, level: Level, rank: int | None, n_scored: int) -> str:
    where = _where(result, span, level)
    if span.score is None:
        return f"{where}\nnot scored: its paragraph was pruned before sentence scoring"
    nats = in_nats(result)
    unit = " nats" if nats else ""
    lines = [where, f"score {span.score:+.3f}{unit}: {_effect(span.score, nats)}"]
    if rank is not None:
        lines.append(f"rank {rank} of {n_scored}")
    if span.scored_by:
        lines.append(f"scored by {_who(result, span.scored_by)}")
    return "\n".join(lines)


def _span_html(result: AttributionResult, span: SpanScore, level: Level, strength: float,
               rank: int | None, n_scored: int, gold: bool) -> str:
    pending = span.score is None and bool(result.extra.get("provisional"))
    sign = "pending" if pending else sign_of(span.score)
    # a live run: a pending span's score may still come
    tip = f"{_where(result, span, level)}\nnot scored yet" if pending else _tooltip(result, span, level, rank, n_scored)
    if gold:  # second line, so the last line stays "scored by ..."
        first, _, rest = tip.partition("\n")
        tip = f"{first}\nknown evidence (a gold sentence of this input)\n{rest}".rstrip("\n")
    # no dir on a span: an isolated span would hide its letters from the paragraph's direction detection
    data = f'data-level="{level}" data-index="{span.index}" data-sign="{sign}"'
    gold_class = " ab-gold" if gold else ""
    if span.score is None:
        css = "ab-pending" if pending else "ab-none"
        return (f'<span class="ab-span {css}{gold_class}" {data} data-score="" title="{esc(tip)}">'
                f"{esc(span.text)}</span>")
    text_colour = LIGHT_TEXT if strength > 0.62 else DARK_TEXT
    background = colour_at(span.score, strength) if span.score != 0 else "rgb(255, 255, 255)"
    style = f"background-color: {background}; color: {text_colour};"
    return (
        f'<span class="ab-span ab-{sign}{gold_class}" {data} data-score="{span.score:.6g}" style="{style}" '
        f'title="{esc(tip)}">{esc(span.text)}</span>'
    )


def _flowing(result: AttributionResult, level: Level, intensity: float, scale: Scale,
             gold: frozenset[int]) -> str:
    """The context exactly as typed (whitespace and paragraph breaks kept), one span per unit."""
    spans = sorted(result.spans(level), key=lambda s: s.start)
    strengths = scale_strengths([s.score for s in spans], scale)
    ranks = result.rank_of(level)
    n_scored = len(ranks)
    text = result.context
    pieces, pos = [], 0
    for span, t in zip(spans, strengths, strict=True):
        pieces.append(esc(text[pos : span.start]))
        pieces.append(_span_html(result, span, level, min(1.0, intensity * t), ranks.get(span.index), n_scored,
                                 level == "sentence" and span.index in gold))
        pos = span.end
    pieces.append(esc(text[pos:]))
    return f'<div class="ab-text" dir="auto">{"".join(pieces)}</div>'


def _scale_words(scale: Scale, x: float) -> str:
    if scale == "sqrt":
        return f"signed square root: colour ∝ √|score|, full at ±{x:.2f} nats, so small scores stay visible"
    if scale == "log":
        return (f"signed log: colour ∝ log |score| over {LOG_DECADES} decades below ±{x:.2f} nats, "
                "so small scores stay visible")
    if scale == "rank":
        return "rank: colour by the rank of |score| (not its size); the strongest span is full colour"
    return f"linear: colour ∝ score, full at ±{x:.2f} nats"


def _evidence(known: Known | None) -> frozenset[int]:
    return frozenset(known.evidence) if known is not None else frozenset()


def legend_html(result: AttributionResult, level: Level = "sentence", scale: Scale = DEFAULT_SCALE,
                known: Known | None = None) -> str:
    """What the colours mean, in nats, for the scale of ``level``; names the colour scale.

    A key for the outline of known evidence is added when ``known`` names evidence sentences. For a
    run's scores so far (``extra["provisional"]``) it says that the scale's end is provisional: the
    largest score so far, which a later, larger score moves (every colour then fades).
    """
    x = max_abs_score(result, level)
    unit = "sentence" if level == "sentence" else "paragraph"
    scale_note = (f'<span class="ab-key ab-scale-name" data-scale="{scale}" title="{esc(_scale_words(scale, x))}">'
                  f"Colour scale: <b>{esc(SCALES[scale])}</b></span>")
    if not in_nats(result):
        return (
            '<div class="ab-legend"><div class="ab-scale"><span>0</span>'
            '<span class="ab-bar ab-bar-pos" role="img" aria-label="colour scale"></span>'
            f"<span>{x:.3g}</span>{scale_note}</div><div>Orange: the share of the response's attention on this "
            f"{unit} (a baseline; not a change in log-probability, not nats).</div></div>"
        )
    keys = ['<span class="ab-key"><span class="ab-swatch" style="background:#ffffff"></span> 0 = no effect</span>']
    if any(s is None for s in result.scores(level)) and result.extra.get("provisional"):
        keys.append('<span class="ab-key"><span class="ab-swatch ab-pending"></span> not scored yet</span>')
    elif any(s is None for s in result.scores(level)):
        keys.append(f'<span class="ab-key"><span class="ab-swatch" style="background:{HATCH}"></span> '
                    "not scored (pruned)</span>")
    if level == "sentence" and _evidence(known):
        keys.append('<span class="ab-key"><span class="ab-gold-key"></span> known evidence</span>')
    so_far = " so far" if result.extra.get("provisional") else ""
    provisional = (f'<div class="ab-provisional"><b>Provisional scale</b>: full colour is the largest |score| so '
                   f"far ({x:.2f} nats); a larger score still to come will fade every colour.</div>"
                   if so_far else "")
    return (
        '<div class="ab-legend"><div class="ab-scale">'
        f'<span>−{x:.2f} nats{so_far}</span><span class="ab-bar" role="img" aria-label="diverging colour scale">'
        f'</span><span>+{x:.2f} nats{so_far}</span>{scale_note}{"".join(keys)}</div>{provisional}'
        f'<div><b class="ab-o">Orange</b>: removing this {unit} lowers log p(answer) by up to {x:.2f} nats '
        f'(it supports the answer). <b class="ab-b">Blue</b>: removing it raises log p(answer) by up to '
        f"{x:.2f} nats (it works against the answer). Scale: {esc(_scale_words(scale, x))}. Hover a {unit} "
        "for its score, rank and who scored it.</div></div>"
    )


def heatmap_html(result: AttributionResult, level: Level = "sentence", intensity: float = 1.0,
                 *, legend: bool = True, scale: Scale = DEFAULT_SCALE, known: Known | None = None) -> str:
    """The context as flowing text with every sentence (or paragraph) shaded by its score.

    One ``<span class="ab-span">`` per unit carries ``data-index``, ``data-sign`` (pos/neg/zero/none),
    ``data-score`` and a tooltip with score, rank and who scored it. Self-contained (inline CSS).
    ``known`` is what is known about the input (``examples.known_for(result)``, looked up by the caller):
    its evidence sentences are outlined (class ``ab-gold``); none without it.
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown colour scale '{scale}'. Choose one of: {', '.join(SCALES)}.")
    gold = _evidence(known)
    body = ((legend_html(result, level, scale, known) if legend else "")
            + _flowing(result, level, intensity, scale, gold))
    kind = "ab-live" if result.extra.get("provisional") else "ab-heatmap"  # a run's scores so far, or final
    return (f'<style>{CSS}</style><div class="ab-root {kind}" data-level="{level}" data-scale="{scale}">'
            f"{body}</div>")
