"""Blocks that several pages share: model and method pickers, exports, facts, escaped messages and text."""

from __future__ import annotations

import hashlib
import html
from typing import Any, Literal

import streamlit as st

from attribot_core import METHODS, PRESETS, AttributionResult
from attribot_core.csvsafe import frame_to_csv
from attribot_core.estimator import has_weights
from attribot_core.examples import known_for
from attribot_core.methods import ParamSpec
from attribot_core.viz import DEFAULT_SCALE, facts_html, heatmap_document, markdown_literal

from . import state
from .config import CUSTOM, StudioConfig, model_label

QUIET_RERUNS_CSS = ("<style>[data-stale='true'],.stExpander details,.stExpander summary"
                    "{transition:none !important;opacity:1 !important}</style>")
"""Streamlit fades what a script run has not redrawn yet: 0.5 s into a run, for 1 s (element containers'
opacity, expanders' borders and labels). A browser drawing without a GPU (chromium here, many laptops)
repaints for every frame of that fade, half a core or more for a second, taken from the model on a small
machine: the Run button's wait for the first text (:func:`studio.runs.first_news`) is such a run, and
the fade delayed that text on screen (README, *No fade, no stale result*). Our script runs are short and
long work runs in the background with its own progress line, so the fade says nothing that the status
widget ("Running…") does not."""

__all__ = [
    "chosen_model",
    "estimate_caption",
    "exports",
    "facts_table",
    "message",
    "method_params",
    "model_picker",
    "model_size",
    "offered_methods",
    "params_from_state",
    "quiet_reruns",
    "show_notice",
    "text_block",
]


def quiet_reruns() -> None:
    """Turn off Streamlit's fade of not-yet-redrawn elements (:data:`QUIET_RERUNS_CSS` says why). Once per
    page run, from the frame (``app.py``); a style-only ``st.html`` takes no space on the page."""
    st.html(QUIET_RERUNS_CSS)


def text_block(label: str, text: str, *, small: bool = False) -> None:
    """A labelled piece of user text, escaped (never interpreted as HTML or Markdown)."""
    size = "font-size:0.85rem;" if small else ""
    st.html(f'<div style="margin:0.1rem 0;{size}"><span style="font-weight:600">{html.escape(label)}</span> '
            f'<span style="white-space:pre-wrap;unicode-bidi:plaintext" dir="auto">{html.escape(text)}</span></div>')


Kind = Literal["info", "warning", "error"]
_MESSAGE_COLOURS: dict[str, tuple[str, str, str]] = {  # background, border, text (Streamlit's alert palette)
    "info": ("#e8f1fb", "#1c6fd1", "#0b3a6f"),
    "warning": ("#fff6e0", "#c98a00", "#6b4a00"),
    "error": ("#fdecec", "#d33b3b", "#7d1a1a"),
}


def message(kind: Kind, text: str, target: Any = None) -> None:
    """An info/warning/error box whose text is shown as text: escaped HTML, never Markdown.

    ``st.error`` and friends render Markdown, so a file or model name like ``![i](http://host/p.png)``
    would become an image fetched from that host. Every message that can hold user text goes through here.
    """
    bg, border, fg = _MESSAGE_COLOURS[kind]
    (target or st).html(
        f'<div class="ab-message" data-kind="{kind}" role="{"alert" if kind == "error" else "status"}" '
        f'style="background:{bg};border-left:4px solid {border};color:{fg};padding:0.65rem 0.9rem;'
        f'border-radius:0.4rem;margin:0.2rem 0 0.6rem 0;white-space:pre-wrap;unicode-bidi:plaintext" dir="auto">'
        f"{html.escape(text)}</div>")


def show_notice() -> None:
    """A one-time message (e.g. "Stopped"), in a slot that exists on every run so the page never shifts."""
    slot = st.empty()
    notice = state.take_notice()
    if notice:
        kind, text = notice
        message(kind if kind in _MESSAGE_COLOURS else "error", text, slot)


# -- pickers ---------------------------------------------------------------------------------------
def model_size(spec: str) -> float:
    """A preset's size in MB (unknown models sort last): the smallest other model is the default proxy."""
    return PRESETS[spec].size_mb if spec in PRESETS else float("inf")


def model_picker(label: str, key: str, config: StudioConfig, *, default: str | None = None,
                 help: str | None = None) -> str:
    """A selectbox of the configured models (plus a free-text box when custom models are allowed)."""
    options = list(config.models) + ([CUSTOM] if config.allow_custom else [])
    default = default if default in options else options[0]
    choice = state.widget(st.selectbox, label, key, default, options=options, format_func=model_label, help=help)
    if choice != CUSTOM:
        return choice
    return state.widget(
        st.text_input, "Model: Hugging Face id (already cached), local folder, or .gguf file", f"{key}_custom", "",
        placeholder="/path/to/model-folder  or  /path/to/model.gguf",
    ).strip()


def chosen_model(key: str) -> str:
    """The model last chosen in picker ``key`` (the free-text box's content for "other model")."""
    choice = state.get(key) or ""
    return (state.get(f"{key}_custom") or "").strip() if choice == CUSTOM else choice


ESTIMATE = "estimate"
"""The learned one-pass estimate: a method, and a ranking stage (``proxy_stage``) of tree and pruning."""


