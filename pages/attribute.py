"""Attribute (home): paste or pick a context, ask, run, and read the heat-mapped context."""

from __future__ import annotations

import contextlib
import hashlib

import streamlit as st

from attribot_core import METHODS, AttributionResult, segment
from attribot_core.api import InputError, plan_line
from attribot_core.examples import EXAMPLES, known_for
from attribot_core.prompt import DEFAULT_PASSAGE_TEMPLATE
from attribot_core.runs import RunRequest
from attribot_core.viz import DEFAULT_SCALE, SCALES, known_answer_html, response_html, top_k_table
from studio import runs, state, tokens, ui
from studio.config import load_config

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

config = load_config()
ss = st.session_state

st.title("Attribute")
st.caption("Paste a context and a question. The model answers, then every sentence is scored by how much "
           "removing it changes the log-probability of that answer (leave-one-out, in nats).")
ui.show_notice()
if ss["result"] is None and runs.group("attribute") is None:  # first visit: the hint above the inputs, in view
    st.info("Load an example or paste a context and a question, then press **Run** (below the inputs).")


def _request_from_inputs() -> RunRequest:
    """The run the owned inputs describe (the widgets write into them; callbacks read them before a rerun)."""
    method = state.get("in_method")
    method = method if method in METHODS else "loo"
    passages = state.get("in_context_mode") == state.PASSAGES  # InputError: passages that cannot be a context
    return RunRequest.for_method(
        state.passage_rows() if passages else state.get("in_context", ""), state.get("in_question", ""),
        ui.chosen_model("in_model"), method, dict(ui.params_from_state(method)),
        proxy_model=ui.chosen_model("in_proxy") if METHODS[method].needs_proxy else None,
        response=state.get("in_response", "").strip(), max_new_tokens=int(state.get("in_max_new_tokens", 64)),
        passage_template=state.get("in_passage_template") or DEFAULT_PASSAGE_TEMPLATE,
    )


def _run() -> None:
    """Run button callback: submit the run (it works in the background), and fold the inputs so its progress
    and result sit right below the button, unless the inputs are refused at once (then the message and the
    inputs stay in view together)."""
    try:
        request = _request_from_inputs()
    except InputError as exc:
        ss["notice"] = ("error", str(exc))
        return
    g = runs.start("attribute", {"run": request})
    if g is not None:
        state.put(state.INPUTS_OPEN, False)
        runs.first_news(g)  # the first text or estimate, drawn with the page rather than competing with it


def _passages_editor() -> None:
    """The passages as an editable table (add, delete, paste rows), a move control, and a JSON/JSONL upload.

    The table draws from a copy of the owned passages taken when its key is new (passages replaced from
    code bump the version, so a new key) or was dropped on a page switch; its edits go back into the owned
    passages on every run, so they survive page switches.
    """
    import pandas as pd

    key = f"in_passages_editor_{state.get('in_passages_version', 0)}"
    if key not in ss:
        ss[f"{key}_base"] = state.passage_rows()
    edited = st.data_editor(
        pd.DataFrame(ss[f"{key}_base"], columns=state.PASSAGE_COLUMNS), key=key, num_rows="dynamic",
        width="stretch", hide_index=True,
        column_config={"id": st.column_config.TextColumn("id", width="small"),
                       "title": st.column_config.TextColumn("title", width="medium"),
                       "text": st.column_config.TextColumn("text", width="large")})
    state.put("in_passages", edited.fillna("").to_dict("records"))
    rows = state.passage_rows()
    if len(rows) > 1:
        c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="bottom")
        i = c1.selectbox("Move passage", list(range(len(rows))), key="passage_to_move",
                         format_func=lambda j: f"{j + 1}: {(rows[j]['title'] or rows[j]['text'])[:60]}")
        c2.button("↑", key="passage_up", on_click=state.move_passage, args=(i, -1), help="Move it up")
        c3.button("↓", key="passage_down", on_click=state.move_passage, args=(i, 1), help="Move it down")
    st.file_uploader("… or upload passages: a JSON list or JSONL of {\"id\", \"title\", \"text\"}",
                     type=["json", "jsonl"], key="passage_upload", on_change=state.read_passage_upload)
    if ss.get("passage_upload_error"):
        ui.message("error", ss["passage_upload_error"])


# -- inputs: folded away once a result exists, so the result is what a viewer sees --------------------
state.seed(state.INPUTS_OPEN, ss["result"] is None)  # a new result folds them (state.set_current)
inputs_box = st.expander("Inputs: context, question, model and method", key=state.INPUTS_OPEN,
                         on_change=state.write_back, args=(state.INPUTS_OPEN,))
