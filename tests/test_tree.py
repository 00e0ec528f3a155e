"""Tree LOO: recursive blocks -> paragraphs -> sentences, checked against exact LOO and hierarchical.

Identities that run the very same computations hold within 1e-4 nats; comparisons with exact LOO in
a different context (cached vs not) within 1e-3 nats, as in test_methods.py.
"""

from types import SimpleNamespace

import pytest

from attribot_core import Response, attribute, segment
from attribot_core.methods.tree import _split, tree_depth

TOL = 1e-4

# Eight short paragraphs: enough for two block levels with branching 2 or 3.
LONG = "\n\n".join([
    "Ada Lovelace was born in London in 1815. She was the daughter of Lord Byron.",
    "She worked with Charles Babbage on the Analytical Engine. Her notes include the first algorithm.",
    "The river runs through the old town. Nobody remembers who built the bridge.",
    "Dr. Smith visited the U.S. in Jan. 1900. He wrote about the Engine.",
    "The mill was closed in 1902. Its wheel still turns in spring.",
    "Babbage called her the Enchantress of Numbers.",
    "The bridge was rebuilt in stone. A fair is held there each May.",
    "London was large and loud. The answer is in the context.",
])


@pytest.fixture(scope="module")
def response(tiny_lm):
    ids = tiny_lm.tokenizer("Charles Babbage worked with her.", add_special_tokens=False)["input_ids"]
    return Response("Charles Babbage worked with her.", tuple(ids + [tiny_lm.tokenizer.eos_token_id]),
                    tiny_lm.tokenizer_id)


def run(lm, response, method="tree", context=LONG, **kw):
    return attribute(context, "Who did Ada work with?", model=lm, method=method, response=response, **kw)


def test_tree_depth_is_log_of_paragraphs():
    assert [tree_depth(n, 4) for n in (1, 2, 4, 5, 16, 17, 200)] == [0, 1, 1, 2, 2, 3, 4]
    assert tree_depth(200, 8) == 3


