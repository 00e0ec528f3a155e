"""The context as an escaped HTML heatmap: one shaded span per sentence or paragraph, and its legend.

Text goes in with ``dir="auto"`` so right-to-left scripts read and align as they should; every piece of
user text is escaped with ``html.escape``. Known evidence sentences are outlined when the caller passes
what is known about the input (``examples.known_for``): the view looks nothing up itself.

A run with the estimate-first stage carries its preview in ``extra["estimate"]`` (written by the run layer,
with its agreement figures: this view computes none; ``by`` names the preview: the learned one-pass
``estimate``, or ``first-order`` LOO, which replaces it on a long run). While the run goes on, a span whose
exact score has not landed is drawn in its *estimate's* colour, marked as an estimate (``data-kind=
"estimate"``, dashed underline, lighter); exactly scored spans say ``data-kind="exact"``. ``data-sign``
stays the sign of the exact score (``pending`` until it lands). A finished result's tooltips compare the
two, and its legend sums the agreement up in one line.
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

__all__ = ["CSS", "estimate_key", "heatmap_html", "legend_html"]

_HOW = {"estimate": "one pass", "first-order-qr": "first-order LOO through the question and answer: one pass",
        "first-order": "first-order LOO: a forward and a backward pass"}
"""What each preview (``extra["estimate"]["by"]``) cost, in the words its tooltips and legend use."""


def _how(kept: object) -> str:
    """How a kept preview was had; a result stored before previews were named holds the learned estimate."""
    by = kept.get("by", "estimate") if isinstance(kept, dict) else "estimate"
    return _HOW.get(by, "one pass")


def estimate_key(by: str = "estimate") -> str:
    """The live legend's line for spans drawn in the colour of the preview ``by``."""
    return f"estimate ({_how({'by': by})}) — spans switch to exact LOO as their passes land"

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
.ab-estimate { opacity: 0.72; border-bottom: 2px dashed #555; }
.ab-estimate-key { display: inline-block; width: 22px; height: 12px; opacity: 0.72; border-bottom: 2px dashed #555;
  background: linear-gradient(to right, @NEG@, #ffffff, @POS@); vertical-align: middle; }
.ab-estimate-summary { color: #333; margin: 0.1rem 0; }
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


def _estimates(result: AttributionResult, level: Level) -> list[float | None] | None:
    """The run's one-pass estimate of each span of ``level`` (nats), or None when it has none.

    None too for a part of the response recomputed from stored values (``span_from_stored``): the
    estimate was made for the whole response, so it would compare with scores of another target.
    """
    kept = result.extra.get("estimate")
    if not isinstance(kept, dict) or result.extra.get("span_from_stored"):
        return None
    values = kept.get(f"{level}s")
    if not isinstance(values, list) or len(values) != len(result.spans(level)):
        return None
    return [float(v) if isinstance(v, int | float) else None for v in values]


def _tooltip(result: AttributionResult, span: SpanScore, level: Level, rank: int | None, n_scored: int,
             estimate: float | None = None) -> str:
    where = _where(result, span, level)
    if span.score is None:
        pruned = f"{where}\nnot scored: its paragraph was pruned before sentence scoring"
        how = _how(result.extra.get("estimate"))
        return pruned + (f"\nestimate {estimate:+.2f} nats ({how})" if estimate is not None else "")
    nats = in_nats(result)
    unit = " nats" if nats else ""
    lines = [where, f"score {span.score:+.3f}{unit}: {_effect(span.score, nats)}"]
    if estimate is not None:
        lines.append(f"estimate {estimate:+.2f} vs exact {span.score:+.2f}")
    if rank is not None:
        lines.append(f"rank {rank} of {n_scored}")
    if span.scored_by:
        lines.append(f"scored by {_who(result, span.scored_by)}")
    return "\n".join(lines)


def _style(score: float, strength: float) -> str:
    text_colour = LIGHT_TEXT if strength > 0.62 else DARK_TEXT
    background = colour_at(score, strength) if score != 0 else "rgb(255, 255, 255)"
    return f"background-color: {background}; color: {text_colour};"


def _span_html(result: AttributionResult, span: SpanScore, level: Level, strength: float,
               rank: int | None, n_scored: int, gold: bool, estimate: float | None = None) -> str:
    """One span. ``estimate``: the run's one-pass estimate of it (None: the run has none): while its exact
    score is pending, the span is drawn in the estimate's colour and marked ``data-kind="estimate"``."""
    pending = span.score is None and bool(result.extra.get("provisional"))
    sign = "pending" if pending else sign_of(span.score)
    drawn_estimate = pending and estimate is not None
    # a live run: a pending span's score may still come
    if drawn_estimate:
        tip = (f"{_where(result, span, level)}\nestimate {estimate:+.3f} nats ({_how(result.extra.get('estimate'))}, "
               "not measured)\nexact LOO not scored yet")
    elif pending:
        tip = f"{_where(result, span, level)}\nnot scored yet"
    else:
        tip = _tooltip(result, span, level, rank, n_scored, estimate)
    if gold:  # second line, so the last line stays "scored by ..."
        first, _, rest = tip.partition("\n")
        tip = f"{first}\nknown evidence (a gold sentence of this input)\n{rest}".rstrip("\n")
    # no dir on a span: an isolated span would hide its letters from the paragraph's direction detection
    data = f'data-level="{level}" data-index="{span.index}" data-sign="{sign}"'
    if estimate is not None:  # what the colour shows, where a run's estimate is in play
        data += f' data-kind="{"estimate" if drawn_estimate else "exact" if span.score is not None else "none"}"'
        data += f' data-estimate="{estimate:.6g}"'
    gold_class = " ab-gold" if gold else ""
    if drawn_estimate:
        return (f'<span class="ab-span ab-estimate ab-{sign_of(estimate)}{gold_class}" {data} data-score="" '
                f'style="{_style(estimate, strength)}" title="{esc(tip)}">{esc(span.text)}</span>')
    if span.score is None:
        css = "ab-pending" if pending else "ab-none"
        return (f'<span class="ab-span {css}{gold_class}" {data} data-score="" title="{esc(tip)}">'
                f"{esc(span.text)}</span>")
    return (
        f'<span class="ab-span ab-{sign}{gold_class}" {data} data-score="{span.score:.6g}" '
        f'style="{_style(span.score, strength)}" title="{esc(tip)}">{esc(span.text)}</span>'
    )


def _shown(result: AttributionResult, level: Level) -> list[float | None]:
    """The score each span's colour shows, in span order: its own score; while a run goes on and its
    score is pending, the run's estimate of it (the colour scale spans both)."""
    scores = result.scores(level)
    estimates = _estimates(result, level) if result.extra.get("provisional") else None
    if estimates is None:
        return list(scores)
    return [s if s is not None else e for s, e in zip(scores, estimates, strict=True)]


def _flowing(result: AttributionResult, level: Level, intensity: float, scale: Scale,
             gold: frozenset[int]) -> str:
    """The context exactly as typed (whitespace and paragraph breaks kept), one span per unit."""
    shown = _shown(result, level)
    estimates = _estimates(result, level) or [None] * len(shown)
    order = sorted(range(len(shown)), key=lambda i: result.spans(level)[i].start)
    strengths = scale_strengths([shown[i] for i in order], scale)
    ranks = result.rank_of(level)
    n_scored = len(ranks)
    text = result.context
    pieces, pos = [], 0
    for i, t in zip(order, strengths, strict=True):
        span = result.spans(level)[i]
        pieces.append(esc(text[pos : span.start]))
        pieces.append(_span_html(result, span, level, min(1.0, intensity * t), ranks.get(span.index), n_scored,
                                 level == "sentence" and span.index in gold, estimates[i]))
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
    shown = _shown(result, level)
    x = max((abs(s) for s in shown if s is not None and s == s), default=max_abs_score(result, level))
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
    live = bool(result.extra.get("provisional"))
    if live and any(s is None and e is not None for s, e in zip(result.scores(level), shown, strict=True)):
        keys.append(f'<span class="ab-key ab-estimate-legend"><span class="ab-estimate-key"></span> '
                    f"{esc(estimate_key(result.extra['estimate'].get('by', 'estimate')))}</span>")
    if live:  # a live run's missing score is still to come, never "pruned"
        if any(s is None for s in shown):
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
        f"{'' if live else _estimate_summary(result)}"
        f'<div><b class="ab-o">Orange</b>: removing this {unit} lowers log p(answer) by up to {x:.2f} nats '
        f'(it supports the answer). <b class="ab-b">Blue</b>: removing it raises log p(answer) by up to '
        f"{x:.2f} nats (it works against the answer). Scale: {esc(_scale_words(scale, x))}. Hover a {unit} "
        "for its score, rank and who scored it.</div></div>"
    )


def _estimate_summary(result: AttributionResult) -> str:
    """One line: how the run's previews agreed with its exact sentence scores, the last one first (figures
    written by the run layer; empty without a preview)."""
    kept = result.extra.get("estimate")
    if not isinstance(kept, dict) or result.extra.get("span_from_stored") or "spearman" not in kept:
        return ""

    def figure(x: object, fmt: str) -> str:
        return format(x, fmt) if isinstance(x, int | float) else "n/a"

    def agreement(p: dict) -> str:
        seconds = p.get("seconds")
        took = f", {seconds:.2f} s" if isinstance(seconds, int | float) else ""
        return (f"({esc(_how(p))}{took}): Spearman {figure(p.get('spearman'), '.2f')} · top-3 overlap "
                f"{figure(p.get('top3'), '.2f')}")

    before = [p for p in kept.get("before") or () if isinstance(p, dict)]
    earlier = "".join(f"; before it, the estimate {agreement(p)}" for p in reversed(before))  # latest first
    return (f'<div class="ab-estimate-summary" data-by="{esc(str(kept.get("by", "estimate")))}" '
            f'data-spearman="{figure(kept.get("spearman"), ".4f")}" data-top3="{figure(kept.get("top3"), ".4f")}">'
            f"<b>Estimate vs exact</b> {agreement(kept)} over the sentences{earlier}; hover a sentence for its "
            "estimate.</div>")


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