with inputs_box:
    st.markdown("**Built-in examples**")
    for col, example in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=True):
        col.button(example.title, key=f"example_{example.key}", on_click=state.load_example, args=(example.key,),
                   help=example.note, width="stretch")

    left, right = st.columns([3, 2], gap="large")
    with left:
        mode = state.widget(st.radio, "Context as", "in_context_mode", state.ONE_TEXT, options=state.CONTEXT_MODES,
                            horizontal=True, help="One text split at blank lines, or the passages a retriever "
                            "returned: each passage is a source, named by its id and title in every view.")
        if mode == state.ONE_TEXT:
            state.widget(st.text_area, "Context", "in_context", "", height=100, label_visibility="collapsed",
                         placeholder="Paste a few paragraphs (separate paragraphs with a blank line) …")
            with st.popover("… or upload a .txt / .md file as the context"):  # folded: Run stays in view
                st.file_uploader("A .txt / .md file as the context", type=["txt", "md"], key="upload",
                                 on_change=state.read_upload)
            if ss.get("upload_error"):
                ui.message("error", ss["upload_error"])
        else:
            _passages_editor()
        state.widget(st.text_input, "Question", "in_question", "",
                     placeholder="What should the model answer from the context?")
        state.widget(st.text_area, "Response (optional)", "in_response", "", height=68,
                     placeholder="Leave empty to generate it with the model; or paste an answer to explain.")

    with right:
        model = ui.model_picker("Model", "in_model", config, default=config.default_model,
                                help="The target model: it answers, and its log-probabilities are attributed.")
        if config.missing_presets:
            with st.expander("More models"):
                for name, note in config.missing_presets:
                    st.text(f"{name}: {note}")
        method = state.widget(st.selectbox, "Method", "in_method", "loo", options=ui.offered_methods(model),
                              format_func=lambda m: f"{m} · {METHODS[m].title}")
        st.caption(METHODS[method].summary)
        ui.estimate_caption(model)
        params = ui.method_params(method, model=model, proxy=ui.chosen_model("in_proxy"))
        if METHODS[method].needs_proxy:
            others = sorted((m for m in config.models if m != model), key=ui.model_size)
            ui.model_picker("Proxy model", "in_proxy", config, default=others[0] if others else None,
                            help="A smaller model that does most of the work (ideally same family).")
        with st.expander("Advanced"):
            state.widget(st.number_input, "Max new tokens when generating", "in_max_new_tokens", 64,
                         min_value=1, max_value=512, step=8)
            if state.get("in_context_mode") == state.PASSAGES:
                state.widget(st.text_input, "Passage template", "in_passage_template", DEFAULT_PASSAGE_TEMPLATE,
                             help="How the prompt shows each passage: {number}, {id}, {title} and {text} "
                                  "(passages are joined by a blank line).")

with contextlib.suppress(ValueError):  # inputs or parameters the run itself refuses, with its own message
    _planned = _request_from_inputs()
    if _planned.document().sentences:  # what Run will cost, before it starts
        st.caption(plan_line(_planned.source, _planned.question, method=_planned.method, model=_planned.model,
                             response=_planned.response, **_planned.passage_args(), **dict(_planned.params)),
                   help="Forward passes from the method's plan; the time is a rough estimate from the model "
                        "size and the prompt length.")
        runs.prepare(_planned)  # the idle worker computes the prompt ahead: a Run then answers at once
st.button("Run", type="primary", key="run", width="stretch", on_click=_run,
          help="Runs in the background: you can switch pages; the result is kept in History.")

# -- the run: in the background, polled (progress, ETA, queue, live heatmap, Stop) -----------------
if runs.group("attribute") is not None:
    runs.show_link()
runs.live_panel("attribute")


# -- the result ------------------------------------------------------------------------------------
PART_MODES = ["Whole response", "One sentence", "Character range"]


def _part_span(text: str, rk: str) -> tuple[int, int] | None:
    """The chosen part of the response from the widgets' current values (None = the whole response)."""
    mode = state.get("in_part_mode", PART_MODES[0])
    span = None
    if mode == PART_MODES[1]:
        sentences = segment(text).sentences
        i = state.get(f"part_sentence_{rk}", 0)
        if sentences and i in range(len(sentences)):
            span = (sentences[i].start, sentences[i].end)
    elif mode == PART_MODES[2]:
        a, b = state.get(f"part_range_{rk}", (0, len(text)))
        span = (a, b) if b > a else None
    return None if span == (0, len(text)) else span


