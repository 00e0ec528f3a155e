"""A run's progress bar: totals planned from what the method will do, re-planned when a round prunes,
ending full; the ETA from the pace of the passes after the first."""

from __future__ import annotations

import pytest

from attribot_core import segment
from attribot_core.methods import get_method
from attribot_core.methods.hierarchical import hierarchical
from attribot_core.methods.tree import tree
from attribot_core.runs import ModelCache, RunRequest
from attribot_core.runs.execute import Passes, RunReport, eta_seconds, execute
from attribot_core.scoring import ScorerStats
from tests.conftest import CONTEXT

# Eight paragraphs of two sentences (the last two of one and three): two block levels with branching 2.
LONG = "\n\n".join([
    "Ada Lovelace was born in London in 1815. She was the daughter of Lord Byron.",
    "She worked with Charles Babbage on the Analytical Engine. Her notes include the first algorithm.",
    "The river runs through the old town. Nobody remembers who built the bridge.",
    "Dr. Smith visited the U.S. in Jan. 1900. He wrote about the Engine.",
    "The mill was closed in 1902. Its wheel still turns in spring.",
    "The bridge was rebuilt in stone. A fair is held there each May.",
    "Babbage called her the Enchantress of Numbers.",
    "London was large and loud. The answer is in the context. It was noted.",
])


class WordScorer:
    """log p = -(words missing from the full context): a fake model that remembers what it scored."""

    model_id = "words"

    def __init__(self, full: str) -> None:
        self.words, self.stats, self.seen = len(full.split()), ScorerStats(), set()

    def log_probs(self, base, variants, progress=None):
        for i, text in enumerate([base, *variants]):
            if progress and i:
                progress(i - 1, len(variants), self.model_id)
            if text not in self.seen:  # scored once, like the real scorer's memo
                self.seen.add(text)
                self.stats.forward_passes += 1
        if progress:
            progress(len(variants), len(variants), self.model_id)
        return -float(self.words - len(base.split())), [-float(self.words - len(v.split())) for v in variants]


class Recorder(RunReport):
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, float | None]] = []

    def progress(self, done: int, total: int, eta_s: float | None = None) -> None:
        self.calls.append((done, total, eta_s))


def planned(method: str, text: str, **params) -> int:
    doc = segment(text)
    return get_method(method).planned_passes(len(doc.paragraphs), len(doc.sentences), params)


# -- the ETA ----------------------------------------------------------------------------------------
def test_eta_is_the_pace_of_the_passes_after_the_first_times_the_passes_left():
    # the first pass ended at t=10 s (after 9 s of loading and warming up); four more took 4 s
    assert eta_seconds((10.0, 1), (14.0, 5), total=9) == pytest.approx(4.0)


def test_eta_waits_for_a_measured_pass_and_is_zero_at_the_end():
    assert eta_seconds(None, (3.0, 0), total=9) is None
    assert eta_seconds((10.0, 1), (10.0, 1), total=9) is None  # only the first pass so far
    assert eta_seconds((10.0, 1), (20.0, 9), total=9) == 0


def test_passes_report_an_eta_only_after_the_first_pass_and_leave_its_time_out():
    times = iter([0.0, 50.0, 51.0, 52.0])  # the first pass took 50 s (one-time costs), the next ones 1 s
    report = Recorder()
    passes = Passes(report, total=5, clock=lambda: next(times))
    for done in range(4):
        passes(done, 4, "m")
    assert [eta for *_, eta in report.calls] == [None, None, pytest.approx(3.0), pytest.approx(2.0)]


# -- totals that follow the method ----------------------------------------------------------------------
def test_hierarchical_replans_after_its_paragraph_round_and_ends_at_its_total():
    doc, report = segment(LONG), Recorder()
    scorer = WordScorer(doc.text)
    passes = Passes(report, planned("hierarchical", LONG, keep_paragraphs=1))
    out = hierarchical(doc, scorer, keep_paragraphs=1, progress=passes)
    n_inside = sum(s.parent in out.extra["kept_paragraphs"] for s in doc.sentences)
    exact = (1 + len(doc.paragraphs)) + 1 + n_inside  # paragraph round; base and sentences of the kept one
    assert exact != report.calls[0][1]  # the plan could only guess how many sentences the kept paragraph has
    after_paragraphs = [total for done, total, _ in report.calls if done > 1 + len(doc.paragraphs)]
    assert set(after_paragraphs) == {exact}  # known once the paragraph round has chosen
    assert report.calls[-1][:2] == (exact, exact) == (scorer.stats.forward_passes,) * 2
    assert [done for done, *_ in report.calls] == sorted(done for done, *_ in report.calls)  # never backwards


def test_tree_replans_after_every_round_and_ends_at_its_total():
    doc, report = segment(LONG), Recorder()
    scorer = WordScorer(doc.text)
    passes = Passes(report, planned("tree", LONG, branching=2, keep_paragraphs=1))
    tree(doc, scorer, branching=2, keep_paragraphs=1, progress=passes)
    assert report.calls[-1][:2] == (scorer.stats.forward_passes,) * 2
    assert max(done for done, *_ in report.calls) == scorer.stats.forward_passes


def test_a_replan_sets_the_rest_after_the_current_round():
    report = Recorder()
    passes = Passes(report, total=100)
    for done in range(5):
        passes(done, 4, "m")
    passes.replan(3)
    assert report.calls[-1][:2] == (4, 7)
    passes(0, 3, "m")  # the next round starts
    passes(3, 3, "m")
    assert report.calls[-1][:2] == (7, 7)


# -- a real run (tiny model) ------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "params"), [
    ("hierarchical", {"keep_paragraphs": 1}),
    ("tree", {"branching": 2, "keep_paragraphs": 1}),
    ("loo", {"paragraphs": False}),
    ("surrogate", {"n_ablations": 4}),
])
def test_a_run_ends_with_progress_equal_to_its_total_and_its_forward_passes(tiny_model_dir, method, params):
    report = Recorder()
    request = RunRequest.for_method(CONTEXT, "Who?", str(tiny_model_dir), method, params, None, "Babbage.")
    result = execute(request, ModelCache(), report)
    done, total, _ = report.calls[-1]
    assert done == total == result.total_forward_passes
    before_finish = report.calls[-2][:2]
    assert before_finish == (done, total)  # the method's own last report was already full (not snapped to it)
