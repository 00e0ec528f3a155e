"""bench/long_doc.py: documents sized by tokens, and tables that mark projected figures as projections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import long_doc  # noqa: E402


def _words(text: str) -> dict:
    return {"input_ids": text.split()}


def _evalset() -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open(encoding="utf-8")]


def test_a_document_sized_by_tokens_is_the_largest_within_the_budget_and_holds_the_gold_sentence():
    examples = _evalset()
    example = next(e for e in examples if e["id"] == "ex007")
    context, gold, n = long_doc.build_to_tokens(example, examples, _words, 2000)
    assert n <= 2000 and gold in context.split("\n\n")
    bigger, _ = long_doc.build_document(example, examples, len(context.split("\n\n")) + 1)
    assert len(bigger.split()) > 2000


def test_rows_measured_on_some_layers_are_shown_as_projections():
    row = {"kind": "passes", "model": "m", "window": 32768, "tokens": 16000, "paragraphs": 600, "reused": 8000,
           "recomputed": 8000, "full_s": 10.0, "full_peak_gb": 2.0, "ablation_s": 5.0, "ablation_peak_gb": 2.1,
           "loadavg_full": 1.0, "loadavg_ablation": 1.0, "layers_run": 2, "layers": 24,
           "full_s_projected": 120.0, "ablation_s_projected": 60.0, "full_peak_gb_projected": 3.5,
           "ablation_peak_gb_projected": 3.6}
    text = long_doc.render([row], "ex007")
    assert "2 of 24: measured → **projected** to 24 | 10 → **120** | 2.00 → **3.50**" in text
    assert "PROJECTED from the passes above (not measured)" in text  # tree at 16k was not run


def test_tree_at_16k_is_projected_until_a_tree_run_of_that_size_is_there():
    passes = {"kind": "passes", "model": "m", "window": 32768, "tokens": 16000, "paragraphs": 600, "reused": 8000,
              "recomputed": 8000, "full_s": 100.0, "full_peak_gb": 2.0, "ablation_s": 50.0,
              "ablation_peak_gb": 2.1, "loadavg_full": 1.0, "loadavg_ablation": 1.0}
    tree = {"kind": "tree", "model": "m", "window": 32768, "tokens": 8000, "paragraphs": 300, "generate_s": 80.0,
            "tree_s": 300.0, "passes": 40, "peak_gb": 3.0, "answer_in_response": True, "rank": 1,
            "loadavg_start": 1.0, "loadavg_end": 2.0}
    assert "PROJECTED" in long_doc.render([passes, tree], "ex007")  # a tree run at 8k says nothing of 16k
    assert "PROJECTED" not in long_doc.render([passes, tree | {"tokens": 16050}], "ex007")


def test_the_estimate_rows_are_the_estimate_and_pruning_ranked_by_it():
    import argparse

    args = argparse.Namespace(methods="estimate,estimate-after-generation,estimate-top5,tree,hierarchical",
                              tree="4:2,2:1", keep=3)
    runs = long_doc._runs(args)
    assert [(method, params) for _, method, params in runs] == [
        ("estimate", {}),
        ("estimate", {"after_generation": True}),  # main() hands it the keys generation kept
        ("pruning", {"proxy_stage": "estimate", "keep_sentences": 5}),
        ("tree", {"branching": 4, "keep_paragraphs": 2}),
        ("tree", {"branching": 2, "keep_paragraphs": 1}),
        ("hierarchical", {"keep_paragraphs": 3}),
    ]
