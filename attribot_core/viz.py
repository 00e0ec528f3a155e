"""Views of one attribution result: escaped HTML heatmaps, plotly figures and small tables.

Pure functions from :class:`AttributionResult` to strings, figures or dataframes; nothing here scores
or imports streamlit, so the app, the CLI and a notebook show the same thing.

Colour convention (colour-blind safe, no red/green): **orange** = positive score (removing the span
lowers log p(response), i.e. the span supports it), **blue** = negative, **white** = 0, and a grey
hatched pattern = not scored (e.g. a sentence of a paragraph that hierarchical attribution pruned).
The scale is symmetric and centred on 0: full colour at ±max |score| of the level shown, with the
strength linear in the score, its signed square root, its signed log, or its rank (``SCALES``): one
dominant span otherwise leaves every other one near white. Known evidence sentences (of a built-in
example, or gold labels in the result) are outlined. Text goes in with ``dir="auto"`` so right-to-left
scripts read and align as they should. Each method has one colour and one place in every chart's order
(``method_colour``, ``method_order``).
Every piece of user text (context, question, response, model names) is escaped with ``html.escape``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

from .examples import known_for
from .metrics import pareto_front, pearson, spearman, top_k_overlap
from .result import AttributionResult, SpanScore

__all__ = [
    "SCALES",
    "NEGATIVE_RGB",
    "NOT_SCORED_COLOUR",
    "POSITIVE_RGB",
    "agreement_rows",
    "attributed_tokens",
    "compare_cost_figure",
    "compare_scatter_figure",
    "facts_html",
    "focus_css",
    "heatmap_document",
    "heatmap_html",
    "in_nats",
    "known_answer_html",
    "legend_html",
    "markdown_free",
    "markdown_literal",
    "max_abs_score",
    "method_colour",
    "method_order",
    "overview_figure",
    "paragraph_bar_figure",
    "pareto_figure",
    "part_note",
    "pill_labels",
    "response_html",
    "run_facts",
    "score_colour",
    "scale_strengths",
    "selection_ranges",
    "sentence_bar_figure",
    "token_chips",
    "token_matrix",
    "token_matrix_figure",
    "tokens_html",
    "top_k_table",
    "truncation_note",
]

Level = Literal["sentence", "paragraph"]
Scale = Literal["linear", "sqrt", "log", "rank"]

SCALES: dict[str, str] = {
    "linear": "linear",
    "sqrt": "signed square root",
    "log": "signed log",
    "rank": "rank",
}
"""Colour scales of the heatmap: name -> what the legend calls it."""
_LOG_DECADES = 3  # the log scale spans three decades below the largest |score|

POSITIVE_RGB = (230, 97, 1)  # orange (ColorBrewer PuOr end): supports the response
NEGATIVE_RGB = (33, 102, 172)  # blue: works against the response
NOT_SCORED_COLOUR = "#bdbdbd"
_WHITE = (255, 255, 255)
_DARK_TEXT, _LIGHT_TEXT = "#1b1b1b", "#ffffff"
_BAR_FLOOR = 0.45
_HATCH = "repeating-linear-gradient(135deg, #ececec 0 4px, #c8c8c8 4px 6px)"

_CSS = """
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
_CSS = _CSS.replace("@HATCH@", _HATCH).replace("@NEG@", f"rgb{NEGATIVE_RGB}").replace("@POS@", f"rgb{POSITIVE_RGB}")


# -- colour ----------------------------------------------------------------------------------------
def max_abs_score(result: AttributionResult, level: Level = "sentence") -> float:
    """The scale's end: max |score| over the spans of ``level`` that were scored (0 if none)."""
    scored = [abs(s) for s in result.scores(level) if s is not None and math.isfinite(s)]
    return max(scored, default=0.0)


def _mix(rgb: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(w + (c - w) * t) for w, c in zip(_WHITE, rgb, strict=True))  # type: ignore[return-value]


def _strength(score: float, max_abs: float, intensity: float) -> float:
    if max_abs <= 0 or not math.isfinite(score):
        return 0.0
    return max(0.0, min(1.0, intensity * abs(score) / max_abs))