def test_split_gives_contiguous_near_equal_blocks():
    assert _split(list(range(10)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert _split([5, 6], 4) == [[5], [6]]


def test_tree_keeping_everything_is_exact_loo(tiny_lm, response):
    exact = run(tiny_lm, response, "loo")
    t = run(tiny_lm, response, branching=2, keep_paragraphs=8)
    assert t.scores() == pytest.approx(exact.scores(), abs=1e-3)
    assert t.scores("paragraph") == pytest.approx(exact.scores("paragraph"), abs=1e-3)
    assert t.extra["tree_depth"] == 3


def test_tree_with_one_level_is_hierarchical(tiny_lm, response):
    n = len(segment(LONG).paragraphs)
    h = run(tiny_lm, response, "hierarchical", keep_paragraphs=2)
    t = run(tiny_lm, response, branching=n, keep_paragraphs=2)
    assert [s is None for s in t.scores()] == [s is None for s in h.scores()]
    assert [a for a in t.scores() if a is not None] == pytest.approx([a for a in h.scores() if a is not None], abs=TOL)
    assert t.scores("paragraph") == pytest.approx(h.scores("paragraph"), abs=TOL)
    assert t.total_forward_passes == h.total_forward_passes


def test_tree_scores_only_inside_kept_blocks(tiny_lm, response):
    t = run(tiny_lm, response, branching=2, keep_paragraphs=1)
    doc = segment(LONG)
    rounds = t.extra["tree_rounds"]
    assert [len(r["blocks"]) for r in rounds] == [2, 2, 2]  # 8 paragraphs, two children per kept block
    # every block of a round is a child of a block kept in the round before
    for before, after in zip(rounds, rounds[1:], strict=False):
        parents = [set(before["blocks"][i]) for i in before["kept"]]
        assert all(any(set(b) <= p for p in parents) for b in after["blocks"])
    kept = t.extra["kept_paragraphs"]
    scored = [s.index for s in t.sentences if s.score is not None]
    assert scored == [s.index for s in doc.sentences if s.parent in kept]
    assert sum(p.score is not None for p in t.paragraphs) == 2  # the paragraph round had two candidates
    # rounds run on shrinking contexts: far fewer passes than exact LOO
    exact = run(tiny_lm, response, "loo")
    assert t.total_forward_passes < exact.total_forward_passes
    assert t.extra["tokens_computed"] < exact.extra["tokens_computed"] / 2


def test_tree_sentence_scores_are_loo_within_the_kept_paragraphs(tiny_lm, response):
    t = run(tiny_lm, response, branching=2, keep_paragraphs=1)
    doc = segment(LONG)
    kept = set(t.extra["kept_paragraphs"])
    pruned = doc.without([s.index for s in doc.sentences if s.parent not in kept])
    inside = run(tiny_lm, response, "loo", context=pruned)
    got = [s.score for s in t.sentences if s.score is not None]
    assert got == pytest.approx(inside.scores(), abs=1e-3)


def test_tree_keeps_ties(tiny_lm, response, monkeypatch):
    """Blocks tied at the cut all descend (a fake scorer ties every block and paragraph)."""
    from attribot_core.methods import tree as tree_module

    calls = []

    def tied(scorer, doc, groups, *, dropped=(), progress=None, spans=None):
        calls.append(len(groups))
        return 0.0, [1.0] * len(groups)

    monkeypatch.setattr(tree_module, "loo_round", tied)
    out = tree_module.tree(segment(LONG), SimpleNamespace(model_id="fake"), branching=2, keep_paragraphs=1)
    assert calls == [2, 4, 8, len(segment(LONG).sentences)]  # every tie kept: the whole tree, then all sentences
    assert out.extra["kept_paragraphs"] == list(range(8))


def test_tree_on_one_paragraph_scores_its_sentences(tiny_lm, response):
    t = run(tiny_lm, response, context="One fact here. Another fact there.", branching=4)
    assert all(s.score is not None for s in t.sentences)


def test_tree_rejects_bad_parameters(tiny_lm, response):
    with pytest.raises(ValueError, match="branching must be a whole number ≥ 2"):
        run(tiny_lm, response, branching=1)
    with pytest.raises(ValueError, match="keep_paragraphs must be a whole number ≥ 1"):
        run(tiny_lm, response, keep_paragraphs=0)


def test_pruning_with_tree_proxy_stage(tiny_lm, tiny_lm_b, response):
    r = attribute(LONG, "Who did Ada work with?", model=tiny_lm, proxy_model=tiny_lm_b, method="pruning",
                  response=response, proxy_stage="tree", branching=2, keep_paragraphs=2, keep_sentences=2)
    assert "tree_rounds" in r.extra
    by = {s.scored_by for s in r.sentences if s.score is not None}
    assert by == {tiny_lm.model_id, tiny_lm_b.model_id}
    assert sum(s.scored_by == tiny_lm.model_id for s in r.sentences) == len(r.extra["kept_sentences"])
    assert r.log_prob_full is None
    proxy_only = attribute(LONG, "Who did Ada work with?", model=tiny_lm_b, method="tree", response=response,
                           branching=2, keep_paragraphs=2)
    assert [s.score is None for s in r.sentences] == [s.score is None for s in proxy_only.sentences]


def test_pruning_rejects_an_unknown_proxy_stage(tiny_lm, tiny_lm_b, response):
    with pytest.raises(ValueError, match="proxy_stage must be one of auto, loo, hierarchical, tree"):
        attribute(LONG, "q", model=tiny_lm, proxy_model=tiny_lm_b, method="pruning", response=response,
                  proxy_stage="magic")


def test_cli_tree_flags(tiny_model_dir, tmp_path, capsys):
    from attribot_core.cli import main

    ctx = tmp_path / "c.txt"
    ctx.write_text(LONG, encoding="utf-8")
    assert main(["attribute", "--context", str(ctx), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--method", "tree", "--branching", "2", "--keep-paragraphs", "1"]) == 0
    assert "not scored" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="does not apply"):
        main(["attribute", "--context", str(ctx), "--question", "q", "--method", "loo", "--branching", "2"])
