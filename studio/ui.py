"""Widgets and blocks that several pages share: pickers, the run-with-progress status, exports, facts."""

from __future__ import annotations

import hashlib
import html
from typing import Any, Literal

import streamlit as st

from attribot_core import METHODS, PRESETS, AttributionResult
from attribot_core.csvsafe import frame_to_csv
from attribot_core.examples import known_for
from attribot_core.methods import PARAM_CHOICES
from attribot_core.viz import facts_html, heatmap_document

from . import state
from .config import CUSTOM, StudioConfig, model_label

__all__ = [
    "chosen_model",
    "exports",
    "facts_table",
    "message",
    "method_params",
    "model_picker",
    "model_size",
    "params_from_state",
    "show_notice",
    "text_block",
]

PARAM_HELP: dict[str, tuple[str, str]] = {
    "paragraphs": ("Also score whole paragraphs", "One extra ablation per paragraph (for the drill-down)."),
    "keep_paragraphs": ("k: paragraphs to keep",
                        "Score paragraphs first; score sentences only inside the k best paragraphs."),
    "keep_sentences": ("m: sentences the target rescores",
                       "The proxy ranks every sentence; the target rescores only its top m."),
    "n_ablations": ("N: random ablations", "Forward passes on random subsets of sentences (a baseline)."),
    "keep_prob": ("Probability of keeping a sentence", "In each random ablation."),
    "alpha": ("Lasso alpha (sparsity)", "Larger values give fewer non-zero sentence weights."),
    "seed": ("Random seed", "Same seed, same ablations."),
    "branching": ("Branching: children per block", "Tree: paragraphs are grouped into blocks of this many, "
                  "scored block by block; the best blocks are opened, down to paragraphs and sentences."),
    "proxy_stage": ("How the proxy ranks sentences", "auto: LOO over all sentences, or hierarchical when k is "
                    "set; tree for documents of hundreds of paragraphs."),
}


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
    notice = st.session_state.get("notice")
    if notice:
        kind, text = notice
        message(kind if kind in _MESSAGE_COLOURS else "error", text, slot)
        st.session_state["notice"] = None


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


def method_params(method: str, *, key_prefix: str = "in_param") -> tuple[tuple[str, Any], ...]:
    """Widgets for a method's parameters (from its registered defaults); returns them as a sorted tuple."""
    spec = METHODS[method]
    values: dict[str, Any] = {}
    for name, default in spec.params.items():
        label, help_ = PARAM_HELP.get(name, (name.replace("_", " "), None))
        key = state.param_key(method, name, key_prefix)
        if default is None:
            on = state.widget(st.checkbox, f"{label} (optional)", f"{key}_on", False, help=help_)
            n = state.widget(st.number_input, label, key, 2, min_value=1, max_value=500, step=1, disabled=not on,
                             label_visibility="collapsed")
            values[name] = int(n) if on else None
        elif isinstance(default, bool):
            values[name] = state.widget(st.checkbox, label, key, default, help=help_)
        elif isinstance(default, int):
            low = 1 if name.startswith(("keep_", "n_")) else 0
            values[name] = int(state.widget(st.number_input, label, key, default, min_value=low, max_value=10_000,
                                            step=1, help=help_))
        elif isinstance(default, float):
            values[name] = float(state.widget(st.number_input, label, key, default, help=help_, format="%.3f"))
        elif name in PARAM_CHOICES:
            values[name] = state.widget(st.selectbox, label, key, default, options=list(PARAM_CHOICES[name]),
                                        help=help_)
        else:
            values[name] = default
    return tuple(sorted(values.items()))


def params_from_state(method: str, key_prefix: str = "in_param") -> tuple[tuple[str, Any], ...]:
    """A method's parameters as last set on the Attribute page (its defaults otherwise)."""
    values = {}
    for name, default in METHODS[method].params.items():
        key = state.param_key(method, name, key_prefix)
        if default is None:
            values[name] = int(state.get(key, 2)) if state.get(f"{key}_on") else None
        else:
            value = state.get(key, default)
            values[name] = type(default)(value) if isinstance(default, bool | int | float) else default
    return tuple(sorted(values.items()))


# -- result blocks ---------------------------------------------------------------------------------
def facts_table(result: AttributionResult) -> None:
    st.html(facts_html(result))


def _slug(result: AttributionResult) -> str:
    digest = hashlib.sha1(result.to_json(None).encode()).hexdigest()[:8]
    return f"attribot-{result.method}-{digest}"


def exports(result: AttributionResult, key: str, intensity: float = 1.0, *, vertical: bool = False,
            scale: str = "linear") -> None:
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