def scale_strengths(scores: Sequence[float | None], scale: Scale = "linear") -> list[float]:
    """Colour strength in [0, 1] of each score (0 = white, 1 = full colour), before ``intensity``.

    ``linear``: |s| / max; ``sqrt``: sqrt(|s| / max); ``log``: log(1 + |s|/u) / log(1 + max/u) with
    u = max / 10**3 (three decades); ``rank``: by rank of |s| among the non-zero scores, the largest 1,
    the smallest 1/n. Zero and not-scored spans get 0 (the caller draws not scored apart).
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown colour scale '{scale}'. Choose one of: {', '.join(SCALES)}.")
    mags = [abs(x) if x is not None and math.isfinite(x) else 0.0 for x in scores]
    top = max(mags, default=0.0)
    if top <= 0:
        return [0.0] * len(mags)
    if scale == "rank":
        order = sorted({m for m in mags if m > 0}, reverse=True)
        place = {m: i for i, m in enumerate(order)}
        return [(len(order) - place[m]) / len(order) if m > 0 else 0.0 for m in mags]
    if scale == "sqrt":
        return [math.sqrt(m / top) for m in mags]
    if scale == "log":
        u = top / 10**_LOG_DECADES
        return [math.log1p(m / u) / math.log1p(top / u) for m in mags]
    return [m / top for m in mags]


def _colour_at(score: float, t: float) -> str:
    r, g, b = _mix(POSITIVE_RGB if score > 0 else NEGATIVE_RGB, t)
    return f"rgb({r}, {g}, {b})"


def score_colour(score: float | None, max_abs: float, intensity: float = 1.0, floor: float = 0.0) -> str:
    """CSS colour of a score on the symmetric diverging scale; ``None`` gives the not-scored grey.

    ``intensity`` multiplies the colour strength (>1 makes small scores visible; it saturates at 1).
    ``floor`` is the least strength of a non-zero score (charts use it so every bar shows its sign).
    """
    if score is None:
        return NOT_SCORED_COLOUR
    t = _strength(score, max_abs, intensity)
    if score != 0:
        t = floor + (1 - floor) * t
    return _colour_at(score, t)


def _sign(score: float | None) -> str:
    if score is None:
        return "none"
    return "pos" if score > 0 else "neg" if score < 0 else "zero"


def in_nats(result: AttributionResult) -> bool:
    """Whether scores are LOO-style log-probability differences (the attention baseline's are not)."""
    return result.method != "attention"


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


# -- HTML ------------------------------------------------------------------------------------------
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _tooltip(result: AttributionResult, span: SpanScore, level: Level, rank: int | None, n_scored: int) -> str:
    name = "Sentence" if level == "sentence" else "Paragraph"
    where = f"{name} {span.index + 1}"
    if level == "sentence" and span.paragraph is not None:
        where += f" (paragraph {span.paragraph + 1})"
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
    sign = "pending" if pending else _sign(span.score)
    if pending:  # a live run: this span's score may still come
        tip = f"{'Sentence' if level == 'sentence' else 'Paragraph'} {span.index + 1}\nnot scored yet"
    else:
        tip = _tooltip(result, span, level, rank, n_scored)
    if gold:  # second line, so the last line stays "scored by ..."
        first, _, rest = tip.partition("\n")
        tip = f"{first}\nknown evidence (a gold sentence of this input)\n{rest}".rstrip("\n")
    # no dir on a span: an isolated span would hide its letters from the paragraph's direction detection
    data = f'data-level="{level}" data-index="{span.index}" data-sign="{sign}"'
    gold_class = " ab-gold" if gold else ""
    if span.score is None:
        css = "ab-pending" if pending else "ab-none"
        return (f'<span class="ab-span {css}{gold_class}" {data} data-score="" title="{_esc(tip)}">'
                f"{_esc(span.text)}</span>")
    text_colour = _LIGHT_TEXT if strength > 0.62 else _DARK_TEXT
    background = _colour_at(span.score, strength) if span.score != 0 else "rgb(255, 255, 255)"
    style = f"background-color: {background}; color: {text_colour};"
    return (
        f'<span class="ab-span ab-{sign}{gold_class}" {data} data-score="{span.score:.6g}" style="{style}" '
        f'title="{_esc(tip)}">{_esc(span.text)}</span>'
    )


def _evidence(result: AttributionResult, evidence: Collection[int] | None) -> frozenset[int]:
    if evidence is not None:
        return frozenset(evidence)
    known = known_for(result)
    return frozenset(known.evidence) if known else frozenset()


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
        pieces.append(_esc(text[pos : span.start]))
        pieces.append(_span_html(result, span, level, min(1.0, intensity * t), ranks.get(span.index), n_scored,
                                 level == "sentence" and span.index in gold))
        pos = span.end
    pieces.append(_esc(text[pos:]))
    return f'<div class="ab-text" dir="auto">{"".join(pieces)}</div>'


def _scale_words(scale: Scale, x: float) -> str:
    if scale == "sqrt":
        return f"signed square root: colour ∝ √|score|, full at ±{x:.2f} nats, so small scores stay visible"
    if scale == "log":
        return (f"signed log: colour ∝ log |score| over {_LOG_DECADES} decades below ±{x:.2f} nats, "
                "so small scores stay visible")
    if scale == "rank":
        return "rank: colour by the rank of |score| (not its size); the strongest span is full colour"
    return f"linear: colour ∝ score, full at ±{x:.2f} nats"


def legend_html(result: AttributionResult, level: Level = "sentence", scale: Scale = "linear",
                evidence: Collection[int] | None = None) -> str:
    """What the colours mean, in nats, for the scale of ``level``; names the colour scale."""
    x = max_abs_score(result, level)
    unit = "sentence" if level == "sentence" else "paragraph"
    scale_note = (f'<span class="ab-key ab-scale-name" data-scale="{scale}" title="{_esc(_scale_words(scale, x))}">'
                  f"Colour scale: <b>{_esc(SCALES[scale])}</b></span>")
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
        keys.append(f'<span class="ab-key"><span class="ab-swatch" style="background:{_HATCH}"></span> '
                    "not scored (pruned)</span>")
    if level == "sentence" and _evidence(result, evidence):
        keys.append('<span class="ab-key"><span class="ab-gold-key"></span> known evidence</span>')
    return (
        '<div class="ab-legend"><div class="ab-scale">'
        f'<span>−{x:.2f} nats</span><span class="ab-bar" role="img" aria-label="diverging colour scale"></span>'
        f'<span>+{x:.2f} nats</span>{scale_note}{"".join(keys)}</div>'
        f'<div><b class="ab-o">Orange</b>: removing this {unit} lowers log p(answer) by up to {x:.2f} nats '
        f'(it supports the answer). <b class="ab-b">Blue</b>: removing it raises log p(answer) by up to '
        f"{x:.2f} nats (it works against the answer). Scale: {_esc(_scale_words(scale, x))}. Hover a {unit} "
        "for its score, rank and who scored it.</div></div>"
    )


def heatmap_html(result: AttributionResult, level: Level = "sentence", intensity: float = 1.0,
                 *, legend: bool = True, scale: Scale = "linear", evidence: Collection[int] | None = None) -> str:
    """The context as flowing text with every sentence (or paragraph) shaded by its score.

    One ``<span class="ab-span">`` per unit carries ``data-index``, ``data-sign`` (pos/neg/zero/none),
    ``data-score`` and a tooltip with score, rank and who scored it. Self-contained (inline CSS).
    ``evidence`` are sentence indices to outline (class ``ab-gold``); by default the known evidence of a
    built-in example or of gold labels in the result (``examples.known_for``).
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown colour scale '{scale}'. Choose one of: {', '.join(SCALES)}.")
    gold = _evidence(result, evidence)
    body = ((legend_html(result, level, scale, gold) if legend else "")
            + _flowing(result, level, intensity, scale, gold))
    kind = "ab-live" if result.extra.get("provisional") else "ab-heatmap"  # a run's scores so far, or final
    return (f'<style>{_CSS}</style><div class="ab-root {kind}" data-level="{level}" data-scale="{scale}">'
            f"{body}</div>")


def truncation_note(result: AttributionResult) -> str | None:
    """A warning when generation stopped at the token limit (``extra["response_complete"]`` is False)."""
    if result.extra.get("response_complete") is False:
        return (f"The response was cut off at the limit of new tokens ({result.response_tokens} tokens): it is "
                "incomplete, and the scores explain only this truncated text. Raise max new tokens and run again.")
    return None


def known_answer_html(result: AttributionResult) -> str:
    """What is known about this input (a built-in example or gold labels): its note, and a warning when the
    response does not contain the known answer. Empty when nothing is known."""
    known = known_for(result)
    if known is None:
        return ""
    note = f" {_esc(known.note)}" if known.note else ""
    if known.answers and not known.response_has_answer(result.response):
        body = (f'<div class="ab-warn" data-known="wrong" dir="auto"><b>This answer is known to be wrong.</b> '
                f"The expected answer is “{_esc(known.answers[0])}” ({_esc(known.source)}); the response does not "
                f"contain it, so the heatmap shows where a wrong answer came from.{note}</div>")
    elif note:
        body = f'<div class="ab-legend" dir="auto">{note.strip()}</div>'
    else:
        return ""
    return f'<style>{_CSS}</style><div class="ab-root ab-known">{body}</div>'


def response_html(result: AttributionResult) -> str:
    """The response, escaped, with the attributed part highlighted when only a part was attributed, and a
    warning when the response was cut off at the token limit."""
    text = result.response
    if result.response_span is None:
        inner = _esc(text)
    else:
        a, b = result.response_span
        inner = (f'{_esc(text[:a])}<mark class="ab-part" title="the attributed part">{_esc(text[a:b])}</mark>'
                 f"{_esc(text[b:])}")
    note = truncation_note(result)
    warn = f'<div class="ab-warn" data-truncated="1">{_esc(note)}</div>' if note else ""
    return (f'<style>{_CSS}</style><div class="ab-root"><div class="ab-response" dir="auto">{inner}</div>'
            f"{warn}</div>")


def run_facts(result: AttributionResult) -> list[tuple[str, str]]:
    """The run's facts as (label, value) rows: model, method, forward passes, time, log p."""
    t = result.timings
    passes = ", ".join(f"{n} ({m})" for m, n in result.forward_passes.items()) or "0"
    rows = [
        ("Model", result.model + (f" · proxy {result.proxy_model}" if result.proxy_model else "")),
        ("Method", result.method + (" (" + ", ".join(f"{k}={v}" for k, v in result.settings.items()) + ")"
                                    if result.settings else "")),
        ("Forward passes", f"{result.total_forward_passes}: {passes}"),
        ("Attribution time", f"{t.get('attribute_s', float('nan')):.2f} s"),
    ]
    if "generate_s" in t:
        rows.append(("Generation time", f"{t['generate_s']:.2f} s"))
    rows.append(("log p(answer | full context)",
                 f"{result.log_prob_full:.3f} nats over {result.response_tokens} response tokens"
                 if result.log_prob_full is not None else
                 f"not computed: this method never runs the target on the full context "
                 f"({result.response_tokens} response tokens)"))
    if truncation_note(result):
        rows.append(("Response", "cut off at the token limit (incomplete)"))
    if result.response_span is not None:
        a, b = result.response_span
        rows.append(("Attributed part of the response", f"characters {a}–{b}"))
    for key in ("tokens_computed", "tokens_reused"):
        if key in result.extra:
            rows.append((key.replace("_", " ").capitalize(), str(result.extra[key])))
    return rows


def facts_html(result: AttributionResult) -> str:
    """The run's facts as a small escaped HTML table."""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in run_facts(result))
    return f'<style>{_CSS}</style><table class="ab-facts">{rows}</table>'


