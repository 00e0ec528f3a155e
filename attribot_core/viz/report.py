"""The blocks around a heatmap (the response, what is known about the input, the run's facts, the top
spans) and the self-contained HTML page that exports them all. Every piece of user text is escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..result import AttributionResult
from .colours import DEFAULT_SCALE, Level, Scale
from .heatmap import CSS, heatmap_html
from .text import esc

if TYPE_CHECKING:
    from ..examples import Known

__all__ = [
    "facts_html",
    "heatmap_document",
    "known_answer_html",
    "response_html",
    "run_facts",
    "top_k_table",
    "truncation_note",
]

def truncation_note(result: AttributionResult) -> str | None:
    """A warning when generation stopped at the token limit (``extra["response_complete"]`` is False)."""
    if result.extra.get("response_complete") is False:
        return (f"The response was cut off at the limit of new tokens ({result.response_tokens} tokens): it is "
                "incomplete, and the scores explain only this truncated text. Raise max new tokens and run again.")
    return None


def known_answer_html(result: AttributionResult, known: Known | None) -> str:
    """What is known about this input (``examples.known_for(result)``: a built-in example or gold labels):
    its note, and a warning when the response does not contain the known answer. Empty when nothing is known."""
    if known is None:
        return ""
    note = f" {esc(known.note)}" if known.note else ""
    if known.answers and not known.response_has_answer(result.response):
        body = (f'<div class="ab-warn" data-known="wrong" dir="auto"><b>This answer is known to be wrong.</b> '
                f"The expected answer is “{esc(known.answers[0])}” ({esc(known.source)}); the response does not "
                f"contain it, so the heatmap shows where a wrong answer came from.{note}</div>")
    elif note:
        body = f'<div class="ab-legend" dir="auto">{note.strip()}</div>'
    else:
        return ""
    return f'<style>{CSS}</style><div class="ab-root ab-known">{body}</div>'


def response_html(result: AttributionResult) -> str:
    """The response, escaped, with the attributed part highlighted when only a part was attributed, and a
    warning when the response was cut off at the token limit."""
    text = result.response
    if result.response_span is None:
        inner = esc(text)
    else:
        a, b = result.response_span
        inner = (f'{esc(text[:a])}<mark class="ab-part" title="the attributed part">{esc(text[a:b])}</mark>'
                 f"{esc(text[b:])}")
    note = truncation_note(result)
    warn = f'<div class="ab-warn" data-truncated="1">{esc(note)}</div>' if note else ""
    return (f'<style>{CSS}</style><div class="ab-root"><div class="ab-response" dir="auto">{inner}</div>'
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
                 f"not computed: this method never scores the answer on the full context with the target "
                 f"({result.response_tokens} response tokens)"))
    if truncation_note(result):
        rows.append(("Response", "cut off at the token limit (incomplete)"))
    if result.response_span is not None:
        a, b = result.response_span
        rows.append(("Attributed part of the response", f"characters {a}–{b}"))
    for key in ("tokens_computed", "tokens_reused"):
        if key in result.extra:
            rows.append((key.replace("_", " ").capitalize(), str(result.extra[key])))
    if result.extra.get("estimate_matmuls") == "bfloat16":  # where the numbers can differ between machines
        rows.append(("The method's own pass", "bfloat16 matrix products (precision=auto, a CPU with native bfloat16); "
                                              "precision=model gives the float32 numbers"))
    return rows


def facts_html(result: AttributionResult) -> str:
    """The run's facts as a small escaped HTML table."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in run_facts(result))
    return f'<style>{CSS}</style><table class="ab-facts">{rows}</table>'


def top_k_table(result: AttributionResult, k: int = 5, level: Level = "sentence"):
    """The ``k`` best spans as a table: rank, score (nats), paragraph (1-based), text, scored by.

    For passages the ``paragraph`` column is ``source``, each span's passage by name
    (``source 3 · Harbour board minutes``, plain text: the view escapes it).
    """
    import pandas as pd

    where = "source" if result.passages else "paragraph"
    rows = []
    for rank, span in enumerate(result.top_k(k, level), 1):
        p = span.paragraph if level == "sentence" else span.index
        rows.append({"rank": rank, "score (nats)": round(span.score, 4),
                     where: result.source_label(p) if result.passages else p + 1,
                     "text": span.text, "scored by": span.scored_by})
    return pd.DataFrame(rows, columns=["rank", "score (nats)", where, "text", "scored by"])


def heatmap_document(result: AttributionResult, intensity: float = 1.0, scale: Scale = DEFAULT_SCALE,
                     known: Known | None = None) -> str:
    """A complete, self-contained HTML page (inline CSS, no scripts, no network) for export.

    ``known`` (``examples.known_for(result)``) adds the known-answer note and outlines the evidence.
    """
    table = top_k_table(result, 10, "sentence")
    where = "source" if result.passages else "paragraph"
    rows = "".join(
        f"<tr><td>{r['rank']}</td><td>{r['score (nats)']:+.3f}</td><td>{esc(r[where])}</td>"
        f"<td>{esc(r['text'])}</td></tr>"
        for r in table.to_dict("records")
    )
    title = esc(f"AttriBoT heatmap: {result.question[:80]}")
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
<div class="ab-root"><div class="ab-response" dir="auto">{esc(result.question)}</div></div>
<h2>Response</h2>
{response_html(result)}
{known_answer_html(result, known)}
<h2>Context, by sentence</h2>
{heatmap_html(result, "sentence", intensity, scale=scale, known=known)}
<h2>Context, by {where}</h2>
{heatmap_html(result, "paragraph", intensity, scale=scale, known=known)}
<h2>Top sentences</h2>
<table><tr><th>rank</th><th>score (nats)</th><th>{where}</th><th>text</th></tr>{rows}</table>
<h2>Run</h2>
{facts_html(result)}
<p style="font-size:0.8rem;color:#666">Score = log p(response | full context) − log p(response | context
without the span), summed over the attributed response tokens, in nats.</p>
</body>
</html>
"""
