"""Widgets and blocks that several pages share: pickers, the run-with-progress status, exports, facts."""

from __future__ import annotations

import hashlib
import html
from typing import Any

import streamlit as st

from attribot_core import METHODS, PRESETS, AttributionResult
from attribot_core.viz import facts_html, heatmap_document

from .config import CUSTOM, StudioConfig, model_label

__all__ = [
    "exports",
    "facts_table",
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
}


def text_block(label: str, text: str, *, small: bool = False) -> None:
    """A labelled piece of user text, escaped (never interpreted as HTML or Markdown)."""
    size = "font-size:0.85rem;" if small else ""
    st.html(f'<div style="margin:0.1rem 0;{size}"><span style="font-weight:600">{html.escape(label)}</span> '
            f'<span style="white-space:pre-wrap">{html.escape(text)}</span></div>')


def show_notice() -> None:
    """A one-time message (e.g. "Stopped"), in a slot that exists on every run so the page never shifts."""
    slot = st.empty()
    notice = st.session_state.get("notice")
    if notice:
        kind, message = notice
        (slot.info if kind == "info" else slot.warning if kind == "warning" else slot.error)(message)
        st.session_state["notice"] = None


# -- pickers ---------------------------------------------------------------------------------------
def model_size(spec: str) -> float:
    """A preset's size in MB (unknown models sort last): the smallest other model is the default proxy."""
    return PRESETS[spec].size_mb if spec in PRESETS else float("inf")


def model_picker(label: str, key: str, config: StudioConfig, *, default: str | None = None,
                 help: str | None = None) -> str:
    """A selectbox of the configured models (plus a free-text box when custom models are allowed)."""
    options = list(config.models) + ([CUSTOM] if config.allow_custom else [])
    ss = st.session_state
    if ss.get(key) not in options:
        ss[key] = default if default in options else options[0]
    choice = st.selectbox(label, options, key=key, format_func=model_label, help=help)
    if choice != CUSTOM:
        return choice
    return st.text_input(
        "Model: Hugging Face id (already cached), local folder, or .gguf file",
        key=f"{key}_custom", placeholder="/path/to/model-folder  or  /path/to/model.gguf",
    ).strip()


def method_params(method: str, *, key_prefix: str = "in_param") -> tuple[tuple[str, Any], ...]:
    """Widgets for a method's parameters (from its registered defaults); returns them as a sorted tuple."""
    spec = METHODS[method]
    ss = st.session_state
    values: dict[str, Any] = {}
    for name, default in spec.params.items():
        label, help_ = PARAM_HELP.get(name, (name.replace("_", " "), None))
        key = f"{key_prefix}_{method}_{name}"
        if default is None:
            ss.setdefault(f"{key}_on", False)
            ss.setdefault(key, 2)
            on = st.checkbox(f"{label} (optional)", key=f"{key}_on", help=help_)
            n = st.number_input(label, min_value=1, max_value=500, step=1, key=key, disabled=not on,
                                label_visibility="collapsed")
            values[name] = int(n) if on else None
            continue
        ss.setdefault(key, default)
        if isinstance(default, bool):
            values[name] = st.checkbox(label, key=key, help=help_)
        elif isinstance(default, int):
            low = 1 if name.startswith(("keep_", "n_")) else 0
            values[name] = int(st.number_input(label, min_value=low, max_value=10_000, step=1, key=key, help=help_))
        elif isinstance(default, float):
            values[name] = float(st.number_input(label, key=key, help=help_, format="%.3f"))
        else:
            values[name] = default
    return tuple(sorted(values.items()))


def params_from_state(method: str, key_prefix: str = "in_param") -> tuple[tuple[str, Any], ...]:
    """A method's parameters as last set on the Attribute page (its defaults otherwise)."""
    ss = st.session_state
    values = {}
    for name, default in METHODS[method].params.items():
        key = f"{key_prefix}_{method}_{name}"
        if default is None:
            values[name] = int(ss[key]) if ss.get(f"{key}_on") and key in ss else None
        else:
            values[name] = type(default)(ss.get(key, default)) if isinstance(default, bool | int | float) else default
    return tuple(sorted(values.items()))


# -- result blocks ---------------------------------------------------------------------------------
def facts_table(result: AttributionResult) -> None:
    st.html(facts_html(result))


def _slug(result: AttributionResult) -> str:
    digest = hashlib.sha1(result.to_json(None).encode()).hexdigest()[:8]
    return f"attribot-{result.method}-{digest}"


def exports(result: AttributionResult, key: str, intensity: float = 1.0, *, vertical: bool = False) -> None:
    """JSON (the full result, re-loadable), CSV (the sentence table) and a self-contained HTML heatmap."""
    slug = _slug(result)
    c1, c2, c3 = st.columns(3) if not vertical else (st.container(),) * 3
    c1.download_button("Download JSON (full result)", result.to_json(), file_name=f"{slug}.json",
                       mime="application/json", key=f"{key}_json", on_click="ignore", width="stretch")
    c2.download_button("Download CSV (sentence table)", result.to_dataframe("sentence").to_csv(index=False),
                       file_name=f"{slug}.csv", mime="text/csv", key=f"{key}_csv", on_click="ignore",
                       width="stretch")
    c3.download_button("Download HTML heatmap", heatmap_document(result, intensity), file_name=f"{slug}.html",
                       mime="text/html", key=f"{key}_html", on_click="ignore", width="stretch")