def top_k_table(result: AttributionResult, k: int = 5, level: Level = "sentence"):
    """The ``k`` best spans as a table: rank, score (nats), paragraph (1-based), text, scored by."""
    import pandas as pd

    rows = [
        {
            "rank": rank,
            "score (nats)": round(span.score, 4),
            "paragraph": (span.paragraph if level == "sentence" else span.index) + 1,
            "text": span.text,
            "scored by": span.scored_by,
        }
        for rank, span in enumerate(result.top_k(k, level), 1)
    ]
    return pd.DataFrame(rows, columns=["rank", "score (nats)", "paragraph", "text", "scored by"])


def heatmap_document(result: AttributionResult, intensity: float = 1.0, scale: Scale = "linear") -> str:
    """A complete, self-contained HTML page (inline CSS, no scripts, no network) for export."""
    table = top_k_table(result, 10, "sentence")
    rows = "".join(
        f"<tr><td>{r['rank']}</td><td>{r['score (nats)']:+.3f}</td><td>{r['paragraph']}</td>"
        f"<td>{_esc(r['text'])}</td></tr>"
        for r in table.to_dict("records")
    )
    title = _esc(f"AttriBoT heatmap: {result.question[:80]}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="AttriBoT Studio">
<title>{title}</title>
<style>
body {{ max-width: 60rem; margin: 2rem auto; padding: 0 1rem; font-family: system-ui, sans-serif; color: #1b1b1b; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 1.6rem; }}
</style>
</head>
<body>
<h1>Which parts of the context made the model say this?</h1>
<h2>Question</h2>
<div class="ab-root"><div class="ab-response" dir="auto">{_esc(result.question)}</div></div>
<h2>Response</h2>
{response_html(result)}
{known_answer_html(result)}
<h2>Context, by sentence</h2>
{heatmap_html(result, "sentence", intensity, scale=scale)}
<h2>Context, by paragraph</h2>
{heatmap_html(result, "paragraph", intensity, scale=scale)}
<h2>Top sentences</h2>
<table><tr><th>rank</th><th>score (nats)</th><th>paragraph</th><th>text</th></tr>{rows}</table>
<h2>Run</h2>
{facts_html(result)}
<p style="font-size:0.8rem;color:#666">Score = log p(response | full context) − log p(response | context
without the span), summed over the attributed response tokens, in nats.</p>
</body>
</html>
"""


# -- plotly figures --------------------------------------------------------------------------------
def _plotly_text(text: str, limit: int | None = None) -> str:
    """User text for plotly labels: shortened, and escaped (plotly renders a few HTML-like tags)."""
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=False)


def _wrapped(text: str, width: int = 46, lines: int = 3) -> str:
    """User text as an escaped plotly label of at most ``lines`` lines (``<br>`` between them)."""
    import textwrap

    parts = textwrap.wrap(" ".join(text.split()), width) or [""]
    if len(parts) > lines:
        parts = parts[: lines - 1] + [textwrap.shorten(" ".join(parts[lines - 1 :]), width, placeholder=" …")]
    return "<br>".join(html.escape(p, quote=False) for p in parts)


def _axis(result: AttributionResult) -> str:
    return "LOO score (nats)" if in_nats(result) else f"{result.method} score (not nats)"


def _fmt(score: float | None) -> str:
    return "not scored" if score is None else f"{score:+.3f} nats"


def overview_figure(result: AttributionResult, intensity: float = 1.0):
    """Every paragraph's own LOO (a bar) and each of its sentences' own LOO (dots in its column).

    A paragraph's score is one ablation (the whole paragraph removed) and each sentence's is another:
    sentence scores do not add up to their paragraph's (sentences can repeat or need each other), so they
    are drawn side by side on one axis rather than nested. ``customdata`` of both traces is the paragraph
    index, so a click on a bar or a dot selects that paragraph.
    """
    import plotly.graph_objects as go

    p_max, s_max = max_abs_score(result, "paragraph"), max_abs_score(result, "sentence")
    pars = result.paragraphs
    names = [f"¶{p.index + 1}" for p in pars]
    fig = go.Figure()
    fig.add_trace(go.Bar(  # numeric x (labelled ¶n) so the sentence dots can sit inside each paragraph's column
        x=[p.index for p in pars], y=[p.score if p.score is not None else 0.0 for p in pars],
        customdata=[p.index for p in pars], cliponaxis=False,
        name="paragraph removed (its own LOO)", marker=_bar_marker(pars, p_max, intensity), width=0.7,
        text=[_fmt(p.score) for p in pars], textposition="outside", textfont={"color": _DARK_TEXT, "size": 14},
        hovertext=[f"¶{p.index + 1} removed: {_fmt(p.score)}<br>{_wrapped(p.text, 60, 4)}" for p in pars],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    dots = [s for s in result.sentences if s.score is not None and s.paragraph is not None]
    per_par: dict[int, list[SpanScore]] = {}
    for s in dots:
        per_par.setdefault(s.paragraph, []).append(s)
    offsets = {s.index: (i - (len(group) - 1) / 2) * min(0.5 / max(len(group), 1), 0.12)
               for group in per_par.values() for i, s in enumerate(group)}
    fig.add_trace(go.Scatter(
        x=[s.paragraph + offsets[s.index] for s in dots], y=[s.score for s in dots], mode="markers",
        customdata=[s.paragraph for s in dots], name="one sentence removed (its own LOO)",
        marker={"size": 12, "symbol": "diamond", "color": [score_colour(s.score, s_max, intensity, floor=_BAR_FLOOR)
                                                           for s in dots],
                "line": {"color": "#1b1b1b", "width": 1.5}},
        hovertext=[f"S{s.index + 1}: {_fmt(s.score)}<br>{_wrapped(s.text, 60, 4)}" for s in dots],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    unit = "nats" if in_nats(result) else "score"
    fig.update_layout(
        title={"text": f"Each paragraph removed (bar) and each sentence removed (◆), in {unit}: separate "
                       "ablations,<br>so a paragraph's sentences do not add up to its bar", "font": {"size": 16}},
        font={"size": 14}, height=440, margin={"t": 80, "l": 10, "r": 10, "b": 10}, clickmode="event+select",
        yaxis_title=_axis(result), xaxis={"tickmode": "array", "tickvals": list(range(len(pars))), "ticktext": names,
                                          "tickfont": {"size": 15}},
        legend={"orientation": "h", "y": -0.15, "font": {"size": 14}}, bargap=0.25,
        uniformtext={"minsize": 13, "mode": "show"},
    )
    fig.add_hline(y=0, line_color="#555", line_width=1)
    return fig


def _bar_marker(spans, max_abs: float, intensity: float) -> dict:
    """Bar colours by signed score; not-scored spans hatched, so they never look like a 0."""
    return {
        "color": [score_colour(x.score, max_abs, intensity, floor=_BAR_FLOOR) for x in spans],
        "line": {"color": "#555", "width": 1},
        "pattern": {"shape": ["/" if x.score is None else "" for x in spans]},
    }

def paragraph_bar_figure(result: AttributionResult, intensity: float = 1.0):
    """One bar per paragraph (its LOO score); click a bar to see its sentences.

    ``customdata`` holds the paragraph index, so a selection maps back to the paragraph.
    """
    import plotly.graph_objects as go

    p_max = max_abs_score(result, "paragraph")
    pars = result.paragraphs
    fig = go.Figure(go.Bar(
        x=[f"¶{p.index + 1}" for p in pars],
        y=[p.score if p.score is not None else 0.0 for p in pars],
        customdata=[p.index for p in pars],
        marker=_bar_marker(pars, p_max, intensity),
        text=[_fmt(p.score) for p in pars],
        textposition="outside",
        textfont={"color": _DARK_TEXT},
        hovertext=[_plotly_text(p.text, 90) for p in pars],
        hovertemplate="%{x}: %{text}<br>%{hovertext}<extra></extra>",
    ))
    fig.update_layout(
        title=("Paragraphs: removing it lowers (+) or raises (−) log p(answer), in nats" if in_nats(result)
               else f"Paragraphs: {result.method} scores (not nats)"),
        yaxis_title=_axis(result), xaxis_title="paragraph", height=340,
        margin={"t": 50, "l": 10, "r": 10, "b": 10}, clickmode="event+select",
    )
    fig.add_hline(y=0, line_color="#555", line_width=1)
    return fig


def sentence_bar_figure(result: AttributionResult, paragraph: int, intensity: float = 1.0):
    """The sentences of one paragraph as horizontal bars with their text; not scored = hatched grey."""
    import plotly.graph_objects as go

    s_max = max_abs_score(result, "sentence")
    sents = [s for s in result.sentences if s.paragraph == paragraph]
    labels = [f"<b>S{s.index + 1}</b> ({_fmt(s.score)})<br>{_wrapped(s.text)}" for s in sents]
    fig = go.Figure(go.Bar(
        y=labels,
        x=[s.score if s.score is not None else 0.0 for s in sents],
        orientation="h",
        customdata=[s.index for s in sents],
        marker=_bar_marker(sents, s_max, intensity),
        text=[_fmt(s.score) for s in sents],
        textposition="none",
        hovertext=[_plotly_text(s.text, 120) for s in sents],
        hovertemplate="%{text}<br>%{hovertext}<extra></extra>",
    ))
    fig.update_layout(
        title={"text": f"Sentences of paragraph {paragraph + 1}", "font": {"size": 16}}, font={"size": 14},
        xaxis_title=_axis(result), height=max(260, 100 + 80 * len(sents)),
        margin={"t": 50, "l": 10, "r": 10, "b": 10},
        yaxis={"autorange": "reversed", "automargin": True, "tickfont": {"size": 14}},
    )
    fig.add_vline(x=0, line_color="#555", line_width=1)
    return fig


# One colour per method on every page (Okabe-Ito, colour-blind safe); other methods cycle through the rest.
_METHOD_COLOURS = {"loo": "#0072B2", "loo-naive": "#999999", "hierarchical": "#CC79A7", "proxy": "#009E73",
                   "pruning": "#E69F00", "surrogate": "#56B4E9", "attention": "#000000"}
_SPARE_COLOURS = ["#D55E00", "#F0E442", "#555555"]


def method_colour(name: str) -> str:
    """The colour that stands for a method in every chart (Compare, Learn, the Pareto plot)."""
    if name in _METHOD_COLOURS:
        return _METHOD_COLOURS[name]
    return _SPARE_COLOURS[sum(map(ord, name)) % len(_SPARE_COLOURS)]


def method_order(names: Iterable[str], method_of: Mapping[str, str] | None = None) -> list[str]:
    """``names`` in the one order every chart and table uses: the registry's (``METHODS``), unknown ones last.

    ``method_of`` maps a name (e.g. an evaluation configuration) to its method when they differ.
    """
    from .methods import METHODS

    rank = {m: i for i, m in enumerate(METHODS)}
    names = list(names)
    return sorted(names, key=lambda n: (rank.get((method_of or {}).get(n, n), len(rank)), names.index(n)))


def agreement_rows(results: Mapping[str, AttributionResult], reference: str = "loo", k: int = 3,
                   baseline: str = "loo-naive") -> list[dict[str, Any]]:
    """Per method: Pearson, Spearman and top-k overlap of sentence scores against ``reference``,
    attribution time, forward passes and speed-up in time against ``baseline`` (when present)."""
    ref = results.get(reference)
    base = results.get(baseline)
    rows = []
    for name in method_order(results):
        r = results[name]
        secs = r.timings.get("attribute_s", float("nan"))
        row: dict[str, Any] = {"method": name, "seconds": secs, "forward passes": r.total_forward_passes}
        if ref is not None:
            a, b = r.scores("sentence"), ref.scores("sentence")
            row.update({"pearson": pearson(a, b), "spearman": spearman(a, b),
                        f"top-{k} overlap": top_k_overlap(a, b, k)})
        if base is not None and secs > 0:
            row["speed-up vs " + baseline] = base.timings.get("attribute_s", float("nan")) / secs
        rows.append(row)
    return rows


def compare_scatter_figure(results: Mapping[str, AttributionResult], reference: str = "loo"):
    """Each method's sentence scores (y) against the reference's (x); the diagonal is perfect agreement."""
    import plotly.graph_objects as go

    ref = results[reference]
    x_all = [s for s in ref.scores("sentence") if s is not None]
    lo, hi = (min(x_all, default=0.0), max(x_all, default=1.0))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                             line={"color": "#999", "dash": "dash"}, hoverinfo="skip"))
    texts = [_plotly_text(s.text, 80) for s in ref.sentences]
    for name in method_order(results):
        r = results[name]
        if name == reference:
            continue
        pts = [(x, y, t) for x, y, t in zip(ref.scores("sentence"), r.scores("sentence"), texts, strict=True)
               if x is not None and y is not None]
        rho = pearson(r.scores("sentence"), ref.scores("sentence"))
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
            name=f"{name} (r = {rho:.3f})", hovertext=[p[2] for p in pts],
            marker={"size": 10, "color": method_colour(name), "opacity": 0.85},
            hovertemplate="exact %{x:.3f} · method %{y:.3f}<br>%{hovertext}<extra>" + _esc(name) + "</extra>",
        ))
    fig.update_layout(title=f"Sentence scores against exact {reference}", height=420,
                      xaxis_title=f"{reference} score (nats)", yaxis_title="method score (nats)",
                      margin={"t": 50, "l": 10, "r": 10, "b": 10})
    return fig


def compare_cost_figure(results: Mapping[str, AttributionResult], baseline: str = "loo-naive"):
    """Side-by-side bars: attribution time and forward passes per method, speed-up over ``baseline``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = method_order(results)
    secs = [results[n].timings.get("attribute_s", 0.0) for n in names]
    passes = [results[n].total_forward_passes for n in names]
    base = results.get(baseline)
    base_s = base.timings.get("attribute_s") if base else None
    labels = [f"{s:.2f} s" + (f" (×{base_s / s:.1f})" if base_s and s > 0 else "") for s in secs]
    colours = [method_colour(n) for n in names]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Attribution time (s)", "Forward passes"))
    fig.add_trace(go.Bar(x=names, y=secs, text=labels, textposition="outside", marker_color=colours,
                         name="seconds", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=passes, text=[str(p) for p in passes], textposition="outside",
                         marker_color=colours, name="forward passes", showlegend=False), row=1, col=2)
    title = "Cost per method" + (f" (×N = speed-up over {baseline})" if base_s else "")
    fig.update_layout(title=title, height=380, margin={"t": 70, "l": 10, "r": 10, "b": 10})
    fig.update_yaxes(rangemode="tozero")
    return fig


# -- per-token views: a part of the response, and the token x sentence matrix ----------------------------
_TOKEN_CSS = """
.ab-tokens { white-space: pre-wrap; background: #f6f7f9; border-left: 3px solid #1f5fa6; padding: 0.5rem 0.8rem;
  border-radius: 3px; line-height: 1.9; }
.ab-tok { border-radius: 2px; border-bottom: 1px dotted #b0b0b0; }
.ab-tok-on { background: #ffe9a8; border-bottom: 2px solid #b8860b; }
.ab-tok-focus { outline: 2px solid #1b1b1b; }
.ab-tok-end { color: #777; font-size: 0.8em; }
"""
_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>~:$=\"'&^%@;,/?")


def markdown_literal(text: str) -> str:
    """``text`` as Markdown that shows exactly those characters (for widget labels that render Markdown).

    Every ASCII punctuation character is backslash-escaped (CommonMark lets any be), so user text never
    becomes emphasis, links, HTML or Streamlit directives; whitespace is made visible (␣, ↵, ⇥).
    """
    shown = text.strip(" ") or "␣" * len(text)
    shown = shown.replace("\n", "↵").replace("\t", "⇥")
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in shown) or "␣"


def pill_labels(result: AttributionResult) -> list[str]:
    """One Markdown-safe label per token of :func:`token_chips`, all distinct.

    Widgets that report a choice by its label (Streamlit's pills) need distinct labels; a repeated
    token gets zero-width spaces appended, which nobody sees.
    """
    seen: dict[str, int] = {}
    out = []
    for label, _, _ in token_chips(result):
        shown = markdown_literal(label)
        out.append(shown + "\u200b" * seen.get(shown, 0))
        seen[shown] = seen.get(shown, 0) + 1
    return out


def token_chips(result: AttributionResult) -> list[tuple[str, int, int]]:
    """The response token by token (of the model most sentences were scored on): (label, start, end).

    ``start``/``end`` are characters of ``result.response``; the end-of-turn token has the empty range
    at the end and its special-token name as label. Empty without per-token data.
    """
    if result.per_token is None:
        return []
    axis = result.per_token.main_axis(prefer=result.model)
    offsets = axis.response_offsets(result.response)
    return [(label, a, b) for label, (a, b) in zip(axis.labels, offsets, strict=True)]


def selection_ranges(result: AttributionResult, tokens: Sequence[int]) -> tuple[list[tuple[int, int]], bool]:
    """Response character ranges of the chosen tokens (adjacent ones merged) and whether the end token is in.

    Feed them to :meth:`AttributionResult.for_response_chars`; one range is then exactly
    ``attribute(..., response_span=range)``.
    """
    chips = token_chips(result)
    ranges: list[tuple[int, int]] = []
    include_end = False
    for i in sorted(set(tokens)):
        _, a, b = chips[i]
        if a == b:
            include_end = include_end or a >= len(result.response)
        elif ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges, include_end


def attributed_tokens(part: AttributionResult) -> list[bool]:
    """Which tokens of :func:`token_chips` a part result attributes (the end token can join the last word)."""
    if part.per_token is None:
        return []
    ranges = [tuple(r) for r in part.extra.get("response_ranges", [])]
    if not ranges and part.response_span is not None:
        ranges = [part.response_span]
    axis = part.per_token.main_axis(prefer=part.model)
    return axis.mask(ranges, bool(part.extra.get("response_end_token")))  # type: ignore[arg-type]


def tokens_html(result: AttributionResult, attributed: Sequence[bool] = (), focus: int | None = None) -> str:
    """The response shown token by token (escaped); attributed tokens marked, ``focus`` outlined."""
    pieces = []
    on = list(attributed) or [False] * len(token_chips(result))
    for i, ((label, a, b), is_on) in enumerate(zip(token_chips(result), on, strict=True)):
        cls = "ab-tok" + (" ab-tok-on" if is_on else "") + (" ab-tok-focus" if i == focus else "")
        text = result.response[a:b] if b > a else f" {label}"
        cls += "" if b > a else " ab-tok-end"
        pieces.append(f'<span class="{cls}" data-token="{i}" data-on="{int(is_on)}" '
                      f'title="token {i + 1}: {_esc(label)}">{_esc(text)}</span>')
    return f'<style>{_CSS}{_TOKEN_CSS}</style><div class="ab-root"><div class="ab-tokens">{"".join(pieces)}</div></div>'


def focus_css(level: Level, index: int | None) -> str:
    """CSS that outlines one span of :func:`heatmap_html` (the sentence of a clicked matrix cell)."""
    if index is None:
        return ""
    return (f'<style>.ab-heatmap .ab-span[data-level="{level}"][data-index="{int(index)}"] '
            "{ outline: 3px solid #1b1b1b; outline-offset: 1px; }</style>")


def part_note(part: AttributionResult) -> str:
    """One line on how exact a part's scores are (from :meth:`AttributionResult.for_response_chars`)."""
    note = part.extra.get("span_note", "").split(": ", 1)[-1]
    if part.extra.get("span_exact"):
        return (f"Exact for {part.method}: the same scores as re-running it with only these tokens attributed "
                f"({note})")
    return f"Not exact for {part.method}: {note}"


def token_matrix(result: AttributionResult) -> tuple[list[str], list[int], list[list[float | None]]]:
    """Token labels, the sentence indices shown, and ``z[token][sentence]`` per-token LOO (nats, None = none).

    Tokens are those of :func:`token_chips`; a sentence scored on another model's tokens (a proxy of
    another tokenizer in pruning) or not scored has no values here.
    """
    pt = result.per_token
    if pt is None:
        return [], [], []
    axis = pt.main_axis(prefer=result.model)
    cols = [s.index for s in result.sentences]
    z: list[list[float | None]] = [[None] * len(cols) for _ in range(len(axis))]
    for j, values in enumerate(pt.sentences):
        if values is not None and values.model == axis.model:
            for t, v in enumerate(values.values):
                z[t][j] = v
    return list(axis.labels), cols, z


def token_matrix_figure(result: AttributionResult, focus: tuple[int, int] | None = None):
    """Token x sentence heatmap of per-token LOO (nats): rows = response tokens, columns = sentences.

    Diverging colours centred on 0 (blue - white - orange, as the context heatmap), symmetric at
    ±max |value|; hover gives the token, the sentence's text and the value. An invisible marker per cell
    makes cells clickable (Streamlit reports clicks on scatter points, not on heatmap cells); its
    ``customdata`` is ``[token, sentence]``. ``focus`` = (token, sentence) draws an outline on that row
    and column.
    """
    import plotly.graph_objects as go

    labels, cols, z = token_matrix(result)
    finite = [abs(v) for row in z for v in row if v is not None]
    top = max(finite, default=0.0) or 1.0
    ylabels = [f"{i + 1:>3} {_plotly_text(markdown_free(lab), 18)}" for i, lab in enumerate(labels)]
    xlabels = [f"S{c + 1}" for c in cols]
    sentences = {s.index: s for s in result.sentences}
    hover = [[f"token {i + 1} “{_plotly_text(labels[i], 30)}” · sentence {c + 1}: "
              f"{_plotly_text(sentences[c].text, 70)}<br>"
              + (f"{v:+.4f} nats" if v is not None else "no per-token value (not scored on these tokens)")
              for c, v in zip(cols, row, strict=True)] for i, row in enumerate(z)]
    neg, pos = f"rgb{NEGATIVE_RGB}", f"rgb{POSITIVE_RGB}"
    fig = go.Figure(go.Heatmap(
        z=z, x=xlabels, y=ylabels, zmin=-top, zmax=top, zmid=0.0,
        colorscale=[[0.0, neg], [0.5, "#ffffff"], [1.0, pos]],
        colorbar={"title": {"text": "nats"}, "thickness": 12}, hoverinfo="skip", xgap=1, ygap=1,
    ))
    # Hover and clicks come from these markers: plotly hit-tests only traces that take hover.
    fig.add_trace(go.Scatter(
        x=[x for _ in ylabels for x in xlabels], y=[y for y in ylabels for _ in xlabels], mode="markers",
        marker={"symbol": "square", "size": 16, "opacity": 0.01, "color": "#000000"},
        customdata=[[t, c] for t in range(len(ylabels)) for c in cols],
        hovertext=[h for row in hover for h in row], hovertemplate="%{hovertext}<extra></extra>",
        showlegend=False, name="cells",
    ))
    if focus is not None and 0 <= focus[0] < len(ylabels) and focus[1] in cols:
        t, c = focus[0], cols.index(focus[1])
        for x0, x1, y0, y1 in ((-0.5, len(cols) - 0.5, t - 0.5, t + 0.5), (c - 0.5, c + 0.5, -0.5, len(ylabels) - 0.5)):
            fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line={"color": "#1b1b1b", "width": 2},
                          fillcolor="rgba(0,0,0,0)")
    fig.update_layout(
        height=max(260, 22 * len(ylabels) + 90), width=max(420, 34 * len(cols) + 260),
        margin={"t": 30, "l": 10, "r": 10, "b": 10}, clickmode="event+select", dragmode=False,
        hoverlabel={"align": "left"},
    )
    fig.update_yaxes(autorange="reversed", type="category", tickfont={"family": "monospace", "size": 11})
    fig.update_xaxes(type="category", side="top", tickangle=0)
    return fig