def offered_methods(model: str) -> list[str]:
    """The methods a picker offers for target ``model``: every registered one, but ``estimate`` only where
    estimator weights exist for it (:func:`~attribot_core.estimator.has_weights`, the one rule)."""
    return [m for m in METHODS if m != ESTIMATE or has_weights(model)]


def estimate_caption(model: str) -> None:
    """Under a method picker: why ``estimate`` is not offered for ``model``, and how to get it (nothing when
    it is offered)."""
    if model and not has_weights(model):
        st.caption(markdown_literal(
            f"The learned one-pass estimate (method estimate) needs estimator weights for {model}: train them "
            "with attribot estimator train on exact-LOO runs of this model, then name their folder in "
            "ATTRIBOT_ESTIMATORS."))


def _stage_model(method: str, model: str | None, proxy: str | None) -> str | None:
    """The model whose weights the ``estimate`` ranking stage of ``method`` needs: the proxy's for a method
    with a proxy (pruning ranks with it), else the target's (tree)."""
    return proxy if METHODS[method].needs_proxy else model


_OFF_VALUE = 2
"""What an optional number's box shows (greyed) until its checkbox turns it on."""


def _param_widget(ps: ParamSpec, key: str, hidden: tuple[str, ...] = ()) -> Any:
    """One parameter's widget, built from its spec: label, help, kind, bounds and choices (but ``hidden``)."""
    low = ps.minimum
    high = ps.maximum if ps.maximum is not None else 10_000
    if ps.optional:
        on = state.widget(st.checkbox, f"{ps.label} (optional)", f"{key}_on", False, help=ps.help)
        n = state.widget(st.number_input, ps.label, key, max(_OFF_VALUE, int(low or 0)), min_value=int(low or 0),
                         max_value=int(high), step=1, disabled=not on, label_visibility="collapsed")
        return int(n) if on else None
    if ps.kind is bool:
        return state.widget(st.checkbox, ps.label, key, ps.default, help=ps.help)
    if ps.choices:
        return state.widget(st.selectbox, ps.label, key, ps.default, help=ps.help,
                            options=[c for c in ps.choices if c not in hidden])
    if ps.kind is int:
        return int(state.widget(st.number_input, ps.label, key, ps.default, step=1, help=ps.help,
                                min_value=None if low is None else int(low), max_value=int(high)))
    if ps.kind is float:
        return float(state.widget(st.number_input, ps.label, key, ps.default, help=ps.help, format="%.3f",
                                  min_value=None if low is None else float(low),
                                  max_value=None if ps.maximum is None else float(ps.maximum)))
    return state.widget(st.text_input, ps.label, key, ps.default, help=ps.help)


def method_params(method: str, *, key_prefix: str = "in_param", model: str | None = None,
                  proxy: str | None = None) -> tuple[tuple[str, Any], ...]:
    """Widgets for a method's parameters (from its registered specs); returns them as a sorted tuple.

    With ``model`` (and ``proxy``) given, a ranking stage choice ``estimate`` is offered only when the
    model that would rank has estimator weights.
    """
    stage_model = _stage_model(method, model, proxy) if model is not None else None
    no_estimate = (ESTIMATE,) if model is not None and not has_weights(stage_model or "") else ()
    values = {ps.name: _param_widget(ps, state.param_key(method, ps.name, key_prefix),
                                     no_estimate if ps.name == "proxy_stage" else ())
              for ps in METHODS[method].parameters}
    return tuple(sorted(values.items()))


def params_from_state(method: str, key_prefix: str = "in_param") -> tuple[tuple[str, Any], ...]:
    """A method's parameters as last set on the Attribute page (its defaults otherwise)."""
    values = {}
    for ps in METHODS[method].parameters:
        key = state.param_key(method, ps.name, key_prefix)
        if ps.optional:
            values[ps.name] = int(state.get(key, _OFF_VALUE)) if state.get(f"{key}_on") else None
        else:
            value = state.get(key, ps.default)
            values[ps.name] = ps.kind(value) if ps.kind in (bool, int, float, str) else value
    return tuple(sorted(values.items()))


# -- result blocks ---------------------------------------------------------------------------------
def facts_table(result: AttributionResult) -> None:
    st.html(facts_html(result))


def _slug(result: AttributionResult) -> str:
    digest = hashlib.sha1(result.to_json(None).encode()).hexdigest()[:8]
    return f"attribot-{result.method}-{digest}"


def exports(result: AttributionResult, key: str, intensity: float = 1.0, *, vertical: bool = False,
            scale: str = DEFAULT_SCALE) -> None:
    """JSON (the full result, re-loadable), CSV (the sentence table) and a self-contained HTML heatmap."""
    slug = _slug(result)
    c1, c2, c3 = st.columns(3) if not vertical else (st.container(),) * 3
    c1.download_button("Download JSON (full result)", result.to_json(), file_name=f"{slug}.json",
                       mime="application/json", key=f"{key}_json", on_click="ignore", width="stretch")
    table = result.to_dataframe("sentence")
    table["response_complete"] = result.extra.get("response_complete")  # False: cut off at max new tokens
    c2.download_button("Download CSV (sentence table)", frame_to_csv(table),
                       file_name=f"{slug}.csv", mime="text/csv", key=f"{key}_csv", on_click="ignore",
                       width="stretch")
    page = heatmap_document(result, intensity, scale, known_for(result))
    c3.download_button("Download HTML heatmap", page, file_name=f"{slug}.html",
                       mime="text/html", key=f"{key}_html", on_click="ignore", width="stretch")
