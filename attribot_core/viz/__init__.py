"""Views of attribution results: escaped HTML, plotly figures and small tables. They draw what they are
given: nothing here scores, computes an agreement metric, looks up the built-in examples, or imports
streamlit, so the app, the CLI and a notebook show the same thing.

One module per kind of output:

- :mod:`.colours`: the diverging score scale (orange supports the response, blue works against it,
  hatched grey = not scored), its strengths, and one colour and one order per method;
- :mod:`.heatmap`: the context as an HTML heatmap with its legend;
- :mod:`.report`: the response, the known answer, the run's facts, the top spans and the export page;
- :mod:`.figures`: plotly overview of paragraphs and sentences, and one paragraph's sentences;
- :mod:`.compare`: the drawing of a method comparison (its rows come from ``metrics.compare_rows``);
- :mod:`.tokens`: the response token by token and the token x sentence matrix;
- :mod:`.dataset`: figures of a batch's per-row figures;
- :mod:`.text`: user text made safe for HTML, Markdown labels (:func:`markdown_literal`, the app's one
  Markdown rule) and plotly labels.
"""

from .colours import (
    DEFAULT_SCALE,
    NEGATIVE_RGB,
    NOT_SCORED_COLOUR,
    POSITIVE_RGB,
    SCALES,
    in_nats,
    max_abs_score,
    method_colour,
    method_order,
    scale_strengths,
    score_colour,
)
from .compare import agreement_table, compare_cost_figure, compare_scatter_figure, pareto_figure
from .dataset import gold_rate_figure, gold_rates, max_score_figure, position_figure
from .figures import overview_figure, sentence_bar_figure
from .heatmap import heatmap_html, legend_html
from .report import (
    facts_html,
    heatmap_document,
    known_answer_html,
    response_html,
    run_facts,
    top_k_table,
    truncation_note,
)
from .text import markdown_literal
from .tokens import (
    attributed_tokens,
    focus_css,
    part_note,
    pill_labels,
    selection_ranges,
    token_chips,
    token_matrix,
    token_matrix_figure,
    tokens_html,
)

__all__ = [
    "DEFAULT_SCALE",
    "NEGATIVE_RGB",
    "NOT_SCORED_COLOUR",
    "POSITIVE_RGB",
    "SCALES",
    "agreement_table",
    "attributed_tokens",
    "compare_cost_figure",
    "compare_scatter_figure",
    "pareto_figure",
    "facts_html",
    "focus_css",
    "gold_rate_figure",
    "gold_rates",
    "heatmap_document",
    "heatmap_html",
    "in_nats",
    "known_answer_html",
    "legend_html",
    "markdown_literal",
    "max_abs_score",
    "max_score_figure",
    "method_colour",
    "method_order",
    "overview_figure",
    "part_note",
    "pill_labels",
    "position_figure",
    "response_html",
    "run_facts",
    "scale_strengths",
    "score_colour",
    "selection_ranges",
    "sentence_bar_figure",
    "token_chips",
    "token_matrix",
    "token_matrix_figure",
    "tokens_html",
    "top_k_table",
    "truncation_note",
]