def markdown_free(text: str) -> str:
    """A token label for axis ticks: whitespace made visible, nothing else changed."""
    return text.strip(" ").replace("\n", "↵").replace("\t", "⇥") or "␣"


_FAMILY_SYMBOLS: dict[str, str] = {"exact": "circle", "attribot": "diamond", "baseline": "square"}


def pareto_figure(rows: Sequence[Mapping[str, Any]], *, metric: str = "spearman", title: str | None = None):
    """Plotly scatter of speed-up vs the target's naive LOO (log x) against a faithfulness metric.

    ``rows`` are one point per configuration, as given (``metrics.compare_rows`` for one example, or
    rows averaged over examples): the figure computes no metric. Each needs ``config``, ``family``,
    ``speedup`` and ``metric``; ``<metric>_std`` draws error bars when present. The Pareto front
    (``metrics.pareto_front``) is a dashed line. One trace per method, in the order and colour every
    other chart uses (:func:`method_order`, :func:`method_colour`); the marker's shape tells the family
    (exact, attribot, baseline).
    """
    import plotly.graph_objects as go

    pts = [r for r in rows if isinstance(r.get("speedup"), int | float) and r["speedup"] > 0]
    fig = go.Figure()
    methods = {r.get("method", r["config"]) for r in pts}
    for method in method_order(methods):
        fam = [r for r in pts if r.get("method", r["config"]) == method]
        fig.add_trace(go.Scatter(
            x=[r["speedup"] for r in fam], y=[r.get(metric) for r in fam], mode="markers+text",
            name=method, text=[r["config"] for r in fam], textposition="top center",
            marker={"size": 11, "color": method_colour(method),
                    "symbol": [_FAMILY_SYMBOLS.get(r["family"], "circle") for r in fam],
                    "line": {"color": "#1b1b1b", "width": 1}},
            error_y={"type": "data", "array": [r.get(f"{metric}_std", 0) or 0 for r in fam], "visible": True,
                     "thickness": 1},
            hovertemplate="%{text}<br>speed-up %{x:.1f}x<br>" + metric + " %{y:.3f}<extra></extra>",
        ))
    front = [pts[i] for i in pareto_front(pts, "speedup", metric)]
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=[r["speedup"] for r in front], y=[r[metric] for r in front], mode="lines",
                                 name="Pareto front", line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    fig.update_xaxes(type="log", title="speed-up vs the target's naive LOO (x, log scale)")
    fig.update_yaxes(title=f"faithfulness to exact LOO ({metric})")
    fig.update_layout(title=title or f"Speed vs faithfulness ({metric}); ● exact, ◆ AttriBoT, ■ baseline",
                      legend_title="method")
    return fig
