"""The Dataset page's "Upload and run": a file becomes a batch in the server's worker, its rows appear,
Stop and Resume, downloads, limits, and a damaged file that changes nothing (tiny model, fresh database)."""

from __future__ import annotations

import json
import time

from apptools import errors, messages, running

from attribot_core.examples import EXAMPLES

RESPONSE = "It was first lit in 1874."
EVIL = "<b>bold?</b> **not markdown**"


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


def renamed_rows(n: int) -> list[dict]:
    """Rows whose columns are named as another project names them (mapped on the page)."""
    return [{"qid": f"q{i}", "passage": EXAMPLES[i % len(EXAMPLES)].context,
             "query": EXAMPLES[i % len(EXAMPLES)].question + (f" {EVIL}" if i == 0 else ""), "answer": RESPONSE}
            for i in range(n)]


def open_dataset(at):
    at.switch_page("pages/dataset.py").run()
    assert not at.exception, at.exception
    return at


def give_file(at, name: str, data: bytes):
    at.file_uploader(key="up_file").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    return at


def table(at):
    return at.dataframe[-1].value  # the batch's table is the page's last dataframe


def wait_until(at, condition, timeout: float = 120.0):
    """Rerun the page (as its poll does in a browser) until ``condition(at)`` holds."""
    deadline = time.monotonic() + timeout
    while not condition(at):
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception
    return at


def store_state():
    from studio import runs

    store = runs.store()
    return store.count(), [b["name"] for b in store.batches()]


def finished(at) -> bool:
    t = table(at)
    return "status" in t and len(t) > 0 and not t["status"].isin(["queued", "running"]).any()


def test_an_upload_runs_as_a_batch_in_the_worker_and_its_rows_appear_in_the_table(at):
    open_dataset(at)
    assert "500 rows and 20 MB" in " ".join(c.value for c in at.caption)  # limits said before any upload
    give_file(at, "rag-qa.jsonl", jsonl([*renamed_rows(3), {"qid": "empty", "passage": "", "query": "Why?"}]))
    mapping = {f: at.selectbox(key=f"in_up_col_{f}").value for f in ("context", "question", "response", "id")}
    assert mapping == {"context": "passage", "question": "query", "response": "answer", "id": "qid"}
    preview = at.dataframe[0].value
    assert list(preview["id"]) == ["empty"] and "context is empty" in preview["why"].iloc[0]
    assert at.text_input(key="in_up_name").value == "rag-qa"
    assert store_state() == (0, [])  # nothing stored before Start

    at.button(key="up_start").click().run()
    assert not at.exception and not errors(at)
    assert at.multiselect(key="in_ds_batches").value == ["rag-qa"]
    wait_until(at, finished)
    t = table(at)
    assert list(t["id"]) == ["q0", "q1", "q2", "empty"]
    assert list(t["status"]) == ["done", "done", "done", "failed"]
    assert t["question"].iloc[0].endswith(EVIL) and not any(EVIL in m.value for m in at.markdown)
    (bar,) = [p.proto.text for p in at.get("progress")]
    assert "4 of 4 rows finished" in bar and "3 done" in bar and "1 failed" in bar and "rows per minute" in bar
    assert [b.label for b in at.get("download_button")][-3:] == ["JSONL", "CSV", "PARQUET"]


def test_a_single_attribute_run_is_not_stuck_behind_the_batch(at, slow):
    from studio import runs

    open_dataset(at)
    give_file(at, "many.jsonl", jsonl(renamed_rows(12)))
    at.button(key="up_start").click().run()
    ex = runs.executor()
    single = ex.submit(runs.RunRequest(EXAMPLES[0].context, "Who lit it?", at.selectbox(key="in_up_model").value,
                                       response=RESPONSE))
    assert ex.queue_position(single.id) <= 1  # behind the batch row in progress at most
    deadline = time.monotonic() + 120
    while ex.store.get(single.id).active:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert ex.batch_active("many")  # the single run ended while the batch still had rows to go
    ex.cancel_batch("many")


def test_stop_keeps_the_rows_done_and_resume_runs_the_rest(at, slow):
    open_dataset(at)
    give_file(at, "stop-me.jsonl", jsonl(renamed_rows(8)))
    at.button(key="up_start").click().run()
    wait_until(at, lambda a: (table(a)["status"] == "done").sum() >= 1)
    at.button(key="up_stop_stop-me").click().run()
    assert any("Stopped batch 'stop-me'" in m for m in messages(at, "info")), messages(at, "info")
    wait_until(at, lambda a: any(b.key == "up_resume_stop-me" for b in a.button))  # once the worker let go
    statuses = list(table(at)["status"])
    assert "cancelled" in statuses and "queued" not in statuses and statuses.count("done") < 8
    resume = at.button(key="up_resume_stop-me")
    assert resume.label == f"Resume ({statuses.count('cancelled')} rows)"
    resume.click().run()
    wait_until(at, lambda a: finished(a) and (table(a)["status"] == "done").all())
    assert not running(at)


def test_a_damaged_file_is_one_message_and_leaves_the_store_unchanged(at):
    open_dataset(at)
    give_file(at, "ok.jsonl", jsonl(renamed_rows(1)))
    at.button(key="up_start").click().run()
    wait_until(at, finished)
    before = store_state()
    give_file(at, "broken.parquet", b"PAR1\x00\x01 truncated parquet")
    (message,) = errors(at)
    assert message.startswith("Nothing was stored.") and "Parquet" in message
    assert at.get("button") and not any(b.key == "up_start" for b in at.button)  # no Start for a bad file
    assert store_state() == before


def test_a_file_over_the_row_limit_is_refused_with_the_limit_named(at, monkeypatch):
    from studio import upload

    monkeypatch.setattr(upload, "MAX_UPLOAD_ROWS", 2)
    open_dataset(at)
    give_file(at, "three.jsonl", jsonl(renamed_rows(3)))
    (message,) = errors(at)
    assert "3 rows; the limit is 2" in message
    assert store_state() == (0, [])