def _reattribute_part(request: RunRequest, text: str, rk: str) -> None:
    """Button callback: attribute the chosen part, reading the widgets at click time."""
    runs.start("attribute", {"run": request.but(response=text, response_span=_part_span(text, rk))})


def _explain_part(result: AttributionResult, request: RunRequest) -> None:
    """Choose a sentence or a character range of the response and attribute just that part."""
    text = result.response
    sentences = segment(text).sentences
    rk = hashlib.sha1(text.encode()).hexdigest()[:8]  # widget keys per response: ranges differ
    mode = state.widget(st.radio, "Explain", "in_part_mode", PART_MODES[0], options=PART_MODES, horizontal=True,
                        label_visibility="collapsed")
    if mode == PART_MODES[1] and sentences:
        state.widget(st.selectbox, "Sentence of the response", f"part_sentence_{rk}", 0,
                     options=list(range(len(sentences))), format_func=lambda j: f"{j + 1}: {sentences[j].text[:90]}")
    elif mode == PART_MODES[2] and len(text) > 1:
        a, b = state.widget(st.slider, "Characters of the response", f"part_range_{rk}", (0, len(text)),
                            min_value=0, max_value=len(text))
        ui.text_block("Selected:", text[a:b][:300])
    st.button("Re-attribute this part", key="run_part", on_click=_reattribute_part, args=(request, text, rk),
              help="Scores the same context against only the chosen response tokens (no new generation).")


result, request = state.current()
if result is None:  # the first-visit hint is at the top of the page
    st.stop()
if runs.group("attribute") is not None:
    # The run in progress is what this page shows (its live panel, above); the previous result would be a
    # stale answer below it, and drawing it (heatmap, tables, downloads) costs the browser and this script
    # CPU that the model's first pass needs on a small machine. It is back if the run is stopped.
    st.caption("The previous result is kept in History; it is shown here again if you stop this run.")
    st.stop()

runs.dataset_steps("attr_rows")
ui.text_block("Question:", result.question)
st.html(response_html(result))
known = known_answer_html(result, known_for(result))
if known:
    st.html(known)
shaded = st.container()  # the heatmap, drawn after the token picker but shown above it: it must be in view
view = tokens.part_view(result)  # pick tokens: the context above recolours from stored per-token values
with shaded:
    st.markdown("**Context, shaded by score**")
    c1, c2, c3 = st.columns([2, 3, 2])
    level_name = state.widget(c1.radio, "Granularity", "in_level", "Sentences", options=["Sentences", "Paragraphs"],
                              horizontal=True)
    scale = state.widget(c2.radio, "Colour scale", "in_scale", DEFAULT_SCALE, options=list(SCALES), horizontal=True,
                         format_func=lambda x: {"sqrt": "√ sqrt", "log": "log"}.get(x, x),
                         help="How colour grows with |score|. Signed square root, log or rank keep small scores "
                              "visible next to one dominant span; the legend says which scale is shown.")
    intensity = state.widget(c3.slider, "Colour intensity", "in_intensity", 1.0, min_value=0.25, max_value=4.0,
                             step=0.25, help="Multiplies colour strength; >1 makes small scores visible (saturates).")
    level = "sentence" if level_name == "Sentences" else "paragraph"
    if all(s is None for s in result.scores(level)):
        ui.message("warning", f"This run did not score {level}s (see the method's settings). Showing sentences "
                              "instead.")
        level = "sentence"
    st.html(tokens.heatmap(view, level, intensity, scale))

if ss.get("run_summary"):
    st.caption(ss["run_summary"])
if runs.group("attribute") is None:  # while a run is going, its link is shown above its progress
    runs.show_link()
st.markdown(f"**Top {level}s**")
k_col, _ = st.columns([1, 4])
k = int(state.widget(k_col.number_input, "How many", "in_top_k", 5, min_value=1, max_value=50))
st.dataframe(top_k_table(view.result, k, level), hide_index=True, width="stretch",
             column_config={"text": st.column_config.TextColumn(width="large"),
                            "rank": st.column_config.NumberColumn(width="small"),
                            "paragraph": st.column_config.NumberColumn(width="small"),
                            "source": st.column_config.TextColumn(width="medium")})

with st.expander("Re-run for a part of the response"):
    _explain_part(result, request)

facts_col, export_col = st.columns([3, 2], gap="large")
with facts_col:
    st.markdown("**Run**")
    ui.facts_table(result)
with export_col:
    st.markdown("**Export**")
    ui.exports(result, "exp_attr", intensity, vertical=True, scale=scale)
