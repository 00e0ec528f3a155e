"""Attribute (home): paste or pick a context, ask, run, and read the heat-mapped context."""

from __future__ import annotations

import hashlib

import streamlit as st

from attribot_core import METHODS, AttributionResult, segment
from attribot_core.examples import EXAMPLES
from attribot_core.viz import response_html, top_k_table
from studio import state, tokens, ui
from studio.config import load_config
from studio.engine import RunRequest

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

config = load_config()
ss = st.session_state

st.title("Attribute")
st.caption("Paste a context and a question. The model answers, then every sentence is scored by how much "
           "removing it changes the log-probability of that answer (leave-one-out, in nats).")
ui.show_notice()

# -- inputs ----------------------------------------------------------------------------------------
st.markdown("**Built-in examples**")
for col, example in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=True):
    col.button(example.title, key=f"example_{example.key}", on_click=state.load_example, args=(example.key,),
               help=example.note, width="stretch")

left, right = st.columns([3, 2], gap="large")
with left:
    st.text_area("Context", key="in_context", height=250,
                 placeholder="Paste a few paragraphs (separate paragraphs with a blank line) …")
    st.file_uploader("… or upload a .txt / .md file as the context", type=["txt", "md"], key="upload",
                     on_change=state.read_upload)
    if ss.get("upload_error"):
        st.error(ss["upload_error"])
    st.text_input("Question", key="in_question", placeholder="What should the model answer from the context?")
    st.text_area("Response (optional)", key="in_response", height=68,
                 placeholder="Leave empty to generate it with the model; or paste an answer to explain.")

with right:
    model = ui.model_picker("Model", "in_model", config, default=config.default_model,
                            help="The target model: it answers, and its log-probabilities are attributed.")
    if config.missing_presets:
        with st.expander("More models"):
            for name, message in config.missing_presets:
                st.caption(f"{name}: {message}")
    method = st.selectbox("Method", list(METHODS), key="in_method", format_func=lambda m: f"{m} · {METHODS[m].title}")
    st.caption(METHODS[method].summary)
    params = ui.method_params(method)
    proxy = None
    if METHODS[method].needs_proxy:
        others = sorted((m for m in config.models if m != model), key=ui.model_size)
        proxy = ui.model_picker("Proxy model", "in_proxy", config, default=others[0] if others else None,
                                help="A smaller model that does most of the work (ideally same family).")
    with st.expander("Advanced"):
        st.number_input("Max new tokens when generating", min_value=1, max_value=512, step=8,
                        key="in_max_new_tokens")
    request = RunRequest(
        context=ss["in_context"], question=ss["in_question"], model=model, method=method, params=params,
        proxy_model=proxy, response=ss["in_response"].strip(), max_new_tokens=int(ss["in_max_new_tokens"]),
    )
    run_col, stop_col = st.columns(2)
    if run_col.button("Run", type="primary", key="run", width="stretch"):
        state.start_run(request)
    stop_col.button("Stop", key="stop", on_click=state.stop_run, width="stretch",
                    disabled=state.pending() is None, help="Cancel the run between two forward passes.")

# -- the run ---------------------------------------------------------------------------------------
todo = state.pending()
if todo is not None:
    run_id, run_request = todo
    result = ui.run_with_status(run_request, f"Running {run_request.method} on {run_request.model} …")
    if state.finish_run(run_id) and result is not None:
        state.set_current(result, run_request)


# -- the result ------------------------------------------------------------------------------------
PART_MODES = ["Whole response", "One sentence", "Character range"]


def _part_span(text: str, rk: str) -> tuple[int, int] | None:
    """The chosen part of the response from the widgets' current values (None = the whole response)."""
    mode = ss.get("in_part_mode", PART_MODES[0])
    span = None
    if mode == PART_MODES[1]:
        sentences = segment(text).sentences
        i = ss.get(f"part_sentence_{rk}", 0)
        if sentences and i in range(len(sentences)):
            span = (sentences[i].start, sentences[i].end)
    elif mode == PART_MODES[2]:
        a, b = ss.get(f"part_range_{rk}", (0, len(text)))
        span = (a, b) if b > a else None
    return None if span == (0, len(text)) else span


def _reattribute_part(request: RunRequest, text: str, rk: str) -> None:
    """Button callback: attribute the chosen part, reading the widgets at click time."""
    state.start_run(request.but(response=text, response_span=_part_span(text, rk)))


def _explain_part(result: AttributionResult, request: RunRequest) -> None:
    """Choose a sentence or a character range of the response and attribute just that part."""
    text = result.response
    sentences = segment(text).sentences
    rk = hashlib.sha1(text.encode()).hexdigest()[:8]  # widget keys per response: ranges differ
    mode = st.radio("Explain", PART_MODES, key="in_part_mode", horizontal=True, label_visibility="collapsed")
    if mode == PART_MODES[1] and sentences:
        st.selectbox("Sentence of the response", range(len(sentences)), key=f"part_sentence_{rk}",
                     format_func=lambda j: f"{j + 1}: {sentences[j].text[:90]}")
    elif mode == PART_MODES[2] and len(text) > 1:
        a, b = st.slider("Characters of the response", 0, len(text), (0, len(text)), key=f"part_range_{rk}")
        ui.text_block("Selected:", text[a:b][:300])
    st.button("Re-attribute this part", key="run_part", on_click=_reattribute_part, args=(request, text, rk),
              help="Scores the same context against only the chosen response tokens (no new generation).")


result, request = state.current()
if result is None:
    st.info("Load an example or paste a context and a question, then press **Run**.")
    st.stop()

st.divider()
st.subheader("Response")
ui.text_block("Question:", result.question)
st.html(response_html(result))
view = tokens.part_view(result)  # pick tokens: the context below recolours from stored per-token values
with st.expander("Re-run for a part of the response"):
    _explain_part(result, request)

st.subheader("Context, shaded by score")
c1, c2 = st.columns([1, 2])
level_name = c1.radio("Granularity", ["Sentences", "Paragraphs"], key="in_level", horizontal=True)
intensity = c2.slider("Colour intensity", 0.25, 4.0, step=0.25, key="in_intensity",
                      help="Multiplies colour strength; >1 makes small scores visible (saturates at the max).")
level = "sentence" if level_name == "Sentences" else "paragraph"
if all(s is None for s in result.scores(level)):
    st.warning(f"This run did not score {level}s (see the method's settings). Showing sentences instead.")
    level = "sentence"
st.html(tokens.heatmap(view, level, intensity))

st.markdown(f"**Top {level}s**")
k_col, _ = st.columns([1, 4])
k = int(k_col.number_input("How many", min_value=1, max_value=50, key="in_top_k"))
st.dataframe(top_k_table(view.result, k, level), hide_index=True, width="stretch",
             column_config={"text": st.column_config.TextColumn(width="large"),
                            "rank": st.column_config.NumberColumn(width="small"),
                            "paragraph": st.column_config.NumberColumn(width="small")})

facts_col, export_col = st.columns([3, 2], gap="large")
with facts_col:
    st.markdown("**Run**")
    ui.facts_table(result)
with export_col:
    st.markdown("**Export**")
    ui.exports(result, "exp_attr", intensity, vertical=True)
