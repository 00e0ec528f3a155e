"""The method registry is the one source of a method's parameters: CLI flags, input checks, the app's
widgets and the planned forward passes are all built from a method's registered specs."""

from __future__ import annotations

import pytest

from attribot_core import segment
from attribot_core.api import InputError, check_inputs, check_params
from attribot_core.methods import METHODS, MethodSpec, ParamSpec, get_method, register, unregister
from attribot_core.methods.base import MethodOutput
from attribot_core.methods.loo import exact_loo
from attribot_core.runs import RunRequest
from attribot_core.runs.execute import planned_passes
from tests.conftest import CONTEXT

SEEN: list[dict] = []  # what the toy method was called with


def _toy(doc, target, proxy, *, toy_level: int, progress=None) -> MethodOutput:
    """Exact LOO of the sentences, recording its one parameter (a new one no other method has)."""
    SEEN.append({"toy_level": toy_level})
    return exact_loo(doc, target, paragraphs=False, progress=progress)


TOY = MethodSpec(
    "toy", "Toy method", "A method registered by a test.", _toy,
    (ParamSpec("toy_level", 1, "Toy level", "How loud the toy is.", minimum=1, maximum=3,
               valid="a whole number from 1 to 3"),),
    passes=lambda n_paragraphs, n_sentences, params: 1 + n_sentences * params["toy_level"],
)


@pytest.fixture
def toy():
    """The toy method, registered for one test and removed after it."""
    SEEN.clear()
    register(TOY)
    yield TOY
    unregister("toy")
    assert "toy" not in METHODS


def test_a_registered_toy_method_appears_in_cli_checks_and_app(toy, tiny_model_dir, tmp_path, capsys):
    from streamlit.testing.v1 import AppTest

    from attribot_core.cli import main

    # the CLI: a flag built from the spec, parsed and passed on to the method
    assert "--toy-level N" in _help_of_attribute() and "How loud the toy is." in _help_of_attribute()
    context = tmp_path / "context.txt"
    context.write_text(CONTEXT, encoding="utf-8")
    assert main(["attribute", "--context", str(context), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--method", "toy", "--toy-level", "3"]) == 0
    assert SEEN == [{"toy_level": 3}]
    doc = segment(CONTEXT)
    plan = f"Plan: about {1 + 3 * len(doc.sentences)} forward passes (toy over {len(doc.paragraphs)} paragraphs"
    assert plan in capsys.readouterr().err

    # the input checks: a bad value refused with the spec's words, by the API and by the CLI before loading
    with pytest.raises(InputError, match=r"^Method 'toy': toy_level must be a whole number from 1 to 3 \(got 7\)"):
        check_inputs(CONTEXT, "Who?", method="toy", toy_level=7)
    assert main(["attribute", "--context", str(context), "--question", "Who?", "--method", "toy",
                 "--toy-level", "7"]) == 2
    err = capsys.readouterr().err
    assert "toy_level must be a whole number from 1 to 3 (got 7)" in err and "Loading" not in err

    # the app: its parameter widget, with the spec's label, help and bounds, giving the value set
    def page() -> None:
        import streamlit as st

        from studio import state, ui

        state.init()
        st.session_state["values"] = ui.method_params("toy")

    at = AppTest.from_function(page, default_timeout=60).run()
    widget = at.number_input(key="in_param_toy_toy_level")
    assert (widget.label, widget.help, widget.min, widget.max, widget.value) == (
        "Toy level", "How loud the toy is.", 1, 3, 1)
    widget.set_value(2).run()
    assert at.session_state["values"] == (("toy_level", 2),)

    # progress totals: the method's own pass estimate
    request = RunRequest(CONTEXT, "Who?", "m", "toy", (("toy_level", 2),))
    assert planned_passes(request, n_sentences=9, n_paragraphs=3) == 19


def _help_of_attribute() -> str:
    from attribot_core.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["attribute"].format_help()


@pytest.mark.parametrize(("method", "params", "message"), [
    ("surrogate", {"keep_prob": 0.0}, "Method 'surrogate': keep_prob must be a probability above 0 and at most 1"),
    ("surrogate", {"keep_prob": 1.5}, "keep_prob must be a probability above 0 and at most 1 (got 1.5)"),
    ("surrogate", {"alpha": -1.0}, "alpha must be a number ≥ 0 (got -1.0)"),
    ("surrogate", {"alpha": "big"}, "alpha must be a number (got 'big')"),
    ("surrogate", {"seed": -1}, "seed must be a whole number ≥ 0"),
    ("surrogate", {"n_ablations": 2.5}, "n_ablations must be a whole number (got 2.5)"),
    ("tree", {"branching": 1}, "branching must be a whole number ≥ 2 (got 1)"),
    ("hierarchical", {"keep_paragraphs": 0}, "keep_paragraphs must be a whole number ≥ 1 (got 0)"),
    ("loo", {"paragraphs": "yes"}, "paragraphs must be true or false (got 'yes')"),
    ("pruning", {"proxy_stage": "fast"},
     "proxy_stage must be one of auto, loo, hierarchical, tree, estimate, first-order (got 'fast')"),
    ("loo", {"keep_paragraphs": 2}, "Method 'loo' has no parameter(s) ['keep_paragraphs']; it takes ['paragraphs']"),
])
def test_parameter_checks_come_from_the_specs(method, params, message):
    with pytest.raises(InputError) as caught:
        check_params(method, params)
    assert message in str(caught.value)


def test_valid_values_pass_the_checks_and_an_optional_parameter_may_be_off():
    check_params("surrogate", {"keep_prob": 1, "alpha": 0, "seed": 0, "n_ablations": 1})
    check_params("pruning", {"keep_paragraphs": None, "proxy_stage": "tree", "branching": 2})


def test_every_parameter_default_passes_its_own_check():
    for spec in METHODS.values():
        check_params(spec.name, spec.params)
        for ps in spec.parameters:
            assert ps.label and ps.help, (spec.name, ps.name)


@pytest.mark.parametrize(("method", "params", "passes"), [
    ("loo", {}, 1 + 9 + 3),
    ("loo", {"paragraphs": False}, 1 + 9),
    ("hierarchical", {"keep_paragraphs": 1}, (1 + 3) + (1 + 3)),  # 9 sentences in 3 paragraphs: 3 inside one
    ("surrogate", {"n_ablations": 8}, 9),
    ("attention", {}, 1),
    ("pruning", {"keep_sentences": 2}, (1 + 9) + (1 + 2)),  # proxy LOO of every sentence, target rescores 2
])
def test_planned_passes_follow_each_methods_strategy(method, params, passes):
    assert get_method(method).planned_passes(3, 9, params) == passes


def test_tree_plans_far_fewer_passes_than_hierarchical_on_hundreds_of_paragraphs():
    tree, hierarchical = get_method("tree"), get_method("hierarchical")
    assert hierarchical.planned_passes(200, 800) > 200
    assert tree.planned_passes(200, 800) < 50


def test_planned_passes_match_the_passes_a_run_takes(tiny_lm):
    """Where no round depends on scores (every paragraph kept), the plan is the count a real run reports."""
    from attribot_core import attribute

    doc = segment(CONTEXT)
    for method, params in [("loo", {}), ("hierarchical", {"keep_paragraphs": 4}), ("surrogate", {"n_ablations": 4})]:
        result = attribute(CONTEXT, "Who?", model=tiny_lm, response="Babbage.", method=method, per_token=False,
                           **params)
        planned = get_method(method).planned_passes(len(doc.paragraphs), len(doc.sentences), params)
        assert result.total_forward_passes == planned, method
