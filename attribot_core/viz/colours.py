"""Colours and scales shared by every view: the diverging score scale, its strengths, and method colours.

Colour convention (colour-blind safe, no red/green): **orange** = positive score (removing the span
lowers log p(response), i.e. the span supports it), **blue** = negative, **white** = 0, and a grey
hatched pattern = not scored (e.g. a sentence of a paragraph that hierarchical attribution pruned).
The scale is symmetric and centred on 0: full colour at ±max |score| of the level shown, with the
strength linear in the score, its signed square root, its signed log, or its rank (``SCALES``): one
dominant span otherwise leaves every other one near white. Each method has one colour and one place in
every chart's order (``method_colour``, ``method_order``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from ..result import AttributionResult

__all__ = [
    "BAR_FLOOR",
    "DARK_TEXT",
    "DEFAULT_SCALE",
    "HATCH",
    "LIGHT_TEXT",
    "LOG_DECADES",
    "NEGATIVE_RGB",
    "NOT_SCORED_COLOUR",
    "POSITIVE_RGB",
    "SCALES",
    "Level",
    "Scale",
    "colour_at",
    "in_nats",
    "max_abs_score",
    "method_colour",
    "method_order",
    "scale_strengths",
    "score_colour",
    "sign_of",
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
DEFAULT_SCALE: Scale = "sqrt"
"""The heatmap's scale wherever none is chosen: the Attribute page's default, History, Dataset, Learn, the
live heatmap of a run, exports. The square root keeps spans beside one dominant span visible."""
LOG_DECADES = 3  # the log scale spans three decades below the largest |score|

POSITIVE_RGB = (230, 97, 1)  # orange (ColorBrewer PuOr end): supports the response
NEGATIVE_RGB = (33, 102, 172)  # blue: works against the response
NOT_SCORED_COLOUR = "#bdbdbd"
_WHITE = (255, 255, 255)
DARK_TEXT, LIGHT_TEXT = "#1b1b1b", "#ffffff"
BAR_FLOOR = 0.45
HATCH = "repeating-linear-gradient(135deg, #ececec 0 4px, #c8c8c8 4px 6px)"


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
        u = top / 10**LOG_DECADES
        return [math.log1p(m / u) / math.log1p(top / u) for m in mags]
    return [m / top for m in mags]


def colour_at(score: float, t: float) -> str:
    """CSS colour of strength ``t`` in [0, 1] on the side of ``score``'s sign (the caller maps 0 to white)."""
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
    return colour_at(score, t)


def sign_of(score: float | None) -> str:
    """``pos``, ``neg``, ``zero`` or ``none`` (not scored): the ``data-sign`` of a heatmap span."""
    if score is None:
        return "none"
    return "pos" if score > 0 else "neg" if score < 0 else "zero"


def in_nats(result: AttributionResult) -> bool:
    """Whether scores are LOO-style log-probability differences (the attention baseline's are not)."""
    return result.method != "attention"


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
    from ..methods import METHODS

    rank = {m: i for i, m in enumerate(METHODS)}
    names = list(names)
    return sorted(names, key=lambda n: (rank.get((method_of or {}).get(n, n), len(rank)), names.index(n)))
